"""Builders for the runner: components from a validated config, per-camera state, sinks.

Heavy libraries (torch, onnxruntime, cv2) are imported inside the builders.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.camconfig import CamsConfig
from pipeline.sinks import AnnotatedVideoWriter, EventSink, MOTWriter, TimelineRecorder
from pipeline.sources.camera import RATE_WAIT_S
from pipeline.tracklets import TrackletBuilder
from pipeline.core.types import TrackOutput

log = logging.getLogger(__name__)
#: frames per second assumed for a source whose rate is neither configured (``cameras.N.fps``) nor probed
FALLBACK_FPS = 25.0
#: a live run's in-memory timeline keeps the spans of the last hour (bounded memory); its PNGs at the end are
#: drawn from the store, which has every span (a run that fails draws what the recorder kept)
LIVE_TIMELINE_KEEP_S = 3600.0


@dataclass
class CameraState:
    """Everything the runner keeps per camera."""

    id: str
    source: Any  # pipeline.sources.CameraSource
    tracker: Any  # trackers.Tracker
    builder: TrackletBuilder
    roi: Any = None
    fps: float = 25.0  # the source's frames per second (cameras.N.fps, else probed, else FALLBACK_FPS)
    frames: int = 0  # frames processed
    next_index: int = 0  # source index of the next frame to process (a resumed run skips those before)
    done: bool = False
    last_outputs: list[TrackOutput] = field(default_factory=list)
    bar: Any = None  # tqdm bar (batch mode)
    stride: int = 1  # cameras.N.stride: every stride-th source frame is processed

    @property
    def processed_fps(self) -> float:
        """Processed frames per second of video (``fps / stride``): the rate the tracker and the detection
        schedule (``schedule.max_gap_s``) count in."""
        return self.fps / self.stride

    def close(self) -> None:
        try:
            self.source.stop()
        finally:
            if self.bar is not None:
                self.bar.close()


def _probe(src) -> tuple[float | None, int | None]:
    """(fps, frame count) of a source when known (files/folders are probed by open_source)."""
    for obj in (src, getattr(src, "_first_reader", None)):
        fps, count = getattr(obj, "fps", None), getattr(obj, "frame_count", None)
        if fps or count:
            return fps, count
    return None, None


def camera_fps(cam_id: str, configured: float | None, probed: float | None, index: int | None = None,
               live: bool = False) -> float:
    """A camera's source frames per second: ``cameras.N.fps``, else the probed rate (a live stream's: announced
    or measured once it delivers, :meth:`CameraSource.wait_fps`), else ``FALLBACK_FPS`` with a warning (once per
    camera: this runs when the camera is opened), since the tracker's motion model, ``schedule.max_gap_s`` and
    the annotated video count in it."""
    if configured:
        return float(configured)
    if probed:
        return float(probed)
    key = f"cameras.{index}.fps" if index is not None else "cameras.<n>.fps"
    if live:
        log.warning("camera %s: no frame rate after %g s (unreachable at start, or too few frames to measure); "
                    "assuming %g fps for the tracker, schedule.max_gap_s and the annotated video: set %s to the "
                    "real rate", cam_id, RATE_WAIT_S, FALLBACK_FPS, key)
    else:
        log.warning("camera %s: its frame rate is unknown (not in the source); assuming %g fps for the tracker and "
                    "schedule.max_gap_s: set %s to the real rate", cam_id, FALLBACK_FPS, key)
    return FALLBACK_FPS


def check_inputs(cfg: CamsConfig) -> None:
    """Probe every camera's input without starting it: a missing, empty or unreadable file or folder
    raises its one-line SourceError here, so a run can fail before its store is created or written
    (streams and webcams are only opened by their reader thread: nothing to probe)."""
    from pipeline.sources import SourceOptions, open_source

    for cam in cfg.cameras:
        open_source(SourceOptions(cam_id=cam.id, uri=cam.source, mode=cam.mode))
    if cfg.outputs.mqtt is not None:  # an unset outputs.mqtt.password_env fails here too (ConfigError)
        cfg.outputs.mqtt.resolved_password()


def build_encoder(cfg: CamsConfig):
    """The appearance encoder named by ``encoder.checkpoint`` (default | imagenet | path)."""
    from reid_models.encoder import AppearanceEncoder

    enc = cfg.encoder
    if enc.threads is not None:
        import torch

        torch.set_num_threads(enc.threads)
    # openvino: the precision and the threads (its own inference threads; torch's are set above for the rest);
    # onnx: onnxruntime's intra-op threads
    ov = ({"precision": enc.precision, "threads": enc.threads} if enc.backend == "openvino"
          else {"threads": enc.threads} if enc.backend == "onnx" else {})
    if enc.checkpoint == "imagenet":
        return AppearanceEncoder.imagenet_baseline(device=enc.device, backend=enc.backend,
                                                   batch_size=enc.batch_size, flip=enc.flip, **ov)
    path = None if enc.checkpoint == "default" else Path(enc.checkpoint)
    return AppearanceEncoder.from_checkpoint(path, device=enc.device, backend=enc.backend,
                                             batch_size=enc.batch_size, flip=enc.flip, **ov)


@dataclass
class Components:
    """The stateful parts shared by all cameras, plus the per-camera factory."""

    detector: Any
    encoder: Any
    aggregator: Any
    store: Any
    matcher: Any

    def open_cameras(self, cfg: CamsConfig, progress: bool = True, max_frames: int | None = None,
                     start_index: dict[str, int] | None = None) -> dict[str, CameraState]:
        """Start one source, tracker and tracklet builder per camera; ``start_index``: camera id -> first
        source frame to deliver (a resumed batch run; earlier frames are skipped without decoding)."""
        from pipeline.sources import BATCH_GIVE_UP_S, SourceOptions, open_source
        from trackers.tracker import Tracker

        tracker_cfg = cfg.tracker_config()
        tl = cfg.tracklets
        cams: dict[str, CameraState] = {}
        started: list[tuple[Any, Any, float | None, int | None]] = []  # (cam, source, probed fps, frame count)
        try:
            for cam in cfg.cameras:
                opts = SourceOptions(
                    cam_id=cam.id, uri=cam.source, mode=cam.mode, stride=cam.stride, fps=cam.fps,
                    start_time=cam.time_offset_s,
                    max_frames=None if max_frames is None else max_frames * cam.stride,
                    start_index=(start_index or {}).get(cam.id, 0),
                    give_up_after_s=cam.give_up_after_s if cam.give_up_after_s is not None or cfg.mode != "batch"
                    else BATCH_GIVE_UP_S,
                )
                src = open_source(opts)
                src_fps, src_count = _probe(src)
                src.start()
                started.append((cam, src, src_fps, src_count))
            # a live stream's rate is known only once it delivers (MJPEG announces 25 whatever it sends): every
            # camera started first, then one shared wait of at most RATE_WAIT_S for all of them
            deadline = time.monotonic() + RATE_WAIT_S
            for i, (cam, src, src_fps, src_count) in enumerate(started):
                probed = (src_fps if cam.fps or src_fps or not src.is_live
                          else src.wait_fps(max(0.0, deadline - time.monotonic())))
                fps = camera_fps(cam.id, cam.fps, probed, index=i, live=src.is_live)
                st = CameraState(
                    id=cam.id, source=src,
                    tracker=Tracker(tracker_cfg, cam_id=cam.id, frame_rate=fps / cam.stride),
                    builder=TrackletBuilder(cam.id, tl.min_length, tl.partial_every_s, tl.max_embeddings,
                                             tl.min_visibility),
                    roi=cam.roi, fps=fps, stride=cam.stride,
                )
                cams[cam.id] = st
                if progress and cfg.mode == "batch":
                    from tqdm import tqdm

                    total = None if src_count is None else -(-src_count // cam.stride)
                    if max_frames is not None:
                        total = max_frames if total is None else min(total, max_frames)
                    st.bar = tqdm(total=total, desc=cam.id, unit="fr", position=len(cams) - 1, leave=True)
            for st in cams.values():  # a live camera that gives up before its first frame: SourceError
                st.source.wait_until_reachable()
        except BaseException:
            for st in cams.values():
                st.close()
            for cam, src, _, _ in started:
                if cam.id not in cams:
                    src.stop()
            raise
        return cams


def build_components(cfg: CamsConfig, encoder=None, store=None) -> Components:
    """Detector, encoder, aggregator, identity store and matcher (gallery and, for the same encoder
    version, threshold calibration reloaded from the store)."""
    from pipeline.detectors import build_detector
    from pipeline.store import IdentityStore

    store = store or IdentityStore(Path(cfg.store.path))
    try:
        encoder = encoder or build_encoder(cfg)
        if getattr(encoder, "dim", None) and cfg.matching.index.kind == "faiss":  # now, not when the index trains
            from pipeline.matching.config import check_index_dims

            check_index_dims(cfg.matcher_config().index, int(encoder.dim))
        aggregator, matcher = build_identity_parts(cfg, store, encoder.version)
        detector = build_detector(cfg.detector)
    except BaseException:
        store.close()
        raise
    return Components(detector, encoder, aggregator, store, matcher)


def build_identity_parts(cfg: CamsConfig, store, encoder_version: str) -> tuple[Any, Any]:
    """(aggregator, matcher) over ``store``: the gallery and, for ``encoder_version``, the threshold
    calibration reloaded from it (also the Ray matcher actor's start and restart)."""
    from pipeline.matching.matcher import CrossCameraMatcher
    from pipeline.store.calibration import restore_calibration
    from pipeline.store.prototypes import PrototypeTable
    from pipeline.store.queries import gallery_model_version, left_out_identities
    from reid_models.aggregation import build_aggregator

    ckpt = Path(cfg.aggregation.checkpoint) if cfg.aggregation.checkpoint else None
    aggregator = build_aggregator(cfg.aggregation.method, checkpoint=ckpt)
    trained_on = getattr(aggregator, "encoder_version", "")
    if trained_on and encoder_version and trained_on != encoder_version:
        log.warning("aggregation.checkpoint %s was trained on embeddings of encoder %s, the pipeline's encoder is %s: "
                    "its tracklet descriptors will be off (train it again on this encoder)", ckpt, trained_on,
                    encoder_version)
    mcfg = cfg.matcher_config()
    # only identities whose prototypes are of the model that embeds this run's tracklets (docs/pipeline.md)
    version = gallery_model_version(store, encoder_version, adapting=cfg.adapt.enabled) if encoder_version else None
    note = left_out_identities(store, version) if version else None
    if note:
        log.warning(note)
    gallery = store.load_gallery(limit=mcfg.max_gallery, max_spans=mcfg.max_spans, model_version=version)
    # the store pages identities beyond max_gallery in and out once the ANN index is in force (docs/gallery.md)
    pager = PrototypeTable(store, mcfg.index.cache_size, model_version=version)
    if mcfg.index.warm_cache and mcfg.index.kind != "exact":
        t0 = time.perf_counter()
        warmed = pager.warm(mcfg.max_spans, skip=[g.global_id for g in gallery])
        if warmed:
            log.info("identity store: %d identities beyond the in-memory gallery pre-loaded into the pager's "
                      "cache in %.1f s (matching.index.warm_cache)", warmed, time.perf_counter() - t0)
    matcher = CrossCameraMatcher(mcfg, gallery, next_id=store.next_global_id(), pager=pager)
    restore_calibration(store, matcher.calibrator, encoder_version)  # a restart continues the calibration
    return aggregator, matcher


@dataclass
class Sinks:
    """Open output writers of one run."""

    out_dir: Path
    local_mot: dict[str, MOTWriter]
    global_mot: dict[str, MOTWriter]
    events: EventSink | None
    video: dict[str, AnnotatedVideoWriter]
    timeline: TimelineRecorder
    write_timeline: bool
    mqtt: Any = None  # pipeline.sinks.mqtt.MqttEventSink (outputs.mqtt), also fed by ``events``

    def close(self, t0: float = 0.0, timeline: bool = True) -> list[Path]:
        """Close the files (MQTT stays open for late events: :meth:`close_publishers`); ``timeline``: also
        draw the timeline PNGs now (else :meth:`write_timelines` later, once the identities are final)."""
        for w in list(self.local_mot.values()) + list(self.global_mot.values()) + list(self.video.values()):
            w.close()
        if self.events is not None:
            self.events.close()
        return self.write_timelines(t0=t0) if timeline else []

    def write_timelines(self, spans=None, t0: float = 0.0) -> list[Path]:
        """The timeline PNGs (``outputs.timeline_png``): of ``spans`` ((cam_id, track_id, global id, start s,
        end s) each: the store's tracklets under their final identities) when given, else of what the run's
        recorder kept (a live run's recorder keeps the last ``LIVE_TIMELINE_KEEP_S`` seconds)."""
        if not self.write_timeline:
            return []
        rec = self.timeline if spans is None else TimelineRecorder.from_spans(spans)
        return rec.write_all(self.out_dir, t0=t0)

    def close_publishers(self) -> dict | None:
        """Flush and close the MQTT sink (after the run's last events, re-clustering included); its stats."""
        return None if self.mqtt is None else asdict(self.mqtt.close())


def open_sinks(cfg: CamsConfig, out_dir: Path, fps: dict[str, float] | None = None, append: bool = False) -> Sinks:
    """Files under ``out_dir``: mot/<cam>.txt, mot_global/<cam>.txt, events.jsonl, video/<cam>.mp4.

    ``append``: a resumed run continues the text files (already cut back to its checkpoint) and writes its
    video into a new part file (``video/<cam>.partNNN.mp4``) beside the earlier ones."""
    o = cfg.outputs
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = [c.id for c in cfg.cameras]
    fps = {c.id: (fps or {}).get(c.id) or c.fps or 25.0 for c in cfg.cameras}
    events = EventSink(out_dir / "events.jsonl", append) if o.events_jsonl else None
    mqtt = None
    if o.mqtt is not None:  # the same emits fan out to MQTT; closed by Sinks.close_publishers
        from pipeline.sinks.fanout import EventFanout
        from pipeline.sinks.mqtt import MqttEventSink

        mqtt = MqttEventSink(o.mqtt)
        events = EventFanout([s for s in (events, mqtt) if s is not None], owned=[events] if events else [])
    return Sinks(
        out_dir=out_dir,
        local_mot={c: MOTWriter(out_dir / "mot" / f"{c}.txt", append) for c in ids} if o.mot_txt else {},
        global_mot={c: MOTWriter(out_dir / "mot_global" / f"{c}.txt", append) for c in ids} if o.mot_txt else {},
        events=events,
        video={c: AnnotatedVideoWriter(out_dir / "video" / f"{c}.mp4", fps[c], append) for c in ids} if o.video else {},
        timeline=TimelineRecorder(keep_s=None if cfg.mode == "batch" else LIVE_TIMELINE_KEEP_S),
        write_timeline=o.timeline_png,
        mqtt=mqtt,
    )
