"""Camera sources: live streams (RTSP/HTTP), webcams, video files and image folders.

``open_source(SourceOptions(cam_id, uri, ...))`` -> ``CameraSource``; ``start()``, then
``read(timeout)`` frames until ``finished``; ``health()`` for fps, drops, reconnect
attempts, recoveries, stalls. A live source with ``give_up_after_s`` ends in state
``down`` with ``failure`` set; ``wait_until_reachable()`` raises it before a first frame.
``redact_uri`` hides credentials; use it whenever a URI is logged or shown.
"""

from pipeline.sources.camera import CameraSource
from pipeline.sources.factory import open_source
from pipeline.sources.options import BATCH_GIVE_UP_S, SourceOptions, classify_uri
from pipeline.sources.redact import RedactFilter, redact_text, redact_uri

__all__ = [
    "BATCH_GIVE_UP_S",
    "CameraSource",
    "RedactFilter",
    "SourceOptions",
    "classify_uri",
    "open_source",
    "redact_text",
    "redact_uri",
]
