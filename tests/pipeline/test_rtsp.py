"""A real RTSP server (GStreamer, tools/rtsp_server.py) on loopback: outage, restart, stall, auth.

Needs Debian's python3-gi + gst-rtsp-server (installed by .ci/run); deselect with -m "not rtsp".
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import pytest

from pipeline.sources import CameraSource, SourceOptions, open_source

pytestmark = pytest.mark.rtsp  # the server fixtures live in tests/pipeline/conftest.py


def collect(sources: dict[str, CameraSource], seconds: float, until=None) -> dict[str, list[tuple[int, float]]]:
    """Poll every camera round-robin for ``seconds`` (or until ``until(got)``): (index, timestamp) per camera."""
    got: dict[str, list[tuple[int, float]]] = {k: [] for k in sources}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (until and until(got)):
        for name, src in sources.items():
            f = src.read(timeout=0.02)
            if f is not None:
                got[name].append((f.index, f.timestamp))
    return got


def rtsp_opts(url: str, **kw) -> SourceOptions:
    base = dict(reconnect_initial_s=0.25, reconnect_max_s=1.0, stall_timeout_s=3.0, open_timeout_s=3.0)
    return SourceOptions("rtsp", url, **{**base, **kw})


def test_outage_and_restart_keep_file_camera_going(rtsp_server, shared: Path) -> None:
    video = shared / "data" / "videos" / "PETS09-S2L1.avi"
    cams = {
        "rtsp": open_source(rtsp_opts(rtsp_server.url("cam0")), seed=1),
        # the recording replayed at its own frame rate, like a second live camera
        "file": open_source(SourceOptions("file", str(video), realtime=True)),
    }
    for s in cams.values():
        s.start()
    try:
        before = collect(cams, 20.0, until=lambda g: len(g["rtsp"]) >= 10)
        assert len(before["rtsp"]) >= 10, cams["rtsp"].health()
        assert cams["rtsp"].health().state == "streaming"
        assert (cams["rtsp"].fps, cams["rtsp"].frame_count) == (7.0, None)  # server sends 7 fps, live: no count

        rtsp_server.stop()
        t_stop = time.time()
        outage = collect(cams, 4.0)
        h = cams["rtsp"].health()
        assert h.reconnect_attempts >= 1 and h.state == "reconnecting", h
        assert len(outage["file"]) >= 10  # ~10 fps replay kept flowing while RTSP was down
        assert all(ts <= t_stop + 1.0 for _, ts in outage["rtsp"])  # nothing captured during the outage

        rtsp_server.start()
        t_restart = time.time()
        after = collect(cams, 25.0, until=lambda g: sum(ts > t_restart for _, ts in g["rtsp"]) >= 5)
        assert sum(ts > t_restart for _, ts in after["rtsp"]) >= 5, cams["rtsp"].health()
        assert cams["rtsp"].health().state == "streaming"
        assert len(after["file"]) >= 5
    finally:
        for s in cams.values():
            s.stop()
    file_idx = [i for part in (before, outage, after) for i, _ in part["file"]]
    assert file_idx == list(range(len(file_idx)))  # lossless: every frame, in order, through the outage
    rtsp_idx = [i for part in (before, outage, after) for i, _ in part["rtsp"]]
    assert rtsp_idx == sorted(rtsp_idx) and len(set(rtsp_idx)) == len(rtsp_idx)


def test_stall_watchdog_reconnects(rtsp_server) -> None:
    cams = {"rtsp": open_source(rtsp_opts(rtsp_server.url("cam1"), stall_timeout_s=2.0), seed=2)}
    with cams["rtsp"]:
        first = collect(cams, 20.0, until=lambda g: len(g["rtsp"]) >= 5)
        assert len(first["rtsp"]) >= 5
        rtsp_server.proc.send_signal(signal.SIGSTOP)  # connection stays open, no data: a stall
        t_stall = time.time()
        try:
            deadline = time.monotonic() + 15.0
            while cams["rtsp"].health().reconnect_attempts == 0 and time.monotonic() < deadline:
                collect(cams, 0.2)
            assert cams["rtsp"].health().reconnect_attempts >= 1
            assert cams["rtsp"].health().stalls == 1 and cams["rtsp"].health().state == "stalled"
        finally:
            rtsp_server.proc.send_signal(signal.SIGCONT)
        assert time.time() - t_stall >= 1.5  # not before the stall timeout had passed
        t_resume = time.time()
        again = collect(cams, 25.0, until=lambda g: sum(ts > t_resume for _, ts in g["rtsp"]) >= 5)
        assert sum(ts > t_resume for _, ts in again["rtsp"]) >= 5, cams["rtsp"].health()


def test_credentials_reach_server_but_never_logs(make_rtsp_server, caplog) -> None:
    srv = make_rtsp_server("--user", "alice", "--password", "Wonder1and")
    try:
        good = open_source(rtsp_opts(srv.url("cam0", "alice:Wonder1and@")))
        bad = open_source(rtsp_opts(srv.url("cam1", "alice:WrongPass@"), max_reconnects=1))
        cams = {"good": good, "bad": bad}
        with caplog.at_level(logging.INFO, logger="pipeline.sources"), good, bad:
            got = collect(cams, 20.0, until=lambda g: len(g["good"]) >= 5 and bad.finished)
    finally:
        srv.stop()
    assert len(got["good"]) >= 5 and got["bad"] == []
    assert bad.health().state == "down"
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"rtsp://***@127.0.0.1:{srv.port}/cam1" in m for m in messages)
    assert not any("Wonder1and" in m or "WrongPass" in m or "alice" in m for m in messages)
    assert "alice" not in good.health().uri


def test_watchdog_replaces_reader_that_ignores_timeouts(rtsp_server, caplog) -> None:
    """A backend whose read blocks far longer than stall_timeout_s (FFmpeg read timeout 60 s here):
    the watchdog abandons the blocked reader and reconnects long before that timeout."""
    from pipeline.sources.readers import VideoCaptureReader

    url = rtsp_server.url("cam0")
    src = CameraSource(
        rtsp_opts(url, stall_timeout_s=1.5), "stream",
        lambda: VideoCaptureReader(url, url, open_timeout_s=3.0, read_timeout_s=60.0), seed=3,
    )
    cams = {"rtsp": src}
    with caplog.at_level(logging.INFO, logger="pipeline.sources"), src:
        assert len(collect(cams, 20.0, until=lambda g: len(g["rtsp"]) >= 5)["rtsp"]) >= 5
        rtsp_server.proc.send_signal(signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 15.0  # << 60 s: only the watchdog can reconnect this early
            while src.health().reconnect_attempts == 0 and time.monotonic() < deadline:
                collect(cams, 0.2)
            assert src.health().reconnect_attempts >= 1 and src.health().stalls == 1
        finally:
            rtsp_server.proc.send_signal(signal.SIGCONT)
        t_resume = time.time()
        again = collect(cams, 25.0, until=lambda g: sum(ts > t_resume for _, ts in g["rtsp"]) >= 5)
    assert sum(ts > t_resume for _, ts in again["rtsp"]) >= 5, src.health()
    assert any("abandoning it" in r.getMessage() for r in caplog.records)
