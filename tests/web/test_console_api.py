"""The console served for real (uvicorn on a free loopback port) over the PETS demo store: pages, JSON API,
uploads, error pages, SSE, tokens, redaction, and the CLI's refusal of an unauthenticated open bind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from pipeline.testing.gt_store import SPLIT_X, gt_rows


def _expected_tracklets(pets_dir: Path, pid: int) -> list[tuple[str, int, int]]:
    """(camera, first frame, last frame) of pid's gt runs of >= 8 frames per camera, frames 1..200, by start."""
    rows = [r for r in gt_rows(pets_dir, 1, 200) if int(r[1]) == pid]
    out = []
    for cam in ("left", "right"):
        frames = sorted(int(r[0]) for r in rows if (r[2] + r[4] / 2 < SPLIT_X) == (cam == "left"))
        runs, cur = [], []
        for f in frames:
            if cur and f != cur[-1] + 1:
                runs.append(cur)
                cur = []
            cur.append(f)
        runs += [cur] if cur else []
        out += [(cam, r[0], r[-1]) for r in runs if len(r) >= 8]
    return sorted(out, key=lambda t: (t[1], t[0]))


def test_pages_and_api_read_the_store(console, pets_dir):
    c = httpx.Client(base_url=console.url, follow_redirects=True, timeout=30)
    for path in ("/", "/cameras", "/identities", "/search", "/events", "/api-docs"):
        r = c.get(path)
        assert r.status_code == 200 and "<nav>" in r.text, path
    gallery = c.get("/api/identities").json()
    gids = {g["global_id"] for g in gallery}
    assert gids == {int(p) for p in gt_rows(pets_dir, 1, 200)[:, 1] if _expected_tracklets(pets_dir, int(p))}
    # paging: limit / offset slice the same order; bad values are a 422 naming the parameter, not ignored
    assert c.get("/api/identities", params={"limit": 3, "offset": 2}).json() == gallery[2:5]
    assert c.get("/api/identities", params={"offset": len(gallery)}).json() == []
    for bad in ({"limit": "abc"}, {"limit": -5}, {"limit": 0}, {"offset": -1}, {"limit": 10**9}):
        r = c.get("/api/identities", params=bad)
        assert r.status_code == 422 and next(iter(bad)) in r.text, bad
    gid = max(gids, key=lambda g: len(_expected_tracklets(pets_dir, g)))
    want = _expected_tracklets(pets_dir, gid)
    d = c.get(f"/api/identities/{gid}").json()
    assert [(t["cam_id"], *t["frames"]) for t in d["tracklets"]] == want
    hops = [(a[0], b[0]) for a, b in zip(want, want[1:]) if a[0] != b[0]]
    assert [(h["from_cam"], h["to_cam"]) for h in d["route"]] == hops
    assert all(0 <= t["distance"] <= 1 and t["thumbnails"] == 8 for t in d["tracklets"])
    page = c.get(f"/identities/{gid}").text
    assert f"Identity {gid}" in page and "<svg" in page and page.count('class="tl-bar"') == len(want)
    for url in (f"/api/identities/{gid}/thumbnail.jpg", f"/api/tracklets/{d['tracklets'][0]['tracklet_id']}/thumbnail.jpg"):
        r = c.get(url)
        assert r.headers["content-type"] == "image/jpeg" and cv2.imdecode(np.frombuffer(r.content, np.uint8), 1) is not None
    assert c.get(f"/api/identities/{gid}/timeline.svg").text.startswith("<svg")
    cams = c.get("/api/cameras").json()
    assert [x["cam_id"] for x in cams] == ["left", "right"] and not any(x["live"] for x in cams)
    spec = c.get("/openapi.json").json()
    assert "/api/identities/{global_id}/thumbnail.jpg" in spec["paths"] and "/api/search" in spec["paths"]


def test_errors_have_no_traceback(console):
    c = httpx.Client(base_url=console.url, timeout=30)
    r = c.get("/identities/999")
    assert r.status_code == 404 and "no identity 999" in r.text and "Traceback" not in r.text
    assert c.get("/api/identities/999").json() == {"detail": "no identity 999 in this store"}
    assert c.get("/api/cameras/left/frame.jpg").status_code == 404  # serve without a run has no frames
    console._console.store.close()  # a real internal failure: every query now raises sqlite3.ProgrammingError
    r = c.get("/identities")
    assert r.status_code == 500 and "internal error" in r.text
    assert "Traceback" not in r.text and "sqlite" not in r.text.lower()


def test_photo_search_and_upload_checks(console, gt_probe):
    c = httpx.Client(base_url=console.url, timeout=120)
    # in the store (frames 1..200); probes cut from frame 240, outside it. The shipped model puts 9 and 11 first
    # at every frame 230..290; 17 (dark clothes like several others) ranks 1..5 there, 2 at frame 240, so for it
    # the test asks what the bench measured for every probe (docs/console.md: the right identity in the top 5)
    for pid, within in ((9, 1), (11, 1), (17, 5)):
        ok, buf = cv2.imencode(".jpg", gt_probe(pid, 240))
        r = c.post("/api/search", files={"image": ("probe.jpg", buf.tobytes(), "image/jpeg")})
        assert r.status_code == 200, r.text
        idents = r.json()["identities"]
        assert [i["global_id"] for i in idents[:within]].count(pid) == 1, [i["global_id"] for i in idents]
        dists = [i["distance"] for i in idents]
        assert dists == sorted(dists)  # ranked by distance
        for ident in idents:  # an identity's distance is that of its closest moment
            assert ident["moments"] and ident["moments"][0]["distance"] == ident["distance"]
    r = c.post("/api/search", files={"image": ("x.jpg", b"<html>not a picture</html>", "image/jpeg")})
    assert r.status_code == 415 and "not an image" in r.json()["detail"]
    r = c.post("/api/search", files={"image": ("x.jpg", os.urandom(9 * 1024 * 1024), "image/jpeg")})
    assert r.status_code == 413
    ok, buf = cv2.imencode(".png", gt_probe(9, 240))
    r = c.post("/search", files={"image": ("p.png", buf.tobytes(), "image/png")}, data={"box": "1,2,x,4"})
    assert r.status_code == 422 and "expected x,y,w,h" in r.text and "Traceback" not in r.text


def test_event_stream_sends_stored_events(console):
    c = httpx.Client(base_url=console.url, timeout=30)
    last = c.get("/api/events", params={"limit": 3}).json()
    assert len(last) == 3 and last[0]["event_id"] < last[-1]["event_id"]
    got = []
    with c.stream("GET", "/api/events/stream", params={"after": last[0]["event_id"]}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                got.append(json.loads(line[6:]))
            if len(got) == 2:
                break
    assert [e["event_id"] for e in got] == [e["event_id"] for e in last[1:]]


def _serve(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "console on" not in line:
        proc.kill()
        pytest.fail(f"serve did not start: {line} {proc.stderr.read()}")
    return proc, line.split(" on ")[1].split()[0]


def test_serve_cli_token_and_redaction(demo_store, tmp_path):
    cfg = tmp_path / "cams.yaml"
    cfg.write_text("cameras:\n  - {id: left, source: 'rtsp://admin:hunter2@10.0.0.5:554/s?token=abc'}\n"
                   "  - {id: right, source: 'rtsp://10.0.0.6/s'}\n", encoding="utf-8")
    proc, url = _serve("--store", str(demo_store), "--config", str(cfg), "--token", "t0k")
    try:
        assert httpx.get(url + "/api/cameras").status_code == 401
        assert httpx.get(url + "/cameras").status_code == 401
        r = httpx.get(url + "/api/cameras", headers={"Authorization": "Bearer t0k"})
        assert r.status_code == 200 and "hunter2" not in r.text and "abc" not in r.text and "***@" in r.text
        with httpx.Client(base_url=url) as c:  # a browser: ?token= once, then the cookie
            page = c.get("/cameras", params={"token": "t0k"})
            assert page.status_code == 200 and "hunter2" not in page.text and "rtsp://***@10.0.0.5" in page.text
            assert c.get("/identities").status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)


def test_open_bind_without_token_is_refused_in_one_line(demo_store):
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "pipeline", "serve", "--store", str(demo_store), "--host", "0.0.0.0"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and res.stderr.startswith(
        "reid-pipeline: error: --host: 0.0.0.0 is not a loopback address and no token is set")
    assert time.monotonic() - t0 < 30


def test_live_tile_long_poll_answers_with_the_next_frame(demo_store, encoder):
    import threading

    from pipeline.web.live import LiveFrames
    from pipeline.web.server import ConsoleServer

    live = LiveFrames(["left"])
    image = np.full((60, 80, 3), 90, np.uint8)
    live.publish("left", 5, 0.7, image, [(np.array([10.0, 10, 20, 30]), "G3", 3)])
    srv = ConsoleServer(demo_store, lambda: encoder, port=0, live=live).start()
    try:
        c = httpx.Client(base_url=srv.url, timeout=30)
        r = c.get("/api/cameras/left/frame.jpg")
        assert r.status_code == 200 and r.headers["x-frame-index"] == "5"
        tile = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
        assert tile.shape == (60, 80, 3) and np.abs(tile[10, 20].astype(int) - 90).max() > 40  # the box is drawn
        t0 = time.monotonic()
        r = c.get("/api/cameras/left/frame.jpg", params={"after": 5, "wait_s": 0.3})  # nothing newer: waits, same
        assert r.headers["x-frame-index"] == "5" and time.monotonic() - t0 >= 0.3
        timer = threading.Timer(0.2, live.publish, ("left", 6, 0.85, image, []))
        timer.start()
        r = c.get("/api/cameras/left/frame.jpg", params={"after": 5, "wait_s": 5})
        assert r.headers["x-frame-index"] == "6" and time.monotonic() - t0 < 5
        cams = c.get("/api/cameras").json()
        assert cams[0]["live"] and cams[0]["frame"]["frame"] == 6
    finally:
        srv.stop()


def test_cameras_page_shows_the_runs_warnings(demo_store, encoder):
    """A running pipeline's warnings (e.g. an undeclared overlap) are a banner on the Cameras page and /api/warnings;
    without a run, none."""
    from pipeline.web.live import LiveFrames
    from pipeline.web.server import ConsoleServer

    said: list[str] = []
    live = LiveFrames(["left"], warnings=lambda: said)
    srv = ConsoleServer(demo_store, lambda: encoder, port=0, live=live).start()
    try:
        c = httpx.Client(base_url=srv.url, timeout=30)
        assert c.get("/api/warnings").json() == {"live": True, "warnings": []}
        assert 'class="warning"' not in c.get("/cameras").text
        said.append("cameras left and right look overlapping: declare it (matching.overlapping_cameras: [[left, right]])")
        assert c.get("/api/warnings").json()["warnings"] == said
        page = c.get("/cameras").text
        assert 'class="warning" role="alert"' in page and "[[left, right]]" in page
    finally:
        srv.stop()
    srv = ConsoleServer(demo_store, lambda: encoder, port=0).start()
    try:
        assert httpx.get(f"{srv.url}/api/warnings", timeout=30).json() == {"live": False, "warnings": []}
    finally:
        srv.stop()


def test_identity_page_shows_link_probability_and_absorbed_ids(merged_store, encoder):
    """A merge recorded in the store's history: the absorbed id's page redirects to the identity that absorbed it,
    which lists it, and each tracklet shows the calibrated probability stored with its assignment."""
    from pipeline.web.server import ConsoleServer

    path, into, absorbed, moved = merged_store
    srv = ConsoleServer(path, lambda: encoder, port=0).start()
    try:
        c = httpx.Client(base_url=srv.url, follow_redirects=True, timeout=30)
        r = c.get(f"/identities/{absorbed}")
        assert r.status_code == 200 and str(r.url).endswith(f"/identities/{into}")
        assert f"Absorbed identities (merged into this one): ID {absorbed}." in r.text
        d = c.get(f"/api/identities/{into}").json()
        assert sorted(t["tracklet_id"] for t in d["tracklets"] if t["confidence"] == 0.875) == sorted(moved)
        assert "88 %" in r.text
        assert c.get("/identities/999999").status_code == 404
    finally:
        srv.stop()
