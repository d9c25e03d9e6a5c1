"""The multi-camera pipeline loop: the only place that knows the order of the stages.

Per iteration: read one frame per camera (decode) -> detect all frames in one
batch (detect) -> ROI filter + crop + embed all crops of all cameras in one
batch (embed) -> per-camera Tracker + TrackletBuilder (track) -> aggregate +
CrossCameraMatcher (match) -> IdentityStore + sinks (store_sinks).

Batch mode reads files losslessly and as fast as possible (a tqdm bar per
camera); live mode reads the latest frame of each camera and runs until
Ctrl-C/SIGTERM, logging camera health periodically. Either way a stop request
flushes the open tracklets into the store before returning.

A batch run is resumable: its store writes commit together with a resume
checkpoint (:mod:`pipeline.runner.checkpoint`), so a run killed hard (kill -9,
power loss) and re-run under the same run key (``run_key``, or the hash of the config and its inputs'
content) continues from the last checkpoint and writes what an uninterrupted run would. A key whose stored run
had other result settings or inputs is refused (:mod:`pipeline.runner.run_record`); a run already complete, with
its outputs in place, is not run again (nothing rewritten).
A run stopped gracefully (SIGTERM, Ctrl-C, an error) has flushed its open
tracklets instead; re-running it re-processes the input and the store binds the
already stored tracklets to their global ids.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from pathlib import Path

from pipeline.camconfig import CamsConfig
from pipeline.runner.checkpoint import CameraResume, Checkpointer, RunState, output_sizes, truncate_outputs
from pipeline.runner.run_record import RunMismatchError, RunRecord, changes, default_run_key, mismatch_message
from pipeline.matching.recluster import recluster_after_run
from pipeline.runner.identity import IdentityAssigner
from pipeline.runner.camera_stage import process_frames, read_frame
from pipeline.runner.frame_plan import FramePlan
from pipeline.runner.signals import stop_on_signals
from pipeline.runner.components import CameraState, Components, build_components, check_inputs, open_sinks
from pipeline.runner.stage_timer import StageTimer
from pipeline.store.calibration import CalibrationSaver
from pipeline.store.prototypes import PrototypeTable
from pipeline.core.gcpauses import GcFreezer
from pipeline.core.memory import release_free_heap
from pipeline.core.types import Frame

log = logging.getLogger(__name__)
PRUNE_EVERY_FRAMES = 256  # per camera: how often finished frames leave the assigner's bookkeeping
_RELEASE_FREE_HEAP_EVERY_S = 60.0  # live runs: glibc's free heap back to the system this often
_GC_FREEZE_EVERY_S = 1.0  # the long-lived heap out of the collector's walks this often (pipeline/core/gcpauses.py)
_GC_FULL_EVERY_S = 600.0  # one full collection this often: cycles that died after being frozen are freed


class PipelineRunner:
    """Runs a validated :class:`CamsConfig` (see ``reid-pipeline run``)."""

    def __init__(
        self,
        cfg: CamsConfig,
        out_dir: Path | None = None,
        max_frames: int | None = None,
        progress: bool = True,
        components: Components | None = None,
    ) -> None:
        self.cfg = cfg
        self.out_dir = Path(out_dir or cfg.outputs.dir)
        self.max_frames = max_frames
        self.progress = progress
        self.stop_event = threading.Event()
        self.timer = StageTimer()
        self.comp = components
        self.cams: dict[str, CameraState] = {}
        self.adapt = None  # pipeline.adaptation.live.LiveAdaptation when adapt.enabled
        self.ckpt: Checkpointer | None = None  # batch mode: resume checkpoints
        self.resumed_from: dict[str, int] | None = None
        self.paused_at: dict[str, int] | None = None  # store.on_stop: resume, set when a stop paused the run
        self.run_id: int | None = None  # the store's run row, once begun
        self.live = None  # pipeline.web.live.LiveFrames when ui.enabled: the console's live tiles
        self._console = None  # pipeline.web.server.ConsoleServer when ui.enabled (reserved at start)
        self.plan = FramePlan(cfg.schedule, cfg.encoder)  # detection stride + embedding policy (docs/speed.md)

    # ------------------------------------------------------------------ public
    def request_stop(self) -> None:
        self.stop_event.set()

    def run(self) -> dict:
        """Process until the sources end (batch), ``max_frames`` or a stop request; returns a summary."""
        cfg = self.cfg
        own = self.comp is None
        check_inputs(cfg)  # an empty/missing input folder or file fails before the store is created or written
        self._console = self._reserve_console()  # a taken ui.port fails here too, before anything is opened
        try:
            self.comp = self.comp or build_components(cfg)
            try:
                return self._run()
            except BaseException as exc:
                self._record_end("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
                raise
            finally:
                if own:
                    self.comp.store.close()
        finally:
            if self._console is not None:
                self._console.stop()  # idempotent: a started console was stopped by the loop

    def _run(self) -> dict:
        cfg, store = self.cfg, self.comp.store
        from pipeline.sources.redact import redact_data  # camera credentials never reach the store

        config = redact_data(cfg.model_dump(mode="json"))
        record = RunRecord.of(config, {c.id: c.source for c in cfg.cameras})
        run_key = cfg.run_key or (default_run_key(cfg.fingerprint(), record) if cfg.mode == "batch"
                                  else f"live-{time.time():.0f}")
        done = self._check_reuse(run_key, record)
        if done is not None:
            return done
        run_id = self.run_id = store.begin_run(run_key, json.dumps(config, default=str), record.to_json())
        log.info("run %s (run_id %d): %s", run_key, run_id,
                 ", ".join(f"{c.id}={c.display_uri()}" for c in cfg.cameras))
        resume = None
        if cfg.mode == "batch":
            self.ckpt = Checkpointer(store, run_id, cfg.fingerprint(), cfg.store.checkpoint_every_s)
            resume = self.ckpt.load()
        self.cams = self.comp.open_cameras(
            cfg, progress=self.progress, max_frames=self.max_frames,
            start_index=None if resume is None else {cid: c.next_index for cid, c in resume.cameras.items()})
        sinks = None
        try:
            if resume is not None:
                truncate_outputs(self.out_dir, resume.output_sizes, self._text_outputs())
            sinks = open_sinks(cfg, self.out_dir, {cid: st.fps for cid, st in self.cams.items()},
                               append=resume is not None)
            self.assigner = IdentityAssigner(
                store, self.comp.matcher, self.comp.aggregator, run_id, self.comp.encoder.version,
                sinks.events, sinks.timeline, sinks.global_mot, crops=self._crop_keeper(),
            )
            if resume is not None:
                self._restore(resume, sinks)
            self.cal_saver = CalibrationSaver(store, cfg.store.checkpoint_every_s)  # restarts continue it
            self._start_adaptation()
            console = self._start_console()
            monitor = self._start_health(sinks.mqtt)
            self.timer.restart()  # fps and shares cover the frame loop, not model loading
            if self.ckpt is not None:
                self.ckpt.begin()
            paused = False
            try:
                with self._signals():
                    self._loop(sinks)
                paused = self._pause_on_stop()
            finally:
                monitor.stop()
                if console is not None:
                    console.stop()
                if paused:
                    self._pause(sinks)
                else:
                    self._close_open_tracks()
        except BaseException:
            if sinks is not None:
                self._close_after_failure(sinks)
            raise
        finally:
            for st in self.cams.values():  # every camera is told first (no new connection after this) ...
                st.source.request_stop()
            if self.adapt is not None:
                self.adapt.stop()
            for st in self.cams.values():  # ... then joined: stopping takes as long as the slowest, not the sum
                st.close()
        return self._finish(sinks, run_key, run_id)

    def _close_open_tracks(self) -> None:
        """End of a run (its sources ended, ``--max-frames``, an error, or a stop with ``store.on_stop: finish``):
        the open tracks become final tracklets and every output carries them; a batch run's checkpoint is spent."""
        with self.timer.stage("match"):  # flush open tracklets: nothing computed is lost
            finals = [t for st in self.cams.values() for t in st.builder.flush_all()]
            self.assigner.process([], finals)
            self.assigner.flush_announcements()  # revisions still waiting (revise.announce_after_s)
            self.assigner.check_overlaps()  # undeclared overlapping cameras, with the last pairs
            self.cal_saver.save(self.comp.matcher, self.comp.encoder.version)
        with self.timer.stage("store_sinks"):  # final outputs carry the revised identities
            self.assigner.rewrite_global_mot()
        if self.ckpt is not None:  # commits the flush; the checkpoint is spent
            self.ckpt.end(drop=True)

    def _pause_on_stop(self) -> bool:
        """A batch run stopped by a signal or :meth:`request_stop` with ``store.on_stop: resume`` pauses."""
        return (self.ckpt is not None and self.stop_event.is_set() and self.cfg.store.on_stop == "resume"
                and any(not st.done for st in self.cams.values()))

    def _pause(self, sinks) -> None:
        """Commit a checkpoint as of the last whole iteration, open tracks included, instead of closing them:
        the same command resumes there and ends with an uninterrupted run's outputs and store rows. The outputs
        hold every tracklet that ended before the stop; the open ones live only in the checkpoint."""
        with self.timer.stage("store_sinks"):
            self.assigner.rewrite_global_mot(force=False)
        self.ckpt.commit(self._state(sinks))
        self.ckpt.end(drop=False)
        self.paused_at = {cid: st.next_index for cid, st in self.cams.items()}
        log.warning("stopped: the open tracks are kept in the resume checkpoint (next frame per camera %s), not in"
                    " the outputs; run the same command again to continue (store.on_stop: finish closes them at a"
                    " stop instead)", self.paused_at)

    def _check_reuse(self, run_key: str, record: RunRecord) -> dict | None:
        """Before a run key is reused: an explicit ``run_key`` whose stored run had other result settings or
        inputs is refused (:class:`RunMismatchError`, one line); a batch run already ``complete`` whose outputs
        are in this outputs folder is not run again (its summary is returned, nothing rewritten); else None."""
        existing = self.comp.store.run_by_key(run_key)
        if existing is None:
            return None
        old = RunRecord.from_stored(existing["config_json"], existing["record_json"])
        diffs = changes(old, record) if old is not None else []
        if diffs:
            raise RunMismatchError(mismatch_message(run_key, self.comp.store.path, diffs))
        if self.cfg.mode != "batch" or existing["status"] != "complete":
            return None
        try:
            summary = json.loads((self.out_dir / "stage_times.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # its outputs are not here (another --out, or removed): re-run to write them
        if not isinstance(summary, dict) or summary.get("run_key") != run_key:
            return None
        msg = (f"run {run_key} is already complete in {self.comp.store.path}: nothing re-run, its outputs in"
               f" {self.out_dir} left as they are")
        log.warning("%s", msg)
        self.summary_table = msg
        return {**summary, "already_complete": True}

    # ------------------------------------------------------------------ loop
    def _loop(self, sinks) -> None:
        live = self.cfg.mode == "live"
        last_rewrite = last_trim = time.monotonic()
        with GcFreezer(_GC_FREEZE_EVERY_S, _GC_FULL_EVERY_S) as gc_pauses:
            while not self.stop_event.is_set():
                with self.timer.stage("decode"):
                    frames = self._read_frames(live)
                if frames is None:
                    break
                if frames:
                    self._process(frames, sinks)
                    if self.ckpt is not None and self._checkpoint_due():
                        with self.timer.stage("store_sinks"):  # revised ids reach mot_global/ with the checkpoint
                            self.assigner.rewrite_global_mot(force=False)
                        self.ckpt.commit(self._state(sinks))
                    elif live and time.monotonic() - last_rewrite >= self.cfg.store.checkpoint_every_s:
                        last_rewrite = time.monotonic()
                        with self.timer.stage("store_sinks"):
                            self.assigner.rewrite_global_mot(force=False)
                if self.adapt is not None:
                    self.adapt.poll()  # hot-swap a newly deployed (or rolled back) re-id model
                if live and time.monotonic() - last_trim >= _RELEASE_FREE_HEAP_EVERY_S:
                    last_trim = time.monotonic()
                    release_free_heap()  # freed transient buffers go back to the system (pipeline/core/memory.py)
                gc_pauses.tick()  # young collection + freeze once a second (pipeline/core/gcpauses.py)

    def _read_frames(self, live: bool) -> list[Frame] | None:
        """One frame per camera that has one; None when every camera is done."""
        active = [st for st in self.cams.values() if not st.done]
        if not active:
            return None
        frames = [read_frame(st, live, self.max_frames, self.stop_event) for st in active]
        return [f for f in frames if f is not None]

    def _process(self, frames: list[Frame], sinks) -> None:
        partials, finals = process_frames(self.plan, self.comp.detector, self.comp.encoder, self.cams, frames,
                                          self.assigner.crops, self.timer)
        self._identify(frames, partials, finals, sinks)

    def _identify(self, frames: list[Frame], partials: list, finals: list, sinks) -> None:
        """One iteration's identity part: match + store the tracklets, then each frame's sinks. ``frames``: the
        iteration's frames (``self.cams`` holds their cameras' states after tracking)."""
        comp, timer = self.comp, self.timer
        with timer.stage("match"):
            self.assigner.process(partials, finals)
            for frame in frames:  # keep the global-MOT bookkeeping to what open tracks can still reach
                st = self.cams[frame.cam_id]
                if st.frames % PRUNE_EVERY_FRAMES == 0:
                    oldest = st.builder.oldest_open_frame()
                    self.assigner.forget_written_before(frame.cam_id, frame.index + 1 if oldest is None else oldest)
            self.cal_saver.maybe_save(comp.matcher, comp.encoder.version)
        with timer.stage("store_sinks"):
            for frame in frames:
                self._write_frame_sinks(frame, sinks)

    def _write_frame_sinks(self, frame: Frame, sinks) -> None:
        st = self.cams[frame.cam_id]
        outputs = st.last_outputs
        writer = sinks.local_mot.get(frame.cam_id)
        if writer is not None:
            writer.write_rows((o.frame, o.track_id, o.tlwh, o.score) for o in outputs)
        video = sinks.video.get(frame.cam_id)
        if video is not None or self.live is not None:
            boxes = []
            for o in outputs:
                gid = self.comp.matcher.track_global_id(frame.cam_id, o.track_id)
                label = f"G{gid}" if gid is not None else f"t{o.track_id}"
                boxes.append((o.tlwh, label, gid if gid is not None else 10_000 + o.track_id))
            if video is not None:
                video.write(frame.image, boxes)
            if self.live is not None:
                self.live.publish(frame.cam_id, frame.index, frame.timestamp, frame.image, boxes)

    # ------------------------------------------------------------------ resume
    def _text_outputs(self) -> list[Path]:
        """The append-only text outputs a resume truncates back to its checkpoint."""
        ids = [c.id for c in self.cfg.cameras]
        return ([self.out_dir / sub / f"{c}.txt" for sub in ("mot", "mot_global") for c in ids]
                + [self.out_dir / "events.jsonl"])

    def _state(self, sinks) -> RunState:
        """What a resumed run needs (see pipeline.runner.checkpoint), as of the last processed frame."""
        a = self.assigner
        return RunState(
            cameras=self._camera_states(),
            matcher=self.comp.matcher,
            assigner={"announced": a.announced, "written": a._written, "stats": a.stats, "open": a.open_tracks,
                      "announcer": a.announcer},
            timeline=sinks.timeline,
            output_sizes=output_sizes(self.out_dir, self._text_outputs()),
        )

    def _checkpoint_due(self) -> bool:
        return self.ckpt.due()

    def _camera_states(self) -> dict[str, CameraResume]:
        """Each camera's resume state as of the last processed frame."""
        return {cid: CameraResume(st.tracker, st.builder, st.frames, st.next_index, st.done, st.last_outputs)
                for cid, st in self.cams.items()}

    def _restore(self, state: RunState, sinks) -> None:
        """Continue from a checkpoint: per-camera state, matcher, identity maps, timeline."""
        self._restore_cameras(state.cameras)
        # pickled without its store and index; the pager's LRU sized by this run's config
        state.matcher.attach_pager(PrototypeTable(self.comp.store, self.comp.matcher.config.index.cache_size))
        self.comp.matcher = self.assigner.matcher = state.matcher
        self.assigner.announced = state.assigner["announced"]
        self.assigner._written = state.assigner["written"]
        self.assigner.stats = state.assigner["stats"]
        self.assigner.open_tracks = state.assigner.get("open", set())
        if state.assigner.get("announcer") is not None:  # revisions that were waiting to be announced
            self.assigner.announcer = state.assigner["announcer"]
        self.assigner.mark_global_mot_stale()  # the files were cut back to the checkpoint: reload them from the store
        sinks.timeline = self.assigner.timeline = state.timeline
        self.resumed_from = {cid: cr.next_index for cid, cr in state.cameras.items()}
        log.info("resuming from the checkpoint: next frame per camera %s", self.resumed_from)

    def _restore_cameras(self, cameras: dict[str, CameraResume]) -> None:
        for cid, cr in cameras.items():
            st = self.cams.get(cid)
            if st is None:
                continue
            st.tracker, st.builder, st.frames = cr.tracker, cr.builder, cr.frames
            st.next_index, st.done, st.last_outputs = cr.next_index, cr.done, cr.last_outputs
            if st.bar is not None:
                st.bar.update(cr.frames)

    # ------------------------------------------------------------------ end
    def _finish(self, sinks, run_key: str, run_id: int) -> dict:
        store = self.comp.store
        limited = self.max_frames is not None and any(st.frames >= self.max_frames for st in self.cams.values())
        self._record_end("interrupted" if self.stop_event.is_set() else "frame_limit" if limited else "complete")
        frames = {cid: st.frames for cid, st in self.cams.items()}
        report = self.timer.report(frames)
        with self.timer.stage("store_sinks"):
            sinks.close(t0=0.0, timeline=False)
        complete = not self.stop_event.is_set() and not limited  # batch + recluster.enabled: final ids
        try:  # MQTT (outputs.mqtt) also gets the re-clustering's merge/split events, then flushes
            reclustered = (recluster_after_run(self.cfg, store, run_id, self.out_dir, events=sinks.mqtt)
                           if complete else None)
        finally:
            mqtt = sinks.close_publishers()
        # timelines show the final identities (online revisions and the re-clustering), as mot_global/ does
        stored = [t for t in store.tracklets(run_id=run_id, with_arrays=False) if t.global_id is not None]
        pngs = sinks.write_timelines([(t.cam_id, int(t.track_id), int(t.global_id), t.start_time, t.end_time)
                                      for t in stored] if sinks.write_timeline else None)
        by_id: dict[int, set[str]] = {}
        for t in stored:
            by_id.setdefault(int(t.global_id), set()).add(t.cam_id)
        stats = self.assigner.stats
        summary = {
            "run_key": run_key,
            "run_id": run_id,
            "out_dir": str(self.out_dir),
            "store": str(store.path),
            "interrupted": self.stop_event.is_set(),
            "paused_at_frame": self.paused_at,  # store.on_stop: resume; the same command continues from here
            "tracklets_stored": stats.tracklets_stored,
            "final_tracklets": stats.finals,
            "partial_tracklets": stats.partials,
            "skipped_no_embedding": stats.skipped_no_embedding,
            "resumed_tracklets": stats.resumed,
            "resumed_from_frame": self.resumed_from,
            "checkpoints": self.ckpt.commits if self.ckpt is not None else 0,
            "global_ids": len(stats.global_ids),  # ids handed out while running (revisions may merge some later)
            # the run's identities as they end (after revisions and the re-clustering): what the store and
            # mot_global/ hold, and how many of them were seen by more than one camera
            "final_identities": len(by_id),
            "final_multi_camera_identities": sum(len(c) > 1 for c in by_id.values()),
            "new_identities": stats.new_identities,
            "handovers": stats.handovers,
            "recluster": reclustered,
            "revise": {"merges": stats.merges, "splits": stats.splits, "tracklets_moved": stats.tracklets_moved,
                       "global_mot_rewrites": stats.global_mot_rewrites,
                       **({} if self.assigner.announcer is None else
                          {"announced_changes": self.assigner.announcer.announced_changes,
                           "withdrawn_moves": self.assigner.announcer.withdrawn})},
            "suspected_overlaps": [o.to_json() for o in self.assigner.overlaps.values()],
            "mqtt": mqtt,
            # the detector as it ran: backend, precision configured and run (precision: auto's choice and timings)
            "detector": getattr(self.comp.detector, "run_info", lambda: None)(),
            "duplicate_global_rows_dropped": stats.duplicate_rows_dropped,
            "timelines": [str(p) for p in pngs],
            "adaptation": self.adapt.summary() if self.adapt is not None else None,
            "cameras": {cid: dataclasses.asdict(st.source.health()) for cid, st in self.cams.items()},
            "timing": report,
            "frame_plan": self.plan.summary(),
        }
        self.timer.write_json(self.out_dir / "stage_times.json", summary)
        self.summary_table = self.timer.table(report)
        return summary

    @staticmethod
    def _close_after_failure(sinks) -> None:
        """A run dying with an exception still closes its files (timeline PNGs included) and flushes MQTT
        (``flush_timeout_s``), so what was computed before the failure reaches its consumers; an error here
        is logged and never masks the one that ended the run."""
        for what, close in (("output files", sinks.close), ("MQTT", sinks.close_publishers)):
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - the run's own error wins
                log.warning("after the run failed, closing its %s failed too: %s", what, exc)

    def _record_end(self, status: str) -> None:
        """runs.status + finished of this run; a store that fails here only logs (the run's own error wins)."""
        if self.run_id is None:
            return
        try:
            self.comp.store.end_run(self.run_id, status)
        except Exception as exc:  # noqa: BLE001 - never mask the error that ended the run
            log.warning("run %d: could not record its end (%s) in the store: %s", self.run_id, status, exc)

    def _crop_keeper(self):
        """adapt.enabled: the keeper of open tracks' crops, stored with each final tracklet; else the keeper
        of one small thumbnail per track (the console's gallery), stored the same way."""
        if not self.cfg.adapt.enabled:
            from pipeline.runner.thumbnails import ThumbnailKeeper

            return ThumbnailKeeper()
        from pipeline.adaptation.crops import CropKeeper

        return CropKeeper(self.cfg.adapt.crops_per_tracklet)

    def _start_adaptation(self) -> None:
        """adapt.enabled: keep crops for the store; adapt.background: also train in a background process."""
        if not self.cfg.adapt.enabled:
            return
        from pipeline.adaptation.live import LiveAdaptation

        enc = self.cfg.encoder.checkpoint
        self.adapt = LiveAdaptation(
            self.cfg.adapt, self.comp.store, self.comp.encoder, self.comp.matcher, self.assigner,
            keeper=self.assigner.crops, checkpoint=None if enc in ("default", "imagenet") else enc,
            non_overlapping=not self.cfg.matching.overlapping_cameras,
        )
        self.adapt.start()

    def _reserve_console(self):
        """ui.enabled: the web console (pipeline/web) with its port bound (ConfigError, one line, on a taken
        port), not serving yet: live tiles of this run's cameras, photo search with the run's own encoder;
        None otherwise."""
        ui = self.cfg.ui
        if not ui.enabled:
            return None
        from pipeline.camconfig import ui_allowed_hosts
        from pipeline.web.live import LiveFrames
        from pipeline.web.server import ConsoleServer

        self.live = LiveFrames([c.id for c in self.cfg.cameras],
                               health=lambda: [st.source.health() for st in self.cams.values()],
                               warnings=lambda: list(self.assigner.overlap_messages))
        return ConsoleServer(Path(self.cfg.store.path), lambda: self.comp.encoder, ui.host, ui.port, ui.token,
                             live=self.live, cameras={c.id: c.display_uri() for c in self.cfg.cameras},
                             allowed_hosts=ui_allowed_hosts(None, ui)).reserve()

    def _start_console(self):
        """Serve the console reserved at start (ui.enabled) in a thread; None without one."""
        return None if self._console is None else self._console.start()

    def _start_health(self, mqtt=None):
        """Periodic health lines (live mode) and the Prometheus endpoint (when a port is set): the cameras, and
        the MQTT sink (outputs.mqtt) when there is one."""
        from pipeline.health import HealthMonitor

        monitor = HealthMonitor([st.source for st in self.cams.values()], interval_s=self.cfg.health.log_every_s)
        if mqtt is not None:
            monitor.add_output(mqtt)
        if self.cfg.mode == "live":
            monitor.start()
        if self.cfg.health.metrics_port is not None:
            port = monitor.start_metrics_server(self.cfg.health.metrics_port)
            log.info("Prometheus metrics on http://127.0.0.1:%d/metrics", port)
        return monitor

    def _signals(self):
        """SIGINT/SIGTERM -> graceful stop after the current iteration (a batch run pauses or closes its open
        tracks, ``store.on_stop``); restored afterwards."""
        return stop_on_signals(self.stop_event.set)
