"""Camera sources on real data: the PETS09-S2L1 video and frames, corrupt inputs, a closed port."""

from __future__ import annotations

import logging
import shutil
import socket
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.core.errors import ConfigError, SourceError
from pipeline.sources import SourceOptions, classify_uri, open_source, redact_text, redact_uri
from pipeline.sources.backoff import Backoff
from pipeline.sources.buffers import LatestFrameBuffer, LosslessBuffer
from pipeline.core.types import Frame


@pytest.fixture(scope="module")
def pets_video(shared: Path) -> Path:
    return shared / "data" / "videos" / "PETS09-S2L1.avi"


def closed_port() -> int:
    """A loopback TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drain(source, max_s: float = 60.0) -> list:
    """All frames of a finite source, read until it reports finished."""
    frames, deadline = [], time.monotonic() + max_s
    while not source.finished and time.monotonic() < deadline:
        f = source.read(timeout=0.5)
        if f is not None:
            frames.append(f)
    assert source.finished, "source did not finish in time"
    return frames


def wait_for(predicate, max_s: float) -> bool:
    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# ------------------------------------------------------------------ redaction, options, backoff
@pytest.mark.parametrize(
    "uri, expected",
    [
        ("rtsp://admin:hunter2@10.0.0.5:554/stream1", "rtsp://***@10.0.0.5:554/stream1"),
        ("rtsp://admin:p@ss/w0rd@10.0.0.5/s", "rtsp://***@10.0.0.5/s"),
        ("http://cam.local/video.mjpg?user=a&password=xyz&fps=5", "http://cam.local/video.mjpg?user=***&password=***&fps=5"),  # user names too, as in user-info
        ("https://u:v@h/live.m3u8?token=abc", "https://***@h/live.m3u8?token=***"),
        ("rtsp://10.0.0.5/stream", "rtsp://10.0.0.5/stream"),
        ("0", "0"),
        ("/data/cam 1/video.mp4", "/data/cam 1/video.mp4"),
    ],
)
def test_redact_uri(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected


def test_redact_text_inside_messages() -> None:
    msg = "open failed for rtsp://bob:topsecret@1.2.3.4/x and http://h/y?key=k123 (code 5)"
    out = redact_text(msg)
    assert "topsecret" not in out and "k123" not in out
    assert out == "open failed for rtsp://***@1.2.3.4/x and http://h/y?key=*** (code 5)"


def test_redact_filter_cleans_records_from_other_code() -> None:
    from pipeline.sources import RedactFilter

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(RedactFilter())
    logger = logging.getLogger("test.redact.other")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("retrying %s after %d s", "rtsp://root:toor@cam-7/live", 3)
    finally:
        logger.removeHandler(handler)
    assert records[0].getMessage() == "retrying rtsp://***@cam-7/live after 3 s"


def test_classify_uri(pets_dir: Path, pets_video: Path) -> None:
    assert classify_uri("rtsp://h/x") == ("stream", "rtsp://h/x")
    assert classify_uri("https://h/live.m3u8") == ("stream", "https://h/live.m3u8")
    assert classify_uri("0") == ("webcam", 0)
    assert classify_uri(str(pets_video)) == ("file", pets_video)
    assert classify_uri(f"file://{pets_dir / 'img1'}") == ("folder", pets_dir / "img1")


def test_bad_uris_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"unsupported source scheme 'ftp'") as e1:
        classify_uri("ftp://user:pw@host/x.mp4")
    assert "pw" not in str(e1.value)
    missing = tmp_path / "nope.mp4"
    with pytest.raises(SourceError) as e2:
        open_source(SourceOptions("c", str(missing)))
    assert str(missing) in str(e2.value) and "\n" not in str(e2.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="has no images"):
        open_source(SourceOptions("c", str(tmp_path / "empty")))


@pytest.mark.parametrize(
    "kwargs, key",
    [({"stride": 0}, "stride"), ({"mode": "fast"}, "mode"), ({"stall_timeout_s": 0}, "stall_timeout_s"),
     ({"reconnect_initial_s": 5.0, "reconnect_max_s": 1.0}, "reconnect_max_s"), ({"max_reconnects": -1}, "max_reconnects")],
)
def test_source_options_validation(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        SourceOptions("cam7", "rtsp://h/x", **kwargs)


def test_backoff_doubles_to_cap_then_resets() -> None:
    b = Backoff(0.5, 4.0, jitter=0.0)
    assert [b.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next() == 0.5
    j = Backoff(1.0, 8.0, jitter=0.25, seed=3)
    delays = [j.next() for _ in range(6)]
    for d, base in zip(delays, [1, 2, 4, 8, 8, 8]):
        assert base * 0.75 <= d <= base * 1.25
    assert len(set(delays[3:])) == 3  # jitter spreads the capped delays


# ------------------------------------------------------------------ buffers
def _frame(i: int) -> Frame:
    return Frame("c", i, float(i), np.zeros((2, 2, 3), np.uint8))


def test_latest_buffer_keeps_newest_and_counts_drops() -> None:
    drops: list[int] = []
    buf = LatestFrameBuffer(on_drop=lambda: drops.append(1))
    for i in range(5):
        buf.put(_frame(i))
    assert buf.get(0.1).index == 4
    assert len(drops) == 4
    assert buf.get(0.05) is None
    buf.put(_frame(5))
    buf.close()
    assert buf.get(0.1).index == 5 and buf.get(None) is None


def test_lossless_buffer_back_pressure() -> None:
    buf, stop = LosslessBuffer(2), threading.Event()
    done: list[int] = []

    def producer() -> None:
        for i in range(5):
            buf.put(_frame(i), stop)
            done.append(i)

    t = threading.Thread(target=producer)
    t.start()
    assert wait_for(lambda: len(done) == 2, 2.0)
    time.sleep(0.2)
    assert len(done) == 2  # third put waits for room
    got = [buf.get(1.0).index for _ in range(5)]
    t.join(2.0)
    assert got == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------ real files and folders
def test_lossless_file_source_delivers_every_frame_in_order(pets_video: Path, pets_dir: Path) -> None:
    src = open_source(SourceOptions("v", str(pets_video)))
    assert src.mode == "lossless"
    assert (src.fps, src.frame_count) == (10.0, 795)  # ffprobe: r_frame_rate 10/1, nb_frames 795
    with src:
        frames = drain(src)
    assert [f.index for f in frames] == list(range(795))
    assert frames[10].timestamp == pytest.approx(1.0)  # media time: the AVI header says 10 fps (ffprobe: 10/1)
    h = src.health()
    assert (h.state, h.frames, h.delivered, h.drops, h.errors) == ("finished", 795, 795, 0, 0)
    # content follows the order: video frame k is closest to JPEG k+1, not to a frame 15 later
    for k in (0, 400, 779):
        jpg = cv2.imread(str(pets_dir / "img1" / f"{k + 1:06d}.jpg")).astype(np.float32)
        later = cv2.imread(str(pets_dir / "img1" / f"{k + 16:06d}.jpg")).astype(np.float32)
        img = frames[k].image.astype(np.float32)
        assert np.abs(img - jpg).mean() < np.abs(img - later).mean()


def test_image_folder_first_n_with_stride(pets_dir: Path) -> None:
    folder = pets_dir / "img1"
    src = open_source(SourceOptions("p", str(folder), max_frames=40, stride=4))
    assert (src.fps, src.frame_count) == (7.0, 795)  # seqinfo.ini: frameRate=7, seqLength=795
    with src:
        frames = drain(src)
    assert [f.index for f in frames] == list(range(0, 40, 4))
    for f in frames[:3]:
        expected = cv2.imread(str(folder / f"{f.index + 1:06d}.jpg"))
        assert np.array_equal(f.image, expected)
        assert f.timestamp == pytest.approx(f.index / 7.0)  # frameRate=7 from seqinfo.ini
    assert src.health().frames == 10


def test_latest_frame_mode_drops_and_counts(pets_video: Path) -> None:
    src = open_source(SourceOptions("live", str(pets_video), mode="live"))
    with src:
        assert wait_for(lambda: src.health().state == "finished", 30.0)
        frame = src.read(1.0)
        assert src.read(0.1) is None and src.finished
    assert frame.index == 794  # only the newest frame survives
    h = src.health()
    assert (h.frames, h.delivered, h.drops) == (795, 1, 794)


def test_corrupt_video_file_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not really a video" * 3)
    with pytest.raises(SourceError) as err:
        open_source(SourceOptions("c", str(bad)))
    msg = str(err.value)
    assert "broken.mp4" in msg and "\n" not in msg


def test_corrupt_image_in_folder_is_counted_and_skipped(tmp_path: Path, pets_dir: Path, caplog) -> None:
    for i in (1, 2, 4):
        shutil.copy(pets_dir / "img1" / f"{i:06d}.jpg", tmp_path / f"{i:06d}.jpg")
    (tmp_path / "000003.jpg").write_bytes(b"garbage, not a jpeg")
    src = open_source(SourceOptions("c", str(tmp_path)))
    with caplog.at_level(logging.WARNING, logger="pipeline.sources"), src:
        frames = drain(src)
    assert [f.index for f in frames] == [0, 1, 3]
    assert src.health().errors == 1
    assert any("000003.jpg" in r.getMessage() for r in caplog.records)


def test_unreachable_camera_does_not_block_file_camera(pets_dir: Path, caplog) -> None:
    port = closed_port()
    uri = f"rtsp://operator:Pa55word@127.0.0.1:{port}/cam0"
    dead = open_source(
        SourceOptions("dead", uri, reconnect_initial_s=0.1, reconnect_max_s=0.4, max_reconnects=3, open_timeout_s=2.0),
        seed=0,
    )
    alive = open_source(SourceOptions("alive", str(pets_dir / "img1"), max_frames=60))
    got: dict[str, list[int]] = {"dead": [], "alive": []}
    with caplog.at_level(logging.INFO, logger="pipeline.sources"), dead, alive:
        deadline = time.monotonic() + 30.0
        while not (alive.finished and dead.finished) and time.monotonic() < deadline:
            for name, src in (("dead", dead), ("alive", alive)):
                f = src.read(timeout=0.02)
                if f is not None:
                    got[name].append(f.index)
    assert got["alive"] == list(range(60)) and got["dead"] == []
    h = dead.health()
    assert (h.state, h.reconnect_attempts, h.frames) == ("down", 3, 0)
    assert dead.finished
    messages = [r.getMessage() for r in caplog.records]
    assert any("rtsp://***@127.0.0.1" in m for m in messages)
    assert not any("Pa55word" in m or "operator" in m for m in messages)


# ------------------------------------------------------------------ HTTP MJPEG stream (real HTTP server on loopback)
class MjpegServer:
    """Serves PETS JPEGs as multipart/x-mixed-replace (an IP camera's MJPEG stream) at ~20 fps.

    Requires HTTP basic auth ``user:pw``; every connection sends ``per_connection`` frames
    and then hangs up, so a client must reconnect to keep watching."""

    def __init__(self, files: list[Path], per_connection: int) -> None:
        import base64
        import http.server

        outer = self
        self.auth_ok = 0
        token = "Basic " + base64.b64encode(b"user:pw").decode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("Authorization") != token:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="cam"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                outer.auth_ok += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for path in files[:per_connection]:
                        data = path.read_bytes()
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(data))
                        self.wfile.write(data + b"\r\n")
                        time.sleep(0.05)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "MjpegServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_http_mjpeg_stream_reconnects_after_hangup(pets_dir: Path, caplog) -> None:
    files = [pets_dir / "img1" / f"{i:06d}.jpg" for i in range(1, 13)]
    with MjpegServer(files, per_connection=12) as srv:
        uri = f"http://user:pw@127.0.0.1:{srv.port}/video.mjpg"
        src = open_source(SourceOptions("ipcam", uri, mode="lossless", reconnect_initial_s=0.1, reconnect_max_s=0.5))
        assert src.is_live and src.timestamp_mode == "wall"
        with caplog.at_level(logging.INFO, logger="pipeline.sources"), src:
            frames = []
            deadline = time.monotonic() + 30.0
            while len(frames) < 20 and time.monotonic() < deadline:
                f = src.read(timeout=0.2)
                if f is not None:
                    frames.append(f)
            h = src.health()
    assert len(frames) >= 20 and h.reconnect_attempts >= 1 and srv.auth_ok >= 2
    # the first connection's frames arrive complete and in order: frame i is JPEG i+1
    for f in frames[:12:5]:
        expected = cv2.imread(str(files[f.index])).astype(np.float32)
        assert np.abs(f.image.astype(np.float32) - expected).mean() < 2.0
    assert [f.index for f in frames] == list(range(len(frames)))
    assert all(b.timestamp >= a.timestamp for a, b in zip(frames, frames[1:]))
    assert not any("pw@" in r.getMessage() or "user:" in r.getMessage() for r in caplog.records)


def test_damaged_video_frames_are_counted_and_skipped(tmp_path: Path, pets_video: Path, caplog) -> None:
    data = bytearray(pets_video.read_bytes())
    rng = np.random.default_rng(0)
    for off in (len(data) // 3, len(data) // 2, 2 * len(data) // 3):  # three damaged stretches of 20 kB
        data[off : off + 20000] = rng.integers(0, 256, 20000, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))
    src = open_source(SourceOptions("d", str(damaged)))
    with caplog.at_level(logging.WARNING, logger="pipeline.sources"), src:
        frames = drain(src)
    h = src.health()
    assert h.state == "finished" and h.errors > 0
    assert len(frames) + h.errors == 795  # every frame the header promises: decoded or counted as corrupt
    idx = [f.index for f in frames]
    assert idx == sorted(set(idx))
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("corrupt frame " in m for m in msgs) == min(h.errors, 3)  # rate-limited: the first 3 ...
    assert [m for m in msgs if "corrupt frames skipped" in m] == [  # ... and one summary line
        f"camera d ({damaged}): {h.errors} corrupt frames skipped of 795 read"]


def test_silent_camera_open_times_out_without_blocking_others(pets_dir: Path) -> None:
    """A host that accepts TCP but never answers RTSP: each open gives up after open_timeout_s."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []

    def accept_forever() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept_forever, daemon=True).start()
    silent = open_source(SourceOptions("silent", f"rtsp://127.0.0.1:{listener.getsockname()[1]}/cam",
                                       open_timeout_s=1.0, reconnect_initial_s=0.1, reconnect_max_s=0.2), seed=0)
    replay = open_source(SourceOptions("replay", str(pets_dir / "img1"), realtime=True, max_frames=28))
    got: list[int] = []
    try:
        with silent, replay:
            t0 = time.monotonic()
            while not replay.finished and time.monotonic() - t0 < 20.0:
                f = replay.read(timeout=0.05)
                if f is not None:
                    got.append(f.index)
                assert silent.read(timeout=0.0) is None
            h = silent.health()
    finally:
        listener.close()
        for c in accepted:
            c.close()
    assert got == list(range(28))  # 4 s of 7 fps replay went on while the silent camera hung in open
    assert h.frames == 0 and h.reconnect_attempts >= 2 and h.state in ("connecting", "reconnecting")
    assert len(accepted) >= 2  # it really tried the server again and again


def test_http_hls_playlist(tmp_path: Path, pets_video: Path) -> None:
    """HLS over HTTP: 3 s of the PETS video cut into 1 s H.264 segments by the ffmpeg CLI."""
    import functools
    import http.server
    import subprocess

    hls = tmp_path / "hls"
    hls.mkdir()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(pets_video), "-t", "3", "-vf", "scale=384:288", "-c:v", "libx264",
         "-preset", "ultrafast", "-g", "10", "-f", "hls", "-hls_time", "1", "-hls_list_size", "0",
         str(hls / "index.m3u8")],
        check=True, timeout=60,
    )

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(hls)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{httpd.server_address[1]}/index.m3u8"
        src = open_source(SourceOptions("hls", uri, mode="lossless", max_reconnects=0))
        with src:
            frames = drain(src, max_s=30.0)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert [f.index for f in frames] == list(range(30))  # 3 s at the video's 10 fps
    assert frames[0].image.shape == (288, 384, 3)
    assert src.health().state == "down"  # a finite playlist ends; with max_reconnects=0 it gives up
