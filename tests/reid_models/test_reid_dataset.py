"""The MOT-derived generator on real PETS09-S2L1 frames (a subset), the on-disk format, loaders, eval-reid CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.cli import main
from reid_models.datasets import load_index, load_market_folder, load_pairs, load_tracklets, load_triplets


@pytest.fixture(scope="module")
def tiny(pets_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pets_reid")
    rc = main(["make-triplets", str(pets_dir), "--out", str(out), "--max-frame", "90", "--stride", "3",
               "--k", "9", "--pairs", "40", "--triplets", "60", "--seed", "1", "--no-progress"])
    assert rc == 0
    return out


def test_generator_writes_consistent_identity_disjoint_dataset(tiny):
    items = load_index(tiny)
    summary = json.loads((tiny / "summary.json").read_text())
    assert items and all(it.frame <= 90 and (it.frame - 1) % 3 == 0 for it in items)
    img = cv2.imread(str(items[0].path))
    assert img.shape == (128, 64, 3)
    by_split = {s: {it.pid for it in items if it.split == s} for s in ("train", "val", "test")}
    assert not by_split["train"] & by_split["test"] and by_split["train"] and by_split["test"]
    for s in ("train", "test"):
        assert summary["splits"][s]["identities"] == len(by_split[s])
        assert summary["splits"][s]["crops"] == sum(it.split == s for it in items)
    assert len({(it.seq, it.frame, it.pid) for it in items}) == len(items)


def test_pairs_balanced_k_apart_from_test_identities(tiny):
    info = {it.path: it for it in load_index(tiny)}
    pairs = load_pairs(tiny)
    same = [s for _, _, s in pairs]
    assert len(pairs) > 0 and same.count(1) == same.count(0) == json.loads(
        (tiny / "summary.json").read_text())["splits"]["test"]["pairs_pos"]
    for a, b, s in pairs:
        ia, ib = info[a], info[b]
        assert ia.split == ib.split == "test"
        assert (ia.pid == ib.pid) == bool(s)
        if s:
            assert abs(ia.frame - ib.frame) >= 9
    for a, p, n in load_triplets(tiny):
        assert info[a].split == info[p].split == info[n].split == "train"
        assert info[a].pid == info[p].pid != info[n].pid and abs(info[a].frame - info[p].frame) >= 9


def test_tracklets_are_contiguous_runs(tiny):
    tracks = load_tracklets(tiny)
    info = {it.path: it for it in load_index(tiny)}
    assert tracks
    for t in tracks:
        assert len(t["paths"]) >= 4 and np.all(np.diff(t["frames"]) == 3)
        assert all(info[p].pid == t["pid"] and info[p].frame == f for p, f in zip(t["paths"], t["frames"]))


def test_market_folder_loader_skips_junk_and_distractors(tiny, tmp_path):
    crops = load_index(tiny)[:3]
    names = ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c3s2_012345_00.jpg",
             "-1_c1s1_000001_00.jpg", "0000_c1s1_000002_00.jpg"]
    for i, name in enumerate(names):
        shutil.copy(crops[i % 3].path, tmp_path / name)
    (tmp_path / "readme.txt").write_text("not an image")
    items = load_market_folder(tmp_path)
    assert [(it.pid, it.camid, it.frame, it.seq) for it in items] == [
        (2, 1, 451, "c1s1"), (2, 2, 301, "c2s1"), (7, 3, 12345, "c3s2")]
    from reid_models.datasets.torch_data import ReidImageDataset
    from reid_models.transforms import build_test_transform

    ds = ReidImageDataset(items, build_test_transform((128, 64)))
    img, pid, cam = ds[2]
    assert img.shape == (3, 128, 64) and (pid, cam) == (7, 3) and ds.pids == [2, 2, 7]


def test_market_folder_with_bad_name_is_one_line_error(tmp_path):
    from pipeline.core.errors import DataError

    cv2.imwrite(str(tmp_path / "person.jpg"), np.zeros((8, 4, 3), np.uint8))
    with pytest.raises(DataError, match="person.jpg"):
        load_market_folder(tmp_path)


def test_eval_reid_cli_writes_metrics_and_plots(tiny, tmp_path):
    out = tmp_path / "eval"
    rc = main(["eval-reid", "--dataset", str(tiny), "--checkpoint", "default", "--out", str(out), "--no-progress"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    r = m["retrieval"]
    assert r["protocol"] == "time" and r["num_queries"] > 0
    assert 0 <= r["mAP"] <= 100 and r["rank1"] <= r["rank5"] <= r["rank10"]
    assert m["roc"]["num_pos"] == m["roc"]["num_neg"] and 0 <= m["roc"]["auc"] <= 1
    assert 0 <= m["triplet_accuracy"] <= 1
    # --rerank: the same queries and pairs scored on the k-reciprocal distance, whose values lie in [0, 1]
    # (Jaccard and the column-normalised original distance mixed) and are not the Euclidean ones
    assert main(["eval-reid", "--dataset", str(tiny), "--checkpoint", "default", "--out", str(out / "rr"),
                 "--no-progress", "--rerank"]) == 0
    rr = json.loads((out / "rr" / "metrics.json").read_text())
    assert rr["model"]["rerank"] and rr["config"]["rerank"] and not m["config"]["rerank"]
    assert rr["retrieval"]["num_queries"] == r["num_queries"]
    assert max(rr["roc"]["thresholds"]) <= 1.0 + 1e-6 and rr["roc"]["num_pos"] == m["roc"]["num_pos"]
    assert rr["roc"]["thresholds"] != m["roc"]["thresholds"]
    assert (out / "roc.png").stat().st_size > 0 and (out / "cmc.png").stat().st_size > 0
    assert main(["eval-reid", "--dataset", str(tmp_path / "missing"), "--out", str(out)]) == 2


def test_generator_enlarges_small_people_smoothly_and_records_the_rule(tiny, pets_dir):
    from pipeline.core.types import crop_tlwh, resize_crop
    from reid_models.datasets.mot_builder import CROP_RESIZE_RULE

    assert json.loads((tiny / "summary.json").read_text())["config"]["crop_resize"] == CROP_RESIZE_RULE
    gt = np.loadtxt(pets_dir / "gt" / "gt.txt", delimiter=",", ndmin=2)
    it = load_index(tiny)[0]
    gt_id = int(Path(it.path).name.split("_")[0])  # crops are named <gt id>_<frame>.jpg
    row = gt[(gt[:, 0] == it.frame) & (gt[:, 1] == gt_id)][0]
    cut = crop_tlwh(cv2.imread(str(pets_dir / "img1" / f"{it.frame:06d}.jpg")), row[2:6])
    assert cut.shape[0] < 128  # a PETS person is smaller than the crop size: the generator enlarges it
    written = cv2.imread(str(it.path)).astype(float)
    smooth = np.abs(written - resize_crop(cut, (128, 64))).mean()
    blocky = np.abs(written - resize_crop(cut, (128, 64), "area")).mean()
    assert smooth < 2.0 and blocky > smooth + 1.0, (smooth, blocky)  # JPEG noise vs pixel repetition
