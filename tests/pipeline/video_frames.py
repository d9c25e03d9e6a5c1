"""Test helper: how many frames OpenCV decodes from a video file (what a player would show)."""

from __future__ import annotations

from pathlib import Path

import cv2


def read_frames(path: Path) -> int:
    """The number of frames ``cv2.VideoCapture`` decodes from ``path`` (0 for an unreadable file)."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n
