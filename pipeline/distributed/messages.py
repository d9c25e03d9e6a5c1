"""What a camera actor sends the matcher + store actor, and the matcher-side crop hand-over.

A camera actor answers each ``step`` with a :class:`StepReply`: one :class:`CameraResult` per processed
frame (in frame order) and, every ``executor.snapshot_every`` frames and when the camera is done, a
:class:`CameraSnapshot` of its state, from which a restarted camera actor continues and which the
matcher's resume checkpoints store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.core.types import TrackOutput, Tracklet
from pipeline.runner.checkpoint import CameraResume


@dataclass
class CameraSnapshot(CameraResume):
    """A camera's resume state (:class:`CameraResume`) plus its thumbnail keeper (open tracks' best crops)
    and its detection schedule / embedding policy state."""

    crops: Any = None  # pipeline.runner.thumbnails.ThumbnailKeeper
    plan: Any = None  # pipeline.runner.frame_plan.FramePlan (this camera's entry only)


@dataclass
class CameraResult:
    """One processed frame of one camera.

    ``frames``: frames the camera has processed, this one included (the local loop's iteration number of
    this frame is ``frames - 1``); ``outputs``: the tracker's boxes (MOT frame ``index + 1``);
    ``partials`` / ``finals``: tracklets the frame produced; ``thumbs``: track id -> ([frame], [BGR crop])
    of each final tracklet; ``oldest_open``: the builder's oldest open frame after the frame (None: none
    open); ``snapshot``: the camera's state after this frame, every ``snapshot_every`` frames."""

    cam_id: str
    index: int
    timestamp: float
    frames: int
    outputs: list[TrackOutput]
    partials: list[Tracklet]
    finals: list[Tracklet]
    thumbs: dict[int, tuple[list[int], list[np.ndarray]]]
    oldest_open: int | None
    snapshot: CameraSnapshot | None = None


@dataclass
class StepReply:
    """A camera actor's answer to ``step``: results in frame order; ``done`` once the camera has no more
    frames (``snapshot``: its final state); ``stale``: the call's epoch is not the actor's (the actor was restarted, or the call
    came from a matcher that has been replaced): nothing was processed. ``started_at`` / ``ended_at``: the actor's
    wall clock (``time.time()``) when it began and finished the call; ``cpu_s``: the actor process's CPU seconds
    in it (all its threads): the matcher's per-call log (:class:`StepCall`)."""

    results: list[CameraResult] = field(default_factory=list)
    done: bool = False
    snapshot: CameraSnapshot | None = None
    stale: bool = False
    started_at: float = 0.0
    ended_at: float = 0.0
    cpu_s: float = 0.0


@dataclass(frozen=True)
class StepCall:
    """One ``step`` call as the matcher saw it (wall-clock seconds, ``time.time()``; actors and matcher on one
    node share the clock, across nodes up to their clock offset): ``submitted`` (the matcher sent it),
    ``started`` / ``ended`` (the actor ran it; it idles before ``started`` when no call was queued),
    ``received`` (the matcher took the reply: later than ``ended`` when it was busy with other cameras or
    had not asked yet), ``frames`` (results in the reply), ``cpu_s`` (the actor's CPU seconds in the call)."""

    submitted: float
    started: float
    ended: float
    received: float
    frames: int
    cpu_s: float


class ShippedCrops:
    """The matcher-side stand-in of the runner's crop keeper: camera actors keep the thumbnails and ship
    each final tracklet's with it; :meth:`take` hands them to the identity assigner (same interface as
    :class:`pipeline.runner.thumbnails.ThumbnailKeeper`)."""

    def __init__(self) -> None:
        self._crops: dict[tuple[str, int], tuple[list[int], list[np.ndarray]]] = {}

    def put(self, cam_id: str, thumbs: dict[int, tuple[list[int], list[np.ndarray]]]) -> None:
        for track_id, crop in thumbs.items():
            self._crops[(cam_id, int(track_id))] = crop

    def observe(self, cam_id: str, image: np.ndarray, outputs: list[TrackOutput]) -> None:
        """Nothing: the camera actor observed the frame."""

    def take(self, cam_id: str, track_id: int) -> tuple[list[int], list[np.ndarray]]:
        return self._crops.pop((cam_id, int(track_id)), ([], []))

    def __len__(self) -> int:
        return len(self._crops)
