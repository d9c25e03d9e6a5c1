"""Region-of-interest filtering of detections by their foot point (bottom-centre of the box)."""

from __future__ import annotations

import numpy as np

from pipeline.core.types import Detection


def foot_points(boxes_tlwh: np.ndarray) -> np.ndarray:
    """(N, 4) tlwh -> (N, 2) bottom-centre points (x + w/2, y + h)."""
    b = np.asarray(boxes_tlwh, dtype=np.float64).reshape(-1, 4)
    return np.stack([b[:, 0] + b[:, 2] / 2.0, b[:, 1] + b[:, 3]], axis=1)


def inside_roi(points_xy: np.ndarray, roi: list[float] | list[list[float]] | None) -> np.ndarray:
    """(N, 2) points -> (N,) bool. roi: None (everything), tlbr [x1, y1, x2, y2] or polygon [[x, y], ...].

    Polygon test by ray casting (even-odd rule); points on an edge may fall either way.
    """
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    if roi is None:
        return np.ones(len(pts), dtype=bool)
    if not isinstance(roi[0], (list, tuple)):
        x1, y1, x2, y2 = (float(v) for v in roi)
        return (pts[:, 0] >= x1) & (pts[:, 0] <= x2) & (pts[:, 1] >= y1) & (pts[:, 1] <= y2)
    poly = np.asarray(roi, dtype=np.float64)
    x, y = pts[:, 0:1], pts[:, 1:2]  # (N, 1)
    xa, ya = poly[:, 0][None, :], poly[:, 1][None, :]  # (1, V)
    xb, yb = np.roll(poly[:, 0], -1)[None, :], np.roll(poly[:, 1], -1)[None, :]
    crosses = (ya > y) != (yb > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = xa + (y - ya) * (xb - xa) / (yb - ya)
    hits = crosses & (x < x_at)
    return (hits.sum(axis=1) % 2) == 1


def filter_roi(dets: list[Detection], roi: list[float] | list[list[float]] | None) -> list[Detection]:
    """Keep the detections whose foot point lies inside ``roi`` (all when roi is None)."""
    if roi is None or not dets:
        return dets
    keep = inside_roi(foot_points(np.stack([d.tlwh for d in dets])), roi)
    return [d for d, k in zip(dets, keep) if k]


def roi_outside_frame(roi: list[float] | list[list[float]] | None, width: int, height: int) -> bool:
    """True when ``roi`` (tlbr or polygon) has no point inside a ``width`` x ``height`` frame (e.g. an ROI drawn
    for 1920x1080 on a 768x576 stream): every detection would be filtered out."""
    if roi is None:
        return False
    if not isinstance(roi[0], (list, tuple)):
        x1, y1, x2, y2 = (float(v) for v in roi)
    else:
        pts = np.asarray(roi, dtype=np.float64)
        (x1, y1), (x2, y2) = pts.min(axis=0), pts.max(axis=0)
    return x1 >= width or y1 >= height or x2 <= 0 or y2 <= 0


def roi_warning(cam_id: str, roi: list[float] | list[list[float]], width: int, height: int) -> str:
    """The one warning line of a camera whose ROI lies entirely outside its frames."""
    def fmt(v):
        return f"[{', '.join(map(fmt, v))}]" if isinstance(v, (list, tuple)) else f"{float(v):g}"

    return (f"camera {cam_id}: roi {fmt(roi)} lies entirely outside its {width}x{height} frames, so every detection is"
            " filtered out (was it drawn for another resolution?)")
