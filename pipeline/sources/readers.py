"""Frame readers: the blocking decode side of a source, one per open connection or file.

A reader is not thread-safe; exactly one reader thread (``CameraSource``) uses it.
``read()`` returns ``(status, image)`` with status ``"ok"`` (image: (H, W, 3) uint8
BGR), ``"error"`` (this frame is corrupt/unreadable; reading may go on) or ``"end"``
(no more frames: end of file, or a broken/timed-out stream).
"""

from __future__ import annotations

import configparser
import logging
import os
import re
import threading
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from pipeline.core.errors import SourceError

ReadStatus = Literal["ok", "error", "end"]
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# Applied to every FFmpeg open unless the user set OPENCV_FFMPEG_CAPTURE_OPTIONS:
# RTSP over TCP (no UDP packet loss / firewall issues), short stream probing so a
# camera opens in well under a second instead of ~4 s. Per-open timeouts are passed
# as VideoCapture parameters (CAP_PROP_OPEN_TIMEOUT_MSEC / READ_TIMEOUT_MSEC).
FFMPEG_CAPTURE_OPTIONS = "rtsp_transport;tcp|analyzeduration;1000000|probesize;1000000"
_ENV_LOCK = threading.Lock()
log = logging.getLogger("pipeline.sources")


class FrameReader(Protocol):
    fps: float | None
    frame_count: int | None

    def open(self) -> None: ...
    def read(self) -> tuple[ReadStatus, np.ndarray | None]: ...
    def skip(self) -> ReadStatus: ...
    def close(self) -> None: ...


def ensure_ffmpeg_options() -> None:
    """Set OPENCV_FFMPEG_CAPTURE_OPTIONS once (OpenCV reads it at every FFmpeg open)."""
    with _ENV_LOCK:
        os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", FFMPEG_CAPTURE_OPTIONS)


class VideoCaptureReader:
    """OpenCV ``VideoCapture`` over a stream URI, a video file or a webcam.

    target: URI string, file Path, or webcam index/device; label: what errors show
    (the redacted URI). Streams and files use the FFmpeg backend with open/read
    timeouts so an unreachable camera fails within ``open_timeout_s`` and a stalled
    one within ``read_timeout_s``.
    """

    def __init__(
        self,
        target: str | Path | int,
        label: str,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 10.0,
        max_consecutive_errors: int = 25,
        is_file: bool = False,
    ) -> None:
        self.target = target
        self.is_file = is_file
        self.label = label
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_consecutive_errors = max_consecutive_errors
        self.fps: float | None = None
        self.frame_count: int | None = None
        self._cap = None
        self._pos = 0
        self._errors_in_row = 0
        # frames decoded (grab + retrieve) and frames only grabbed (``skip``: the camera stride, never
        # decoded into an image; docs/speed.md), over the reader's life
        self.decoded = 0
        self.grabbed_only = 0

    def open(self) -> None:
        import cv2

        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000),
        ]
        try:
            if isinstance(self.target, int) or str(self.target).startswith("/dev/video"):
                cap = cv2.VideoCapture(self.target)
            else:
                ensure_ffmpeg_options()
                cap = cv2.VideoCapture(str(self.target), cv2.CAP_FFMPEG, params)
        except cv2.error as exc:  # message may contain the URI: do not show it
            raise SourceError(f"{self.label}: cannot open ({type(exc).__name__})") from None
        if not cap.isOpened():
            cap.release()
            why = "not a readable video or unsupported codec" if self.is_file else "unreachable or not a video stream"
            raise SourceError(f"{self.label}: cannot open ({why})")
        self._cap = cap
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps < 1000.0 else None
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self.is_file else 0
        self.frame_count = count if count > 0 else None  # streams: unknown, a failed read ends the connection
        self._pos = 0
        self._errors_in_row = 0

    def _failed(self) -> ReadStatus:
        """A failed grab: a corrupt frame inside a file ('error'), else the end.

        A file whose header promises more frames than decode counts each missing one
        as an error (at most ``max_consecutive_errors`` in a row), so frames + errors
        equals the header's frame count. FFmpeg does not say *where* frames were lost,
        so the indices of frames after a damaged stretch may be shifted."""
        if (
            self.frame_count is not None
            and self._pos < self.frame_count
            and self._errors_in_row < self.max_consecutive_errors
        ):
            self._errors_in_row += 1
            self._pos += 1
            return "error"
        return "end"

    def read(self) -> tuple[ReadStatus, np.ndarray | None]:
        if self._cap is None:
            return "end", None
        try:
            ok, image = self._cap.read()
        except Exception:  # cv2.error from a broken decoder: a bad frame, not a crash
            ok, image = False, None
        if not ok or image is None:
            return self._failed(), None
        self._pos += 1
        self._errors_in_row = 0
        self.decoded += 1
        return "ok", image

    def skip(self) -> ReadStatus:
        """Advance one frame without decoding it (``grab`` without ``retrieve``)."""
        if self._cap is None:
            return "end"
        try:
            ok = self._cap.grab()
        except Exception:
            ok = False
        if not ok:
            return self._failed()
        self._pos += 1
        self._errors_in_row = 0
        self.grabbed_only += 1
        return "ok"

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


_LAST_NUMBER_RE = re.compile(r"(\d+)(?!.*\d)")
_GAP_WARNED: set[Path] = set()  # folders whose numbering gap was logged: once per process, however often opened


def first_number_gap(files: list[Path]) -> tuple[Path, Path, int] | None:
    """In naturally sorted ``files`` all numbered (the last run of digits in the stem: ``000010.jpg`` -> 10), the
    first jump by more than one: (file before, file after, how many jumps in all); None without gaps, or when
    some file carries no number."""
    numbers = []
    for p in files:
        m = _LAST_NUMBER_RE.search(p.stem)
        if m is None:
            return None
        numbers.append(int(m.group(1)))
    jumps = [i for i in range(len(numbers) - 1) if numbers[i + 1] > numbers[i] + 1]
    return (files[jumps[0]], files[jumps[0] + 1], len(jumps)) if jumps else None


def folder_fps(folder: Path) -> float | None:
    """``frameRate`` from a MOTChallenge ``seqinfo.ini`` beside (or inside) the folder."""
    for ini in (folder.parent / "seqinfo.ini", folder / "seqinfo.ini"):
        if ini.is_file():
            cp = configparser.ConfigParser()
            try:
                cp.read(ini)
                value = float(cp["Sequence"]["frameRate"])
            except (configparser.Error, KeyError, ValueError):
                continue
            if value > 0:
                return value
    return None


class ImageFolderReader:
    """The images of a folder in natural sort order (``2.jpg`` before ``10.jpg``).

    An image that cannot be decoded is reported as ``"error"`` and skipped. Frames are the images' positions
    (frame 1 = the first image, time = position / fps), not their file numbers: a folder whose numbers have
    gaps (1-5, 10-15) logs one warning (once per process) naming the first gap.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.files: list[Path] = []
        self.fps: float | None = None
        self.frame_count: int | None = None
        self._pos = 0

    def open(self) -> None:
        files = [p for p in self.folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS]
        if not files:
            raise SourceError(f"{self.folder}: image folder has no images ({', '.join(IMAGE_EXTS)})")
        self.files = sorted(files, key=_natural_key)
        self.frame_count = len(self.files)
        self.fps = folder_fps(self.folder)
        self._pos = 0
        gap = first_number_gap(self.files)
        if gap is not None and self.folder.resolve() not in _GAP_WARNED:
            before, after, count = gap
            log.warning("%s: image numbers jump from %s to %s (%d gap(s) in all): frames are read in order and"
                        " numbered by position, so output frame %d is %s (not frame %s) and the missing images'"
                        " time is not skipped; rename the images 1..N or fill the gaps to keep file numbers",
                        self.folder, before.name, after.name, count, self.files.index(after) + 1, after.name,
                        _LAST_NUMBER_RE.search(after.stem).group(1).lstrip("0") or "0")
            _GAP_WARNED.add(self.folder.resolve())

    def read(self) -> tuple[ReadStatus, np.ndarray | None]:
        from pipeline.core.images import read_image

        if self._pos >= len(self.files):
            return "end", None
        path = self.files[self._pos]
        self._pos += 1
        image = read_image(path)
        if image is None:
            log.warning("%s: cannot decode image, skipped", path)
            return "error", None
        return "ok", image

    def skip(self) -> ReadStatus:
        if self._pos >= len(self.files):
            return "end"
        self._pos += 1
        return "ok"

    def close(self) -> None:
        self.files = []
