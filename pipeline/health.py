"""Per-camera health: counters kept by each source, a periodic log line, Prometheus metrics.

* :class:`CameraHealth` is an immutable snapshot (what ``CameraSource.health()`` returns).
* :class:`HealthStats` is the thread-safe mutable side a source's reader thread updates.
* :class:`HealthMonitor` polls any objects with a ``health()`` method, logs one line per
  camera (and per output added with :meth:`HealthMonitor.add_output`, the MQTT sink) every ``interval_s`` and exposes the same numbers to Prometheus through its
  *own* ``CollectorRegistry`` (no global registry side effects), optionally over HTTP
  with :meth:`HealthMonitor.start_metrics_server`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

CameraState = Literal["connecting", "streaming", "stalled", "reconnecting", "down", "finished"]
STATES: tuple[CameraState, ...] = ("connecting", "streaming", "stalled", "reconnecting", "down", "finished")
#: states logged at WARNING level by :meth:`HealthMonitor.log_once`
BAD_STATES: tuple[CameraState, ...] = ("stalled", "reconnecting", "down")


@dataclass(frozen=True)
class CameraHealth:
    """One camera's health at one moment.

    state: connecting (before the first frame), streaming, stalled (a live stream sent no
    new frame for ``stall_timeout_s``; it is being reopened, and stays ``stalled`` until
    frames flow again), reconnecting (it broke, ended or cannot be opened; being
    reopened), down (gave up: ``max_reconnects`` / ``give_up_after_s``), finished (a
    recording reached its end, or the source was stopped).
    fps: frames captured per second over the last ``window`` seconds (0 when none);
    frames: frames captured (after stride); delivered: frames handed to the consumer;
    drops: stale frames discarded in live mode; reconnect_attempts: reopen attempts
    scheduled (each failed open, end or stall of a live source counts one);
    recoveries: times frames flowed again after one or more attempts; stalls: times the
    stall watchdog fired; errors: corrupt or unreadable frames skipped;
    last_frame_age_s: seconds since the last captured frame (None before the first one).
    uri is already redacted.
    """

    cam_id: str
    state: CameraState
    fps: float
    frames: int
    drops: int
    reconnect_attempts: int
    last_frame_age_s: float | None
    delivered: int = 0
    errors: int = 0
    uri: str = ""
    recoveries: int = 0
    stalls: int = 0


class HealthProvider(Protocol):
    def health(self) -> CameraHealth: ...


@dataclass(frozen=True)
class OutputHealth:
    """One output's health at one moment (the MQTT sink): whether it is connected, its event counters
    (``published``, ``acked``, ``pending``, ``dropped``, ...) and the reason of its latest failure."""

    name: str
    connected: bool
    counters: dict[str, int]
    last_error: str | None = None


class OutputHealthProvider(Protocol):
    def health(self) -> OutputHealth: ...


def format_output_health(h: OutputHealth) -> str:
    """One log line: ``mqtt connected published=12 acked=12 pending=0 dropped=0`` (``last_error=...`` when
    disconnected)."""
    text = f"{h.name} {'connected' if h.connected else 'disconnected'} " + " ".join(
        f"{k}={v}" for k, v in h.counters.items())
    return text if h.connected or not h.last_error else f"{text} last_error={h.last_error}"


class HealthStats:
    """Thread-safe counters of one camera; the reader thread writes, anyone snapshots."""

    def __init__(self, cam_id: str, uri_redacted: str = "", fps_window_s: float = 5.0) -> None:
        self.cam_id = cam_id
        self.uri = uri_redacted
        self.fps_window_s = float(fps_window_s)
        self._lock = threading.Lock()
        self._state: CameraState = "connecting"
        self._times: deque[float] = deque()
        self._frames = self._delivered = self._drops = self._attempts = self._errors = 0
        self._recoveries = self._stalls = 0
        self._lost = False  # a reconnect attempt happened since the last captured frame
        self._last_frame: float | None = None

    def set_state(self, state: CameraState) -> None:
        with self._lock:
            self._state = state

    @property
    def state(self) -> CameraState:
        with self._lock:
            return self._state

    def on_frame(self, now: float | None = None) -> None:
        """A frame was captured (monotonic clock ``now``); the first one after reconnect
        attempts counts as a recovery."""
        t = time.monotonic() if now is None else now
        with self._lock:
            if self._lost:
                self._recoveries += 1
                self._lost = False
            self._frames += 1
            self._last_frame = t
            self._times.append(t)
            self._prune(t)

    def on_delivered(self) -> None:
        with self._lock:
            self._delivered += 1

    def on_drop(self) -> None:
        with self._lock:
            self._drops += 1

    def on_reconnect(self) -> None:
        """A reconnect attempt was scheduled."""
        with self._lock:
            self._attempts += 1
            self._lost = True

    def on_stall(self) -> None:
        """The stall watchdog fired (no new frame for ``stall_timeout_s``): state ``stalled``."""
        with self._lock:
            self._stalls += 1
            self._state = "stalled"

    def on_error(self) -> None:
        with self._lock:
            self._errors += 1

    @property
    def reconnect_attempts(self) -> int:
        with self._lock:
            return self._attempts

    @property
    def frames(self) -> int:
        with self._lock:
            return self._frames

    @property
    def errors(self) -> int:
        with self._lock:
            return self._errors

    def _prune(self, now: float) -> None:
        while self._times and now - self._times[0] > self.fps_window_s:
            self._times.popleft()

    def snapshot(self, now: float | None = None) -> CameraHealth:
        t = time.monotonic() if now is None else now
        with self._lock:
            self._prune(t)
            n = len(self._times)
            fps = 0.0
            if n >= 2 and self._times[-1] > self._times[0]:
                fps = (n - 1) / (self._times[-1] - self._times[0])
            age = None if self._last_frame is None else max(0.0, t - self._last_frame)
            return CameraHealth(
                cam_id=self.cam_id, state=self._state, fps=fps, frames=self._frames,
                drops=self._drops, reconnect_attempts=self._attempts, last_frame_age_s=age,
                delivered=self._delivered, errors=self._errors, uri=self.uri,
                recoveries=self._recoveries, stalls=self._stalls,
            )


def format_health(h: CameraHealth) -> str:
    """One log line: ``cam0 streaming fps=7.0 frames=120 delivered=118 drops=2 attempts=3
    recoveries=1 stalls=1 errors=0 age=0.1s`` (attempts: reconnect attempts)."""
    age = "never" if h.last_frame_age_s is None else f"{h.last_frame_age_s:.1f}s"
    return (
        f"{h.cam_id} {h.state} fps={h.fps:.1f} frames={h.frames} delivered={h.delivered} "
        f"drops={h.drops} attempts={h.reconnect_attempts} recoveries={h.recoveries} stalls={h.stalls} "
        f"errors={h.errors} age={age}"
    )


class _HealthCollector:
    """A prometheus_client collector that reads the providers' snapshots at scrape time."""

    def __init__(self, monitor: HealthMonitor, prefix: str) -> None:
        self._monitor = monitor
        self._prefix = prefix

    def collect(self) -> Iterator:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        p = self._prefix
        snaps = self._monitor.snapshot()
        counters = {
            "frames": ("Frames captured from the camera (after stride)", lambda h: h.frames),
            "delivered_frames": ("Frames handed to the pipeline", lambda h: h.delivered),
            "dropped_frames": ("Stale frames dropped in live (latest-frame) mode", lambda h: h.drops),
            "reconnect_attempts": ("Reconnect attempts (failed opens, ends and stalls of a live source)",
                                   lambda h: h.reconnect_attempts),
            "recoveries": ("Times frames flowed again after reconnect attempts", lambda h: h.recoveries),
            "stalls": ("Times the stream sent no new frame for stall_timeout_s", lambda h: h.stalls),
            "frame_errors": ("Corrupt or unreadable frames skipped", lambda h: h.errors),
        }
        for name, (doc, get) in counters.items():
            fam = CounterMetricFamily(f"{p}_camera_{name}", doc, labels=["camera"])
            for h in snaps:
                fam.add_metric([h.cam_id], float(get(h)))
            yield fam
        fps = GaugeMetricFamily(f"{p}_camera_fps", "Capture frames per second over the window", labels=["camera"])
        age = GaugeMetricFamily(
            f"{p}_camera_last_frame_age_seconds", "Seconds since the last frame (NaN before the first)",
            labels=["camera"],
        )
        state = GaugeMetricFamily(f"{p}_camera_state", "1 for the camera's current state", labels=["camera", "state"])
        for h in snaps:
            fps.add_metric([h.cam_id], h.fps)
            age.add_metric([h.cam_id], math.nan if h.last_frame_age_s is None else h.last_frame_age_s)
            for s in STATES:
                state.add_metric([h.cam_id, s], 1.0 if h.state == s else 0.0)
        yield from (fps, age, state)
        outputs = self._monitor.output_snapshot()
        if outputs:
            up = GaugeMetricFamily(f"{p}_output_connected", "1 while the output (e.g. mqtt) is connected",
                                   labels=["output"])
            events = CounterMetricFamily(f"{p}_output_events", "An output's event counters (published, acked,"
                                         " dropped, ...; pending is the count now)", labels=["output", "counter"])
            for o in outputs:
                up.add_metric([o.name], 1.0 if o.connected else 0.0)
                for k, v in o.counters.items():
                    events.add_metric([o.name, k], float(v))
            yield from (up, events)


class HealthMonitor:
    """Logs one line per camera every ``interval_s`` and serves Prometheus metrics.

    providers: objects with ``health() -> CameraHealth`` (CameraSource does). Each
    monitor owns a fresh ``CollectorRegistry`` (``self.registry``); nothing is
    registered globally, so several monitors (and tests) can coexist.
    """

    def __init__(
        self,
        providers: Iterable[HealthProvider] = (),
        interval_s: float = 10.0,
        logger: logging.Logger | None = None,
        prefix: str = "reid",
    ) -> None:
        from prometheus_client import CollectorRegistry

        self.interval_s = float(interval_s)
        self.log = logger or logging.getLogger("pipeline.health")
        self._providers: list[HealthProvider] = list(providers)
        self._outputs: list[OutputHealthProvider] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_HealthCollector(self, prefix))

    def add(self, provider: HealthProvider) -> None:
        with self._lock:
            self._providers.append(provider)

    def add_output(self, provider: OutputHealthProvider) -> None:
        """Report an output (the MQTT sink) beside the cameras: in the log lines and the metrics."""
        with self._lock:
            self._outputs.append(provider)

    def snapshot(self) -> list[CameraHealth]:
        with self._lock:
            providers = list(self._providers)
        return [p.health() for p in providers]

    def output_snapshot(self) -> list[OutputHealth]:
        with self._lock:
            outputs = list(self._outputs)
        return [o.health() for o in outputs]

    def log_once(self) -> list[CameraHealth]:
        """Log one INFO line per camera (WARNING for stalled/reconnecting/down) and per output (WARNING while
        disconnected); returns the cameras' snapshots."""
        snaps = self.snapshot()
        for h in snaps:
            level = logging.WARNING if h.state in BAD_STATES else logging.INFO
            self.log.log(level, "health %s", format_health(h))
        for o in self.output_snapshot():
            self.log.log(logging.INFO if o.connected else logging.WARNING, "health %s", format_output_health(o))
        return snaps

    def exposition(self) -> str:
        """The Prometheus text exposition of this monitor's registry."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode("utf-8")

    def start(self) -> None:
        """Start the periodic log thread (daemon)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="health-monitor", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.log_once()

    def start_metrics_server(self, port: int, addr: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``addr:port`` (port 0 picks a free one); returns the bound port."""
        from prometheus_client import start_http_server

        if self._server is not None:
            return int(self._server.server_port)
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        self._server = server
        return int(server.server_port)

    def stop(self) -> None:
        """Stop the log thread and the metrics server (if any)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HealthMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
