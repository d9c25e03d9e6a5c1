"""Console building blocks on hand-computed data: thumbnail choice, route/transit, bind rule, tokens, uploads."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.core.errors import ConfigError
from pipeline.core.types import TrackOutput
from pipeline.runner.thumbnails import ThumbnailKeeper, visible_scores
from pipeline.web.data import route
from pipeline.web.search import UploadError, decode_image, parse_box, probe_crop
from pipeline.web.security import check_bind, is_loopback_host, token_ok
from pipeline.web.timeline import timeline_svg


def test_visible_scores_hand_computed():
    # a: 10x20 alone; b: 20x20 half covered by c (c covers b's right 10 columns); c: 10x20 fully inside b;
    # d: 10x10 box half outside a 100-px wide image
    boxes = np.array([[0, 0, 10, 20], [50, 0, 20, 20], [60, 0, 10, 20], [95, 50, 10, 10]], float)
    s = visible_scores(boxes, width=100, height=100)
    assert s == pytest.approx([200.0, 400 * 0.5, 0.0, 100 * 0.5])


def test_thumbnail_keeper_keeps_the_largest_unoccluded_box():
    image = np.zeros((100, 200, 3), np.uint8)
    image[10:90, 20:60] = 200  # track 1 at frame 2: big and alone
    keeper = ThumbnailKeeper(max_side=40)
    out = lambda f, tid, box: TrackOutput("cam", tid, f, np.array(box, float), 1.0)  # noqa: E731
    keeper.observe("cam", image, [out(1, 1, [20, 10, 10, 20])])
    keeper.observe("cam", image, [out(2, 1, [20, 10, 40, 80])])  # larger: replaces frame 1
    keeper.observe("cam", image, [out(3, 1, [100, 10, 40, 80]), out(3, 2, [110, 10, 40, 80])])  # covered 3/4
    frames, crops = keeper.take("cam", 1)
    assert frames == [2] and len(crops) == 1
    assert crops[0].shape == (40, 20, 3) and crops[0].min() == 200  # 80x40 crop scaled to max side 40
    assert keeper.take("cam", 1) == ([], [])  # taken once
    frames2, _ = keeper.take("cam", 2)
    assert frames2 == [3] and len(keeper) == 0


def test_route_and_transit_times():
    s = [{"cam_id": "a", "start_time": 0.0, "end_time": 5.0}, {"cam_id": "a", "start_time": 3.0, "end_time": 7.0},
         {"cam_id": "b", "start_time": 9.5, "end_time": 12.0}, {"cam_id": "a", "start_time": 11.0, "end_time": 15.0}]
    assert route(s) == [
        {"from_cam": "a", "to_cam": "b", "left": 7.0, "arrived": 9.5, "transit_s": 2.5},
        {"from_cam": "b", "to_cam": "a", "left": 12.0, "arrived": 11.0, "transit_s": -1.0},
    ]
    detail = {"global_id": 3, "cameras": ["a", "b"], "first_seen": 0.0, "last_seen": 15.0, "route": route(s),
              "tracklets": [dict(x, tracklet_id=i, track_id=i) for i, x in enumerate(s)]}
    svg = timeline_svg(detail)
    assert svg.count('class="tl-bar"') == 4 and svg.count('class="tl-hop"') == 2 and "+2.5 s" in svg


def test_bind_rule_and_tokens():
    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1") and is_loopback_host("localhost")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("192.168.1.5")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "s3cret")
    with pytest.raises(ConfigError, match=r"^ui.host: 0.0.0.0 is not a loopback address and no token is set"):
        check_bind("0.0.0.0", None)
    assert token_ok(None, None, None, None)
    assert token_ok("abc", "Bearer abc", None, None) and token_ok("abc", None, "abc", None)
    assert token_ok("abc", None, None, "abc")
    assert not token_ok("abc", "Bearer abd", "x", None) and not token_ok("abc", None, None, None)


def test_uploads_are_checked():
    import importlib

    importlib.import_module("ultralytics")  # patches PIL's Image.open (a HEIF retry through pi_heif), as in a run

    ok, buf = cv2.imencode(".png", np.full((30, 20, 3), 7, np.uint8))
    image = decode_image(buf.tobytes())
    assert image.shape == (30, 20, 3)
    with pytest.raises(UploadError, match="not an image") as e:
        decode_image(b"GIF89a but not really an image")
    assert e.value.status == 415
    with pytest.raises(UploadError, match="limit is") as e:
        decode_image(buf.tobytes(), max_bytes=10)
    assert e.value.status == 413
    assert parse_box("") is None and parse_box("1,2,3,4").tolist() == [1, 2, 3, 4]
    for bad in ("1,2,3", "a,b,c,d", "1,2,0,4", "1,2,nan,4"):
        with pytest.raises(UploadError):
            parse_box(bad)
    assert probe_crop(image, parse_box("5,10,4,6")).shape == (6, 4, 3)
    with pytest.raises(UploadError, match="outside"):
        probe_crop(image, parse_box("18,28,1,1"))


def test_ui_settings_refuse_an_open_bind_without_token(tmp_path, monkeypatch):
    from pipeline.camconfig import load_cams_config

    monkeypatch.delenv("REID_UI_TOKEN", raising=False)  # the validator reads it (as run and serve do)

    cfg = tmp_path / "cams.yaml"
    cfg.write_text("cameras: [{id: a, source: '0'}]\nui: {enabled: true, host: 0.0.0.0}\n")
    with pytest.raises(ConfigError, match=r"cams.yaml: ui: .*0.0.0.0 is not a loopback address") as e:
        load_cams_config(cfg)
    assert "\n" not in str(e.value)
    cfg.write_text("cameras: [{id: a, source: '0'}]\nui: {enabled: true, host: 0.0.0.0, token: t0k0123456789abc}\n")
    assert load_cams_config(cfg).ui.token == "t0k0123456789abc"  # off loopback: >= 16 characters


def test_merges_and_splits_are_read_from_events(tmp_path):
    from pipeline.store import IdentityStore
    from pipeline.web.data import merges_splits

    path = tmp_path / "s.sqlite"
    with IdentityStore(path) as store:
        store.add_event("merge", 5, "a", 1.0, {"ids": [5, 7], "into": 5, "from": 7, "tracklets": 2})
        store.add_event("split", 9, "b", 2.0, {"ids": [3, 9], "into": 9, "from": 3, "tracklets": 1})
        store.add_event("appear", 7, "a", 0.5, {"track_id": 7})
    with IdentityStore(path, mode="read") as store:
        assert [(e["kind"], e["global_id"]) for e in merges_splits(store, 7)] == [("merge", 5)]
        assert [(e["kind"], e["t"]) for e in merges_splits(store, 5)] == [("merge", 1.0)]
        assert [e["kind"] for e in merges_splits(store, 3)] == ["split"] and merges_splits(store, 4) == []


def test_serve_refuses_a_short_token_off_loopback(tmp_path, capsys, monkeypatch):
    """serve applies run's rule: off loopback the token needs 16 printable characters (one line, no token shown)."""
    from pipeline.cli import main

    monkeypatch.delenv("REID_UI_TOKEN", raising=False)
    store = tmp_path / "ids.sqlite"
    store.write_bytes(b"")
    assert main(["serve", "--store", str(store), "--host", "0.0.0.0", "--token", "s3cr3t"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--token" in err and "16" in err and "s3cr3t" not in err


def test_run_with_the_console_on_a_taken_port_fails_before_opening_anything(pets_dir, shared, tmp_path, capsys):
    """ui.port already in use: one line, exit 2, and no store, lock or outputs were created."""
    import socket

    import yaml

    from pipeline.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = tmp_path / "cams.yaml"
        cfg.write_text(yaml.safe_dump({
            "mode": "batch", "cameras": [{"id": "a", "source": str(pets_dir / "img1")}],
            "detector": {"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx")},
            "store": {"path": str(tmp_path / "st" / "ids.sqlite")}, "outputs": {"dir": str(tmp_path / "out")},
            "ui": {"enabled": True, "port": port}}), encoding="utf-8")
        assert main(["run", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"cannot listen on 127.0.0.1:{port}" in err
    assert not (tmp_path / "st").exists() and not (tmp_path / "out").exists()
