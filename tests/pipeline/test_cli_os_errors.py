"""An output path the file system refuses (a file where the outputs folder goes) is one line and exit 2,
not a traceback; the store keeps the run's row with status 'failed'."""

from __future__ import annotations

import sqlite3

import yaml

from pipeline.cli import main


def test_outputs_dir_that_is_a_file_is_one_line(pets_dir, shared, tmp_path, capsys):
    blocker = tmp_path / "outputs"
    blocker.write_text("a file, not a folder\n")
    cfg = tmp_path / "cams.yaml"
    cfg.write_text(yaml.safe_dump({
        "mode": "batch",
        "cameras": [{"id": "cam0", "source": str(pets_dir / "img1"), "fps": 7}],
        "detector": {"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx")},
        "store": {"path": str(tmp_path / "ids.sqlite")},
        "outputs": {"dir": str(blocker)},
    }), encoding="utf-8")
    assert main(["run", str(cfg), "--no-progress", "--max-frames", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reid-pipeline: error:") and "\n" not in err and str(blocker) in err
    with sqlite3.connect(tmp_path / "ids.sqlite") as c:
        assert c.execute("SELECT status FROM runs").fetchall() == [("failed",)]
