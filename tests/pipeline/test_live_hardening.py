"""Live sources hardened after the s44 live probe (2026-12-08): real servers on 127.0.0.1 only.

* the frame rate of a live camera: the one its stream announces when the frames arrive at it, the measured one
  when they do not (MJPEG over HTTP: FFmpeg announces its default 25);
* a frozen MJPEG camera (connection open, no data) is a stall, as a frozen RTSP one;
* an open failure says why (401 / 404 / connection refused / no device), credentials never shown, and an
  authentication failure retries at ``reconnect_max_s`` at once;
* a reconnect that delivers another frame size is a warning;
* ``/dev/videoN`` absent at start is a webcam to retry, not a missing file; a missing file names its key;
* stopping: every camera is told first, then joined (the slowest, not the sum); none reconnects afterwards,
  and a stopped camera is ``finished``;
* the run's end-of-run warning counts delivered frames; the adaptation worker's lines carry the log format;
  a jittered reconnect delay never exceeds ``reconnect_max_s``.
"""

from __future__ import annotations

import base64
import http.server
import logging
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest

from pipeline.core.errors import ConfigError, SourceError
from pipeline.sources import SourceOptions, open_source
from pipeline.sources.backoff import Backoff
from pipeline.sources.readers import VideoCaptureReader

SECRET = "Hx7SecretPw"


def _jpeg(pets_dir: Path, width: int) -> bytes:
    image = cv2.imread(str(pets_dir / "img1" / "000001.jpg"))
    image = cv2.resize(image, (width, width * 3 // 4))
    return cv2.imencode(".jpg", image)[1].tobytes()


class Mjpeg:
    """An MJPEG-over-HTTP camera on 127.0.0.1 (multipart/x-mixed-replace), per path:
    ``/cam`` 8 fps forever; ``/freeze`` 4 frames, then the connection stays open without data;
    ``/resize`` the first connection sends 6 frames 320 px wide and hangs up, later ones 480 px wide;
    ``/auth`` the same as /cam behind basic auth ``user:SECRET``; anything else 404."""

    def __init__(self, pets_dir: Path) -> None:
        small, large = _jpeg(pets_dir, 320), _jpeg(pets_dir, 480)
        closing = self.closing = threading.Event()
        self.connections = 0
        outer = self
        token = "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/auth" and self.headers.get("Authorization") != token:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="cam"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path not in ("/cam", "/freeze", "/resize", "/auth"):
                    self.send_error(404)
                    return
                outer.connections += 1
                first = outer.connections == 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                try:
                    while not closing.is_set():
                        if path == "/freeze" and i >= 4:
                            closing.wait(60)
                            return
                        if path == "/resize" and first and i >= 6:
                            return
                        jpg = large if path == "/resize" and not first else small
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpg) + jpg + b"\r\n")
                        self.wfile.flush()
                        i += 1
                        closing.wait(1 / 8)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args) -> None:
                pass

        http.server.ThreadingHTTPServer.daemon_threads = True
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str, userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mjpeg(pets_dir: Path):
    srv = Mjpeg(pets_dir)
    yield srv
    srv.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fast(cam_id: str, uri: str, **kw) -> SourceOptions:
    base = dict(reconnect_initial_s=0.2, reconnect_max_s=1.0, stall_timeout_s=2.0, open_timeout_s=2.0)
    return SourceOptions(cam_id, uri, **{**base, **kw})


def until(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records]


# ------------------------------------------------------------------ finding 1: the frame rate of a live camera
@pytest.mark.rtsp
def test_live_frame_rate_is_announced_or_measured(mjpeg, rtsp_server, caplog) -> None:
    """MJPEG at 8 fps: FFmpeg announces 25, the source measures 8; RTSP announces its 7 fps: kept as is."""
    http_cam, rtsp_cam = open_source(fast("h", mjpeg.url("/cam"))), open_source(fast("r", rtsp_server.url("cam0")))
    with caplog.at_level(logging.INFO, logger="pipeline.sources"), http_cam, rtsp_cam:
        deadline = time.monotonic() + 12.0
        got_http = http_cam.wait_fps(deadline - time.monotonic())
        got_rtsp = rtsp_cam.wait_fps(deadline - time.monotonic())
        assert http_cam.fps == got_http
    assert got_http is not None and abs(got_http - 8.0) <= 1.0, got_http
    assert got_rtsp == 7.0
    assert any("measured; the stream announces 25 fps" in m for m in messages(caplog))


def test_wait_fps_of_an_unreachable_camera_is_none_and_bounded() -> None:
    src = open_source(fast("dead", f"rtsp://127.0.0.1:{closed_port()}/cam0"))
    with src:
        t0 = time.monotonic()
        assert src.wait_fps(1.0) is None
        assert time.monotonic() - t0 < 1.8
    assert open_source(fast("cfg", "rtsp://127.0.0.1:1/x", fps=12.5)).wait_fps(0.0) == 12.5  # configured: no wait


# ------------------------------------------------------------------ finding 2: a frozen MJPEG camera is a stall
def test_frozen_mjpeg_camera_is_a_stall(mjpeg, caplog) -> None:
    src = open_source(fast("frozen", mjpeg.url("/freeze"), stall_timeout_s=1.5))
    with caplog.at_level(logging.WARNING, logger="pipeline.sources"), src:
        assert until(lambda: src.health().stalls >= 1, 8.0), src.health()
        assert src.health().state == "stalled"
    assert any("frozen" in m and "stalled: no new frame for" in m for m in messages(caplog))


# ------------------------------------------------------------------ finding 3: why a camera does not open
@pytest.mark.rtsp
def test_open_failures_say_why_without_credentials(make_rtsp_server, mjpeg, caplog) -> None:
    srv = make_rtsp_server("--user", "alice", "--password", SECRET)
    cams = {
        "wrongpw": fast("wrongpw", srv.url("cam0", "alice:Wr0ngPw9@"), reconnect_max_s=4.0),
        "nopath": fast("nopath", srv.url("nothere", f"alice:{SECRET}@")),
        "dead": fast("dead", f"rtsp://alice:{SECRET}@127.0.0.1:{closed_port()}/cam0"),
        "http401": fast("http401", mjpeg.url("/auth", "user:Wr0ngPw9@"), reconnect_max_s=4.0),
        "http404": fast("http404", mjpeg.url("/missing", f"user:{SECRET}@")),
    }
    sources = [open_source(o) for o in cams.values()]
    with caplog.at_level(logging.INFO, logger="pipeline.sources"):
        for s in sources:
            s.start()
        try:
            assert until(lambda: all(s.health().reconnect_attempts >= 1 for s in sources), 10.0)
        finally:
            for s in sources:
                s.request_stop()
            for s in sources:
                s.stop()
    text = messages(caplog)

    def first(cam: str, needle: str) -> str:
        return next((m for m in text if m.startswith(f"camera {cam}") and needle in m), "")

    assert "cannot open: the camera refused the credentials (401 Unauthorized; check the user and password)" \
        in first("wrongpw", "cannot open")
    assert "404 Not Found; check the path" in first("nopath", "cannot open")
    assert "connection refused" in first("dead", "cannot open")
    assert "the camera refused the credentials (401" in first("http401", "cannot open")
    assert "404" in first("http404", "cannot open")
    # wrong credentials: the next attempt waits reconnect_max_s at once, not 0.2 s
    assert "reconnecting in 4.0 s (attempt 1); authentication failed" in first("wrongpw", "reconnecting in")
    assert "reconnecting in 4.0 s (attempt 1); authentication failed" in first("http401", "reconnecting in")
    assert "authentication failed" not in first("dead", "reconnecting in")
    assert not any(SECRET in m or "Wr0ngPw9" in m for m in text)


# ------------------------------------------------------------------ finding 4: another frame size after a reconnect
def test_reconnect_with_another_frame_size_is_a_warning(mjpeg, caplog) -> None:
    src = open_source(fast("resized", mjpeg.url("/resize")))
    sizes = set()
    with caplog.at_level(logging.WARNING, logger="pipeline.sources"), src:
        deadline = time.monotonic() + 10.0
        while len(sizes) < 2 and time.monotonic() < deadline:
            f = src.read(timeout=0.1)
            if f is not None:
                sizes.add(f.image.shape[1])
    assert sizes == {320, 480}
    assert any("camera resized" in m and "frame size changed from 320x240 to 480x360" in m for m in messages(caplog))


# ------------------------------------------------------------------ finding 5: /dev/videoN absent at start
def test_absent_webcam_device_is_retried_not_a_missing_file(tmp_path: Path, capfd) -> None:
    from pipeline.camconfig import load_cams_config
    from pipeline.demo import missing_sources, prepare_demo

    cfg_path = tmp_path / "cams.yaml"
    cfg_path.write_text("mode: live\ncameras:\n  - id: usb\n    source: /dev/video9\n  - id: idx\n    source: 7\n")
    cfg = load_cams_config(cfg_path)
    assert missing_sources(cfg) == [] and prepare_demo(cfg) is False
    # a webcam whose device is absent: one clear reason, and no OpenCV backend errors on stderr
    for target in ("/dev/video9", 7):
        with pytest.raises(SourceError, match=r"cannot open: no device /dev/video(9|7) \(not plugged in"):
            VideoCaptureReader(target, str(target)).open()
    assert "ERROR" not in capfd.readouterr().err
    # a file that really is missing names its key
    missing = cfg.model_copy(update={"cameras": [cfg.cameras[0], cfg.cameras[1].model_copy(
        update={"source": str(tmp_path / "nope.mp4")})]})
    with pytest.raises(ConfigError, match=r"^cameras\.1\.source: no such file or folder: .*nope\.mp4$"):
        prepare_demo(missing)


# ------------------------------------------------------------------ finding 6/7: stopping
def test_stop_tells_every_camera_first_and_none_reconnects(caplog) -> None:
    """Cameras whose open blocks (a port that accepts TCP and never answers): stopping all of them takes the
    slowest one's time, not the sum, and no camera opens a new connection after the stop."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    port = hole.getsockname()[1]
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(hole.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    sources = [open_source(fast(f"h{i}", f"rtsp://127.0.0.1:{port}/cam0", open_timeout_s=1.0)) for i in range(3)]
    try:
        with caplog.at_level(logging.INFO, logger="pipeline.sources"):
            for s in sources:
                s.start()
            assert until(lambda: len(accepted) >= 3, 5.0)
            t0 = time.monotonic()
            for s in sources:
                s.request_stop(join_within_s=1.5)
            for s in sources:
                s.stop()
            took = time.monotonic() - t0
            before = len(accepted)
            time.sleep(3.0)  # the watchdog would abandon a blocked open after 1 + 1 s and reconnect
        assert took < 2.5, took  # one join window, not three
        assert len(accepted) == before, "a camera connected again after the stop"
        assert all(s.health().state == "finished" for s in sources)
    finally:
        hole.close()
        for c in accepted:
            c.close()


def test_stopped_streaming_camera_is_finished(mjpeg) -> None:
    src = open_source(fast("live", mjpeg.url("/cam")))
    src.start()
    assert until(lambda: src.health().state == "streaming", 8.0)
    src.stop()
    assert src.health().state == "finished"


def test_went_down_warning_counts_delivered_frames() -> None:
    from pipeline.commands.run import summary_warnings

    summary = {"cameras": {"g0": {"state": "down", "frames": 130, "delivered": 62},
                           "ok": {"state": "finished", "frames": 50, "delivered": 50}}}
    assert summary_warnings(summary) == [
        "camera g0 went down during the run (62 frames delivered, 130 captured); its results stop there"]


# ------------------------------------------------------------------ finding 8: small things
def test_adaptation_worker_lines_carry_the_log_format() -> None:
    """The spawned worker configures its own logging: its lines look like the runner's, secrets redacted."""
    code = ("import logging; from pipeline.adaptation.live import _child_logging; _child_logging(logging.INFO); "
            "logging.getLogger('pipeline.adaptation.live').warning('adaptation round: hold-out AUC 0.9 -> 0.95 "
            "rtsp://u:pw@h/x'); logging.getLogger('x').debug('hidden')")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stderr
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING pipeline\.adaptation\.live: adaptation round: "
                    r"hold-out AUC 0\.9 -> 0\.95 rtsp://\*\*\*@h/x$", lines[0]), lines[0]


def test_jittered_backoff_never_exceeds_the_maximum() -> None:
    b = Backoff(0.5, 30.0, jitter=0.2, seed=1)
    delays = [b.next() for _ in range(200)]
    assert max(delays) <= 30.0
    capped = delays[10:]
    assert min(capped) >= 30.0 * 0.8 and len(set(capped)) > 100  # still spread below the cap
