"""One camera as a Ray actor: source -> detector -> ROI -> encoder -> tracker -> tracklets.

:class:`CameraWorker` is a plain class; :mod:`pipeline.distributed.executor` turns it into a Ray actor
(``ray.remote(CameraWorker)``) with ``max_restarts``. The matcher pulls frames with :meth:`step` (at most
``chunk_frames`` per call and ``queue_frames`` ahead of what it consumed: the backpressure). After a
restart (Ray re-runs ``__init__``) or a matcher restart, the matcher calls :meth:`restore` with the
camera's last :class:`~pipeline.distributed.messages.CameraSnapshot`; the camera re-opens its source at
the snapshot's next frame and the matcher drops the results it already has, so nothing is lost or
counted twice. Detection runs per camera (the local loop batches it over cameras; the ONNX detector gives
the same boxes either way on the test data, see tests/pipeline/test_ray_cluster.py).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import threading
import time

from pipeline.camconfig import CamsConfig
from pipeline.core.errors import ReidPipelineError
from pipeline.distributed.messages import CameraResult, CameraSnapshot, StepReply
from pipeline.distributed.threads import apply_process_threads, sized_for_actor
from pipeline.runner.camera_stage import process_frames, read_frame
from pipeline.runner.frame_plan import FramePlan
from pipeline.runner.components import CameraState, Components, build_encoder
from pipeline.runner.stage_timer import StageTimer


class CameraWorker:
    """One camera of ``cfg`` (``cam_id``); ``max_frames``: stop after that many frames (``run --max-frames``)."""

    def __init__(self, cfg: CamsConfig, cam_id: str, max_frames: int | None = None) -> None:
        from pipeline.detectors import build_detector

        cams = [c for c in cfg.cameras if c.id == cam_id]
        if not cams:
            raise ValueError(f"camera {cam_id!r} is not in the config")
        cfg, self.threads = sized_for_actor(cfg)  # thread pools fit camera_num_cpus, not the whole machine
        apply_process_threads(self.threads)
        self.cfg = cfg.model_copy(update={"cameras": cams})
        self.cam_id = cam_id
        self.max_frames = max_frames
        #: the project's one-line error from building the models (bad weights, ...), reported by :meth:`info`
        #: instead of killing the actor (Ray would restart it max_restarts times and wrap the error in pages)
        self.init_error: str | None = None
        self.encoder = self.detector = None
        try:
            self.encoder = build_encoder(cfg)
            self.detector = build_detector(cfg.detector)
        except ReidPipelineError as exc:
            self.init_error = f"{type(exc).__name__}: {exc}"
        self.st: CameraState | None = None
        self.crops = None
        self.plan = FramePlan(cfg.schedule, cfg.encoder)
        self.epoch: str | None = None
        self.stop = threading.Event()
        self._health = None
        self.timer = StageTimer()  # this camera's detect / embed / track seconds (tools/bench_ray.py)

    def info(self) -> dict:
        """pid, Ray node id, encoder version, frames processed, thread settings (pipeline.distributed.threads):
        for the matcher, the bench and the tests."""
        import ray

        return {"cam_id": self.cam_id, "pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id(),
                "init_error": self.init_error,
                "encoder_version": None if self.encoder is None else self.encoder.version, "frames": 0 if self.st is None else self.st.frames,
                "threads": dataclasses.asdict(self.threads)}

    def restore(self, epoch: str, snapshot: CameraSnapshot | None) -> int:
        """(Re)open the source at ``snapshot``'s next frame with its state (None: from the start); calls of
        ``step`` with another ``epoch`` are ignored from now on. Returns the frames processed so far."""
        from pipeline.runner.thumbnails import ThumbnailKeeper

        self.close()
        start = 0 if snapshot is None else snapshot.next_index
        comp = Components(self.detector, self.encoder, None, None, None)
        st = comp.open_cameras(self.cfg, progress=False, max_frames=self.max_frames,
                               start_index={self.cam_id: start})[self.cam_id]
        self.crops = ThumbnailKeeper()
        self.plan = FramePlan(self.cfg.schedule, self.cfg.encoder)
        if snapshot is not None:
            st.tracker, st.builder, st.frames = snapshot.tracker, snapshot.builder, snapshot.frames
            st.next_index, st.done, st.last_outputs = snapshot.next_index, snapshot.done, snapshot.last_outputs
            self.crops = snapshot.crops if snapshot.crops is not None else self.crops
            self.plan = snapshot.plan if snapshot.plan is not None else self.plan
        self.st, self.epoch = st, epoch
        self.stop.clear()
        return st.frames

    def step(self, epoch: str, n: int, live: bool, snapshot_every: int) -> StepReply:
        """Process up to ``n`` frames (live: those available now) and return them (with the call's wall-clock
        start and end and the process's CPU seconds in it)."""
        st = self.st
        if epoch != self.epoch or st is None:
            return StepReply(stale=True)
        reply = StepReply(started_at=time.time())
        cpu0 = time.process_time()
        while len(reply.results) < n and not st.done:
            frame = read_frame(st, live, self.max_frames, self.stop)
            if frame is None:
                if live:
                    break
                continue
            reply.results.append(self._process(st, frame, snapshot_every))
        if st.done:
            reply.done, reply.snapshot = True, self._snapshot()
        reply.cpu_s, reply.ended_at = time.process_time() - cpu0, time.time()
        return reply

    def flush(self, epoch: str) -> tuple[list, dict] | None:
        """The open tracklets as finals (end of the run) and their thumbnails; None: another epoch (restarted)."""
        if epoch != self.epoch or self.st is None:
            return None
        finals = self.st.builder.flush_all()
        return finals, {int(t.track_id): self.crops.take(self.cam_id, t.track_id) for t in finals}

    def timing(self) -> dict[str, float]:
        """Seconds spent per stage (detect, embed, track) since the actor started."""
        return {k: round(v, 4) for k, v in self.timer.seconds.items() if v > 0}

    def health(self):
        """The source's health (pipeline.sources health dataclass; after :meth:`close`, as it was then)."""
        return self._health if self.st is None else self.st.source.health()

    def close(self) -> None:
        self.stop.set()
        if self.st is not None:
            st, self.st = self.st, None
            try:
                st.close()
            finally:
                self._health = st.source.health()

    def _process(self, st: CameraState, frame, snapshot_every: int) -> CameraResult:
        partials, finals = process_frames(self.plan, self.detector, self.encoder, {self.cam_id: st}, [frame],
                                          self.crops, self.timer)
        thumbs = {int(t.track_id): self.crops.take(self.cam_id, t.track_id) for t in finals}
        return CameraResult(
            self.cam_id, frame.index, frame.timestamp, st.frames, st.last_outputs, partials, finals, thumbs,
            st.builder.oldest_open_frame(), self._snapshot() if st.frames % snapshot_every == 0 else None)

    def _snapshot(self) -> CameraSnapshot:
        st = self.st
        return copy.deepcopy(CameraSnapshot(st.tracker, st.builder, st.frames, st.next_index, st.done,
                                            st.last_outputs, self.crops, self.plan))
