"""reid-pipeline query: identity history, store summary and image-to-video search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.core.errors import ReidPipelineError
from pipeline.query import identity_report, rank_tracklets
from pipeline.store import IdentityStore
from pipeline.core.types import GlobalIdentity, Tracklet


def _tracklet(cam: str, track: int, f0: int, f1: int, fps: float = 10.0) -> Tracklet:
    frames = np.arange(f0, f1 + 1)
    return Tracklet(cam, track, frames, (frames - 1) / fps, np.zeros((len(frames), 4)), np.zeros((0, 4), np.float32))


def _store(path: Path) -> IdentityStore:
    """Identity 1: c1 frames 1-21 (0-2 s) and 31-41 (3-4 s), then c2 frames 61-81 (6-8 s). Identity 2: c2 1-11."""
    store = IdentityStore(path)
    run = store.begin_run("r")
    rows = [("c1", 1, 1, 21, 1, [1, 0, 0]), ("c1", 2, 31, 41, 1, [0.8, 0.6, 0]), ("c2", 5, 61, 81, 1, [0.6, 0.8, 0]),
            ("c2", 3, 1, 11, 2, [0, 0, 1])]
    for cam, track, f0, f1, gid, vec in rows:
        v = np.array(vec, np.float32)
        store.record_tracklet(run, _tracklet(cam, track, f0, f1), v, "v0", GlobalIdentity(gid, v))
    return store


def test_identity_report_where_and_when(tmp_path: Path) -> None:
    with _store(tmp_path / "s.db") as store:
        r = identity_report(store, 1, join_gap_s=1.0)
        assert r["route"] == ["c1", "c2"]
        # c1 spans 0-2 s and 3-4 s are 1 s apart: joined; c2 6-8 s
        assert r["cameras"] == {"c1": [[0.0, 4.0]], "c2": [[6.0, 8.0]]}
        assert (r["first_seen"], r["last_seen"]) == (0.0, 8.0)
        assert [t["frames"] for t in r["tracklets"]] == [[1, 21], [31, 41], [61, 81]]
        assert identity_report(store, 1, join_gap_s=0.5)["cameras"]["c1"] == [[0.0, 2.0], [3.0, 4.0]]
        with pytest.raises(ReidPipelineError, match="no identity 9 \\(known ids 1..2\\)"):
            identity_report(store, 9)


def test_rank_tracklets_by_cosine_distance(tmp_path: Path) -> None:
    with _store(tmp_path / "s.db") as store:
        r = rank_tracklets(store, np.array([0.6, 0.8, 0.0]), "v0", top=10)
        # distances: [0.6,0.8] -> 0.0 ; [0.8,0.6] -> 0.04 ; [1,0] -> 0.4 ; [0,0,1] -> 1.0
        assert [t["track_id"] for t in r["tracklets"]] == [5, 2, 1, 3]
        np.testing.assert_allclose([t["distance"] for t in r["tracklets"]], [0.0, 0.04, 0.4, 1.0], atol=1e-6)
        assert [(i["global_id"], i["best_tracklet"]) for i in r["identities"]] == [(1, 3), (2, 4)]
        assert [t["track_id"] for t in rank_tracklets(store, np.array([1, 0, 0]), "v0", cam_id="c2")["tracklets"]] == [5, 3]
        with pytest.raises(ReidPipelineError, match="no tracklet embeddings for model version 'v9' \\(stored: v0\\)"):
            rank_tracklets(store, np.array([1, 0, 0]), "v9")


def test_cli_list_and_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _store(tmp_path / "s.db").close()
    assert main(["query", "--store", str(tmp_path / "s.db"), "--list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(i["global_id"], i["tracklets"], i["cameras"]) for i in data["identities"]] == [
        (1, 3, ["c1", "c2"]), (2, 1, ["c2"])]
    assert main(["query", "--store", str(tmp_path / "s.db"), "--id", "1"]) == 0
    out = capsys.readouterr().out
    assert "route c1 -> c2" in out and "c1: 0.0-4.0s" in out
    assert main(["query", "--store", str(tmp_path / "nope.db"), "--list"]) == 2
    assert "no such identity store" in capsys.readouterr().err
    (tmp_path / "text.db").write_text("id,cam\n1,c1\n")
    assert main(["query", "--store", str(tmp_path / "text.db"), "--list"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"reid-pipeline: error: {tmp_path / 'text.db'}: not an SQLite database (identity store expected)"


def test_image_probe_finds_its_tracklet(tmp_path: Path, pets_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Real crops of PETS09-S2L1 frame 1 embedded with the ImageNet baseline; the probe is one of them."""
    import cv2
    import torch

    from reid_models.encoder import AppearanceEncoder

    torch.set_num_threads(1)
    image = cv2.imread(str(pets_dir / "img1" / "000001.jpg"))
    boxes = {9: (499, 158, 31, 75), 15: (258, 219, 33, 89), 19: (633, 242, 42, 81)}  # gt.txt frame 1
    enc = AppearanceEncoder.imagenet_baseline(device="cpu")
    emb = enc.embed_boxes(image, np.array(list(boxes.values()), dtype=float))
    with IdentityStore(tmp_path / "s.db") as store:
        run = store.begin_run("r")
        for k, (gid, vec) in enumerate(zip(boxes, emb)):
            store.record_tracklet(run, _tracklet("c1", k + 1, 1, 5), vec, enc.version, GlobalIdentity(gid, vec))
    x, y, w, h = boxes[15]
    cv2.imwrite(str(tmp_path / "frame.png"), image)
    argv = ["query", "--store", str(tmp_path / "s.db"), "--image", str(tmp_path / "frame.png"),
            "--box", f"{x},{y},{w},{h}", "--checkpoint", "imagenet", "--json"]
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["model_version"] == enc.version
    assert r["identities"][0]["global_id"] == 15 and r["identities"][0]["distance"] < 1e-4
    assert len(r["tracklets"]) == 3


def test_rank_tracklets_unknown_camera_lists_the_cameras(tmp_path: Path) -> None:
    with _store(tmp_path / "s.db") as store:
        with pytest.raises(ReidPipelineError) as exc:
            rank_tracklets(store, np.array([1, 0, 0]), "v0", cam_id="zz")
        assert str(exc.value) == f"{store.path}: camera 'zz' has no tracklets (cameras with tracklets: c1, c2)"
        # a known camera with another model version still gets the version message
        with pytest.raises(ReidPipelineError, match="no tracklet embeddings for model version 'v9'"):
            rank_tracklets(store, np.array([1, 0, 0]), "v9", cam_id="c1")


@pytest.mark.parametrize("top", ["0", "-3", "x"])
def test_cli_top_must_be_positive(tmp_path: Path, pets_dir: Path, top: str, capsys: pytest.CaptureFixture[str]) -> None:
    _store(tmp_path / "s.db").close()
    with pytest.raises(SystemExit) as exc:
        main(["query", "--store", str(tmp_path / "s.db"), "--image", str(pets_dir / "img1" / "000001.jpg"),
              "--top", top])
    assert exc.value.code == 2
    assert "argument --top: expected a positive whole number" in capsys.readouterr().err
