"""``export`` / ``embed`` / ``eval-reid`` on broken or mismatched models: one line, and nothing written that a
script could take for a good result (the s42 probe's findings)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.cli import main
from reid_models.checkpoint import save_checkpoint
from reid_models.factory import build_model


@pytest.fixture(scope="module")
def crops(shared: Path, tmp_path_factory) -> Path:
    """Six real Market-1501 training crops."""
    src = sorted((shared / "data" / "reid" / "Market-1501" / "bounding_box_train").glob("*.jpg"))[:6]
    d = tmp_path_factory.mktemp("crops")
    for p in src:
        (d / p.name).symlink_to(p)
    return d


def _small(path: Path, nan: bool = False) -> Path:
    torch.manual_seed(0)
    model = build_model("cnn3_siamese", input_size=(64, 32), widths=(4, 8, 8), embedding_dim=16).eval()
    if nan:  # what a run that trained to NaN leaves
        with torch.no_grad():
            model.fc.weight.fill_(float("nan"))
    save_checkpoint(path, model, {}, {}, epoch=1)
    return path


def test_a_file_onnxruntime_cannot_load_is_one_line(shared, crops, tmp_path, capsys):
    bad = tmp_path / "garbage.onnx"
    bad.write_text("not a model\n")
    val = shared / "data" / "reid" / "CUHK03" / "detected" / "val"  # a folder eval-reid accepts: the model is what fails
    for argv in (["embed", "--model", str(bad), "--folder", str(crops), "--out", str(tmp_path / "e.npy")],
                 ["eval-reid", "--checkpoint", str(bad), "--folder", str(val), "--out", str(tmp_path / "ev")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("reid-pipeline: error: ") and "not an ONNX model onnxruntime can load" in err
    assert not (tmp_path / "e.npy").exists()


def test_embed_refuses_non_finite_embeddings(crops, tmp_path, capsys):
    ckpt = _small(tmp_path / "nan.pt", nan=True)
    assert main(["embed", "--model", str(ckpt), "--folder", str(crops), "--out", str(tmp_path / "e.npy")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "non-finite (NaN/inf) embeddings for 6 of 6 images" in err and "nothing written" in err
    assert not (tmp_path / "e.npy").exists() and not (tmp_path / "e.files.txt").exists()


def test_export_writes_the_onnx_only_when_the_parity_check_passes(crops, tmp_path, capsys):
    """A passing export writes out.onnx and no temporary file; a failing parity check (tolerance below any real
    difference, or a NaN model) leaves no .onnx at all; option mismatches are refused before any work."""
    ckpt = _small(tmp_path / "ok.pt")
    good = tmp_path / "ok.onnx"
    assert main(["export", str(ckpt), "--out", str(good), "--crops", str(crops)]) == 0
    assert good.is_file() and sorted(p.name for p in tmp_path.iterdir() if "part" in p.name or p.suffix == ".tmp") == []
    strict = tmp_path / "strict.onnx"
    assert main(["export", str(ckpt), "--out", str(strict), "--crops", str(crops), "--tolerance", "0"]) == 2
    assert "not written" in capsys.readouterr().err and not strict.exists()
    nan = tmp_path / "nan.onnx"
    assert main(["export", str(_small(tmp_path / "nan.pt", nan=True)), "--out", str(nan), "--crops", str(crops)]) == 2
    assert "not finite" in capsys.readouterr().err and not nan.exists()
    assert main(["export", str(ckpt), "--out", str(tmp_path / "x.onnx"), "--half"]) == 2
    assert "--half: only with --slim" in capsys.readouterr().err
    assert main(["export", str(ckpt), "--slim", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "name it .pt" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("argv, message", [
    (["make-triplets", "SEQ", "--out", "OUT", "--size", "0", "0"], "argument --size: expected a positive whole number, got 0"),
    (["make-triplets", "SEQ", "--out", "OUT", "--stride", "0"], "argument --stride: expected a positive whole number, got 0"),
    (["virtual-cameras", "SEQ", "--out", "OUT", "--min-visible", "50"],
     "argument --min-visible: expected a fraction in (0, 1] (0.5 = half), got 50"),
])
def test_counts_and_fractions_out_of_range_are_usage_errors(shared, tmp_path, capsys, argv, message):
    pets = shared / "data" / "MOT15" / "train" / "PETS09-S2L1"
    argv = [str(pets) if a == "SEQ" else str(tmp_path / "out") if a == "OUT" else a for a in argv]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_make_triplets_warns_when_k_leaves_nothing_to_pair(shared, tmp_path, capsys):
    """40 PETS frames: with the default --k the splits have pairs and triplets and nothing is warned; with --k
    beyond the clip every split with identities has none, and each says so."""
    pets = shared / "data" / "MOT15" / "train" / "PETS09-S2L1"
    assert main(["make-triplets", str(pets), "--out", str(tmp_path / "k10"), "--max-frame", "40", "--no-progress"]) == 0
    assert "warning:" not in capsys.readouterr().out
    assert main(["make-triplets", str(pets), "--out", str(tmp_path / "big"), "--max-frame", "40", "--k", "100000",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "warning: split train has 2 identities but 0 triplets" in out
    assert "warning: split test has 3 identities but 0 pairs" in out
