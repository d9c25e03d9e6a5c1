"""Annotated video per camera: boxes labelled with global ids (or local track ids until matched)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _colour(ident: int) -> tuple[int, int, int]:
    """A stable, well-spread BGR colour per id."""
    rng = np.random.default_rng(ident * 7919 + 17)
    return tuple(int(v) for v in rng.integers(64, 256, size=3))


class AnnotatedVideoWriter:
    """Lazily opens a ``cv2.VideoWriter`` (mp4v) at the first frame's size."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self._writer = None
        self.frames = 0

    def write(self, image_bgr: np.ndarray, boxes: list[tuple[np.ndarray, str, int]]) -> None:
        """image_bgr: (H, W, 3) uint8; boxes: (tlwh (4,), label, colour id). The image is not modified."""
        import cv2

        if self._writer is None:
            h, w = image_bgr.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
        canvas = image_bgr.copy()
        for tlwh, label, cid in boxes:
            x, y, w, h = (int(round(v)) for v in tlwh)
            colour = _colour(cid)
            cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, 2)
            cv2.putText(canvas, label, (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 2)
        self._writer.write(canvas)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
