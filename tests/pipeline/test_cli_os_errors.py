"""An output path the file system refuses (a file where the outputs folder goes) is one line and exit 2,
not a traceback; the store keeps the run's row with status 'failed'. And ``--version``."""

from __future__ import annotations

import sqlite3

import pytest
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


def test_version_names_the_package_and_the_shipped_model(capsys):
    """``--version``: the installed version and the shipped re-id model's version (the hash the store records)."""
    import json
    from importlib.metadata import version

    from reid_models.encoder import DEFAULT_CHECKPOINT

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    meta = json.loads(DEFAULT_CHECKPOINT.with_suffix(".json").read_text())
    assert capsys.readouterr().out.strip() == (f"reid-pipeline {version('reid-pipeline')}; re-id default "
                                               f"{meta['sha256_12']} ({meta['model_name']})")
