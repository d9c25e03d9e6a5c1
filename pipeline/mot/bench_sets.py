"""The PETS09-S2L1 detection sets and per-detector tracker configs of the tracking benchmarks
(tools/bench_mot.py, tools/sweep_tracker.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline.core.paths import REPO_ROOT as REPO


def yolov5n_sequence(pets: Path, out_root: Path) -> Path:
    """A sequence folder (symlinks to PETS09-S2L1) whose det/yolov5n.txt holds the project's detections."""
    det = REPO / "runs" / "dets" / pets.name / "yolov5n.txt"
    if not det.exists():
        weights = pets.parents[3] / "weights" / "yolov5n.onnx"
        subprocess.run([sys.executable, "-m", "pipeline", "detect", str(pets), "--weights", str(weights),
                        "--out", str(det), "--conf", "0.1"], check=True, cwd=REPO)
    seq_dir = out_root / "seqs" / "yolov5n" / pets.name
    (seq_dir / "det").mkdir(parents=True, exist_ok=True)
    for name in ("seqinfo.ini", "img1", "gt"):
        link = seq_dir / name
        if not link.exists():
            link.symlink_to(pets / name)
    link = seq_dir / "det" / "yolov5n.txt"
    if not link.exists():
        link.symlink_to(det.resolve())
    return seq_dir


CONFIG_BY_DET = {"frcnn": "default", "det": "acf", "yolov5n": "yolo"}


def ours_config(variant: str, det: str):
    """(config, path): the detector's config; ``ours_motion`` with appearance switched off."""
    from trackers.config import load_tracker_config

    cfg_path = REPO / "configs" / "tracker" / f"{CONFIG_BY_DET.get(det, 'default')}.yaml"
    config = load_tracker_config(cfg_path)
    if variant == "ours_motion":
        config = config.model_copy(update={"appearance": config.appearance.model_copy(update={"enabled": False})})
    return config, cfg_path
