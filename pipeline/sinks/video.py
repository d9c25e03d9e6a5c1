"""Annotated video per camera: boxes labelled with global ids (or local track ids until matched).

The MP4 must stay playable when the run is killed hard (``kill -9``, OOM killer, power cut):
frames are piped as raw BGR to an ``ffmpeg`` subprocess that writes H.264 in *fragmented* MP4
(``-movflags frag_keyframe+empty_moov+default_base_moof``, a keyframe every second). The index
(``moov``) is at the start of the file and every one-second fragment is complete on its own, so
no trailer is needed:

* pipeline killed -> ffmpeg sees end-of-input and finishes the file: every frame written is kept;
* ffmpeg killed too -> the file plays up to its last complete fragment (about a second lost).

ffmpeg runs in its own session, so a Ctrl-C meant for the pipeline does not stop it before the
pipeline has flushed its last frames. A clean ``close()`` then remuxes the fragments (``-c copy``,
no re-encoding) into an ordinary MP4 with its index first (``+faststart``) and swaps it in
atomically; if that fails, the fragmented file (playable too) stays.
Without ``ffmpeg`` on PATH the writer falls back to OpenCV's ``mp4v`` writer, with a warning
(that file is unplayable after a hard kill).

Resume: ``append=True`` (a resumed batch run) never overwrites: when ``<cam>.mp4`` exists, the
video continues in the next free ``<cam>.partNNN.mp4`` (001, 002, ...); play them in order or
join them with ``ffmpeg -f concat``. Frames between the resume checkpoint and the kill are in
both the earlier part and the new one.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"


def _colour(ident: int) -> tuple[int, int, int]:
    """A stable, well-spread BGR colour per id."""
    rng = np.random.default_rng(ident * 7919 + 17)
    return tuple(int(v) for v in rng.integers(64, 256, size=3))


def annotate(image_bgr: np.ndarray, boxes: list[tuple[np.ndarray, str, int]]) -> np.ndarray:
    """A copy of (H, W, 3) ``image_bgr`` with each (tlwh (4,), label, colour id) box drawn and labelled
    (the annotated video and the console's live tiles)."""
    import cv2

    canvas = image_bgr.copy()
    for tlwh, label, cid in boxes:
        x, y, w, h = (int(round(v)) for v in tlwh)
        colour = _colour(cid)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, 2)
        cv2.putText(canvas, label, (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 2)
    return canvas


def next_part(path: Path) -> Path:
    """``path`` when it does not exist, else the first free ``<stem>.partNNN<suffix>`` beside it."""
    if not path.exists():
        return path
    n = 1
    while (cand := path.with_name(f"{path.stem}.part{n:03d}{path.suffix}")).exists():
        n += 1
    return cand


@functools.lru_cache(maxsize=4)
def _h264_available(ffmpeg: str) -> bool:
    try:
        out = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return " libx264 " in out.stdout


def ffmpeg_command(ffmpeg: str, path: Path, width: int, height: int, fps: float) -> list[str]:
    """raw BGR (height, width, 3) frames on stdin -> fragmented MP4 at ``path`` (H.264, or MPEG-4 part 2)."""
    codec = (["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency"] if _h264_available(ffmpeg)
             else ["-c:v", "mpeg4", "-q:v", "5"])
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", f"{fps:g}", "-i", "pipe:0",
        "-an", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", *codec, "-pix_fmt", "yuv420p", "-threads", "1",
        "-g", str(max(1, round(fps))), "-movflags", MOVFLAGS, "-flush_packets", "1", "-f", "mp4", f"file:{path}",
    ]


class AnnotatedVideoWriter:
    """Opens the encoder lazily at the first frame's size (later frames are resized to it).

    ``path``: the MP4; with ``append`` the next free part beside it (see the module docstring).
    ``pid``: the ffmpeg process id once started (None before, or with the OpenCV fallback).
    """

    def __init__(self, path: Path, fps: float, append: bool = False) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = next_part(path) if append else path
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self.frames = 0
        self.size: tuple[int, int] | None = None  # (width, height)
        self._proc: subprocess.Popen | None = None
        self._stderr = None
        self._cv_writer = None
        self._failed = False
        self._pid: int | None = None
        self._ffmpeg: str | None = None

    @property
    def pid(self) -> int | None:
        return self._pid

    def _open(self, width: int, height: int) -> None:
        import cv2

        self.size = (width, height)
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            log.warning("video %s: no ffmpeg on PATH, writing with OpenCV (mp4v): the file will not be playable "
                        "if the run is killed before it ends (install ffmpeg)", self.path)
            self._cv_writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                              (width, height))
            return
        self._stderr = tempfile.TemporaryFile()
        self._ffmpeg = ffmpeg
        self._proc = subprocess.Popen(
            ffmpeg_command(ffmpeg, self.path, width, height, self.fps),
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr, start_new_session=True,
        )
        self._pid = self._proc.pid

    def _ffmpeg_said(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else ""

    def _remux_plain(self) -> None:
        """Clean finish: copy the fragments into an ordinary MP4 (sample tables, index first;
        no re-encoding) and swap it in atomically; on any failure the fragmented file stays."""
        tmp = self.path.with_name(f"{self.path.stem}.remux-tmp{self.path.suffix}")
        cmd = [self._ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", f"file:{self.path}",
               "-c", "copy", "-movflags", "+faststart", "-f", "mp4", f"file:{tmp}"]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, start_new_session=True)
            if res.returncode == 0:
                tmp.replace(self.path)
                return
            log.debug("video %s: remux failed (%s), keeping the fragmented file", self.path, res.stderr.strip())
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.debug("video %s: remux failed (%s), keeping the fragmented file", self.path, exc)
        tmp.unlink(missing_ok=True)

    def write(self, image_bgr: np.ndarray, boxes: list[tuple[np.ndarray, str, int]]) -> None:
        """image_bgr: (H, W, 3) uint8; boxes: (tlwh (4,), label, colour id). The image is not modified."""
        import cv2

        if self._failed:
            return
        if self.size is None:
            h, w = image_bgr.shape[:2]
            self._open(w, h)
        canvas = annotate(image_bgr, boxes)
        if (canvas.shape[1], canvas.shape[0]) != self.size:
            canvas = cv2.resize(canvas, self.size)
        if self._cv_writer is not None:
            self._cv_writer.write(canvas)
        else:
            try:
                self._proc.stdin.write(np.ascontiguousarray(canvas, dtype=np.uint8).tobytes())
            except (BrokenPipeError, OSError):
                self._failed = True
                self._proc.wait()
                log.warning("video %s: ffmpeg stopped (exit %s: %s); no more frames for this camera, %d written",
                            self.path, self._proc.returncode, self._ffmpeg_said(), self.frames)
                return
        self.frames += 1

    def close(self) -> None:
        """Finish the file (ffmpeg writes its last fragment); safe to call twice."""
        if self._cv_writer is not None:
            self._cv_writer.release()
            self._cv_writer = None
        if self._proc is not None:
            try:
                self._proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                code = self._proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                code = self._proc.wait()
            if code != 0 and not self._failed:
                log.warning("video %s: ffmpeg exited with %s: %s", self.path, code, self._ffmpeg_said())
            elif code == 0 and self.frames:
                self._remux_plain()
            self._proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
