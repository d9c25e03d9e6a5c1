"""The schema of ``cams.yaml``: cameras, detector, tracker, encoder, matching, store, outputs, adapt.

Validated once by :func:`load_cams_config`; every problem becomes one
:class:`~pipeline.core.errors.ConfigError` line naming the file and key path, e.g.
``cams.yaml: cameras.1.stride: Input should be greater than or equal to 1``.
Relative paths in the file are resolved against the folder of the file itself.
Camera URIs may carry credentials: log them only through
:func:`pipeline.sources.redact_uri` (:meth:`CameraConfig.display_uri`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_serializer, field_validator, model_validator

from pipeline.adaptation.settings import AdaptSettings
from pipeline.core.configio import StrictModel, load_yaml, validate
from pipeline.detectors import DetectorConfig
from pipeline.core.errors import ConfigError, SourceError
from pipeline.matching.config import MatcherConfig, TopologyConfig
from pipeline.sinks.mqtt_settings import MqttSettings
from trackers.config import TrackerConfig, load_tracker_config
from trackers.presets import is_known_preset, is_preset_name, overriding, preset_names

# camera ids name files (mot/<id>.txt, video/<id>.mp4): no '.', '..', '-rf', hidden or path-like names
_CAMERA_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_REMOTE = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")


def is_remote_uri(uri: str) -> bool:
    return uri.lower().startswith(_REMOTE)


class CameraConfig(StrictModel):
    """One camera. ``source``: rtsp/http(s) URL, video file, image folder or webcam index.

    roi: optional region of interest in pixels, either ``[x1, y1, x2, y2]`` (tlbr)
    or a polygon ``[[x, y], ...]`` (>= 3 points); detections whose foot point
    (bottom-centre) lies outside are dropped. stride: process every stride-th frame.
    mode: auto (live for URLs, lossless for files), live (latest frame, drop stale)
    or lossless (every frame). fps: override the source's frame rate (files only).
    time_offset_s: added to this camera's timestamps to put it on the common clock
    (recorded files start at 0 s). give_up_after_s: a stream or webcam that delivers no
    frame for this long gives up (null: live mode retries forever, batch mode gives up
    after ``pipeline.sources.BATCH_GIVE_UP_S``); never reachable at start fails the run.
    """

    id: str
    source: str
    roi: list[float] | list[list[float]] | None = None
    stride: int = Field(1, ge=1)
    mode: Literal["auto", "live", "lossless"] = "auto"
    fps: float | None = Field(None, gt=0)
    time_offset_s: float = 0.0
    give_up_after_s: float | None = Field(None, gt=0)

    @field_validator("id")
    @classmethod
    def _check_id(cls, v: str) -> str:
        if not _CAMERA_ID_RE.fullmatch(v):
            raise ValueError(
                f"camera id {v!r}: 1-64 ASCII letters, digits, '_' or '-', starting with a letter or digit "
                "(it names output files)"
            )
        return v

    @field_validator("source", mode="before")
    @classmethod
    def _source_to_str(cls, v: Any) -> Any:
        """An int is a webcam index; surrounding whitespace is no part of a path or URL."""
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        return v.strip() if isinstance(v, str) else v

    @field_validator("roi")
    @classmethod
    def _check_roi(cls, v: Any) -> Any:
        if v is None or not v:
            return None
        if isinstance(v[0], list):
            if len(v) < 3 or any(len(p) != 2 for p in v):
                raise ValueError("a polygon roi needs >= 3 points [x, y]")
        elif len(v) != 4 or v[2] <= v[0] or v[3] <= v[1]:
            raise ValueError("a box roi is [x1, y1, x2, y2] with x2 > x1 and y2 > y1")
        return v

    def display_uri(self) -> str:
        """The source with credentials removed: safe for logs."""
        from pipeline.sources import redact_uri

        return redact_uri(self.source)


class EncoderSettings(StrictModel):
    """Appearance encoder. checkpoint: 'default' (shipped weights), 'imagenet'
    (raw ImageNet MobileNetV2 baseline) or a checkpoint path. every: embed the
    detections of every n-th processed frame per camera (1 = all; the tracker
    coasts on motion in between). threads: torch CPU threads of the process
    (None = torch's default, one per core); 1 avoids thread over-subscription
    when the detector and other processes share few cores. flip: test-time flip augmentation (each
    crop's feature = crop + its mirror; twice the embedding cost; +2.1 rank-1 on the Market split).
    backend: torch | onnx (onnxruntime) | openvino (the ONNX export on OpenVINO, CPU; ``threads`` are then
    OpenVINO's; the shipped configs' choice, docs/speed.md); precision: fp32, or bf16 with openvino (CPUs with
    native bf16, else fp32 with a warning)."""

    checkpoint: str = "default"
    # torch | onnx (onnxruntime) | openvino (OpenVINO on the CPU: the ONNX export, fp32 or bf16; docs/speed.md)
    backend: Literal["torch", "onnx", "openvino"] = "torch"
    # openvino: fp32, or bf16 (CPUs with native bf16; fp32 with a warning on others)
    precision: Literal["fp32", "bf16"] = "fp32"
    batch_size: int = Field(64, ge=1)
    device: str = "auto"
    every: int = Field(1, ge=1)
    threads: int | None = Field(None, ge=1)
    flip: bool = False
    # which detections of a detected frame are embedded (pipeline/runner/embed_policy.py, docs/speed.md):
    # "every" = all of every ``every``-th detected frame; "needed" = detections that match no track
    # (new or re-found people), that touch another detection (crowds), and each track's refresh every
    # ``refresh_every`` frames
    policy: Literal["every", "needed"] = "every"
    refresh_every: int = Field(8, ge=1)
    match_iou: float = Field(0.3, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _backend_options(self) -> "EncoderSettings":
        if self.precision != "fp32" and self.backend != "openvino":
            raise ValueError(f"encoder.precision: {self.precision} needs backend: openvino (backend is {self.backend})")
        if self.backend == "openvino" and self.device.strip().lower() not in ("auto", "cpu"):
            raise ValueError(f"encoder.device: {self.device} needs backend torch or onnx (openvino runs on the CPU "
                             "here); use device: cpu or auto")
        if self.policy == "needed" and self.every != 1:
            raise ValueError(f"encoder.every: {self.every} has no effect with policy: needed (it embeds new,"
                             " touching and refresh_every-due detections); remove it or use policy: every")
        return self


class ScheduleSettings(StrictModel):
    """Detection stride (pipeline/runner/detect_schedule.py, docs/speed.md): which processed frames of a
    camera are detected; the tracker carries the boxes of the others by Kalman prediction.

    ``detect_every``: 1 = every frame (default), k = every k-th frame, "adaptive": every ``max_every``-th
    frame while the scene is stable, every frame while a track is new, missed or uncertain (position
    std above ``uncertain_frac`` of its height), every ``busy_every``-th while tracks touch each other or
    the image border (``border_frac`` of the width/height), where people enter and leave."""

    detect_every: int | Literal["adaptive"] = 1
    max_every: int = Field(3, ge=2)
    busy_every: int = Field(2, ge=1)
    border_frac: float = Field(0.04, ge=0.0, le=0.5)
    uncertain_frac: float = Field(0.15, gt=0.0)
    # no stride longer than this many seconds of video at the camera's frame rate (None: no cap)
    max_gap_s: float | None = Field(None, gt=0.0)

    @field_validator("detect_every", mode="before")
    @classmethod
    def _check_every(cls, v: Any) -> Any:
        if v == "adaptive" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return v
        raise ValueError(f"a whole number >= 1 or 'adaptive', not {v!r}")

    @model_validator(mode="after")
    def _busy_le_max(self) -> ScheduleSettings:
        if self.busy_every > self.max_every:
            raise ValueError(f"busy_every ({self.busy_every}) must be <= max_every ({self.max_every})")
        return self


class AggregationSettings(StrictModel):
    """Tracklet descriptor: mean of per-frame embeddings or the LSTM aggregator."""

    method: Literal["mean", "lstm"] = "mean"
    checkpoint: str | None = None


class TrackletSettings(StrictModel):
    """See :class:`pipeline.tracklets.TrackletBuilder`."""

    min_length: int = Field(5, ge=1)
    partial_every_s: float | None = Field(10.0, ge=0.0)
    max_embeddings: int = Field(64, ge=2)
    min_visibility: float = Field(0.0, ge=0.0, le=1.0)  # leave out embeddings of boxes less visible (tracklets.py)


class StoreSettings(StrictModel):
    """``checkpoint_every_s``: batch mode commits its store writes together with a resume checkpoint
    this often (seconds of processing; 0 = after every frame); a killed batch run re-run with the same
    run key continues from the last one (see pipeline/runner/checkpoint.py).

    ``on_stop`` (batch mode; SIGINT / SIGTERM): ``resume`` (default) ends the iteration, commits a checkpoint
    holding the open tracks and leaves them out of the outputs, so the same command continues as if never
    stopped; ``finish`` closes the open tracks into the outputs and drops the checkpoint (a re-run starts
    over). Live runs always finish. Not part of the run key or the checkpoint's fingerprint."""

    path: str = "identities.sqlite"
    checkpoint_every_s: float = Field(10.0, ge=0.0)
    on_stop: Literal["resume", "finish"] = "resume"


class OutputSettings(StrictModel):
    """What to write under ``dir``: mot/<cam>.txt (local track ids, per frame),
    mot_global/<cam>.txt (global ids, per finished tracklet), events.jsonl,
    video/<cam>.mp4 (annotated), timeline_<cam>.png, stage_times.json; ``mqtt``: also publish every
    event to an MQTT broker (pipeline/sinks/mqtt.py, docs/mqtt.md), null = off."""

    dir: str = "outputs"
    mot_txt: bool = True
    events_jsonl: bool = True
    video: bool = False
    timeline_png: bool = True
    mqtt: MqttSettings | None = None


class ReclusterSettings(StrictModel):
    """Batch mode: at the end of a complete run, re-cluster all of its tracklets under the matcher's
    space-time constraints and rewrite their global ids (pipeline/matching/recluster.py).
    ``threshold``: average-linkage cosine distance (null: calibrated from the run's cannot-link pairs
    when ``matching.auto_threshold`` is on, else ``matching.threshold``)."""

    enabled: bool = False
    threshold: float | None = Field(None, ge=0.0, le=2.0)


class HealthSettings(StrictModel):
    log_every_s: float = Field(10.0, gt=0)
    metrics_port: int | None = Field(None, ge=0, le=65535)


UI_TOKEN_ENV = "REID_UI_TOKEN"  # the console token from the environment (run and serve), so no file holds it
UI_TOKEN_MIN_CHARS = 16  # off loopback: anyone on the network may guess


def ui_token(cli_token: str | None = None, ui: UiSettings | None = None,
             environ: Mapping[str, str] | None = None) -> tuple[str | None, str]:
    """The console token and where it came from (the key an error names), in the order both commands use:
    ``--token`` (serve only; ``cli_token``), then the environment variable ``REID_UI_TOKEN``, then ``ui.token``.
    An empty value counts as unset. ``(None, "ui.token")`` when there is none."""
    env = os.environ if environ is None else environ
    if cli_token:
        return cli_token, "--token"
    if env.get(UI_TOKEN_ENV):
        return env[UI_TOKEN_ENV], UI_TOKEN_ENV
    if ui is not None and ui.token:
        return ui.token, "ui.token"
    return None, "ui.token"


UI_ALLOWED_HOSTS_ENV = "REID_UI_ALLOWED_HOSTS"  # more Host names for the console, comma-separated (run and serve)


def ui_allowed_hosts(cli_hosts: list[str] | None = None, ui: UiSettings | None = None,
                     environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The extra Host names the console answers to without a token, in the order both commands use (as
    :func:`ui_token`): ``--allow-host`` (serve only), then ``REID_UI_ALLOWED_HOSTS`` (comma-separated), then
    ``ui.allowed_hosts``. ConfigError (one line, naming where the value came from) for a value that is not a
    host name or address."""
    from pipeline.web.security import check_host_name

    env = os.environ if environ is None else environ
    if cli_hosts:
        values, key = list(cli_hosts), "--allow-host"
    elif env.get(UI_ALLOWED_HOSTS_ENV, "").strip():
        values = [h for h in env[UI_ALLOWED_HOSTS_ENV].split(",") if h.strip()]
        key = UI_ALLOWED_HOSTS_ENV
    else:
        return tuple(ui.allowed_hosts) if ui is not None else ()
    try:
        return tuple(check_host_name(v) for v in values)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def check_ui_access(host: str, token: str | None, host_key: str = "ui.host", token_key: str = "ui.token") -> None:
    """Refuse (one-line ConfigError naming the key) a console that anyone on the network could use: a
    non-loopback ``host`` without a token (:func:`pipeline.web.security.check_bind`), or with a token shorter
    than 16 characters or holding spaces or control characters. The token is never in the message."""
    from pipeline.web.security import check_bind, is_loopback_host

    check_bind(host, token, host_key)
    if token is None or is_loopback_host(host):
        return
    if any(c.isspace() or not c.isprintable() for c in token):
        problem = "holds spaces or control characters"
    elif len(token) < UI_TOKEN_MIN_CHARS:
        problem = f"is {len(token)} character{'' if len(token) == 1 else 's'} long"
    else:
        return
    raise ConfigError(f"{token_key}: the console token {problem}; a console on {host} (not loopback) needs at"
                      f" least {UI_TOKEN_MIN_CHARS} printable characters without spaces (make one with: python -c"
                      " 'import secrets; print(secrets.token_urlsafe(24))')")


class UiSettings(StrictModel):
    """The operator console served while ``run`` works (docs/console.md). ``host``: bind address (loopback by
    default; any other address needs a token of at least 16 characters, else the run refuses to start);
    ``port``: 0 picks a free one; ``token``: required from clients (``Authorization: Bearer``, or ``?token=``
    once in a browser). The environment variable ``REID_UI_TOKEN``, when set, is used instead of ``token`` (as
    ``serve`` does), so the token need not be in the file. A config dump shows the token as ``**********``
    (the run's config in the store, the run key's hash), like ``outputs.mqtt.password``."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    token: str | None = Field(None, repr=False)
    #: more Host names answered without a token (e.g. a reverse proxy's), as ``serve --allow-host``; the
    #: environment variable REID_UI_ALLOWED_HOSTS, when set, is used instead
    allowed_hosts: list[str] = Field(default_factory=list)

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        from pipeline.web.security import check_host_name

        return [check_host_name(v) for v in value]

    @field_serializer("token", when_used="json")
    def _mask_token(self, value: str | None) -> str | None:
        return None if value is None else "**********"

    @model_validator(mode="after")
    def _bind_needs_token(self) -> UiSettings:
        if self.enabled:
            token, key = ui_token(None, self)
            try:
                check_ui_access(self.host, token, "host", "token" if key == "ui.token" else key)
            except ConfigError as exc:  # -> "cams.yaml: ui: host: ..." with the file and key path
                raise ValueError(str(exc)) from None
        return self

    def resolved_token(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The token the console requires: ``REID_UI_TOKEN`` when set, else ``token`` (:func:`ui_token`)."""
        return ui_token(None, self, environ)[0]


class ExecutorConfig(StrictModel):
    """Where the cameras run (docs/scaling.md). ``kind``: local (one process, the default) or ray (an actor
    per camera for source -> detector -> encoder -> tracker -> tracklets, one matcher + store actor; needs the
    ``ray`` package). ``address``: the Ray cluster: ``local`` (start a private one-node cluster), ``auto`` (the
    cluster this machine joined with ``ray start``), ``ray://host:port`` (Ray Client) or ``host:port`` (a GCS
    address). ``camera_num_cpus`` / ``camera_num_gpus`` / ``matcher_num_cpus``: Ray resources each actor
    requests (logical; a GPU only when the cluster has one). ``queue_frames``: frames a camera may be ahead
    of the matcher (batch: the camera waits; live: its source keeps only the newest frame, so a slow node
    drops frames instead of queueing them). ``chunk_frames``: frames per camera actor call; ``inflight``: calls
    in flight per camera actor (2: it starts the next chunk while the matcher takes the last one).
    ``snapshot_every``: a camera ships its tracker/tracklet state every this many frames (what a restarted
    camera continues from; the matcher's resume checkpoints happen at these frames too).
    ``max_restarts``: restarts of each actor after its process or node dies (-1: unlimited).
    ``size_threads``: a camera actor sizes the thread pools the config leaves open (``detector.threads``,
    ``encoder.threads`` null; OpenCV's) to ``camera_num_cpus`` instead of one thread per core of the machine
    (pipeline/distributed/threads.py); set values are kept."""

    kind: Literal["local", "ray"] = "local"
    address: str = "local"
    camera_num_cpus: float = Field(1.0, ge=0.0)
    camera_num_gpus: float = Field(0.0, ge=0.0)
    matcher_num_cpus: float = Field(1.0, ge=0.0)
    queue_frames: int = Field(16, ge=1)
    chunk_frames: int = Field(4, ge=1)
    inflight: int = Field(2, ge=1, le=64)
    snapshot_every: int = Field(25, ge=1)
    max_restarts: int = Field(4, ge=-1)
    size_threads: bool = True

    @field_validator("address")
    @classmethod
    def _check_address(cls, v: str) -> str:
        if v in ("local", "auto"):
            return v
        if not re.fullmatch(r"(ray://)?[A-Za-z0-9_.\-\[\]:]+:[0-9]{1,5}", v):
            raise ValueError(f"{v!r}: expected local, auto, ray://host:port or host:port")
        port = int(v.rsplit(":", 1)[1])
        if not 1 <= port <= 65535:
            raise ValueError(f"{v!r}: port {port} is not in 1..65535")
        return v

    @model_validator(mode="after")
    def _chunk_fits(self) -> ExecutorConfig:
        if self.chunk_frames > self.queue_frames:
            raise ValueError(f"chunk_frames ({self.chunk_frames}) must be <= queue_frames ({self.queue_frames})")
        return self


class DemoSettings(StrictModel):
    """Build missing virtual-camera files before running (see tools/make_virtual_cameras.py):
    ``sequence`` (MOTChallenge folder, relative to the shared data folder or absolute),
    ``out`` (folder for the camera videos/gt), extra ``options`` passed to the builder."""

    sequence: str = "data/MOT15/train/PETS09-S2L1"
    out: str
    options: dict[str, Any] = Field(default_factory=dict)


class CamsConfig(StrictModel):
    """The whole ``cams.yaml``."""

    mode: Literal["live", "batch"] = "batch"
    run_key: str | None = None
    cameras: list[CameraConfig] = Field(min_length=1)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    tracker: str | TrackerConfig = Field(default="yolo", validate_default=True)
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    aggregation: AggregationSettings = Field(default_factory=AggregationSettings)
    tracklets: TrackletSettings = Field(default_factory=TrackletSettings)
    topology: TopologyConfig | None = None
    matching: MatcherConfig = Field(default_factory=MatcherConfig)
    store: StoreSettings = Field(default_factory=StoreSettings)
    outputs: OutputSettings = Field(default_factory=OutputSettings)
    recluster: ReclusterSettings = Field(default_factory=ReclusterSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    adapt: AdaptSettings = Field(default_factory=AdaptSettings)
    ui: UiSettings = Field(default_factory=UiSettings)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    demo: DemoSettings | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> CamsConfig:
        seen: set[str] = set()
        folded: dict[str, str] = {}
        for cam in self.cameras:
            if cam.id in seen:
                raise ValueError(f"duplicate camera id {cam.id!r}")
            if cam.id.casefold() in folded:  # ids name files: mot/A.txt and mot/a.txt are one file on macOS/Windows
                raise ValueError(f"camera ids {folded[cam.id.casefold()]!r} and {cam.id!r} differ only by case;"
                                 " they name the same output files on case-insensitive file systems")
            seen.add(cam.id)
            folded[cam.id.casefold()] = cam.id
        known = seen
        for group in self.matching.overlapping_cameras:
            for cid in group:
                if cid not in known:
                    raise ValueError(f"matching.overlapping_cameras names unknown camera {cid!r}")
        for where, topo in (("topology", self.topology), ("matching.topology", self.matching.topology)):
            for i, link in enumerate(topo.links if topo is not None else ()):
                for cid in (link.a, link.b):
                    if cid not in known:
                        raise ValueError(f"{where}.links.{i} ({link.a} -> {link.b}) names unknown camera {cid!r}"
                                         f" (cameras: {', '.join(sorted(known))})")
        if self.executor.kind == "ray":
            refused = [k for k, on in (("outputs.video", self.outputs.video), ("ui.enabled", self.ui.enabled),
                                       ("adapt.enabled", self.adapt.enabled)) if on]
            if refused:
                raise ValueError(f"executor.kind: ray does not support {', '.join(refused)} yet (frames stay on the"
                                 " camera actors); turn it off or use executor.kind: local")
        if self.adapt.background and self.encoder.backend not in ("torch", "openvino"):
            raise ValueError("adapt.background needs encoder.backend: torch or openvino (new weights are hot-swapped)")
        if self.adapt.enabled and self.adapt.bn_stats == "camera" and self.encoder.backend != "torch":
            raise ValueError(f"adapt.bn_stats: camera needs encoder.backend: torch (the {self.encoder.backend} backend"
                             " runs one exported graph and cannot use per-camera BatchNorm statistics)")
        self.check_mode()
        return self

    def check_mode(self) -> None:
        """Settings that depend on ``mode`` (also called after ``run --mode`` overrides it): ValueError."""
        if self.adapt.background and self.mode == "batch":
            raise ValueError("adapt.background needs mode: live (a batch run keeps the store's write transaction"
                             " open between checkpoints, so the worker could never write); after a batch run use"
                             " `reid-pipeline adapt --store`")

    @field_validator("tracker", mode="before")
    @classmethod
    def _tracker_preset(cls, value: Any) -> Any:
        """A preset name (``yolo``, the default; ``default``, ``acf``, ...: :mod:`trackers.presets`) is read here, a
        mapping is written over its ``preset`` (default yolo; ``preset: none``: the neutral field defaults); a YAML
        path stays a string until :func:`load_cams_config` reads it against the file's folder."""
        if isinstance(value, str) and is_preset_name(value):
            if not is_known_preset(value):
                raise ValueError(f"unknown tracker preset {value!r} (presets: {', '.join(preset_names())}; "
                                 "or a YAML file path, or the settings as a mapping)")
            return load_tracker_config(value)
        if isinstance(value, dict):  # settings over a preset (``preset:``, default yolo; none: neutral defaults)
            try:  # validated here, so an error names its key (not the union's ``tracker.str`` branch)
                return TrackerConfig.model_validate(overriding(value))
            except ValidationError as exc:
                first = exc.errors()[0]
                raise ValueError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
        return value

    # ------------------------------------------------------------ derived
    def tracker_config(self) -> TrackerConfig:
        """The tracker settings. A ``tracker:`` file name is read once, by :func:`load_cams_config`;
        nothing reads a YAML file after start."""
        if isinstance(self.tracker, str):
            raise ConfigError(f"tracker: {self.tracker} was not loaded; read cams.yaml with load_cams_config")
        return self.tracker

    def matcher_config(self) -> MatcherConfig:
        """``matching`` with the top-level ``topology`` (when given) folded in."""
        if self.topology is None:
            return self.matching
        return self.matching.model_copy(update={"topology": self.topology})

    def with_ui_token(self, environ: Mapping[str, str] | None = None) -> CamsConfig:
        """A copy whose ``ui.token`` is the token the console requires: ``REID_UI_TOKEN`` when set, else
        ``ui.token`` (what ``run`` serves with; the validator checked the same token when the file loaded)."""
        token = self.ui.resolved_token(environ)
        if token == self.ui.token:
            return self
        return self.model_copy(update={"ui": self.ui.model_copy(update={"token": token})})

    def fingerprint(self) -> str:
        """A short hash of the validated config with camera credentials redacted (the run key is stored, and
        must not be a way to test password guesses): the default batch run key."""
        from pipeline.sources.redact import redact_data

        # the executor is where the work runs, not what it computes: a run keeps its key (and its resume
        # checkpoint) whichever executor runs it
        # store.on_stop says what a stop does, not what the run computes: a paused run resumes whichever it says
        # the console (ui) and health reporting watch a run and do not change it: turning the console on to watch
        # a paused run must not start it over
        dumped = self.model_dump(mode="json", exclude={"executor": True, "ui": True, "health": True,
                                                       "store": {"on_stop"}})
        blob = json.dumps(redact_data(dumped), sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:12]


def _load_tracker(path: Path, key: str) -> TrackerConfig:
    return validate(TrackerConfig, load_yaml(path), f"{path} (from {key})")


def _resolve(base: Path, value: str) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _detector_weights(weights: str, kind: str, base: Path, source: str) -> str:
    """``detector.weights`` made absolute like every other path of the file: against the file's folder.

    With ``kind: ultralytics`` a bare name (no folder, not ``.onnx``) that is not beside the file stays as written:
    Ultralytics resolves and downloads its model names (``yolov8n.pt``, ``yolo11n.pt``) and builds model YAMLs
    (``yolov8n.yaml``) by name. Anything else that names no file is a ConfigError naming the key, the config file
    and the resolved path."""
    p = Path(weights).expanduser()
    resolved = Path(_resolve(base, weights))
    if resolved.is_file():
        return str(resolved)
    if kind == "ultralytics" and not p.is_absolute() and len(p.parts) == 1 and p.suffix.lower() != ".onnx":
        return weights  # an Ultralytics model name
    raise ConfigError(f"{source}: detector.weights: no such file: {resolved} ({weights!r}, relative to the config"
                      " file's folder; a bare Ultralytics name such as yolov8n.pt is downloaded)")


def _camera_source(source_text: str, base: Path, where: str, check: bool) -> str:
    """A camera's source with a ``file://`` URL or relative path made an absolute path (against ``base``);
    URLs and webcam indices unchanged. ``check``: a path must exist. ConfigError naming ``where``; a URL's
    credentials are never in the message."""
    from pipeline.sources.options import uri_kind

    try:
        kind, target = uri_kind(source_text)
    except SourceError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if kind != "path":
        return source_text
    src = _resolve(base, str(target))
    if check and not Path(src).exists():
        raise ConfigError(f"{where}: no such file or folder: {src}")
    return src


def _resolved(cfg: CamsConfig, base: Path, source: str) -> CamsConfig:
    """A copy of ``cfg`` with relative paths made absolute (against ``base``, the config file's folder) and the
    tracker config file read; checks that local camera sources (unless a ``demo:`` builds them) and the detector
    weights exist. The validated input is not changed."""
    def sub(model, **changes):
        return model.model_copy(update={k: v for k, v in changes.items() if v is not None})

    det_weights = _detector_weights(cfg.detector.weights, cfg.detector.kind, base, source)
    cameras = []
    for i, cam in enumerate(cfg.cameras):
        src = _camera_source(cam.source, base, f"{source}: cameras.{i}.source", check=cfg.demo is None)
        cameras.append(cam.model_copy(update={"source": src}))
    tracker = cfg.tracker
    if isinstance(tracker, str):
        cand = Path(_resolve(base, tracker))
        if not cand.is_file():
            raise ConfigError(f"{source}: tracker: no such tracker config file: {tracker} (relative to the file's "
                              f"folder; or a preset: {', '.join(preset_names())})")
        tracker = _load_tracker(cand, "tracker")
    enc = cfg.encoder.checkpoint
    return cfg.model_copy(update={
        "cameras": cameras,
        "tracker": tracker,
        "store": sub(cfg.store, path=_resolve(base, cfg.store.path)),
        "outputs": sub(cfg.outputs, dir=_resolve(base, cfg.outputs.dir),
                       mqtt=cfg.outputs.mqtt and cfg.outputs.mqtt.with_paths(lambda v: _resolve(base, v))),
        "demo": None if cfg.demo is None else sub(cfg.demo, out=_resolve(base, cfg.demo.out)),
        "detector": sub(cfg.detector, weights=det_weights, calibration=cfg.detector.calibration and _resolve(
            base, cfg.detector.calibration), model_cache=cfg.detector.model_cache and _resolve(base, cfg.detector.model_cache)),
        "aggregation": sub(cfg.aggregation, checkpoint=cfg.aggregation.checkpoint and _resolve(
            base, cfg.aggregation.checkpoint)),
        "encoder": sub(cfg.encoder, checkpoint=None if enc in ("default", "imagenet") else _resolve(base, enc)),
    })


def load_cams_config(path: str | Path) -> CamsConfig:
    """Read, validate and resolve a cams.yaml into a frozen config (paths absolute, tracker file read);
    one-line ConfigError on any problem. Change a loaded config with ``model_copy(update=...)``."""
    path = Path(path)
    data = load_yaml(path)
    return _resolved(validate(CamsConfig, data, str(path)), path.resolve().parent, str(path))
