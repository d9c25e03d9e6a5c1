"""Camera sources: live streams (RTSP/HTTP), webcams, video files and image folders.

``open_source(SourceOptions(cam_id, uri, ...))`` -> ``CameraSource``; ``start()``, then
``read(timeout)`` frames until ``finished``; ``health()`` for fps/drops/reconnects.
``redact_uri`` hides credentials; use it whenever a URI is logged or shown.
"""

from pipeline.sources.camera import CameraSource
from pipeline.sources.factory import open_source
from pipeline.sources.options import SourceOptions, classify_uri
from pipeline.sources.redact import RedactFilter, redact_text, redact_uri

__all__ = [
    "CameraSource",
    "RedactFilter",
    "SourceOptions",
    "classify_uri",
    "open_source",
    "redact_text",
    "redact_uri",
]
