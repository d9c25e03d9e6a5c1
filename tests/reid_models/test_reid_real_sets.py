"""Market-1501 / CUHK03 loaders and protocols on the real sets in ../shared/data/reid, the ``embed`` command,
``eval-reid --folder`` and training on DatasetEntry objects (per-dataset format, identity hold-out)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.core.errors import DataError
from reid_models.datasets.index import load_cuhk03_folder, load_market_folder, load_reid_folder
from reid_models.datasets.protocols import (
    cuhk03_single_shot_trials, holdout_split, market_query_gallery, market_split,
)


@pytest.fixture(scope="module")
def reid_dir(shared: Path) -> Path:
    d = shared / "data" / "reid"
    if not (d / "Market-1501" / "bounding_box_train").is_dir():
        pytest.skip(f"{d}: Market-1501 / CUHK03 not present")
    return d


@pytest.fixture(scope="module")
def market(reid_dir):
    return load_market_folder(reid_dir / "Market-1501" / "bounding_box_train")


@pytest.fixture(scope="module")
def cuhk_val(reid_dir):
    return load_cuhk03_folder(reid_dir / "CUHK03" / "detected" / "val", "test")


def test_market_loader_counts_and_name_fields(market):
    assert len(market) == 12936 and len({it.pid for it in market}) == 751
    first = market[0]  # 0002_c1s1_000451_03.jpg
    assert (first.path.name, first.pid, first.camid, first.seq, first.frame) == (
        "0002_c1s1_000451_03.jpg", 2, 1, "c1s1", 451)
    assert {it.camid for it in market} == {1, 2, 3, 4, 5, 6}


def test_cuhk03_loader_cameras_from_image_number(reid_dir, cuhk_val):
    train = load_cuhk03_folder(reid_dir / "CUHK03" / "detected" / "train")
    assert len(train) == 7239 and len({it.pid for it in train}) == 743
    assert len(cuhk_val) == 938 and len({it.pid for it in cuhk_val}) == 100
    for it in cuhk_val:
        image = int(it.path.stem.split("_")[1])
        assert it.camid == (0 if image < 5 else 1) and it.frame == image and it.split == "test"
        assert it.seq == ("camA" if image < 5 else "camB")
    pids = {it.pid for it in cuhk_val}
    assert all({it.camid for it in cuhk_val if it.pid == p} == {0, 1} for p in pids)


def test_bad_names_and_empty_folders_name_the_file(reid_dir, tmp_path):
    src = next((reid_dir / "CUHK03" / "detected" / "val").iterdir())
    shutil.copy(src, tmp_path / "0001_03.jpg")
    shutil.copy(src, tmp_path / "person.jpg")
    with pytest.raises(DataError, match=r"person\.jpg: file name is not CUHK03 style"):
        load_cuhk03_folder(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty: no CUHK03-style images"):
        load_cuhk03_folder(empty)
    with pytest.raises(DataError, match=r"empty: no Market-1501-style images"):
        load_market_folder(empty)
    with pytest.raises(DataError, match="unknown dataset format 'duke'"):
        load_reid_folder(tmp_path, "duke")


def test_auto_format_names_an_image_that_fits_no_scheme(reid_dir, tmp_path):
    from pipeline.commands.eval_reid import folder_format

    src = next((reid_dir / "CUHK03" / "detected" / "val").iterdir())
    shutil.copy(src, tmp_path / "0001_03.jpg")
    assert folder_format(tmp_path, "auto") == "cuhk03"
    market = tmp_path / "market"
    market.mkdir()
    shutil.copy(src, market / "0001_c2s1_000123_01.jpg")
    assert folder_format(market, "auto") == "market"
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(src, other / "alice_front.jpg")
    with pytest.raises(DataError, match=r"alice_front\.jpg: file name fits neither Market-1501 style .*CUHK03 style .* nor CUHK01"):
        folder_format(other, "auto")
    assert folder_format(other, "cuhk03") == "cuhk03"  # an explicit --format is taken as given


def test_market_split_is_identity_disjoint_seeded_501_250(market):
    a, b = market_split(market), market_split(market)
    assert [it.split for it in a] == [it.split for it in b]
    train = {it.pid for it in a if it.split == "train"}
    test = {it.pid for it in a if it.split == "test"}
    assert len(train) == 501 and len(test) == 250 and not train & test
    other = {it.pid for it in market_split(market, seed=1) if it.split == "test"}
    assert other != test
    # holdout_split is the same rule the training config's holdout_ids uses
    assert [it.split for it in holdout_split(market, 501, 250, 0)] == [it.split for it in a]


def test_market_query_gallery_one_query_per_identity_and_camera(market):
    test = [it for it in market_split(market) if it.split == "test"]
    q, g = market_query_gallery(test, seed=0)
    keys = [(it.pid, it.camid) for it in q]
    assert len(keys) == len(set(keys)) == len({(it.pid, it.camid) for it in test})
    assert len(q) + len(g) == len(test) and not {it.path for it in q} & {it.path for it in g}


def test_cuhk03_single_shot_one_image_per_camera_and_identity(cuhk_val):
    trials = cuhk03_single_shot_trials(cuhk_val, trials=3, seed=0)
    assert len(trials) == 3
    for q, g in trials:
        assert len(q) == len(g) == 100
        assert all(cuhk_val[i].camid == 0 for i in q) and all(cuhk_val[i].camid == 1 for i in g)
        assert [cuhk_val[i].pid for i in q] == [cuhk_val[i].pid for i in g]
    assert trials[0] != trials[1]


def test_single_shot_retrieval_hand_computed():
    from reid_models.datasets.index import CropItem
    from reid_models.evaluate import single_shot_retrieval

    items = [CropItem(Path(f"{p}_{c}"), p, c, "s", 0, "test") for p in (0, 1) for c in (0, 1)]
    # identity 0's camera-0 image is nearer identity 1's camera-1 image: one rank-1 miss of two queries
    feats = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, 0.6]], dtype=np.float32)
    res = single_shot_retrieval(items, feats, trials=1)
    assert res["rank1"] == pytest.approx(50.0) and res["rank5"] == pytest.approx(100.0)
    assert res["mAP"] == pytest.approx(75.0)


@pytest.fixture(scope="module")
def small_market(market, tmp_path_factory):
    """6 identities x up to 4 crops of the real Market folder, copied."""
    out = tmp_path_factory.mktemp("market_small")
    pids = sorted({it.pid for it in market})[:6]
    for p in pids:
        for it in [it for it in market if it.pid == p][:4]:
            shutil.copy(it.path, out / it.path.name)
    return out


def test_embed_writes_rows_in_input_order_with_file_list(small_market, tmp_path, capsys):
    from pipeline.commands.eval_reid import load_encoder

    files = sorted(small_market.iterdir())
    listing = tmp_path / "crops.txt"
    order = [files[3], files[0], files[5]]
    listing.write_text("# three crops\n" + "\n".join(str(p) for p in order) + "\n\n")
    assert main(["embed", "--model", "default", "--list", str(listing), "--out", str(tmp_path / "emb"),
                 "--no-progress"]) == 0
    emb = np.load(tmp_path / "emb.npy")
    assert emb.dtype == np.float32 and emb.shape[0] == 3
    assert (tmp_path / "emb.files.txt").read_text().split() == [str(p) for p in order]
    import cv2

    enc = load_encoder("default", "cpu")
    direct = enc.embed_crops([cv2.imread(str(p)) for p in order])
    np.testing.assert_allclose(emb, direct, atol=1e-5)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert main(["embed", "--folder", str(small_market), "--out", str(tmp_path / "all.npy"), "--no-progress"]) == 0
    assert np.load(tmp_path / "all.npy").shape[0] == len(files)


def test_embed_missing_listed_file_is_one_line_error(tmp_path, capsys):
    listing = tmp_path / "l.txt"
    listing.write_text("nothere.jpg\n")
    assert main(["embed", "--list", str(listing), "--out", str(tmp_path / "e.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothere.jpg: no such image file (listed in" in err
    assert not (tmp_path / "e.npy").exists()


def test_eval_reid_folder_all_identities_as_test(small_market, tmp_path, capsys):
    import json

    assert main(["eval-reid", "--folder", str(small_market), "--checkpoint", "default", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["num_test_ids"] == 6 and m["retrieval"]["protocol"].startswith("market")
    assert 0.0 <= m["retrieval"]["rank1"] <= 100.0 and m["retrieval"]["num_queries"] > 0


@pytest.fixture(scope="module")
def market_root(market, tmp_path_factory):
    """A Market-1501 root made of real crops: bounding_box_train/ (2 other ids), query/ (one crop per id and
    camera of 4 ids), bounding_box_test/ (the rest of those ids, one distractor 0000 and one junk -1)."""
    root = tmp_path_factory.mktemp("market_root")
    for sub in ("bounding_box_train", "query", "bounding_box_test"):
        (root / sub).mkdir()
    pids = sorted({it.pid for it in market})
    for p in pids[4:6]:
        for it in [it for it in market if it.pid == p][:2]:
            shutil.copy(it.path, root / "bounding_box_train" / it.path.name)
    seen = set()
    for p in pids[:4]:
        for it in [it for it in market if it.pid == p][:5]:
            sub = "bounding_box_test" if (p, it.camid) in seen else "query"
            seen.add((p, it.camid))
            shutil.copy(it.path, root / sub / it.path.name)
    donor = market[0].path
    shutil.copy(donor, root / "bounding_box_test" / "0000_c1s1_000001_00.jpg")
    shutil.copy(donor, root / "bounding_box_test" / "-1_c1s1_000002_00.jpg")
    return root


def test_eval_reid_on_a_market_root_uses_its_official_split(market_root, tmp_path):
    import json

    from pipeline.commands.eval_reid import folder_test_items

    items = folder_test_items(market_root, "market")
    n_query = len(list((market_root / "query").iterdir()))
    n_gallery = len(list((market_root / "bounding_box_test").iterdir())) - 1  # the junk crop is left out
    assert sum(it.split == "query" for it in items) == n_query and sum(it.split == "gallery" for it in items) == n_gallery
    assert not any(it.split == "train" for it in items) and sum(it.pid == 0 for it in items) == 1
    assert main(["eval-reid", "--folder", str(market_root), "--checkpoint", "default", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    r = json.loads((tmp_path / "metrics.json").read_text())["retrieval"]
    assert r["protocol"].startswith("market official") and r["num_gallery"] == n_gallery
    # every query with a cross-camera match in the gallery is scored (the others have no valid match)
    q = [it for it in items if it.split == "query"]
    g = [it for it in items if it.split == "gallery"]
    scored = sum(any(x.pid == it.pid and x.camid != it.camid for x in g) for it in q)
    assert r["num_queries"] == scored > 0


def test_eval_reid_market_root_without_gallery_is_one_line_error(market_root, tmp_path, capsys):
    root = tmp_path / "root"
    shutil.copytree(market_root / "query", root / "query")
    assert main(["eval-reid", "--folder", str(root), "--checkpoint", "default", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has query/ but no bounding_box_test/ (or gallery/) gallery" in err


def test_single_shot_on_any_two_camera_folder(market):
    from reid_models.datasets.index import CropItem

    pair = [it for it in market if it.camid in (1, 2)]
    trials = cuhk03_single_shot_trials(pair, trials=2, seed=0)
    both = {it.pid for it in pair if it.camid == 1} & {it.pid for it in pair if it.camid == 2}
    seen_2 = {it.pid for it in pair if it.camid == 2}
    for q, g in trials:
        # queries: the people both cameras saw; gallery: one image of every person camera 2 saw (those it alone saw
        # are distractors, since 2026-12-07)
        assert len(q) == len(both) > 0 and len(g) == len(seen_2) > len(both)
        assert sorted(pair[i].pid for i in g) == sorted(seen_2)
        assert all(pair[i].camid == 1 for i in q) and all(pair[i].camid == 2 for i in g)
    with pytest.raises(DataError, match="exactly two cameras, found 6"):
        cuhk03_single_shot_trials(market, trials=1)
    with pytest.raises(DataError, match="found 1"):
        cuhk03_single_shot_trials([CropItem(Path("a"), 1, 0, "s", 0, "test")], trials=1)


def test_training_on_dataset_entries_holds_identities_out(small_market, reid_dir, tmp_path):
    from pipeline.core.configio import validate
    from reid_models.config import TrainConfig
    from reid_models.train_data import build_image_data

    cfg = validate(TrainConfig, {"data": {"datasets": [
        {"path": str(small_market), "format": "market", "holdout_ids": 2, "holdout_seed": 0},
        {"path": str(reid_dir / "CUHK03" / "detected" / "val"), "format": "cuhk03"}], "val_split": None}}, "t.yaml")
    data = build_image_data(cfg.data, [], 0)
    assert data.num_classes == 4 + 100
    ds0 = [it for it, d in zip(data.train_items, data.dataset_ids) if d == 0]
    held = {it.pid for it in holdout_split(load_market_folder(small_market), 4, 2, 0) if it.split == "test"}
    train_names = {it.path.name for it in ds0}
    assert not any(int(n.split("_")[0]) in held for n in train_names) and len(held) == 2
    with pytest.raises(Exception, match="holdout_ids 6 leaves no training identity"):
        bad = validate(TrainConfig, {"data": {"datasets": [
            {"path": str(small_market), "format": "market", "holdout_ids": 6}], "val_split": None}}, "t.yaml")
        build_image_data(bad.data, [], 0)
    with pytest.raises(Exception, match="holdout_ids 2 \\+ val_ids 4 leaves no training identity of 6"):
        bad = validate(TrainConfig, {"data": {"datasets": [
            {"path": str(small_market), "format": "market", "holdout_ids": 2, "val_ids": 4}], "val_split": None}}, "t.yaml")
        build_image_data(bad.data, [], 0)


def test_folder_tracklets_are_per_camera_sequences_by_frame(market, cuhk_val):
    from reid_models.datasets.protocols import folder_tracklets

    tracks = folder_tracklets(cuhk_val)
    assert len(tracks) == 200 and sum(len(t["paths"]) for t in tracks) == len(cuhk_val)
    for t in tracks:
        images = [int(p.stem.split("_")[1]) for p in t["paths"]]
        assert images == sorted(images) == t["frames"] and len({i < 5 for i in images}) == 1
        assert all(int(p.stem.split("_")[0]) == t["pid"] for p in t["paths"])
    m = folder_tracklets(market[:200])
    for t in m:
        names = [p.name for p in t["paths"]]
        assert len({n.split("_")[1] for n in names}) == 1  # one camera + sequence (c1s1)
        assert t["frames"] == sorted(t["frames"])
