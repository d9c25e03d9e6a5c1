"""Ultralytics weights are loaded without running code from the file (issue 11, item 1).

A crafted ``.pt`` whose unpickling calls ``os.system('touch MARKER')`` must not create the
marker and must fail with one ModelError line naming the file, also through ``reid-pipeline run``.
A checkpoint written by Ultralytics itself (``YOLO('yolo11n.yaml').save``, offline) still loads
under the default, restricted loading and gives the same detections as an unrestricted load.
``detector.trust_weights: true`` loads without restrictions and logs a warning. A model
definition (.yaml) outside the Ultralytics package is code too (its ``activation`` is eval'ed).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from pipeline.core.errors import ModelError
from pipeline.detectors import DetectorConfig, build_detector


class _Touch:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "MARKER"
    p = tmp_path / "evil.pt"
    torch.save({"model": _Touch(marker), "train_args": {}}, p)
    return p, marker


@pytest.fixture(scope="module")
def legit(tmp_path_factory) -> Path:
    """A real Ultralytics checkpoint, written by Ultralytics (random weights: nothing is downloaded)."""
    from ultralytics import YOLO

    p = tmp_path_factory.mktemp("legit") / "y11n.pt"
    YOLO("yolo11n.yaml").save(p)
    return p


def _one_line(err: pytest.ExceptionInfo, path: Path) -> str:
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


def test_crafted_pt_runs_no_code_and_is_one_line(evil):
    p, marker = evil
    with pytest.raises(ModelError) as err:
        build_detector(DetectorConfig(kind="ultralytics", weights=str(p), device="cpu"))
    msg = _one_line(err, p)
    assert "posix.system" in msg and "trust_weights" in msg
    assert not marker.exists()


def test_crafted_pt_through_the_cli_is_one_line(evil, pets_dir, tmp_path):
    p, marker = evil
    cfg = {
        "cameras": [{"id": "a", "source": str(pets_dir / "img1")}],
        "detector": {"kind": "ultralytics", "weights": str(p)},
        "store": {"path": str(tmp_path / "ids.sqlite")},
        "outputs": {"dir": str(tmp_path / "out")},
    }
    (tmp_path / "cams.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "pipeline", "run", str(tmp_path / "cams.yaml"), "--max-frames", "1",
                          "--no-progress"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-3000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"reid-pipeline: error: {p}: "), res.stderr[-3000:]
    assert not marker.exists()


def test_damaged_pt_is_one_line(tmp_path):
    p = tmp_path / "junk.pt"
    p.write_bytes(b"\x00not a checkpoint" * 100)
    with pytest.raises(ModelError) as err:
        build_detector(DetectorConfig(kind="ultralytics", weights=str(p), device="cpu"))
    assert "damaged" in _one_line(err, p)


def test_trusted_crafted_pt_warns_and_still_fails_in_one_line(evil, caplog):
    p, marker = evil
    with caplog.at_level(logging.WARNING, logger="pipeline.detectors.ultralytics_yolo"):
        with pytest.raises(ModelError) as err:
            build_detector(DetectorConfig(kind="ultralytics", weights=str(p), device="cpu", trust_weights=True))
    _one_line(err, p)
    assert any("trust_weights" in r.getMessage() and str(p) in r.getMessage() for r in caplog.records)
    assert marker.exists()  # trusted on purpose: the file's code ran, as the warning said it may


def test_ultralytics_checkpoint_loads_restricted_with_same_detections(legit, pets_dir, caplog):
    image = cv2.imread(str(pets_dir / "img1" / "000001.jpg"))
    kw = dict(kind="ultralytics", weights=str(legit), conf=0.0, imgsz=160, device="cpu")
    with caplog.at_level(logging.WARNING, logger="pipeline.detectors.ultralytics_yolo"):
        safe = build_detector(DetectorConfig(**kw)).detect([image])[0]
    assert not any("trust_weights" in r.getMessage() for r in caplog.records)
    with caplog.at_level(logging.WARNING, logger="pipeline.detectors.ultralytics_yolo"):
        trusted = build_detector(DetectorConfig(**kw, trust_weights=True)).detect([image])[0]
    assert any("trust_weights" in r.getMessage() for r in caplog.records)
    assert len(safe) == len(trusted) > 0   # random weights, conf 0: some boxes survive NMS
    np.testing.assert_array_equal([d.tlwh for d in safe], [d.tlwh for d in trusted])


def test_local_model_yaml_needs_trust(tmp_path):
    from ultralytics.utils import ROOT

    marker = tmp_path / "MARKER"
    d = yaml.safe_load((ROOT / "cfg" / "models" / "11" / "yolo11.yaml").read_text(encoding="utf-8"))
    d["activation"] = f"__import__('os').system('touch {marker}')"
    p = tmp_path / "yolo11n.yaml"
    p.write_text(yaml.safe_dump(d), encoding="utf-8")
    with pytest.raises(ModelError) as err:
        build_detector(DetectorConfig(kind="ultralytics", weights=str(p), device="cpu"))
    assert "trust_weights" in _one_line(err, p)
    assert not marker.exists()


def test_local_checkpoint_loads_without_network(legit, tmp_path):
    """Loading a local checkpoint (restricted) opens no connection and resolves no host name.

    (``import ultralytics`` itself probes DNS once for its ONLINE flag; the hook is installed after it.)
    """
    script = f"""
import sys
import ultralytics
events = []
sys.addaudithook(lambda ev, args: events.append((ev, repr(args)[:200])) if ev in ("socket.connect", "socket.getaddrinfo") else None)
from pipeline.detectors import DetectorConfig, build_detector
build_detector(DetectorConfig(kind="ultralytics", weights={str(legit)!r}, imgsz=160, device="cpu"))
print("NET", events)
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1] == "NET []", res.stdout[-2000:]
