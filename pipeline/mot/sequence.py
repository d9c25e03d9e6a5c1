"""One MOTChallenge sequence folder: seqinfo, frames (img1/ or a video), det/*.txt, gt/gt.txt.

Frames are numbered 1..seq_length as in MOTChallenge: frame N is
``img1/%06d<imExt>`` or video frame N-1 (0-based). The video is the ``video``
argument or, when the image folder is absent, the single video file found in
the sequence folder (``*.mp4``, ``*.avi``, ``*.mkv``, ``*.mov``).
OpenCV is imported only when frames are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from pipeline.core.errors import DataError
from pipeline.mot.boxes import MOTBoxes, read_mot_file
from pipeline.mot.seqinfo import SeqInfo, read_seqinfo

VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov")


class _VideoReader:
    """Sequential reader of one video file with forward seeking (exact frame numbers, no keyframe snapping)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cap = None
        self._next = 1  # 1-based number of the frame the next read() returns

    def _open(self) -> None:
        import cv2

        if self._cap is not None:
            self._cap.release()
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise DataError(self.path, "cannot open video")
        self._next = 1

    def read(self, frame: int) -> np.ndarray | None:
        """BGR image of 1-based ``frame`` or None past the end of the video."""
        if self._cap is None or frame < self._next:
            self._open()
        while self._next < frame:
            if not self._cap.grab():
                return None
            self._next += 1
        ok, image = self._cap.read()
        if not ok:
            return None
        self._next += 1
        return image

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class MOTSequence:
    """A sequence folder in MOTChallenge layout (see module docstring)."""

    def __init__(self, seq_dir: Path, video: Path | None = None) -> None:
        self.seq_dir = Path(seq_dir)
        self.info: SeqInfo = read_seqinfo(self.seq_dir)
        # the folder's name, as TrackEval and ``eval`` look sequences up (seqinfo's ``name`` can differ in a copy)
        self.name = self.seq_dir.resolve().name if self.seq_dir.name in ("", ".", "..") else self.seq_dir.name
        self.im_dir = self.seq_dir / self.info.im_dir
        self.video = Path(video) if video is not None else self._find_video()
        if self.video is not None and not self.video.is_file():
            raise DataError(self.video, "video file not found")
        self._reader: _VideoReader | None = None

    def __repr__(self) -> str:
        return f"MOTSequence({str(self.seq_dir)!r})"

    def _find_video(self) -> Path | None:
        if self.im_dir.is_dir():
            return None
        videos = sorted(p for p in self.seq_dir.iterdir() if p.suffix.lower() in VIDEO_EXTS and p.is_file())
        return videos[0] if videos else None

    # ---- frames -------------------------------------------------------------------------------
    def has_frames(self) -> bool:
        """True when images can be read (an image folder or a video file)."""
        return self.video is not None or self.im_dir.is_dir()

    def image_path(self, frame: int) -> Path:
        return self.im_dir / f"{int(frame):06d}{self.info.im_ext}"

    def frame_image(self, frame: int) -> np.ndarray:
        """(H, W, 3) uint8 BGR image of 1-based ``frame``; DataError when it cannot be read."""
        frame = int(frame)
        if not 1 <= frame <= self.info.seq_length:
            raise DataError(self.seq_dir, f"frame {frame} outside 1..{self.info.seq_length}")
        if self.video is not None:
            if self._reader is None:
                self._reader = _VideoReader(self.video)
            image = self._reader.read(frame)
            if image is None:
                raise DataError(self.video, f"video ends before frame {frame}")
            return image
        if not self.im_dir.is_dir():
            raise DataError(self.im_dir, f"no frames: neither {self.info.im_dir}/ nor a video file")
        path = self.image_path(frame)
        from pipeline.core.images import read_image

        image = read_image(path)
        if image is None:
            raise DataError(path, "missing or unreadable image")
        return image

    def iter_frames(self, start: int = 1, end: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (frame, BGR image) for frames start..end inclusive (end defaults to seq_length)."""
        end = self.info.seq_length if end is None else min(int(end), self.info.seq_length)
        for frame in range(max(1, int(start)), end + 1):
            yield frame, self.frame_image(frame)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # ---- annotations ----------------------------------------------------------------------------
    def det_names(self) -> list[str]:
        """Names of the detection files: 'det' for det/det.txt, 'frcnn' for det/frcnn.txt (sorted)."""
        det_dir = self.seq_dir / "det"
        if not det_dir.is_dir():
            return []
        return sorted(p.stem for p in det_dir.glob("*.txt") if p.is_file())

    def det_path(self, name: str = "det") -> Path:
        return self.seq_dir / "det" / f"{name}.txt"

    def det(self, name: str = "det") -> MOTBoxes:
        """Detections of det/<name>.txt; DataError listing the available names when absent."""
        path = self.det_path(name)
        if not path.is_file():
            raise DataError(path, f"no detections named {name!r}; available: {self.det_names() or 'none'}")
        return read_mot_file(path, "det")

    def gt_path(self) -> Path:
        return self.seq_dir / "gt" / "gt.txt"

    def gt(self) -> MOTBoxes:
        """Ground truth rows of gt/gt.txt, unfiltered (the evaluator applies the benchmark's rules)."""
        return read_mot_file(self.gt_path(), "gt")


def find_sequences(root: Path, det: str | None = None) -> list[MOTSequence]:
    """Sequences directly under ``root`` (folders with seqinfo.ini), sorted by folder name.

    With ``det`` only those having ``det/<det>.txt``. ``root`` may itself be a
    sequence folder. DataError when ``root`` does not exist or holds none.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "not a folder")
    if (root / "seqinfo.ini").is_file():
        dirs = [root]
    else:
        dirs = sorted(p for p in root.iterdir() if p.is_dir() and (p / "seqinfo.ini").is_file())
    seqs = [MOTSequence(d) for d in dirs]
    if det is not None:
        seqs = [s for s in seqs if s.det_path(det).is_file()]
    if not seqs:
        what = f" with det/{det}.txt" if det is not None else ""
        raise DataError(root, f"no MOTChallenge sequences (folders with seqinfo.ini){what}")
    return seqs
