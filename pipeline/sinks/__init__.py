"""Pipeline outputs: MOTChallenge txt per camera, JSON-lines events, annotated video, timeline PNGs.

Each sink is a small class with ``close()``; the runner owns them and decides
what to write when. Nothing here imports matplotlib or cv2 at import time.
"""

from pipeline.sinks.events import EventSink
from pipeline.sinks.mot import MOTWriter
from pipeline.sinks.timeline import TimelineRecorder, write_timeline_png
from pipeline.sinks.video import AnnotatedVideoWriter

__all__ = ["EventSink", "MOTWriter", "TimelineRecorder", "write_timeline_png", "AnnotatedVideoWriter"]
