"""Unreadable or unsafe .pt files are one line naming the file (issue 11 item 7d).

torch's own message for a file ``weights_only=True`` refuses advises re-running with
``weights_only=False`` (i.e. executing whatever the file holds); that advice must not reach the
user. Every torch.load site of the project is exercised on random bytes and on a file whose
unpickling would run code (it must not run).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.core.errors import ModelError


class _Touch:
    """Unpickling this calls os.system('touch <marker>')."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _random_pt(tmp_path: Path) -> Path:
    p = tmp_path / "random.pt"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return p


def _evil_pt(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "MARKER"
    p = tmp_path / "evil.pt"
    torch.save({"format": "reid-pipeline/embedding-net/1", "state_dict": _Touch(marker)}, p)
    return p, marker


def _loaders():
    from reid_models.adaptation.weights import model_from_weights
    from reid_models.aggregation import load_lstm
    from reid_models.checkpoint import load_checkpoint, read_checkpoint
    from reid_models.mobilenet_weights import load_imagenet_features

    def imagenet(p: Path):
        import torchvision

        load_imagenet_features(torchvision.models.mobilenet_v2().features, p)

    return {
        "read_checkpoint": (read_checkpoint, "not a valid reid-pipeline checkpoint"),
        "load_checkpoint": (load_checkpoint, "not a valid reid-pipeline checkpoint"),
        "model_from_weights(path)": (model_from_weights, "not a valid reid-pipeline checkpoint"),
        "model_from_weights(bytes)": (lambda p: model_from_weights(p.read_bytes(), str(p)),
                                      "not a valid reid-pipeline checkpoint"),
        "load_lstm": (load_lstm, "not a valid LSTM aggregator checkpoint"),
        "load_imagenet_features": (imagenet, "not valid MobileNetV2 ImageNet weights"),
    }


def _check(msg: str, path: Path, expected: str) -> None:
    assert "\n" not in msg
    assert msg.startswith(f"{path}: {expected}"), msg
    assert "weights_only" not in msg and "trusted source" not in msg


@pytest.mark.parametrize("name", list(_loaders()))
def test_random_bytes_one_line_without_weights_only_advice(tmp_path, name):
    fn, expected = _loaders()[name]
    p = _random_pt(tmp_path)
    with pytest.raises(ModelError) as exc:
        fn(p)
    _check(str(exc.value), p, expected)


@pytest.mark.parametrize("name", list(_loaders()))
def test_code_in_a_checkpoint_is_never_run(tmp_path, name):
    fn, expected = _loaders()[name]
    p, marker = _evil_pt(tmp_path)
    with pytest.raises(ModelError) as exc:
        fn(p)
    _check(str(exc.value), p, expected)
    assert "posix.system" in str(exc.value)  # names what it refused, so the user can judge the file
    assert not marker.exists()


def test_run_with_random_encoder_checkpoint_is_one_line(tmp_path, shared, pets_dir):
    """The reported case: ``encoder.checkpoint: random.pt`` in cams.yaml, through the CLI."""
    p = _random_pt(tmp_path)
    cfg = {
        "cameras": [{"id": "a", "source": str(pets_dir / "img1")}],
        "detector": {"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx")},
        "encoder": {"checkpoint": str(p)},
        "store": {"path": str(tmp_path / "ids.sqlite")},
        "outputs": {"dir": str(tmp_path / "out")},
    }
    (tmp_path / "cams.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "pipeline", "run", str(tmp_path / "cams.yaml"), "--max-frames", "1",
                          "--no-progress"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr[-2000:]
    assert lines[0] == f"reid-pipeline: error: {p}: not a valid reid-pipeline checkpoint " \
                       "(not a torch file, or damaged or truncated)"
