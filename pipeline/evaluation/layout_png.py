"""A picture of a virtual-camera layout: the cuts drawn on one source frame, plus their recording windows.

Blind strips (pixels no camera sees) are darkened and hatched, each camera's region is outlined
in its own colour with its name, pixels two cameras share (an overlap) are tinted, and a timeline
under the frame shows which source frames each camera records.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.virtual_cameras import CameraCut

_COLOURS = [(0, 200, 255), (255, 120, 0), (0, 220, 0), (220, 0, 220), (0, 0, 255), (255, 255, 0)]  # BGR


def _coverage(cuts: list[CameraCut], height: int, width: int) -> np.ndarray:
    """(H, W) int: how many cameras' regions hold each source pixel."""
    cover = np.zeros((height, width), dtype=np.int32)
    for c in cuts:
        cover[c.y0:c.y1, c.x0:c.x1] += 1
    return cover


def draw_layout(image: np.ndarray, cuts: list[CameraCut], title: str, path: Path,
                overlapping: list[list[str]] | None = None) -> Path:
    """Write the layout PNG at ``path``. image: (H, W, 3) BGR source frame. Cameras whose regions
    coincide (same region, other recording window) share one outline, labelled with all their names."""
    import cv2

    h, w = image.shape[:2]
    img = image.copy()
    cover = _coverage(cuts, h, w)
    blind = cover == 0
    img[blind] = (img[blind] * 0.35).astype(np.uint8)
    hatch = np.zeros((h, w), dtype=bool)
    for k in range(-h, w, 12):
        cv2.line(hatch.view(np.uint8), (k, h), (k + h, 0), 1, 1)
    img[blind & hatch] = (40, 40, 40)
    pair_ids = {frozenset(p) for p in (overlapping or [])}
    for a in cuts:
        for b in cuts:
            if a.cam_id < b.cam_id and frozenset((a.cam_id, b.cam_id)) in pair_ids:
                x0, y0, x1, y1 = max(a.x0, b.x0), max(a.y0, b.y0), min(a.x1, b.x1), min(a.y1, b.y1)
                roi = img[y0:y1, x0:x1]
                roi[:] = (0.7 * roi + 0.3 * np.array([255, 0, 255])).astype(np.uint8)
                cv2.putText(img, "overlap", (x0 + 2, y0 + 70), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 2)
    regions: dict[tuple[int, int, int, int], list[int]] = {}
    for k, c in enumerate(cuts):
        regions.setdefault((c.x0, c.y0, c.x1, c.y1), []).append(k)
    for (x0, y0, x1, y1), ks in regions.items():
        colour = _COLOURS[ks[0] % len(_COLOURS)]
        cv2.rectangle(img, (x0 + 2 * ks[0] % 6, y0 + 1), (x1 - 2, y1 - 2), colour, 3)
        label = " / ".join(cuts[k].cam_id for k in ks)
        cv2.putText(img, label, (x0 + 8, y0 + 24 + 22 * (ks[0] % 2)), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 4)
        cv2.putText(img, label, (x0 + 8, y0 + 24 + 22 * (ks[0] % 2)), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, 2)
    cv2.putText(img, title, (8, h - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
    return _save_with_timeline(img, cuts, path)


def _save_with_timeline(img: np.ndarray, cuts: list[CameraCut], path: Path) -> Path:
    """Append one bar per camera: the source frames it records (filled) out of the whole range."""
    import cv2

    h, w = img.shape[:2]
    row = 22
    panel = np.full((row * (len(cuts) + 1) + 8, w, 3), 255, dtype=np.uint8)
    first, last = min(c.f0 for c in cuts), max(c.f1 for c in cuts)
    left, right = 110, w - 10

    def x_of(f: int) -> int:
        return int(left + (right - left) * (f - first) / max(1, last - first))

    for k, c in enumerate(cuts):
        y = 8 + row * k
        a, b = c.on or (c.f0, c.f1)
        cv2.putText(panel, c.cam_id, (6, y + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        cv2.rectangle(panel, (left, y + 3), (right, y + row - 5), (200, 200, 200), 1)
        cv2.rectangle(panel, (x_of(a), y + 3), (x_of(b), y + row - 5), _COLOURS[k % len(_COLOURS)], -1)
        cv2.putText(panel, f"{a}-{b}", (x_of(a) + 4, y + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    y = 8 + row * len(cuts)
    cv2.putText(panel, f"source frames {first}..{last}", (left, y + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack([img, panel]))
    return path
