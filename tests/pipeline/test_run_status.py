"""How a run ended is recorded in the store (issue 11 item 7c), and an unusable camera input
fails before the store is touched (item 7f).

Real runs of the CLI on PETS09-S2L1 image folders (real detector, encoder and store):
a run that reads all of its input is 'complete', one cut by ``--max-frames`` is
'frame_limit', one that crashes is 'failed', and a ``reid-pipeline run`` process
stopped by SIGTERM mid-run is 'interrupted'; each gets its ``finished`` time. A camera
whose folder is empty stops the run with one line naming the folder before the
store file exists, and before a run row is added to an existing store.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main
from pipeline.store import IdentityStore

REPO = Path(__file__).resolve().parents[2]


def _config(tmp: Path, shared: Path, run_key: str, sources: dict[str, Path], out: Path | None = None) -> Path:
    data = {
        "mode": "batch",
        "run_key": run_key,
        "cameras": [{"id": cam, "source": str(src)} for cam, src in sources.items()],
        "detector": {"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx")},
        "tracklets": {"min_length": 3, "partial_every_s": 0.5},
        "store": {"path": str(tmp / "ids.sqlite")},
        "outputs": {"dir": str(out or tmp / f"out_{run_key}"), "video": False, "timeline_png": False},
    }
    p = tmp / f"{run_key}.yaml"
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p


def _runs(db: Path) -> dict[str, tuple]:
    """run_key -> (status, started, finished), read without disturbing a writer."""
    conn = sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT run_key, status, started, finished FROM runs").fetchall()
    finally:
        conn.close()
    return {k: (s, a, b) for k, s, a, b in rows}


@pytest.fixture
def few_frames(pets_dir: Path, tmp_path: Path) -> Path:
    """The first 6 PETS frames (with seqinfo.ini for the frame rate)."""
    folder = tmp_path / "few" / "img1"
    folder.mkdir(parents=True)
    for p in sorted((pets_dir / "img1").iterdir())[:6]:
        shutil.copy(p, folder / p.name)
    shutil.copy(pets_dir / "seqinfo.ini", folder.parent / "seqinfo.ini")
    return folder


def test_complete_frame_limit_and_failed_runs_record_their_end(few_frames: Path, pets_dir: Path, tmp_path: Path,
                                                               shared: Path, capsys) -> None:
    db = tmp_path / "ids.sqlite"
    t0 = time.time()
    assert main(["run", str(_config(tmp_path, shared, "all", {"pets": few_frames})), "--no-progress"]) == 0
    assert main(["run", str(_config(tmp_path, shared, "cut", {"pets": pets_dir / "img1"})), "--no-progress",
                 "--max-frames", "3"]) == 0
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the output folder should go\n")
    # fails after its run row was written: one line naming the path, exit 2
    assert main(["run", str(_config(tmp_path, shared, "crash", {"pets": few_frames}, out=blocker)),
                 "--no-progress"]) == 2
    runs = _runs(db)
    assert {k: v[0] for k, v in runs.items()} == {"all": "complete", "cut": "frame_limit", "crash": "failed"}
    for status, started, finished in runs.values():
        assert finished is not None and t0 <= started <= finished <= time.time()
    capsys.readouterr()


def test_sigterm_mid_run_records_interrupted(pets_dir: Path, tmp_path: Path, shared: Path) -> None:
    db = tmp_path / "ids.sqlite"
    cfg = _config(tmp_path, shared, "long", {"pets": pets_dir / "img1"})  # 795 frames: minutes on CPU
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(cfg), "--no-progress"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO),
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        # mid-run = the frame loop has committed tracklets (a generous deadline, not a speed target)
        deadline = time.monotonic() + 400
        while proc.poll() is None and time.monotonic() < deadline:
            if db.exists() and _tracklet_count(db) > 0:
                break
            time.sleep(0.5)
        assert proc.poll() is None, (tmp_path / "run.log").read_text()
        assert _tracklet_count(db) > 0
        assert _runs(db)["long"][0] == "running"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=300) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
    status, started, finished = _runs(db)["long"]
    assert status == "interrupted" and finished is not None and started <= finished
    assert '"interrupted": true' in (tmp_path / "run.log").read_text()
    with IdentityStore(db) as store:  # the writer lock went with the process
        assert store.integrity_check() == "ok"


def _tracklet_count(db: Path) -> int:
    conn = sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM tracklets").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        conn.close()


def test_empty_image_folder_fails_before_the_store_is_written(pets_dir: Path, tmp_path: Path, shared: Path) -> None:
    empty = tmp_path / "empty_cam"
    empty.mkdir()
    db = tmp_path / "ids.sqlite"
    cfg = _config(tmp_path, shared, "e", {"good": pets_dir / "img1", "bad": empty})
    res = subprocess.run([sys.executable, "-m", "pipeline", "run", str(cfg), "--no-progress"], cwd=str(REPO),
                         env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"reid-pipeline: error: {empty}: "), res.stderr
    assert "no images" in lines[0]
    assert not db.exists() and not Path(f"{db}.lock").exists()
    # an existing store gets no run row for the failed start
    with IdentityStore(db) as store:
        store.end_run(store.begin_run("earlier"), "complete")
    res = subprocess.run([sys.executable, "-m", "pipeline", "run", str(cfg), "--no-progress"], cwd=str(REPO),
                         env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert _runs(db).keys() == {"earlier"}
