"""Frame readers: the blocking decode side of a source, one per open connection or file.

A reader is not thread-safe; exactly one reader thread (``CameraSource``) uses it.
``read()`` returns ``(status, image)`` with status ``"ok"`` (image: (H, W, 3) uint8
BGR), ``"error"`` (this frame is corrupt/unreadable; reading may go on) or ``"end"``
(no more frames: end of file, or a broken/timed-out stream).

:func:`diagnose_open_failure` says why a network camera did not open (one bounded request to its server),
:func:`webcam_missing` why a webcam did not (its device node is absent).
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import logging
import os
import re
import socket
import ssl
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

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
        webcam = isinstance(self.target, int) or str(self.target).startswith("/dev/video")
        if webcam:  # an absent device: say so without asking OpenCV (its backends print errors to stderr)
            missing = webcam_missing(self.target)
            if missing is not None:
                raise SourceError(f"{self.label}: cannot open: {missing}")
        try:
            if webcam:
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


# ----------------------------------------------------------------------------------------------- why an open failed
# Why a network camera cannot be opened: one bounded request that reads the server's answer.
#
# OpenCV only says that ``VideoCapture`` did not open; FFmpeg knew why (``401 Unauthorized``, ``404 Not Found``,
# ``Connection refused``) but does not tell. :func:`diagnose_open_failure` asks the server once, the way the
# camera would be asked, and turns the answer into a short reason for the camera's log line:
# ``http(s)://``: a GET (urllib, basic or digest authentication from the URL's user-info; status and headers
# only, the body is not read); ``rtsp(s)://``: an RTSP ``DESCRIBE`` over TCP (basic or digest authentication),
# in-process rather than with ``ffprobe``: a subprocess would carry the password on its command line, readable
# by every local user. Both are bounded by ``timeout_s``. A reason never contains the URI or its credentials.
# ``auth`` marks an answer that means "wrong user or password" (401, 403): the camera source then retries at its
# longest delay so that an IP camera does not lock the account (docs/sources.md).
_MAX_HEADER_BYTES = 65536


@dataclass(frozen=True)
class OpenFailure:
    """Why a camera could not be opened: ``reason`` (one phrase, no URI, no credentials) and whether it is an
    authentication failure (``auth``)."""

    reason: str
    auth: bool = False


def _status_failure(code: int, phrase: str, has_user: bool = True) -> OpenFailure:
    """An HTTP or RTSP status that is not a success -> its reason (``has_user``: the URL carries a user)."""
    status = f"{code} {phrase}".strip()
    if code == 401 and not has_user:
        return OpenFailure(f"the camera wants a user and password ({status}; put user:password@ in the URL)", True)
    if code == 401:
        return OpenFailure(f"the camera refused the credentials ({status}; check the user and password)", True)
    if code == 403:
        return OpenFailure(f"the camera denied access ({status}; check the user's rights, or the account is"
                           " locked)", True)
    if code == 404:
        return OpenFailure(f"the camera has no such stream ({status}; check the path)")
    return OpenFailure(f"the server answered {status}")


def _network_failure(exc: BaseException, timeout_s: float) -> OpenFailure:
    """A socket-level error -> its reason."""
    if isinstance(exc, socket.gaierror):
        return OpenFailure("unknown host name (check the address)")
    if isinstance(exc, ConnectionRefusedError):
        return OpenFailure("connection refused (nothing listens on that port: camera off or wrong port?)")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return OpenFailure(f"no answer within {timeout_s:g} s (host down, unreachable or firewalled?)")
    if isinstance(exc, ssl.SSLError):
        return OpenFailure(f"TLS handshake failed ({type(exc).__name__})")
    if isinstance(exc, OSError) and exc.strerror:
        return OpenFailure(f"network error ({exc.strerror.lower()})")
    return OpenFailure(f"network error ({type(exc).__name__})")


def _credentials(parts) -> tuple[str | None, str]:
    user = unquote(parts.username) if parts.username is not None else None
    return user, unquote(parts.password or "")


def _without_userinfo(parts) -> str:
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


# ----------------------------------------------------------------------------------------------- HTTP
def _http(uri: str, timeout_s: float) -> OpenFailure | None:
    import urllib.error
    import urllib.request

    parts = urlsplit(uri)
    user, password = _credentials(parts)
    url = _without_userinfo(parts)
    handlers: list = []
    if user is not None:
        mgr = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        mgr.add_password(None, url, user, password)
        handlers += [urllib.request.HTTPBasicAuthHandler(mgr), urllib.request.HTTPDigestAuthHandler(mgr)]
    if parts.scheme.lower() == "https":  # a camera's self-signed certificate: this only asks why, it sends no frame
        handlers.append(urllib.request.HTTPSHandler(context=ssl._create_unverified_context()))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(urllib.request.Request(url, headers={"User-Agent": "reid-pipeline"}), timeout=timeout_s) as r:
            ctype = r.headers.get("Content-Type", "?").split(";")[0]
            return OpenFailure(f"the server answers (HTTP {r.status}, Content-Type {ctype}) but OpenCV/FFmpeg"
                               " read no video from it (not a video stream, or a transient failure)")
    except urllib.error.HTTPError as exc:
        return _status_failure(exc.code, str(exc.reason or ""), user is not None)
    except urllib.error.URLError as exc:
        reason = exc.reason
        return _network_failure(reason if isinstance(reason, BaseException) else exc, timeout_s)
    except (OSError, ValueError) as exc:
        return _network_failure(exc, timeout_s)


# ----------------------------------------------------------------------------------------------- RTSP
def _read_response(sock: socket.socket) -> tuple[int, str, dict[str, list[str]]]:
    """(status code, reason phrase, headers: lower-case name -> values) of one RTSP response."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > _MAX_HEADER_BYTES:
            break
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    m = re.match(r"RTSP/\d\.\d\s+(\d{3})\s*(.*)", lines[0] if lines else "")
    if m is None:
        raise ValueError("not an RTSP answer")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(m.group(1)), m.group(2).strip(), headers


def _authorization(challenges: list[str], user: str, password: str, method: str, uri: str) -> str | None:
    """An ``Authorization`` value answering one of the ``WWW-Authenticate`` ``challenges`` (digest preferred)."""
    for ch in challenges:
        if ch.lower().startswith("digest"):
            params = dict(re.findall(r'(\w+)="?([^",]*)"?', ch[6:]))
            realm, nonce = params.get("realm", ""), params.get("nonce", "")

            def md5(text: str) -> str:
                return hashlib.md5(text.encode()).hexdigest()

            ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"{method}:{uri}")
            if "auth" in params.get("qop", "").split(","):
                cnonce = os.urandom(8).hex()
                resp = md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
                return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                        f'response="{resp}", qop=auth, nc=00000001, cnonce="{cnonce}"')
            resp = md5(f"{ha1}:{nonce}:{ha2}")
            return f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", response="{resp}"'
    for ch in challenges:
        if ch.lower().startswith("basic"):
            return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return None


def _rtsp_describe(parts, url: str, timeout_s: float, authorization: str | None, cseq: int):
    port = parts.port or (322 if parts.scheme.lower() == "rtsps" else 554)
    with socket.create_connection((parts.hostname, port), timeout=timeout_s) as raw:
        sock = raw
        if parts.scheme.lower() == "rtsps":
            sock = ssl._create_unverified_context().wrap_socket(raw, server_hostname=parts.hostname)
        request = f"DESCRIBE {url} RTSP/1.0\r\nCSeq: {cseq}\r\nAccept: application/sdp\r\nUser-Agent: reid-pipeline\r\n"
        if authorization:
            request += f"Authorization: {authorization}\r\n"
        sock.sendall((request + "\r\n").encode("latin-1"))
        return _read_response(sock)


def _rtsp(uri: str, timeout_s: float) -> OpenFailure | None:
    parts = urlsplit(uri)
    user, password = _credentials(parts)
    url = _without_userinfo(parts)
    try:
        code, phrase, headers = _rtsp_describe(parts, url, timeout_s, None, 1)
        if code == 401 and user is not None:
            auth = _authorization(headers.get("www-authenticate", []), user, password, "DESCRIBE", url)
            if auth is not None:
                code, phrase, headers = _rtsp_describe(parts, url, timeout_s, auth, 2)
    except ValueError:
        return OpenFailure("the server does not speak RTSP (wrong port or scheme?)")
    except (OSError, ssl.SSLError) as exc:
        return _network_failure(exc, timeout_s)
    if 200 <= code < 300:
        return OpenFailure("the camera answers and describes the stream, but OpenCV/FFmpeg could not open it"
                           " (unsupported codec, or a transient failure)")
    return _status_failure(code, phrase, user is not None)


# ----------------------------------------------------------------------------------------------- webcams
def webcam_missing(target: str | int) -> str | None:
    """On Linux, the reason a webcam (index ``N`` -> ``/dev/videoN``, or a device path) cannot be opened when its
    device node does not exist (unplugged or re-enumerated), else None."""
    if not sys.platform.startswith("linux"):
        return None
    device = Path(f"/dev/video{target}" if isinstance(target, int) else str(target))
    if device.exists():
        return None
    return f"no device {device} (not plugged in, or it came back under another number)"


def diagnose_open_failure(uri: str, timeout_s: float) -> OpenFailure | None:
    """Why the camera at ``uri`` did not open, from one bounded request to its server (``timeout_s`` per
    connection, two connections at most); None for schemes it cannot ask (rtmp) or when asking failed in an
    unexpected way. Never raises."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    try:
        if scheme in ("http", "https"):
            return _http(uri, timeout_s)
        if scheme in ("rtsp", "rtsps"):
            return _rtsp(uri, timeout_s)
    except Exception:  # a diagnosis must never take the camera thread down
        return None
    return None
