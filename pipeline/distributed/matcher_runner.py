"""The matcher + store actor: the local runner (:class:`~pipeline.runner.loop.PipelineRunner`) with its
cameras replaced by remote camera actors.

It owns the identity space: the IdentityAssigner, CrossCameraMatcher, IdentityStore, the resume
checkpoints and every sink. Its frame loop pulls :class:`~pipeline.distributed.messages.CameraResult` s
from the camera actors and merges them by iteration: the local loop's iteration ``k`` holds the
``k``-th processed frame of every camera not yet done, in config order, so the assigner gets exactly
the local loop's calls (the same tracklets in the same order, then every camera's ``flush_all`` at the
end) while each camera runs up to ``executor.queue_frames`` frames ahead. Up to ``executor.inflight`` ``step``
calls are in flight per camera actor: Ray runs an actor's calls in the order they were sent, so the actor
starts its next chunk the moment it finishes one instead of waiting for the matcher to take the reply and
ask again. Live mode merges whatever each camera has ready instead (no waiting on the slowest camera).
Every call is logged (:class:`~pipeline.distributed.messages.StepCall`: sent, run, received; the actor's
CPU seconds) for ``ray_executor.json`` and tools/bench_ray.py.

Faults: a camera actor that dies (process or node) is restarted by Ray (``max_restarts``); the call in
flight fails (and every call after it), the matcher restores the camera from its last snapshot under a new
epoch (calls of the old epoch that still reach the actor do nothing) and drops the results it already
holds. Batch checkpoints (``store.checkpoint_every_s``) are taken at iterations where every camera's
snapshot is current, so they hold the same RunState as the local runner's; a restarted matcher actor
resumes from the last one (text outputs cut back, cameras restored), exactly as a re-run of a killed
local batch run does.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from pipeline.camconfig import CamsConfig
from pipeline.core.errors import ReidPipelineError
from pipeline.core.types import Frame
from pipeline.distributed.messages import CameraResult, CameraSnapshot, ShippedCrops, StepCall, StepReply
from pipeline.runner.checkpoint import CameraResume
from pipeline.runner.components import Components, build_identity_parts
from pipeline.runner.loop import PipelineRunner

log = logging.getLogger(__name__)


def _lost_errors() -> tuple[type[BaseException], ...]:
    """What a call to a camera actor raises when its outcome is lost: the actor died or is restarting, or
    its reply was in the object store of a node that died (``ObjectLostError``: the call cannot be
    re-run, ``max_retries`` 0). Each is recovered the same way: restore the actor from its snapshot."""
    import ray

    return (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError, ray.exceptions.ObjectLostError)
RESTART_WAIT_S = 300.0  # how long a lost camera actor may take to come back (new process, models loaded)
CALL_LOG = 4096  # step calls kept per camera (the latest; a live run makes them forever)


class CameraLostError(ReidPipelineError):
    """A camera actor died more often than ``executor.max_restarts`` allows."""


class _EncoderVersion:
    """The matcher needs only the encoder's version (assignments, calibration); the encoder runs in the cameras."""

    def __init__(self, version: str) -> None:
        self.version = version


class _RemoteBuilder:
    """What the runner asks of a camera's tracklet builder: the oldest open frame (shipped with every
    result) and the end-of-run flush (a call to the actor)."""

    def __init__(self, cam: RemoteCamera) -> None:
        self.cam = cam

    def oldest_open_frame(self) -> int | None:
        return self.cam.oldest_open

    def flush_all(self) -> list:
        return self.cam.flush()


class RemoteCamera:
    """The runner's CameraState for a camera that runs in an actor: counters of what was consumed,
    the buffer of results received ahead, the calls in flight (oldest first), the snapshots, the call log."""

    def __init__(self, cam_id: str, actor: Any, runner: RayRunner) -> None:
        self.id = cam_id
        self.actor = actor
        self.runner = runner
        self.ex = runner.cfg.executor
        self.builder = _RemoteBuilder(self)
        self.source = self  # health() below
        self.bar = None
        self.roi = None
        cam = next(c for c in runner.cfg.cameras if c.id == cam_id)
        self.fps = float(cam.fps or 25.0)  # for the video sink only, which executor ray refuses
        self.frames = 0  # results consumed by the runner
        self.next_index = 0
        self.done = False  # consumed everything (the runner's meaning)
        self.last_outputs: list = []
        self.oldest_open: int | None = None
        self.snapshot: CameraSnapshot | CameraResume | None = None  # latest received: what a restart continues
        self.consumed_snapshot: CameraResume | None = None  # state as of ``frames`` (checkpoints)
        self.buffer: collections.deque[CameraResult] = collections.deque()
        self.received = 0  # frames count of the last result received
        self.ended = False  # the actor said done
        self.pending: collections.deque[tuple[Any, float]] = collections.deque()  # (ObjectRef, sent at) per step call
        self.epoch: str | None = None
        self.restarts = 0
        self.calls: collections.deque[StepCall] = collections.deque(maxlen=CALL_LOG)
        self._closing: Any = None  # the ObjectRef of the close call sent by request_stop

    # ------------------------------------------------------------ actor calls
    def start(self) -> None:
        """Restore the actor to what this runner consumed (a checkpoint's snapshot, or the start)."""
        self.epoch = uuid.uuid4().hex
        self.buffer.clear()
        self.pending.clear()
        self.received = self.frames
        self.ended = self.done
        if not self.done:
            self._restore()

    def submit(self) -> None:
        """Send ``step`` calls until ``executor.inflight`` are in flight or the frames they may return would
        not fit ``queue_frames`` beside those buffered (the backpressure)."""
        live = self.runner.cfg.mode == "live"
        chunk = self.ex.chunk_frames
        while (not self.ended and len(self.pending) < self.ex.inflight
               and len(self.buffer) + (len(self.pending) + 1) * chunk <= self.ex.queue_frames):
            ref = self.actor.step.remote(self.epoch, chunk, live, self.ex.snapshot_every)
            self.pending.append((ref, time.time()))

    def _recover(self, exc: Exception) -> None:
        """The actor's process or node died (a call failed, or the actor answered with another epoch: it was
        restarted between two calls): wait for Ray's restart and restore the last snapshot."""
        self.restarts += 1
        log.warning("camera %s: actor lost (%s); restoring it from frame %d", self.id, type(exc).__name__,
                    0 if self.snapshot is None else self.snapshot.frames)
        self.pending.clear()  # the calls after the failed one: failed too, or stale for the new epoch
        self.epoch = uuid.uuid4().hex
        self._restore()

    def _restore(self) -> None:
        """``restore`` the actor to ``snapshot`` under ``epoch``, waiting up to RESTART_WAIT_S while Ray restarts
        it: a camera actor killed together with the matcher may still be restarting when the restarted matcher
        starts its cameras, not only when a step call fails."""
        import ray

        deadline = time.monotonic() + RESTART_WAIT_S
        while True:
            try:
                ray.get(self.actor.restore.remote(self.epoch, self.snapshot))
                return
            except ray.exceptions.ActorUnavailableError:  # restarting (a new process, maybe on another node)
                if time.monotonic() > deadline:
                    raise CameraLostError(f"camera {self.id}: its actor did not come back within "
                                          f"{RESTART_WAIT_S:.0f} s") from None
                time.sleep(0.5)
            except ray.exceptions.ActorDiedError as died:  # restarts used up (executor.max_restarts)
                raise CameraLostError(f"camera {self.id}: its actor is gone after {self.restarts} losses "
                                      f"(executor.max_restarts {self.ex.max_restarts}): {died}") from None

    def _absorb(self, reply: StepReply, submitted: float) -> None:
        self.calls.append(StepCall(submitted, reply.started_at, reply.ended_at, time.time(), len(reply.results),
                                   reply.cpu_s))
        for r in reply.results:
            if r.frames <= self.received:  # replayed after a restore: the runner has it already
                continue
            self.received = r.frames
            if r.snapshot is not None:
                self.snapshot = r.snapshot
            self.buffer.append(r)
        if reply.done:
            self.ended = True
            self.snapshot = reply.snapshot
            self.pending.clear()  # calls sent after this one find the camera done: nothing to wait for

    def poll(self, wait: bool) -> None:
        """Receive the oldest reply in flight (``wait``: block until it comes), then top the calls in flight up."""
        import ray

        self.submit()
        while self.pending:
            ref, submitted = self.pending[0]
            if not wait and not ray.wait([ref], timeout=0)[0]:
                return
            try:
                reply = ray.get(ref)
            except _lost_errors() as exc:  # the actor, or its reply with the node that held it: restore from the snapshot
                self._recover(exc)
                self.submit()
                continue
            self.pending.popleft()
            if reply.stale:  # our epoch is not the actor's: Ray restarted it between two calls
                self._recover(RuntimeError("restarted between calls"))
            else:
                self._absorb(reply, submitted)
            self.submit()
            if self.buffer or self.ended or not wait:
                return

    def next_result(self, wait: bool) -> CameraResult | None:
        """The next result to consume (None: none ready in live mode, or the camera is done)."""
        while not self.buffer and not self.ended:
            self.poll(wait)
            if not wait:
                break
        if not self.buffer:
            if self.ended:
                self.done = True
                self.consumed_snapshot = self.snapshot
            return None
        r = self.buffer.popleft()
        self.frames, self.next_index = r.frames, r.index + 1
        self.last_outputs, self.oldest_open = r.outputs, r.oldest_open
        self.consumed_snapshot = r.snapshot
        self.submit()
        return r

    def _catch_up(self) -> None:
        """After a restore at the end of the run: step (results dropped, all consumed already) until the actor
        is back where the runner is."""
        import ray

        while True:
            reply = ray.get(self.actor.step.remote(self.epoch, self.ex.queue_frames, False, self.ex.snapshot_every))
            if reply.stale or reply.done or (reply.results and reply.results[-1].frames >= self.frames):
                return

    def flush(self) -> list:
        import ray

        while True:
            try:
                got = ray.get(self.actor.flush.remote(self.epoch))
            except _lost_errors() as exc:
                got, err = None, exc
            else:
                err = RuntimeError("restarted between calls")
            if got is not None:
                break
            self._recover(err)  # restored to its last snapshot: re-process up to what was consumed, then flush
            self._catch_up()
        finals, thumbs = got
        self.runner.shipped.put(self.id, thumbs)
        return finals

    def health(self):
        import ray

        return ray.get(self.actor.health.remote())

    def request_stop(self) -> None:
        """The end of the run (the runner calls it on every camera, then :meth:`close` on each): send the actor
        its ``close`` now, so every camera closes its source at once and :meth:`close` only waits for it."""
        if self._closing is None:
            try:
                self._closing = self.actor.close.remote()
            except Exception as exc:  # noqa: BLE001 - a lost actor: close() reports it
                log.debug("camera %s: close not sent: %s", self.id, exc)

    def close(self) -> None:
        import ray

        try:
            ref, self._closing = self._closing or self.actor.close.remote(), None
            ray.get(ref, timeout=30)
        except Exception as exc:  # noqa: BLE001 - closing a lost actor must not mask the run's result
            log.warning("camera %s: close failed: %s", self.id, exc)


class _RemoteComponents(Components):
    """Components whose cameras are actors (no detector or encoder in this process)."""

    runner: Any = None

    def open_cameras(self, cfg: CamsConfig, progress: bool = True, max_frames: int | None = None,
                     start_index: dict[str, int] | None = None) -> dict[str, RemoteCamera]:
        return {c.id: RemoteCamera(c.id, self.runner.workers[c.id], self.runner) for c in cfg.cameras}


class RayRunner(PipelineRunner):
    """PipelineRunner over remote cameras (see the module docstring)."""

    def __init__(self, cfg: CamsConfig, workers: dict[str, Any], encoder_version: str,
                 out_dir: Path | None = None, max_frames: int | None = None) -> None:
        super().__init__(cfg, out_dir=out_dir, max_frames=max_frames, progress=False)
        self.workers = workers
        self.encoder_version = encoder_version
        self.shipped = ShippedCrops()
        self._started = False
        self.loop_span: list[float] = [0.0, 0.0]  # wall clock when the frame loop began and when it had no camera left
        self.stop_wanted = threading.Event()  # a stop that waits for the next pausable iteration (request_stop)
        self.stop_waited = 0  # iterations run since stop_wanted was set

    def request_stop(self) -> None:
        """Stop the run. A batch run that pauses on a stop (``store.on_stop: resume``) keeps going to the next
        iteration where every camera's snapshot is current (at most ``executor.snapshot_every`` frames per camera:
        the cameras ship their state only there) and pauses at that one, so the same command resumes to the
        uninterrupted run's result as with the local executor; anything else stops after this iteration."""
        if self.cfg.mode == "batch" and self.cfg.store.on_stop == "resume":
            self.stop_wanted.set()
        else:
            self.stop_event.set()

    def _stop_here(self) -> bool:
        """Whether a wanted stop takes effect now (before the next iteration): where a pause can be taken, or,
        should the cameras never be current together, after ``snapshot_every`` + 1 more iterations (then the
        open tracks are closed and a re-run starts over: said in a warning)."""
        if not self.stop_wanted.is_set() or self.stop_event.is_set():
            return False
        if self._snapshots_current():
            log.info("stop: pausing at frame %s (the cameras' last snapshot)",
                     {cid: c.frames for cid, c in self.cams.items()})
            return True
        self.stop_waited += 1
        if self.stop_waited > self.cfg.executor.snapshot_every + 1:
            log.warning("stop: the cameras' snapshots never lined up; the run is finished, not paused (the open "
                        "tracks are closed) and a re-run of the same command starts over")
            return True
        return False

    def run(self) -> dict:
        from pipeline.store import IdentityStore

        store = IdentityStore(Path(self.cfg.store.path))
        try:
            aggregator, matcher = build_identity_parts(self.cfg, store, self.encoder_version)
            self.comp = _RemoteComponents(None, _EncoderVersion(self.encoder_version), aggregator, store, matcher)
            self.comp.runner = self
            return super().run()
        finally:
            store.close()

    def frames_done(self) -> dict[str, int]:
        """Frames consumed per camera (the driver's progress bars)."""
        return {cid: cam.frames for cid, cam in self.cams.items()}

    def _crop_keeper(self):
        return self.shipped

    # ------------------------------------------------------------------ the loop's hooks
    def _read_frames(self, live: bool) -> list[CameraResult] | None:
        if not self._started:
            self.loop_span[0] = time.time()
            for cam in self.cams.values():
                cam.start()
            self._started = True
        active = [c for c in self.cams.values() if not c.done]
        if not active:
            self.loop_span[1] = time.time()
            return None
        if self._stop_here():  # the loop ends before reading on: every camera is as its snapshot says
            self.stop_event.set()
            return []
        if live:
            for cam in active:
                cam.poll(wait=False)
            results = [r for r in (c.next_result(wait=False) for c in active) if r is not None]
            if not results and all(not c.buffer for c in active):
                self._wait_any(active)
            return results
        for cam in active:  # every camera's calls go out before the loop waits on one (else a camera's first call
            cam.submit()  # waited for the previous camera's first reply: the cameras started one after another)
        return [r for r in (c.next_result(wait=True) for c in active) if r is not None]

    def _wait_any(self, cams: list[RemoteCamera]) -> None:
        import ray

        refs = [c.pending[0][0] for c in cams if c.pending]
        if refs:
            ray.wait(refs, num_returns=1, timeout=0.2)
        else:
            time.sleep(0.05)

    def _process(self, results: list[CameraResult], sinks) -> None:
        partials, finals = [], []
        for r in results:
            partials += r.partials
            finals += r.finals
            self.shipped.put(r.cam_id, r.thumbs)
        frames = [Frame(r.cam_id, r.index, r.timestamp, None) for r in results]
        self._identify(frames, partials, finals, sinks)

    def _checkpoint_due(self) -> bool:
        """Only at iterations where every camera's state is known (its snapshot frames)."""
        return self.ckpt.due() and self._snapshots_current()

    def _pause_on_stop(self) -> bool:
        """A stop pauses (``store.on_stop: resume``) only where a checkpoint could be taken (:meth:`request_stop`
        runs on to such an iteration); else the open tracks are closed as with ``finish``."""
        return super()._pause_on_stop() and self._snapshots_current()

    def _snapshots_current(self) -> bool:
        return all(c.consumed_snapshot is not None and c.consumed_snapshot.frames == c.frames
                   for c in self.cams.values())

    def _camera_states(self) -> dict[str, CameraResume]:
        return {cid: c.consumed_snapshot for cid, c in self.cams.items()}

    def _restore_cameras(self, cameras: dict[str, CameraResume]) -> None:
        for cid, cr in cameras.items():
            cam = self.cams.get(cid)
            if cam is not None:
                cam.snapshot = cam.consumed_snapshot = cr
                cam.frames, cam.next_index, cam.done = cr.frames, cr.next_index, cr.done
                cam.last_outputs = cr.last_outputs


class MatcherActor:
    """The Ray actor around :class:`RayRunner` (threaded: ``progress`` and ``request_stop`` answer while
    ``run`` works). Ray re-runs ``__init__`` after a restart; ``run`` then resumes from the store."""

    def __init__(self, cfg: CamsConfig, workers: dict[str, Any], encoder_version: str,
                 out_dir: str | None, max_frames: int | None) -> None:
        self.args = (cfg, workers, encoder_version, None if out_dir is None else Path(out_dir), max_frames)
        self.runner: RayRunner | None = None

    def run(self) -> tuple[dict, str]:
        import os

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        os.umask(0o077)  # what the run creates (outputs, store) is private, as with the local runner
        self.runner = RayRunner(*self.args)
        try:
            summary = self.runner.run()
        except ReidPipelineError as exc:  # one line for the driver (the project's errors need not unpickle)
            return {"error": f"{type(exc).__name__}: {exc}"}, ""
        cams = self.runner.cams.values()
        summary["executor"] = {
            "kind": "ray", "camera_restarts": {c.id: c.restarts for c in cams},
            "loop_span": self.runner.loop_span,  # of this run of the actor (after a matcher restart: since then)
            "step_calls": {c.id: [dataclasses.astuple(k) for k in c.calls] for c in cams},
            "step_call_fields": [f.name for f in dataclasses.fields(StepCall)],
        }
        return summary, self.runner.summary_table

    def progress(self) -> dict[str, int]:
        return {} if self.runner is None else self.runner.frames_done()

    def request_stop(self) -> None:
        if self.runner is not None:
            self.runner.request_stop()

    def info(self) -> dict:
        import os

        import ray

        return {"pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id()}
