"""``reid-pipeline export`` never destroys a file it was not asked to replace, refuses options it would ignore, and
names ``--out`` in its messages (the s44 speed probe's findings 1, 6, 11, 12 and 13)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import torch

from pipeline.cli import main
from pipeline.core.errors import ModelError
from reid_models.checkpoint import read_checkpoint, save_checkpoint, slim_checkpoint
from reid_models.factory import build_model


@pytest.fixture(scope="module")
def crops(shared: Path, tmp_path_factory) -> Path:
    """Six real Market-1501 training crops (the parity check's batch)."""
    src = sorted((shared / "data" / "reid" / "Market-1501" / "bounding_box_train").glob("*.jpg"))[:6]
    d = tmp_path_factory.mktemp("crops")
    for p in src:
        (d / p.name).symlink_to(p)
    return d


def _training_ckpt(path: Path) -> Path:
    """A tiny training checkpoint with what ``train --resume`` needs: optimizer state and heads in ``extra``."""
    torch.manual_seed(0)
    model = build_model("cnn3_siamese", input_size=(64, 32), widths=(4, 8, 8), embedding_dim=16).eval()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 64, 32)).sum().backward()
    opt.step()
    save_checkpoint(path, model, {"note": "train"}, {}, epoch=2, optimizer=opt,
                    extra={"heads": {"id": {"w": torch.ones(3)}}, "history": [1]})
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _err(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_slim_never_overwrites_its_own_checkpoint(tmp_path, capsys):
    """Finding 1: ``--slim --out CKPT`` (also through a link, or ``new/../CKPT``) is refused and the training
    checkpoint keeps its optimizer and heads; so is the library call."""
    ckpt = _training_ckpt(tmp_path / "last.pt")
    before = _digest(ckpt)
    (tmp_path / "link.pt").symlink_to(ckpt)
    for src, out in ((ckpt, ckpt), (tmp_path / "link.pt", ckpt), (ckpt, tmp_path / "new" / ".." / "last.pt")):
        for force in ([], ["--force"]):
            assert main(["export", str(src), "--slim", "--out", str(out), *force]) == 2
            assert "is the checkpoint being exported" in _err(capsys)
    with pytest.raises(ModelError, match="is the checkpoint being slimmed"):
        slim_checkpoint(ckpt, tmp_path / "other" / ".." / "last.pt")
    assert _digest(ckpt) == before
    blob = read_checkpoint(ckpt)
    assert blob["optimizer"] is not None and blob["extra"]["heads"]


def test_an_existing_out_is_replaced_only_with_force(crops, tmp_path, capsys):
    """Finding 1 (milder): an existing ``--out`` (.pt or .onnx) is refused without ``--force``, kept as it was."""
    ckpt = _training_ckpt(tmp_path / "last.pt")
    for name, extra in (("slim.pt", ["--slim"]), ("model.onnx", ["--crops", str(crops)])):
        out = tmp_path / name
        out.write_text("an earlier model\n")
        assert main(["export", str(ckpt), *extra, "--out", str(out)]) == 2
        assert _err(capsys) == f"reid-pipeline: error: --out {out}: already exists; pass --force to replace it, " \
                               "or choose another name"
        assert out.read_text() == "an earlier model\n"
        assert main(["export", str(ckpt), *extra, "--out", str(out), "--force"]) == 0
        assert out.read_bytes() != b"an earlier model\n"
    assert read_checkpoint(tmp_path / "slim.pt")["optimizer"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "model.onnx", "slim.pt"]  # no temporary left


@pytest.mark.parametrize("argv, message", [
    (["--imagenet", "--slim", "--out", "OUT.pt"], "--imagenet with --slim: the ImageNet baseline has no checkpoint"),
    (["--imagenet", "CKPT", "--out", "OUT.onnx"], "--imagenet exports the ImageNet MobileNetV2 baseline and takes no "
                                                  "checkpoint"),
    (["CKPT", "--slim", "--opset", "13", "--out", "OUT.pt"], "--opset: ONNX export options; --slim copies"),
    (["CKPT", "--slim", "--crops", "CKPT", "--tolerance", "1", "--out", "OUT.pt"],
     "--crops, --tolerance: ONNX export options"),
])
def test_conflicting_flags_are_refused_in_one_line(tmp_path, capsys, argv, message):
    """Finding 6: an option the chosen mode would ignore is refused before any work; nothing is written."""
    ckpt = _training_ckpt(tmp_path / "last.pt")
    argv = [str(ckpt) if a == "CKPT" else str(tmp_path / a) if a.startswith("OUT") else a for a in argv]
    assert main(["export", *argv]) == 2
    err = _err(capsys)
    assert err.startswith("reid-pipeline: error: ") and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


@pytest.mark.parametrize("value", ["-1", "nan"])
def test_a_negative_tolerance_is_a_usage_error(tmp_path, capsys, value):
    """Finding 13: ``--tolerance -1`` used to make every export fail its parity check."""
    with pytest.raises(SystemExit) as exc:
        main(["export", "--out", str(tmp_path / "x.onnx"), "--tolerance", value])
    assert exc.value.code == 2 and "argument --tolerance: expected a finite number >= 0" in capsys.readouterr().err


def test_export_messages_name_out_not_a_temporary_file(crops, tmp_path, capsys):
    """Finding 12: an opset onnxruntime cannot load, and a parity failure, are reported against ``--out``."""
    ckpt = _training_ckpt(tmp_path / "last.pt")
    out = tmp_path / "old.onnx"
    assert main(["export", str(ckpt), "--out", str(out), "--opset", "5", "--crops", str(crops)]) == 2
    err = _err(capsys)
    assert err.startswith(f"reid-pipeline: error: {out}: ONNX export failed: ") and "opset version 5" in err
    assert ".tmp" not in err and ".part" not in err
    assert main(["export", str(ckpt), "--out", str(out), "--tolerance", "0", "--crops", str(crops)]) == 2
    assert _err(capsys).startswith(f"reid-pipeline: error: {out}: ONNX output differs from PyTorch by")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/sys is Linux's")
def test_slim_to_an_unwritable_path_is_one_line(tmp_path, capsys):
    """Finding 11: ``torch.save`` reports a write failure as RuntimeError; it was a traceback."""
    ckpt = _training_ckpt(tmp_path / "last.pt")
    assert main(["export", str(ckpt), "--slim", "--out", "/sys/reid_pipeline_probe.pt"]) == 2
    assert _err(capsys).startswith("reid-pipeline: error: /sys/reid_pipeline_probe.pt: cannot write (")
    blocked = tmp_path / "a_file"
    blocked.write_text("x")
    assert main(["export", str(ckpt), "--slim", "--out", str(blocked / "x.pt")]) == 2
    assert _err(capsys).startswith(f"reid-pipeline: error: {blocked / 'x.pt'}: cannot write (")


def test_an_lstm_aggregator_checkpoint_is_named_as_such(tmp_path, capsys):
    """Finding 12: export of an aggregator checkpoint says what the file is."""
    from reid_models.aggregation import LSTMNet, save_lstm

    lstm = tmp_path / "lstm.pt"
    save_lstm(lstm, LSTMNet(16, 8), "v1", {})
    assert main(["export", str(lstm), "--out", str(tmp_path / "x.onnx")]) == 2
    err = _err(capsys)
    assert f"{lstm}: an LSTM aggregator checkpoint (reid-pipeline/lstm-aggregator/1), not an embedding network's" in err
    assert not (tmp_path / "x.onnx").exists()
