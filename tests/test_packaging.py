"""A non-editable install works outside the checkout: the wheel carries what the commands load at run time.

The wheel is built from a copy of the package folders (the checkout is left untouched), installed into a
folder of its own and imported from another working folder, so nothing can come from the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipeline.core.paths import REPO_ROOT

#: files the commands read at run time (tracker presets, the default re-id model, the console's pages)
NEEDED = ["trackers/presets/yolo.yaml", "trackers/presets/default.yaml", "trackers/presets/acf.yaml",
          "reid_models/weights/default.pt", "reid_models/weights/default.json",
          "pipeline/web/templates/base.html", "pipeline/web/static/console.js"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools")
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, src / name)
    for pkg in ("pipeline", "trackers", "reid_models"):
        shutil.copytree(REPO_ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (whl,) = out.glob("reid_pipeline-*.whl")
    return whl


def test_wheel_carries_runtime_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [n for n in NEEDED if n not in names]
    assert not missing, f"not in the wheel: {missing}"
    assert not any(n.startswith(("tests/", "tools/", "runs/")) for n in names)


def test_installed_wheel_finds_presets_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target",
                           str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    code = ("import trackers.presets as p, trackers.config as c, pipeline.camconfig as cc; "
            "print(p.__file__); print(c.load_tracker_config('yolo').lifecycle.max_age); "
            "print(cc.CamsConfig.model_validate({'cameras': [{'id': 'a', 'source': '0'}]}).tracker_config()"
            ".lifecycle.max_age)")
    env = {**os.environ, "PYTHONPATH": str(target)}
    work = tmp_path / "elsewhere"
    work.mkdir()
    proc = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    where, max_age, cams_max_age = proc.stdout.split()
    assert Path(where).is_relative_to(target)  # imported from the install, not the checkout
    assert max_age == cams_max_age == "120"  # trackers/presets/yolo.yaml


def test_setup_refuses_a_python_older_than_requires_python_at_once(tmp_path):
    """s44 probe_install 3: with Python 3.10 setup installed torch and then backtracked through every ultralytics
    release; it now stops first, in one line naming the interpreter and the version it needs."""
    fake = tmp_path / "python3.10"
    fake.write_text("#!/bin/sh\ncase \"$*\" in *platform*) echo 3.10.12;; *) exit 1;; esac\n")
    fake.chmod(0o755)
    proc = subprocess.run(["bash", str(REPO_ROOT / "tools" / "setup.sh")], env={**os.environ, "PYTHON": str(fake)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"{fake} is Python 3.10.12; reid-pipeline needs Python >= 3.11" in proc.stderr
    assert "[setup] installing" not in proc.stdout + proc.stderr
