"""The runner's latest frame per camera, for the console's live tiles.

The runner calls :meth:`LiveFrames.publish` once per processed frame with the frame and its labelled boxes:
that only swaps a reference under a lock (no copy, no drawing, no encoding), so the frame loop pays nothing
measurable. The console thread draws and JPEG-encodes on request (:meth:`LiveFrames.jpeg`), at most once
per published frame (the last encoding is cached), and scales the tile to ``max_width`` pixels.
Per-camera health comes from a callable the runner hands over (``CameraSource.health()`` snapshots).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.health import CameraHealth

#: (tlwh (4,), label, colour id): what :func:`pipeline.sinks.video.annotate` draws
Box = tuple[np.ndarray, str, int]


@dataclass
class _Latest:
    index: int
    timestamp: float
    image: np.ndarray  # (H, W, 3) BGR, never written to after publish
    boxes: list[Box]
    published: float  # time.monotonic()
    jpeg: bytes | None = None


class LiveFrames:
    """Latest frame + boxes per camera (thread-safe); ``health``: () -> [CameraHealth] of the run's cameras;
    ``warnings``: () -> the run's warnings an operator should act on (one sentence each, e.g. an overlap to declare)."""

    def __init__(self, cam_ids: list[str], health: Callable[[], list[CameraHealth]] | None = None,
                 max_width: int = 640, quality: int = 75, warnings: Callable[[], list[str]] | None = None) -> None:
        self.cam_ids = list(cam_ids)
        self._health = health
        self._warnings = warnings
        self.max_width = int(max_width)
        self.quality = int(quality)
        self._lock = threading.Lock()
        self._latest: dict[str, _Latest] = {}

    def publish(self, cam_id: str, index: int, timestamp: float, image: np.ndarray, boxes: list[Box]) -> None:
        """The frame the runner just processed (``image`` must not be modified afterwards)."""
        item = _Latest(int(index), float(timestamp), image, list(boxes), time.monotonic())
        with self._lock:
            self._latest[cam_id] = item

    def frame_index(self, cam_id: str) -> int | None:
        with self._lock:
            item = self._latest.get(cam_id)
        return None if item is None else item.index

    def jpeg(self, cam_id: str) -> tuple[int, bytes] | None:
        """(frame index, annotated JPEG) of the latest frame of ``cam_id``, None before its first frame."""
        with self._lock:
            item = self._latest.get(cam_id)
        if item is None:
            return None
        if item.jpeg is None:  # two requests may both encode the same frame once; harmless
            item.jpeg = self._encode(item)
        return item.index, item.jpeg

    def _encode(self, item: _Latest) -> bytes:
        import cv2

        from pipeline.sinks.video import annotate

        canvas = annotate(item.image, item.boxes)
        h, w = canvas.shape[:2]
        if w > self.max_width:
            canvas = cv2.resize(canvas, (self.max_width, round(h * self.max_width / w)), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", canvas, [int(cv2.IMWRITE_JPEG_QUALITY), self.quality])
        return buf.tobytes() if ok else b""

    def health(self) -> dict[str, CameraHealth]:
        """cam id -> health snapshot (empty without a provider)."""
        if self._health is None:
            return {}
        return {h.cam_id: h for h in self._health()}

    def warnings(self) -> list[str]:
        """The run's current warnings for the operator (empty without a provider)."""
        return [] if self._warnings is None else list(self._warnings())

    def status(self) -> dict[str, dict]:
        """cam id -> {frame index, timestamp, age of the latest published frame (s), ids on it}."""
        now = time.monotonic()
        with self._lock:
            items = dict(self._latest)
        return {cid: {"frame": it.index, "timestamp": it.timestamp, "published_age_s": round(now - it.published, 3),
                      "labels": [b[1] for b in it.boxes]} for cid, it in items.items()}
