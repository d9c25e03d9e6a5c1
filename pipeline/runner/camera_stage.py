"""One camera's share of a pipeline iteration: read its next frame, track, build tracklets.

The local loop (:mod:`pipeline.runner.loop`) calls these for every camera of an iteration, with
detection and embedding batched over the cameras (:mod:`pipeline.runner.frame_plan`); the Ray camera actor
(:mod:`pipeline.distributed.camera_actor`) calls them for its one camera. Both therefore run the
same per-camera code: the tracker sees the same detections and the tracklet builder the same
track outputs, whichever executor runs the camera.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from contextlib import nullcontext
from typing import Any

from pipeline.core.types import Detection, Frame, Tracklet
from pipeline.runner.components import CameraState
from pipeline.runner.roi import filter_roi, roi_outside_frame, roi_warning

log = logging.getLogger(__name__)

#: seconds a batch read still waits for a camera's frame after a stop request (keeps the iteration whole)
STOP_GRACE_S = 5.0


def read_frame(st: CameraState, live: bool, max_frames: int | None, stop: threading.Event) -> Frame | None:
    """The camera's next frame to process, or None (none now, or the camera is done: ``st.done`` set).

    Batch (``live`` False) waits for the next frame until the source finishes, so every iteration holds one
    frame of each active camera whatever the decode timing (results do not depend on machine load); once
    ``stop`` is set it waits at most ``STOP_GRACE_S`` more, so a stop between two cameras' reads still ends a
    whole iteration (a paused run resumes exactly) unless a source stalls. Live waits at most 50 ms. Frames
    before ``st.next_index`` (a resumed run: processed before the checkpoint) are skipped."""
    if max_frames is not None and st.frames >= max_frames:
        st.done = True
        return None
    frame = st.source.read(timeout=0.05 if live else 1.0)
    give_up = None
    while frame is None and not live and not st.source.finished:
        if stop.is_set():
            give_up = give_up if give_up is not None else time.monotonic() + STOP_GRACE_S
            if time.monotonic() >= give_up:
                break
        frame = st.source.read(timeout=1.0)
    if frame is None:
        if st.source.finished:
            st.done = True
        return None
    if frame.index < st.next_index:
        return None
    st.next_index = frame.index + 1
    return frame


def track_frame(st: CameraState, frame: Frame, dets: list[Detection], crops: Any = None
                ) -> tuple[list[Tracklet], list[Tracklet]]:
    """Update ``st``'s tracker with one frame's detections and its tracklet builder with the outputs.

    Sets ``st.last_outputs`` (MOT frame numbers: ``frame.index + 1``), offers the boxes to ``crops``
    (a ThumbnailKeeper / CropKeeper, or None), counts the frame; returns (partial, final) tracklets."""
    partials = _record(st, frame, st.tracker.update(dets, frame.image), crops)
    return partials, st.builder.finish(st.tracker.pop_removed())


def carry_frame(st: CameraState, frame: Frame, crops: Any = None) -> list[Tracklet]:
    """A frame that is not detected (detection stride): the tracker predicts (``Tracker.predict_only``: nothing
    is matched, missed or deleted) and its outputs go on as a detected frame's would. Returns the partial
    tracklets (no track ends on a predicted frame)."""
    return _record(st, frame, st.tracker.predict_only(frame.image), crops)


def _record(st: CameraState, frame: Frame, outputs: list, crops: Any) -> list[Tracklet]:
    """One frame's track outputs -> MOT frame numbers (``frame.index + 1``), the tracklet builder,
    ``st.last_outputs``, the crop keeper (a ThumbnailKeeper / CropKeeper, or None) and the frame count.
    Returns the builder's partial tracklets."""
    outputs = [dataclasses.replace(o, frame=frame.index + 1) for o in outputs]
    partials = st.builder.add(outputs, frame.timestamp)
    st.last_outputs = outputs
    if crops is not None:  # adaptation crops, or one thumbnail per track
        crops.observe(frame.cam_id, frame.image, outputs)
    st.frames += 1
    if st.bar is not None:
        st.bar.update(1)
    return partials


def check_roi(st: CameraState, frame: Frame) -> None:
    """At a camera's first processed frame: one warning when its ROI lies entirely outside the frame."""
    if st.frames == 0 and st.roi is not None:
        height, width = frame.image.shape[:2]
        if roi_outside_frame(st.roi, width, height):
            log.warning("%s", roi_warning(frame.cam_id, st.roi, width, height))


def process_frames(plan: Any, detector: Any, encoder: Any, cams: dict[str, CameraState], frames: list[Frame],
                   crops: Any = None, timer: Any = None) -> tuple[list[Tracklet], list[Tracklet]]:
    """One iteration's per-camera work for ``frames`` (at most one per camera): the frames the
    ``plan`` (:class:`~pipeline.runner.frame_plan.FramePlan`) schedules for detection are detected in one
    batch, ROI-filtered, their chosen detections embedded in one encoder call and tracked; the others are
    carried by prediction. ``timer``: a StageTimer (detect / embed / track) or None. Returns the
    (partial, final) tracklets in frame order: detected frames first, then carried ones."""
    def stage(name: str):
        return nullcontext() if timer is None else timer.stage(name)

    for f in frames:
        check_roi(cams[f.cam_id], f)
    detect, carry = plan.split(frames, cams)  # schedule.detect_every: the others are carried by prediction
    with stage("detect"):
        det_lists = detector.detect([f.image for f in detect]) if detect else []
    with stage("embed"):
        det_lists = [filter_roi(d, cams[f.cam_id].roi) for f, d in zip(detect, det_lists)]
        plan.embed(encoder, detect, det_lists, cams)
    partials, finals = [], []
    with stage("track"):
        for frame, dets in zip(detect, det_lists):
            p, f = track_frame(cams[frame.cam_id], frame, dets, crops)
            plan.detected(cams[frame.cam_id], frame)
            partials += p
            finals += f
        for frame in carry:
            partials += carry_frame(cams[frame.cam_id], frame, crops)
            plan.carried(frame)
    return partials, finals
