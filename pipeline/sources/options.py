"""What a camera source is: its options and the kind of URI it reads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.core.errors import ConfigError, SourceError
from pipeline.sources.redact import redact_uri

SourceKind = Literal["stream", "webcam", "file", "folder"]
Mode = Literal["auto", "live", "lossless"]
TimestampMode = Literal["auto", "wall", "media"]

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")
#: ``give_up_after_s`` of a live camera in a batch run when the config leaves it unset: a batch
#: run must end, so a stream that delivers nothing for this long is given up (see docs/sources.md)
BATCH_GIVE_UP_S = 10.0
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


@dataclass
class SourceOptions:
    """How to read one camera.

    mode: ``live`` keeps only the newest frame (stale frames are dropped and
    counted), ``lossless`` delivers every frame through a bounded queue that makes
    the reader wait (back-pressure); ``auto`` = live for streams and webcams,
    lossless for files and image folders.
    stride: deliver every ``stride``-th source frame (``Frame.index`` stays the
    0-based index in the source, so MOT frame number = index + 1).
    reconnect_*: exponential backoff between reconnect attempts of a stream or
    webcam (doubling from ``reconnect_initial_s`` up to ``reconnect_max_s``, with
    +-``reconnect_jitter`` relative jitter); ``max_reconnects`` None = forever.
    stall_timeout_s: no new frame for this long -> state ``stalled``, the stream is reopened.
    give_up_after_s: a stream or webcam with no frame for this long (since start, or
    since its last frame; reconnect attempts go on meanwhile) gives up: state ``down``,
    ``CameraSource.failure`` says why; None = retry forever (live default).
    open_timeout_s: a stream that does not answer within this is retried later.
    timestamps: ``wall`` = time.time() at capture, ``media`` = start_time +
    index / fps; ``auto`` = wall for streams and webcams, media for recordings.
    realtime: pace a file or folder at its frame rate (replay a recording as if it
    were a live camera). fps: overrides the frame rate of a file or folder
    (folders otherwise read ``frameRate`` from a ``seqinfo.ini`` beside them).
    max_frames: stop a file or folder after this many source frames.
    start_index: skip (grab, no decode where the reader allows) the source frames before this
    0-based index; a resumed batch run starts after its checkpoint.
    queue_size: capacity of the lossless queue.
    """

    cam_id: str
    uri: str
    mode: Mode = "auto"
    stride: int = 1
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    reconnect_jitter: float = 0.2
    stall_timeout_s: float = 10.0
    max_reconnects: int | None = None
    give_up_after_s: float | None = None
    open_timeout_s: float = 5.0
    timestamps: TimestampMode = "auto"
    start_time: float = 0.0
    realtime: bool = False
    fps: float | None = None
    max_frames: int | None = None
    start_index: int = 0
    queue_size: int = 8

    def __post_init__(self) -> None:
        self.cam_id = str(self.cam_id)
        self.uri = str(self.uri)
        where = f"camera {self.cam_id!r}"
        if self.mode not in ("auto", "live", "lossless"):
            raise ConfigError(f"{where}: mode must be auto, live or lossless, got {self.mode!r}")
        if self.timestamps not in ("auto", "wall", "media"):
            raise ConfigError(f"{where}: timestamps must be auto, wall or media, got {self.timestamps!r}")
        _positive(where, "stride", self.stride, integer=True)
        _positive(where, "queue_size", self.queue_size, integer=True)
        for name in ("reconnect_initial_s", "reconnect_max_s", "stall_timeout_s", "open_timeout_s"):
            _positive(where, name, getattr(self, name))
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ConfigError(f"{where}: reconnect_max_s must be >= reconnect_initial_s")
        if not 0.0 <= self.reconnect_jitter < 1.0:
            raise ConfigError(f"{where}: reconnect_jitter must be in [0, 1), got {self.reconnect_jitter}")
        if self.max_reconnects is not None and self.max_reconnects < 0:
            raise ConfigError(f"{where}: max_reconnects must be >= 0 or null")
        if self.give_up_after_s is not None:
            _positive(where, "give_up_after_s", self.give_up_after_s)
        if self.fps is not None:
            _positive(where, "fps", self.fps)
        if self.max_frames is not None:
            _positive(where, "max_frames", self.max_frames, integer=True)


def _positive(where: str, name: str, value: float, integer: bool = False) -> None:
    if isinstance(value, bool) or (integer and not isinstance(value, int)) or not value > 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{where}: {name} must be {kind}, got {value!r}")


def file_uri_path(uri: str) -> Path:
    """The local path of a ``file://`` URL: ``file:///abs/path`` (or ``file://localhost/abs/path``),
    percent-escapes decoded (``file:///data/my%20clip.mp4`` -> ``/data/my clip.mp4``). SourceError (one line,
    credentials redacted) for a URL that names another host or no absolute path."""
    from urllib.parse import unquote, urlsplit

    text = str(uri).strip()
    parts = urlsplit(text)
    if parts.scheme.lower() != "file":
        raise SourceError(f"{redact_uri(text)}: not a file:// URL")
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise SourceError(f"{redact_uri(text)}: a file URL needs an absolute local path, file:///abs/path"
                          " (or give the plain path)")
    return Path(unquote(parts.path))


def classify_uri(uri: str) -> tuple[SourceKind, str | int | Path]:
    """Decide what ``uri`` is: (kind, target).

    Surrounding whitespace is ignored. ``rtsp(s)://``, ``rtmp://``, ``http(s)://`` -> ("stream", uri);
    ``"0"`` or ``/dev/videoN`` -> ("webcam", index or device path);
    ``file:///abs/path`` (percent-escapes decoded) or a path to a folder -> ("folder", Path), to a file ->
    ("file", Path). Anything containing ``://`` is a URL, never a path: an unknown scheme (``rstp://``) or
    text before ``://`` that is no scheme is a SourceError. Raises SourceError (one line, credentials
    redacted) for those and for paths that do not exist.
    """
    kind, target = uri_kind(uri)
    if kind != "path":
        return kind, target
    path = Path(target)
    if path.is_dir():
        return "folder", path
    if path.is_file():
        return "file", path
    raise SourceError(f"{path}: no such video file or image folder")


def uri_kind(uri: str) -> tuple[Literal["stream", "webcam", "path"], str | int | Path]:
    """What ``uri`` names without looking at the disk: ("stream", the stripped URL), ("webcam", index or
    device path) or ("path", Path: a ``file://`` URL's path, else the text as written, ``~`` expanded).
    SourceError (one line, credentials never shown) for a URL with an unsupported or malformed scheme."""
    text = str(uri).strip()
    m = _SCHEME_RE.match(text)
    if m is None and "://" in text:  # "1rtsp://", "rtsp ://", "://host": never a path; the text is not echoed
        raise SourceError("a source with '://' is a URL and must start with its scheme (letters, e.g. rtsp://,"
                          " http://, file://); what stands before '://' here is not one")
    if m is not None:
        scheme = m.group(1).lower()
        if scheme in STREAM_SCHEMES:
            return "stream", text
        if scheme != "file":
            raise SourceError(
                f"{redact_uri(text)}: unsupported source scheme {scheme!r} "
                f"(valid: {', '.join(STREAM_SCHEMES)}, file://, file path, image folder, webcam index)"
            )
        return "path", file_uri_path(text)
    if text.isdigit():
        return "webcam", int(text)
    if text.startswith("/dev/video"):
        return "webcam", text
    return "path", Path(text).expanduser()
