"""Camera health: fps window, log line, Prometheus exposition on an own registry."""

from __future__ import annotations

import logging
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest

from pipeline.health import CameraHealth, HealthMonitor, HealthStats, format_health
from pipeline.sources import SourceOptions, open_source


class Fixed:
    """A provider returning a fixed, hand-written snapshot."""

    def __init__(self, h: CameraHealth) -> None:
        self.h = h

    def health(self) -> CameraHealth:
        return self.h


CAM0 = CameraHealth("cam0", "streaming", fps=7.0, frames=120, drops=3, reconnect_attempts=2, last_frame_age_s=0.25,
                    delivered=117, errors=1, uri="rtsp://***@h/x", recoveries=1, stalls=1)
CAM1 = CameraHealth("cam1", "reconnecting", fps=0.0, frames=0, drops=0, reconnect_attempts=5, last_frame_age_s=None)


def test_stats_fps_window_and_age() -> None:
    s = HealthStats("c", fps_window_s=2.0)
    for i in range(9):  # frames every 0.25 s from t=10.0 to t=12.0
        s.on_frame(now=10.0 + 0.25 * i)
    h = s.snapshot(now=12.5)
    assert h.frames == 9
    # window [10.5, 12.5] keeps t=10.5..12.0: 7 frames over 1.5 s -> 4 fps
    assert h.fps == pytest.approx(4.0)
    assert h.last_frame_age_s == pytest.approx(0.5)
    assert s.snapshot(now=20.0).fps == 0.0  # nothing in the window any more
    assert HealthStats("d").snapshot().last_frame_age_s is None


def test_stats_attempts_recoveries_and_stalls() -> None:
    s = HealthStats("c")
    s.on_reconnect()  # could not connect at first
    s.on_frame(now=1.0)  # connected: frames flow after an attempt -> a recovery
    s.on_frame(now=1.1)
    s.on_stall()  # frozen: state stalled, then two failed reopen attempts
    assert s.state == "stalled"
    s.on_reconnect()
    s.on_reconnect()
    s.set_state("streaming")
    s.on_frame(now=9.0)  # frames again -> the second recovery
    s.on_frame(now=9.1)
    h = s.snapshot(now=9.2)
    assert (h.reconnect_attempts, h.recoveries, h.stalls, h.frames) == (3, 2, 1, 4)


def test_format_health_line() -> None:
    assert format_health(CAM0) == (
        "cam0 streaming fps=7.0 frames=120 delivered=117 drops=3 attempts=2 recoveries=1 stalls=1 errors=1 age=0.2s"
    )
    assert format_health(CAM1).endswith("age=never")


def test_exposition_text_on_own_registry() -> None:
    mon = HealthMonitor([Fixed(CAM0), Fixed(CAM1)], prefix="reid")
    text = mon.exposition()
    for line in [
        'reid_camera_frames_total{camera="cam0"} 120.0',
        'reid_camera_delivered_frames_total{camera="cam0"} 117.0',
        'reid_camera_dropped_frames_total{camera="cam0"} 3.0',
        'reid_camera_reconnect_attempts_total{camera="cam1"} 5.0',
        'reid_camera_recoveries_total{camera="cam0"} 1.0',
        'reid_camera_recoveries_total{camera="cam1"} 0.0',
        'reid_camera_stalls_total{camera="cam0"} 1.0',
        'reid_camera_frame_errors_total{camera="cam0"} 1.0',
        'reid_camera_fps{camera="cam0"} 7.0',
        'reid_camera_last_frame_age_seconds{camera="cam0"} 0.25',
        'reid_camera_last_frame_age_seconds{camera="cam1"} NaN',
        'reid_camera_state{camera="cam1",state="reconnecting"} 1.0',
        'reid_camera_state{camera="cam1",state="streaming"} 0.0',
        "# TYPE reid_camera_frames_total counter",
        "# TYPE reid_camera_fps gauge",
    ]:
        assert line in text.splitlines(), line
    # a second monitor is independent, and nothing leaked into the global registry
    other = HealthMonitor([Fixed(CAM1)])
    assert 'camera="cam0"' not in other.exposition()
    assert b"reid_camera" not in generate_latest(REGISTRY)


def test_log_once_one_line_per_camera(caplog) -> None:
    mon = HealthMonitor([Fixed(CAM0), Fixed(CAM1)], logger=logging.getLogger("test.health"))
    with caplog.at_level(logging.INFO, logger="test.health"):
        mon.log_once()
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert lines == [
        (logging.INFO, "health " + format_health(CAM0)),
        (logging.WARNING, "health " + format_health(CAM1)),
    ]


def test_metrics_server_serves_live_source(pets_dir: Path) -> None:
    src = open_source(SourceOptions("pets", str(pets_dir / "img1"), max_frames=12))
    mon = HealthMonitor([src])
    port = mon.start_metrics_server(0)
    try:
        with src:
            n = 0
            while not src.finished:
                n += src.read(1.0) is not None
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        mon.stop()
    assert n == 12
    assert 'reid_camera_frames_total{camera="pets"} 12.0' in body
    assert 'reid_camera_delivered_frames_total{camera="pets"} 12.0' in body
    assert 'reid_camera_state{camera="pets",state="finished"} 1.0' in body
