"""Fixes of the s42 probe findings left open (runs/s42/probe_reid, probe_train reports), on real CUHK03 val crops
copied into small layouts, real MOT15 sequences, or exactly hand-computed embeddings: truncated JPEGs are named
and skipped, ``--max-frames`` keeps an official split's queries, ``query/`` + ``gallery/`` folders are read as
that split, the video protocol keeps it, camera folders differing only by case stay two cameras, ``train --data``
keeps the config's format, ``make-triplets`` warns about a gt from another sequence, and ``train`` /
``make-triplets`` / ``embed`` outputs are private."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.commands.eval_reid import folder_format, folder_test_items
from pipeline.core.errors import ConfigError, DataError
from pipeline.core.images import image_problem, is_truncated_jpeg, read_image
from reid_models.datasets.index import CropItem, load_camera_folders, load_cuhk03_folder
from reid_models.datasets.protocols import thin_sequences
from reid_models.evaluate import MAX_WARNED, EvalConfig, embed_paths, evaluate_items, video_halves_retrieval, \
    video_retrieval


@pytest.fixture(scope="module")
def val_items(cuhk03_val: list[CropItem]) -> list[CropItem]:
    """CUHK03 detected val crops of the first 8 people (5 per camera), in CUHK03 naming."""
    return [it for it in cuhk03_val if it.pid < 8]


def _first(items: list[CropItem], pid: int, cam: int, k: int = 0) -> Path:
    return sorted((it for it in items if it.pid == pid and it.camid == cam), key=lambda it: it.frame)[k].path


def _copy_flat(items: list[CropItem], folder: Path) -> list[CropItem]:
    folder.mkdir(parents=True, exist_ok=True)
    for it in items:
        shutil.copy(it.path, folder / it.path.name)
    return load_cuhk03_folder(folder, "test")


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def _mean_std(crops: list[np.ndarray]) -> np.ndarray:
    """A tiny deterministic 'encoder': per-channel means and standard deviations of each crop."""
    return np.array([np.concatenate([c.reshape(-1, 3).mean(0), c.reshape(-1, 3).std(0)]) for c in crops])


# --- 1. truncated JPEG -------------------------------------------------------------------------------------------


def test_a_truncated_jpeg_is_refused_and_named(val_items, tmp_path) -> None:
    src = val_items[0].path
    full = src.read_bytes()
    assert full[:2] == b"\xff\xd8" and not is_truncated_jpeg(full)
    assert not is_truncated_jpeg(full + b"\x00" * 16)  # bytes after the end marker are allowed
    for keep in (0.3, 0.9):
        cut = tmp_path / f"cut{keep}.jpg"
        cut.write_bytes(full[:int(len(full) * keep)])
        assert is_truncated_jpeg(cut.read_bytes()) and read_image(cut) is None
        assert image_problem(cut).startswith("truncated JPEG")
    cut = tmp_path / "end.jpg"
    cut.write_bytes(full[:-2])  # only the end-of-image marker missing
    assert read_image(cut) is None
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    assert image_problem(empty) == "empty file (0 bytes)"
    assert read_image(src) is not None and image_problem(tmp_path / "none.jpg").startswith("cannot read image")
    with pytest.raises(DataError, match=r"cut0\.3\.jpg.*truncated JPEG"):  # strict where rows must match inputs
        embed_paths(_mean_std, [src, tmp_path / "cut0.3.jpg"], EvalConfig())


def test_eval_skips_a_truncated_crop_with_one_warning_naming_it(val_items, tmp_path, capsys) -> None:
    items = _copy_flat(val_items, tmp_path / "flat")
    bad = items[7].path
    _truncate(bad)
    m = evaluate_items(items, _mean_std, EvalConfig(), "market", progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"warning: {bad}: truncated JPEG (no end-of-image marker: the file was cut short); skipped"]
    assert m["unreadable"] == [str(bad)] and m["num_test_crops"] == len(items) - 1
    # the same as scoring the other crops alone
    ref = evaluate_items([it for it in items if it.path != bad], _mean_std, EvalConfig(), "market", progress=False)
    assert m["retrieval"]["rank1"] == ref["retrieval"]["rank1"] and m["retrieval"]["mAP"] == ref["retrieval"]["mAP"]


def test_many_unreadable_crops_are_counted_at_the_end(val_items, tmp_path, capsys) -> None:
    items = _copy_flat(val_items, tmp_path / "flat")
    bad = [it.path for it in items[:MAX_WARNED + 2]]
    for p in bad:
        _truncate(p)
    m = evaluate_items(items, _mean_std, EvalConfig(batch_size=4), "market", progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == MAX_WARNED + 1 and all(str(p) in line for p, line in zip(bad[:MAX_WARNED], err))
    assert err[-1] == (f"warning: {len(bad)} of {len(items)} images could not be read and were skipped "
                       f"({MAX_WARNED} named above)")
    assert m["unreadable"] == [str(p) for p in bad]


def test_eval_reid_cli_on_a_truncated_crop_goes_on(val_items, tmp_path, capsys) -> None:
    items = _copy_flat(val_items, tmp_path / "flat")
    _truncate(items[3].path)
    out = tmp_path / "ev"
    assert main(["eval-reid", "--folder", str(tmp_path / "flat"), "--checkpoint", "imagenet", "--out", str(out),
                 "--no-progress"]) == 0
    assert f"warning: {items[3].path}: truncated JPEG" in capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert m["unreadable"] == [str(items[3].path)] and m["num_test_crops"] == len(items) - 1


# --- 2. --max-frames keeps an official split's queries -----------------------------------------------------------


def test_thinning_never_drops_an_official_query() -> None:
    """Person 1, camera 1, sequence s: 3 query crops and 5 gallery crops; a cap of 2 keeps all 3 queries (their own
    sequence, never mixed with the gallery's) and gallery frames 0 and 4."""
    q = [CropItem(Path(f"/q/{k}.jpg"), 1, 1, "s", k, "query") for k in range(3)]
    g = [CropItem(Path(f"/g/{k}.jpg"), 1, 1, "s", k, "gallery") for k in range(5)]
    thin = thin_sequences(q + g, 2)
    assert [it for it in thin if it.split == "query"] == q
    assert [it.frame for it in thin if it.split == "gallery"] == [0, 4]
    plain = [CropItem(Path(f"/t/{k}.jpg"), 1, 1, "s", k, "test") for k in range(5)]
    assert [it.frame for it in thin_sequences(plain, 2)] == [0, 4]  # folders without a split: as before


def _market_qg(items: list[CropItem], root: Path, gallery: str) -> Path:
    """query/ (three camera-A images of people 1-3: c1, one sequence), ``gallery``/ (their camera-B images, Market
    names c2)."""
    for sub in ("query", gallery):
        (root / sub).mkdir(parents=True)
    for p in (1, 2, 3):
        for k in range(3):
            shutil.copy(_first(items, p, 0, k), root / "query" / f"{p:04d}_c1s1_{p * 10 + k:06d}_00.jpg")
            shutil.copy(_first(items, p, 1, k), root / gallery / f"{p:04d}_c2s1_{p * 10 + k:06d}_00.jpg")
    return root


def test_eval_reid_max_frames_keeps_every_query(val_items, tmp_path) -> None:
    root = _market_qg(val_items, tmp_path / "root", "bounding_box_test")
    out = tmp_path / "ev"
    assert main(["eval-reid", "--folder", str(root), "--checkpoint", "imagenet", "--max-frames", "1", "--out",
                 str(out), "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["retrieval"]["num_queries"] == 9 and m["retrieval"]["num_gallery"] == 3  # 9 queries, 1 per sequence


# --- 3. query/ + gallery/ layouts ------------------------------------------------------------------------------------


def test_query_gallery_of_market_names_is_a_market_split(val_items, tmp_path) -> None:
    root = _market_qg(val_items, tmp_path / "qg", "gallery")
    assert folder_format(root, "auto") == "market"
    items = folder_test_items(root, "market")
    assert sorted({(it.split, it.camid) for it in items}) == [("gallery", 2), ("query", 1)]  # cameras from names
    assert sum(it.split == "query" for it in items) == 9 and sum(it.split == "gallery" for it in items) == 9


def test_query_gallery_of_other_names_is_two_cameras_with_that_split(val_items, tmp_path) -> None:
    root = tmp_path / "qg"
    for c, sub in enumerate(("query", "gallery")):
        (root / sub).mkdir(parents=True)
        for p in range(4):
            for k in range(2):
                shutil.copy(_first(val_items, p, c, k), root / sub / f"{p:03d}_{k}.jpg")
    assert folder_format(root, "auto") == "cameras"
    items = folder_test_items(root, "cameras")
    assert {it.split for it in items if it.path.parent.name == "query"} == {"query"}
    assert {it.split for it in items if it.path.parent.name == "gallery"} == {"gallery"}
    m = evaluate_items(items, _mean_std, EvalConfig(), "market", progress=False)
    assert m["retrieval"]["num_queries"] == 8 and m["retrieval"]["num_gallery"] == 8  # every query/ image


def test_a_query_folder_of_other_names_alone_says_what_fits(val_items, tmp_path, capsys) -> None:
    root = tmp_path / "q"
    (root / "query").mkdir(parents=True)
    for p in range(3):
        shutil.copy(_first(val_items, p, 0), root / "query" / f"{p:03d}_45.jpg")
    with pytest.raises(DataError, match=r"000_45\.jpg: file name is not Market-1501 style.*--format cameras"):
        folder_format(root, "auto")
    assert main(["eval-reid", "--folder", str(root), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


# --- 4. the video protocol keeps an official split -----------------------------------------------------------------


def test_video_retrieval_on_a_split_queries_the_gallery_split_only() -> None:
    """Hand-computed (unit vectors at angles): person 1 query in camera 1 at 0 degrees; gallery: person 1 in camera 2
    at 20 degrees, person 2 in camera 2 at 10 degrees, and a gallery sequence of person 2 in camera 1 at 80 degrees.
    Only the one query/ sequence queries; its ranking: person 2 (10), person 1 (20), person 2 (80): rank-1 0, AP 1/2.
    Without the split every sequence would query (3 valid queries)."""
    ang = np.radians([0.0, 20.0, 10.0, 80.0])
    feats = np.stack([np.cos(ang), np.sin(ang)], 1).astype(np.float32)
    items = [CropItem(Path("q.jpg"), 1, 1, "s", 0, "query"), CropItem(Path("a.jpg"), 1, 2, "s", 0, "gallery"),
             CropItem(Path("b.jpg"), 2, 2, "s", 0, "gallery"), CropItem(Path("c.jpg"), 2, 1, "s", 0, "gallery")]
    mean = lambda x: x.mean(0)  # noqa: E731
    v = video_retrieval(items, feats, mean)
    assert v["video_to_video"]["num_queries"] == 1 and v["video_to_video"]["rank1"] == 0.0
    assert v["video_to_video"]["mAP"] == pytest.approx(50.0)
    assert v["num_query_sequences"] == 1 and v["num_gallery_sequences"] == 3
    plain = [CropItem(it.path, it.pid, it.camid, it.seq, it.frame, "test") for it in items]
    assert video_retrieval(plain, feats, mean)["video_to_video"]["num_queries"] == 4
    with pytest.raises(DataError, match="cannot keep an official"):
        video_halves_retrieval(items, feats, mean)


def test_eval_reid_video_halves_on_a_split_is_a_one_line_error(val_items, tmp_path, capsys) -> None:
    root = _market_qg(val_items, tmp_path / "root", "bounding_box_test")
    assert main(["eval-reid", "--folder", str(root), "--video", "on", "--video-protocol", "halves", "--out",
                 str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--video-protocol all" in err[0]


# --- 5. camera folders that differ only by case ----------------------------------------------------------------------


def test_camera_folders_differing_by_case_are_two_cameras(val_items, tmp_path) -> None:
    root = tmp_path / "case"
    for c, cam in enumerate(("A", "a")):
        (root / cam).mkdir(parents=True)
        for p in range(3):
            shutil.copy(_first(val_items, p, c), root / cam / f"{p:03d}_0.jpg")
    items = load_camera_folders(root, "test")
    assert sorted({(it.camid, it.seq) for it in items}) == [(0, "A"), (1, "a")]
    assert sorted(it.pid for it in items) == [1, 1, 2, 2, 3, 3]  # each person seen by both cameras


# --- 6. train --data, make-triplets gt from another sequence, private outputs ----------------------------------------


def _train_config(tmp_path: Path, datasets: str) -> Path:
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"name: t\nmodel: {{name: mobilenetv2_pool}}\ndata:\n  datasets: {datasets}\n"
                   f"  val_split: null\nepochs: 1\noutput_dir: {tmp_path / 'out'}\n", encoding="utf-8")
    return cfg


def test_train_data_keeps_the_configs_format(tmp_path) -> None:
    from pipeline.commands.train import data_override
    from pipeline.core.configio import load_config
    from reid_models.config import TrainConfig

    cfg = load_config(TrainConfig, _train_config(tmp_path, "[{path: a, format: market}, {path: b, format: market}]"))
    assert data_override(cfg, ["x", "y"], Path("t.yaml")) == [{"path": "x", "format": "market"},
                                                              {"path": "y", "format": "market"}]
    cfg = load_config(TrainConfig, _train_config(tmp_path, "[a]"))  # data.format's default: index
    assert data_override(cfg, ["x"], Path("t.yaml")) == [{"path": "x", "format": "index"}]
    mixed = load_config(TrainConfig, _train_config(tmp_path, "[{path: a, format: market}, {path: b, format: cuhk03}]"))
    with pytest.raises(ConfigError, match="different formats .cuhk03, market."):
        data_override(mixed, ["x"], Path("t.yaml"))


def test_train_cli_data_reads_a_market_folder_as_market(val_items, tmp_path, capsys) -> None:
    """Before the fix the override lost ``format: market`` and read the folder as a make-triplets dataset
    ("index.csv: no such file"); now the Market reader names the file that is not a Market name."""
    folder = _copy_flat(val_items[:4], tmp_path / "cuhk")[0].path.parent
    cfg = _train_config(tmp_path, "[{path: elsewhere, format: market}]")
    assert main(["train", "--config", str(cfg), "--data", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "index.csv" not in err and "not Market-1501 style" in err


def _seq(tmp_path: Path, pets: Path, gt_rows: str) -> Path:
    seq = tmp_path / "othergt"
    (seq / "gt").mkdir(parents=True)
    (seq / "img1").mkdir()
    shutil.copy(pets / "seqinfo.ini", seq / "seqinfo.ini")
    (seq / "gt" / "gt.txt").write_text(gt_rows, encoding="utf-8")
    return seq


def test_make_triplets_warns_about_a_gt_that_spans_a_fraction_of_the_sequence(pets_dir, tmp_path) -> None:
    from pipeline.commands.make_triplets import gt_span_warning
    from pipeline.mot import MOTSequence

    pets = MOTSequence(pets_dir)
    assert gt_span_warning(pets, pets.gt().frame) is None  # a real sequence's own gt
    seq = MOTSequence(_seq(tmp_path, pets_dir, "".join(f"{f},1,10,10,50,100,1,-1,-1,-1\n" for f in range(1, 72))))
    w = gt_span_warning(seq, seq.gt().frame)
    assert w == (f"warning: {seq.gt_path()}: gt spans frames 1..71 only, of the sequence's 1..795: is it this "
                 "sequence's gt; seqinfo.ini names it 'PETS09-S2L1', the folder is 'othergt'?")
    assert gt_span_warning(seq, seq.gt().frame, max_frame=100) is None  # 71 of the 100 frames asked for


def test_make_triplets_cli_prints_the_gt_warning(pets_dir, tmp_path, capsys) -> None:
    """TUD-Campus-length gt (frames 1..71) on PETS09-S2L1 frames: rc 0, one warning line on stderr."""
    seq = tmp_path / "pets71"
    seq.mkdir()
    shutil.copy(pets_dir / "seqinfo.ini", seq / "seqinfo.ini")
    os.symlink(pets_dir / "img1", seq / "img1")
    gt = np.loadtxt(pets_dir / "gt" / "gt.txt", delimiter=",", ndmin=2)
    (seq / "gt").mkdir()
    np.savetxt(seq / "gt" / "gt.txt", gt[(gt[:, 0] <= 71) & (gt[:, 0] % 10 == 1)], delimiter=",", fmt="%g")
    out = tmp_path / "trip"
    assert main(["make-triplets", str(seq), "--out", str(out), "--no-progress", "--pairs", "5", "--triplets", "5"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "gt spans" in line]
    assert len(err) == 1 and "gt spans frames 1..71 only, of the sequence's 1..795" in err[0]
    # make-triplets writes person crops: private
    crop = next((out / "crops").rglob("*.jpg"))
    assert stat.S_IMODE(crop.stat().st_mode) == 0o600 and stat.S_IMODE((out / "index.csv").stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


def test_embed_outputs_are_private_and_the_umask_is_restored(val_items, tmp_path) -> None:
    folder = _copy_flat(val_items[:3], tmp_path / "flat")[0].path.parent
    before = os.umask(0o022)
    try:
        assert main(["embed", "--folder", str(folder), "--model", "imagenet", "--out", str(tmp_path / "e" / "x"),
                     "--no-progress"]) == 0
        assert os.umask(0o022) == 0o022  # restored
    finally:
        os.umask(before)
    for name in ("x.npy", "x.files.txt"):
        assert stat.S_IMODE((tmp_path / "e" / name).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "e").stat().st_mode) == 0o700
