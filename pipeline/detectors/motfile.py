"""A MOTChallenge det file as a detector source (detections looked up by frame number)."""

from __future__ import annotations

import math

from pipeline.mot import MOTBoxes, detections_by_frame
from pipeline.core.types import Detection


class MotDetFileDetector:
    """Detections of a det file: ``for_frame(n)`` (1-based) or ``detect_frames([n, ...])``.

    Not image-driven, so it offers frame-number lookups rather than ``detect(images)``.
    """

    def __init__(self, boxes: MOTBoxes, min_conf: float = -math.inf) -> None:
        self._by_frame = detections_by_frame(boxes, min_conf=min_conf)

    def for_frame(self, frame: int) -> list[Detection]:
        return list(self._by_frame.get(int(frame), []))

    def detect_frames(self, frames: list[int]) -> list[list[Detection]]:
        return [self.for_frame(f) for f in frames]
