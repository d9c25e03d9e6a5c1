"""open_source: build the right CameraSource for a URI."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.errors import SourceError
from pipeline.sources.camera import CameraSource
from pipeline.sources.options import SourceOptions, classify_uri
from pipeline.sources.readers import FrameReader, ImageFolderReader, VideoCaptureReader
from pipeline.sources.redact import redact_uri


def open_source(opts: SourceOptions, seed: int | None = None) -> CameraSource:
    """A (not yet started) CameraSource for ``opts.uri``.

    rtsp(s)/rtmp/http(s) URIs and webcam indices ("0", "/dev/video0") are live: they
    are only opened by the reader thread, so an unreachable camera never raises here;
    it reconnects with backoff. Video files and image folders are opened (probed) right
    away, so a missing, empty or corrupt input raises a one-line SourceError naming it.
    ``seed`` fixes the reconnect jitter (tests).
    """
    kind, target = classify_uri(opts.uri)
    label = redact_uri(opts.uri)
    if kind == "folder":
        assert isinstance(target, Path)

        def make_reader() -> FrameReader:
            return ImageFolderReader(target)

    else:

        def make_reader() -> FrameReader:
            return VideoCaptureReader(
                target, label, open_timeout_s=opts.open_timeout_s, read_timeout_s=opts.stall_timeout_s,
                is_file=kind == "file",
            )

    first = None
    if kind in ("file", "folder"):
        first = make_reader()
        try:
            first.open()
        except SourceError:
            raise
        except Exception as exc:  # any decoder failure: still one line naming the file
            raise SourceError(f"{target}: cannot open video ({type(exc).__name__})") from None
    return CameraSource(opts, kind, make_reader, reader=first, seed=seed)
