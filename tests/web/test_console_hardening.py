"""The console against hostile or odd requests (the s43 web probe): decompression bombs, DNS rebinding (Host),
cross-site POSTs (Origin/Referer), oversize and endless uploads, ids beyond SQLite's 64 bits, SSE resume after a
reconnect, links to merged identities, HTML error pages for malformed ids, the '[::1]' host form, a taken port and
a deleted store. Served for real (uvicorn on a free loopback port) over the PETS demo store of conftest.py."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from pipeline.web.security import host_allowed, same_origin, split_host, trusted_hosts


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A real 16x16 JPEG whose SOF0 header is patched to declare width x height (631 bytes or so)."""
    ok, buf = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    data = bytearray(buf.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _png_declaring(width: int, height: int) -> bytes:
    """A grey PNG declaring width x height with a few real (zero) rows of data; tiny on disk."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    rows = zlib.compress(b"\0" * (width + 1) * 4)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def _client(srv, **kw) -> httpx.Client:
    return httpx.Client(base_url=srv.url, timeout=60, **kw)


# 1. decompression bombs ----------------------------------------------------------------------------------------

def test_a_bomb_is_refused_from_its_header_without_decoding(console, gt_probe, monkeypatch):
    decoded: list[int] = []
    real = cv2.imdecode

    def spy(buf, flags):
        decoded.append(len(buf))
        return real(buf, flags)

    monkeypatch.setattr(cv2, "imdecode", spy)  # the server runs in this process: every decode is seen
    c = _client(console)
    for name, blob, size in (("sof_30k.jpg", _jpeg_declaring(30000, 30000), "900 megapixels"),
                             ("sof_12k.jpg", _jpeg_declaring(12000, 12000), "12000x12000 pixels"),
                             ("bomb_20k.png", _png_declaring(20000, 20000), "400 megapixels"),
                             ("big_7k.png", _png_declaring(7000, 7000), "7000x7000 pixels")):
        assert len(blob) < 30_000
        t0 = time.monotonic()
        r = c.post("/api/search", files={"image": (name, blob, "application/octet-stream")})
        assert r.status_code == 413, (name, r.text)
        assert r.json()["detail"].startswith("the picture ") and size in r.json()["detail"]
        assert "the limit is 40 megapixels" in r.json()["detail"]
        assert time.monotonic() - t0 < 5, name
    assert decoded == []  # refused from the header: OpenCV never decoded (allocated) a single pixel
    ok, buf = cv2.imencode(".jpg", gt_probe(9, 240))  # a real picture is still decoded and searched
    r = c.post("/api/search", files={"image": ("p.jpg", buf.tobytes(), "image/jpeg")})
    assert r.status_code == 200 and len(decoded) == 1
    r = c.post("/search", files={"image": ("b.jpg", _jpeg_declaring(30000, 30000), "image/jpeg")})
    assert r.status_code == 413 and "900 megapixels" in r.text and 'id="search-form"' in r.text


# 2. Host header (DNS rebinding) --------------------------------------------------------------------------------

def test_host_check_units():
    assert split_host("[::1]:8080") == "::1" and split_host("LocalHost:80") == "localhost"
    assert split_host("127.0.0.1") == "127.0.0.1" and split_host("[::1") is None and split_host("a:b") is None
    assert split_host("evil.example@127.0.0.1") is None and split_host("") is None
    hosts = trusted_hosts("127.0.0.1", ["console.lan"])
    for ok in ("localhost:8080", "127.0.0.1:1", "[::1]:5", "127.0.0.2", "console.lan:443"):
        assert host_allowed(ok, hosts), ok
    for bad in ("attacker.example:8080", "localhost.attacker.example", None, "", "[fe80::1]:80", "10.0.0.1"):
        assert not host_allowed(bad, hosts), bad
    assert same_origin("http://127.0.0.1:8080", "127.0.0.1:8080")
    assert same_origin("http://localhost", "localhost:80") and same_origin("https://localhost:9/x?y", "localhost:9")
    for bad in ("null", "http://evil.example", "http://127.0.0.1:8081", "file:///x", "http://127.0.0.1:8080@evil"):
        assert not same_origin(bad, "127.0.0.1:8080"), bad


def test_loopback_console_answers_only_its_own_host_names(console):
    port = console.port
    c = _client(console)
    for host in (f"attacker.example:{port}", "attacker.example", "evil.example", "127.0.0.1.nip.io"):
        for path in ("/api/identities", "/identities", "/api/identities/1/thumbnail.jpg", "/static/console.js"):
            r = c.get(path, headers={"Host": host})
            assert r.status_code == 400 and "is not an address of this console" in r.text, (host, path)
    r = c.get("/identities/", headers={"Host": "evil.example"})  # the trailing-slash redirect reflects no Host
    assert r.status_code == 400 and "evil.example/" not in r.headers.get("location", "")
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "LOCALHOST"):
        assert c.get("/api/identities", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_and_tokens_widen_the_host_check(demo_store, encoder):
    from pipeline.camconfig import ui_allowed_hosts
    from pipeline.web.server import ConsoleServer

    allowed = ui_allowed_hosts(None, None, {"REID_UI_ALLOWED_HOSTS": "console.lan, proxy.internal"})
    srv = ConsoleServer(demo_store, lambda: encoder, port=0, allowed_hosts=allowed).start()
    try:
        c = _client(srv)
        assert c.get("/api/identities", headers={"Host": "console.lan:8443"}).status_code == 200
        assert c.get("/api/identities", headers={"Host": "proxy.internal"}).status_code == 200
        assert c.get("/api/identities", headers={"Host": "other.lan"}).status_code == 400
    finally:
        srv.stop()
    srv = ConsoleServer(demo_store, lambda: encoder, port=0, token="s3cret-token-for-tests").start()
    try:  # with a token a rebinding page has no credential, so any Host (a LAN name, an IP) is fine
        c = _client(srv)
        assert c.get("/api/identities", headers={"Host": "nvr.lan"}).status_code == 401
        r = c.get("/api/identities", headers={"Host": "nvr.lan", "Authorization": "Bearer s3cret-token-for-tests"})
        assert r.status_code == 200
        assert c.get("/api/identities").headers["www-authenticate"] == "Bearer"
    finally:
        srv.stop()


# 3. cross-site POSTs -------------------------------------------------------------------------------------------

def test_cross_site_posts_are_refused(console, gt_probe):
    c = _client(console)
    ok, buf = cv2.imencode(".jpg", gt_probe(9, 240))
    files = {"image": ("p.jpg", buf.tobytes(), "image/jpeg")}
    for path in ("/search", "/api/search"):
        for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                        {"Referer": "http://evil.example/page"}, {"Origin": f"http://127.0.0.1:{console.port + 1}"},
                        {"Origin": "http://evil.example", "Referer": console.url + "/search"}):
            r = c.post(path, files=files, headers=headers)
            assert r.status_code == 403 and "cross-site request refused" in r.text, (path, headers)
        for headers in ({"Origin": console.url}, {"Referer": console.url + "/search"}, {}):  # own page, or a script
            r = c.post(path, files=files, headers=headers)
            assert r.status_code == 200, (path, headers, r.text[:300])
    r = c.get("/api/identities", headers={"Origin": "http://evil.example"})  # GET stays as it is
    assert r.status_code == 200
    assert c.get("/search").headers["referrer-policy"] == "same-origin"  # so the page's own POST carries Origin


# 4. oversize uploads -------------------------------------------------------------------------------------------

def _read_response(sock: socket.socket, got: bytes = b"", timeout: float = 10) -> bytes:
    """Read one HTTP response with a Content-Length body (or until the server closes; socket.timeout after
    ``timeout`` s without data)."""
    sock.settimeout(timeout)
    while True:
        head, sep, body = got.partition(b"\r\n\r\n")
        if sep:
            length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")]
            if length and len(body) >= length[0]:
                return got
        more = sock.recv(65536)
        if not more:
            return got
        got += more


def _raw_request(srv, head: bytes, body_parts=(), timeout: float = 10) -> tuple[bytes, int]:
    """Send a raw HTTP request (head, then body parts until the server answers); (response bytes, body sent)."""
    host, port = srv.url[len("http://"):].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sent = 0
    try:
        sock.sendall(head)
        for part in body_parts:
            sock.setblocking(False)
            try:
                got = sock.recv(65536)
                if got:
                    return _read_response(sock, got), sent
            except BlockingIOError:
                pass
            sock.settimeout(timeout)
            try:
                sock.sendall(part)
            except OSError:
                break
            sent += len(part)
        return _read_response(sock), sent
    finally:
        sock.close()


def test_oversize_uploads_are_refused_before_reading_the_body(console):
    # a declared 400 MB body: 413 at once, naming the real size and limit, although no body byte is ever sent
    t0 = time.monotonic()
    head = (b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 400000000\r\n\r\n")
    answer, _ = _raw_request(console, head)
    assert answer.startswith(b"HTTP/1.1 413") and time.monotonic() - t0 < 5
    detail = json.loads(answer.split(b"\r\n\r\n", 1)[1])["detail"]
    assert detail == "the upload is 381.5 MiB; the limit is 8 MiB per picture"
    # chunked (no Content-Length): refused once 8 MiB + the form's margin have streamed in, not after 200 MB
    head = (b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    first = b'--x\r\nContent-Disposition: form-data; name="image"; filename="z.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    mb = b"\0" * 2**20
    parts = [b"%x\r\n%s\r\n" % (len(first), first)] + [b"%x\r\n%s\r\n" % (len(mb), mb)] * 200
    answer, sent = _raw_request(console, head, parts)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"the upload is larger than the limit of 8 MiB per picture" in answer
    assert sent < 100 * 2**20  # the server answered long before the 200 MiB were sent
    r = _client(console).post("/search", files={"image": ("x.jpg", os.urandom(9 * 2**20), "image/jpeg")})
    assert r.status_code == 413 and "the upload is 9 MiB; the limit is 8 MiB per picture" in r.text


# 5. ids beyond int64 -------------------------------------------------------------------------------------------

def _serve(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    line = proc.stdout.readline()
    if "console on" not in line:
        proc.kill()
        pytest.fail(f"serve did not start: {line} {proc.stderr.read()}")
    return proc, line.split(" on ")[1].split()[0]


def test_ids_beyond_64_bits_are_422_without_a_traceback(demo_store):
    proc, url = _serve("--store", str(demo_store))
    try:
        c = httpx.Client(base_url=url, timeout=30)
        big = "99999999999999999999"
        for path in (f"/api/identities/{2**63}", f"/api/identities/{big}/thumbnail.jpg",
                     f"/api/identities/{big}/timeline.svg", f"/api/tracklets/{big}/thumbnail.jpg",
                     f"/api/events?after={big}", f"/api/events/stream?after={big}",
                     f"/api/cameras/left/frame.jpg?after={big}"):
            r = c.get(path)
            assert r.status_code == 422 and r.json()["detail"][0]["type"] == "less_than_equal", path
        r = c.get(f"/identities/{big}")
        assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
        assert f"global_id: input should be less than or equal to {2**63 - 1}" in r.text
        assert c.get(f"/api/identities/{2**63 - 1}").status_code == 404
        assert c.get(f"/api/identities/{-2**63}").status_code == 404
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert "Traceback" not in err and "OverflowError" not in err and "Exception in ASGI" not in err, err[-2000:]


def test_an_internal_error_is_logged_once(demo_store, tmp_path):
    path = tmp_path / "copy.sqlite"
    shutil.copy(demo_store, path)
    proc, url = _serve("--store", str(path))
    try:
        import sqlite3

        with sqlite3.connect(path) as db:  # a real internal failure: the table the gallery reads is gone
            db.execute("DROP TABLE assignments")
        r = httpx.get(url + "/api/identities", timeout=30)
        assert r.status_code == 500 and r.json() == {"detail": "internal error (the details are in the server's log)"}
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert err.count("Traceback") == 1 and "Exception in ASGI application" not in err, err[-3000:]


# 6. SSE resume -------------------------------------------------------------------------------------------------

def test_event_stream_resumes_after_last_event_id(console):
    c = _client(console)
    last = c.get("/api/events", params={"limit": 6}).json()
    ids = [e["event_id"] for e in last]

    def first_ids(headers: dict, n: int) -> list[int]:
        got = []
        with c.stream("GET", "/api/events/stream", params={"after": ids[0]}, headers=headers) as r:
            for line in r.iter_lines():
                if line.startswith("id: "):
                    got.append(int(line[4:]))
                if len(got) == n:
                    return got
        return got

    assert first_ids({}, 2) == ids[1:3]  # no header: the query's position
    assert first_ids({"Last-Event-ID": str(ids[3])}, 2) == ids[4:6]  # a reconnect resumes after what it got
    assert first_ids({"Last-Event-ID": "garbage"}, 1) == ids[1:2]
    js = (Path(__file__).resolve().parents[2] / "pipeline/web/static/console.js").read_text()
    assert "shown.has(key)" in js  # the page also drops an id it already shows
    assert 'data-event-id="' in c.get("/events").text


# 7. merged identities ------------------------------------------------------------------------------------------

def test_api_links_to_a_merged_identity_follow_its_alias(merged_store, encoder):
    from pipeline.web.server import ConsoleServer

    path, into, absorbed, _ = merged_store
    srv = ConsoleServer(path, lambda: encoder, port=0).start()
    try:
        c = _client(srv)
        for suffix in ("", "/thumbnail.jpg", "/timeline.svg"):
            r = c.get(f"/api/identities/{absorbed}{suffix}", params={"v": "1"})
            assert r.status_code == 307 and r.headers["location"] == f"/api/identities/{into}{suffix}?v=1", suffix
            follow = c.get(f"/api/identities/{absorbed}{suffix}", follow_redirects=True)
            assert follow.status_code == 200 and follow.content == c.get(f"/api/identities/{into}{suffix}").content
        assert c.get(f"/api/identities/{absorbed}", follow_redirects=True).json()["absorbed_ids"] == [absorbed]
        assert c.get("/api/identities/999999").status_code == 404
        assert c.get("/api/identities/999999/thumbnail.jpg").status_code == 404
    finally:
        srv.stop()


# 8. HTML error pages for malformed input -----------------------------------------------------------------------

def test_html_routes_answer_malformed_ids_with_the_error_page(console):
    c = _client(console)
    for bad in ("abc", "1e3", "1.5"):
        r = c.get(f"/identities/{bad}")
        assert r.status_code == 422 and r.headers["content-type"].startswith("text/html"), bad
        assert f"global_id: must be a whole number (got &#39;{bad}&#39;)" in r.text and '"type"' not in r.text
        assert "<nav>" in r.text
        assert c.get(f"/api/identities/{bad}").json()["detail"][0]["loc"] == ["path", "global_id"]  # JSON stays
    r = c.post("/search", data={"box": "1,2,3,4"})
    assert r.status_code == 422 and "image: is missing" in r.text and 'id="search-form"' in r.text


# 9. smaller ones -----------------------------------------------------------------------------------------------

def test_bracketed_ipv6_loopback_host_is_served(demo_store, encoder):
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    from pipeline.web.server import ConsoleServer

    srv = ConsoleServer(demo_store, lambda: encoder, host="[::1]", port=0).start()
    try:
        assert srv.url.startswith("http://[::1]:")
        assert httpx.get(srv.url + "/api/health", timeout=30).json()["status"] == "ok"
    finally:
        srv.stop()


def test_a_taken_port_fails_before_the_store_is_opened(tmp_path):
    bad_store = tmp_path / "not_a_store.sqlite"
    bad_store.write_text("not sqlite at all\n", encoding="utf-8")  # opening it would fail with another message
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        port = holder.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "pipeline", "serve", "--store", str(bad_store), "--port",
                              str(port)], capture_output=True, text=True, timeout=60)
    finally:
        holder.close()
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert f"console: cannot listen on 127.0.0.1:{port}: Address already in use" in res.stderr
    res = subprocess.run([sys.executable, "-m", "pipeline", "serve", "--store", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "is a folder" in res.stderr


def test_health_reports_a_deleted_store(demo_store, encoder, tmp_path):
    from pipeline.web.server import ConsoleServer

    path = tmp_path / "gone.sqlite"
    shutil.copy(demo_store, path)
    srv = ConsoleServer(path, lambda: encoder, port=0).start()
    try:
        c = _client(srv)
        assert c.get("/api/health").json()["status"] == "ok"
        path.unlink()
        r = c.get("/api/health")
        assert r.status_code == 503 and r.json()["status"] == "error" and "is gone" in r.json()["detail"]
        shutil.copy(demo_store, path)  # another file at the same path: not the one the console reads
        r = c.get("/api/health")
        assert r.status_code == 503 and "replaced" in r.json()["detail"]
    finally:
        srv.stop()
