"""Re-runs and the store stay consistent: what a run's results depend on (settings, input content) is recorded
with it and checked before its run key is reused; a completed run is not rewritten; an interrupted virtual-camera
build is rebuilt; recluster on a copy of a store leaves the original run's outputs alone; an ROI outside the frame
is said. Real data: a 2-camera virtual split of the first PETS09-S2L1 frames, the ONNX detector, the default
encoder (pipeline/runner/run_record.py, pipeline/runner/loop.py, pipeline/virtual_cameras.py, pipeline/demo.py,
pipeline/commands/recluster.py, pipeline/runner/roi.py)."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import sys
from pathlib import Path

import cv2
import pytest
import yaml

from pipeline.cli import main
from pipeline.runner.roi import roi_outside_frame
from pipeline.runner.run_record import RunRecord, changes, input_fingerprint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from video_frames import read_frames  # noqa: E402

N_FRAMES = 12
CAMS = ("left", "right")


@pytest.fixture(scope="module")
def split(pets_dir: Path, tmp_path_factory) -> Path:
    from pipeline.virtual_cameras import build_virtual_cameras

    out = tmp_path_factory.mktemp("pets_rerun")
    build_virtual_cameras(pets_dir, out, layout="two-regions", gap=0.1, frame_range=(1, N_FRAMES), progress=False)
    return out


@pytest.fixture(scope="module")
def other_split(pets_dir: Path, tmp_path_factory) -> Path:
    """Other footage for the same cameras: later frames of the sequence."""
    from pipeline.virtual_cameras import build_virtual_cameras

    out = tmp_path_factory.mktemp("pets_rerun_other")
    build_virtual_cameras(pets_dir, out, layout="two-regions", gap=0.1, frame_range=(301, 300 + N_FRAMES),
                          progress=False)
    return out


def _config(root: Path, shared: Path, sources: dict[str, Path], run_key: str | None = "k", threshold: float = 0.05,
            **extra) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    data = {
        "mode": "batch",
        "cameras": [{"id": c, "source": str(s)} for c, s in sources.items()],
        "detector": {"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx"), "threads": 1},
        "encoder": {"threads": 1},
        "tracklets": {"min_length": 3, "partial_every_s": 0.5},
        "matching": {"threshold": threshold, "auto_threshold": None},
        "store": {"path": str(root / "ids.sqlite")},
        "outputs": {"dir": str(root / "out"), "timeline_png": False},
        **extra,
    }
    if run_key is not None:
        data["run_key"] = run_key
    p = root / f"cams_{threshold}.yaml"
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p


def _videos(split: Path) -> dict[str, Path]:
    return {c: split / c / "video.mp4" for c in CAMS}


def _files(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder``: its bytes and modification time (a rewrite with the same bytes shows too)."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _rows(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


def _store_rows(db: Path) -> dict[str, list[tuple]]:
    return {
        "runs": _rows(db, "SELECT run_id, run_key, started, finished, resumed, status, record_json FROM runs"),
        "tracklets": _rows(db, "SELECT * FROM tracklets ORDER BY tracklet_id"),
        "assignments": _rows(db, "SELECT * FROM assignments ORDER BY tracklet_id"),
        "identities": _rows(db, "SELECT * FROM identities ORDER BY global_id"),
        "events": _rows(db, "SELECT * FROM events ORDER BY event_id"),
    }


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


# ------------------------------------------------------------------ item 1 + 5: run key reuse, completed re-run
def test_fixed_run_key_refuses_changed_settings_and_a_complete_rerun_rewrites_nothing(split, tmp_path, shared,
                                                                                        capsys):
    root = tmp_path / "rk"
    first = _config(root, shared, _videos(split), threshold=0.05)
    assert main(["run", str(first), "--no-progress"]) == 0
    db, out = root / "ids.sqlite", root / "out"
    (record_json,), = _rows(db, "SELECT record_json FROM runs")
    record = json.loads(record_json)
    assert record["settings"]["matching.threshold"] == 0.05
    assert set(record["inputs"]) == set(CAMS)
    assert record["inputs"]["left"]["size"] == _videos(split)["left"].stat().st_size
    assert "store.path" not in record["settings"] and "outputs.dir" not in record["settings"]
    assert any(json.loads(line).get("new") is True for line in (out / "events.jsonl").read_text().splitlines())
    outputs, rows = _files(out), _store_rows(db)
    capsys.readouterr()

    # the same config again: complete, so nothing is re-run and nothing rewritten (events keep "new": true)
    assert main(["run", str(first), "--no-progress"]) == 0
    assert "already complete" in capsys.readouterr().out
    assert _files(out) == outputs
    assert _store_rows(db) == rows

    # the same run_key with another matching threshold: refused in one line naming the key and the change
    second = _config(root, shared, _videos(split), threshold=0.6)
    assert main(["run", str(second), "--no-progress"]) == 2
    line = _error_line(capsys)
    assert "run_key 'k'" in line and "matching.threshold 0.05 -> 0.6" in line and "new run_key" in line
    assert _files(out) == outputs and _store_rows(db) == rows  # nothing written

    # a setting that does not change results (threads) keeps the run: complete, nothing rewritten
    threads = _config(root, shared, _videos(split), threshold=0.05, encoder={"threads": 2})
    assert main(["run", str(threads), "--no-progress"]) == 0
    assert _files(out) == outputs and _store_rows(db) == rows
    capsys.readouterr()


def test_frame_limited_run_is_continued_not_skipped(split, tmp_path, shared, capsys):
    root = tmp_path / "fl"
    cfg = _config(root, shared, _videos(split))
    assert main(["run", str(cfg), "--no-progress", "--max-frames", "4"]) == 0
    assert _rows(root / "ids.sqlite", "SELECT status FROM runs") == [("frame_limit",)]
    assert main(["run", str(cfg), "--no-progress"]) == 0
    assert _rows(root / "ids.sqlite", "SELECT status, resumed FROM runs") == [("complete", 1)]
    summary = json.loads((root / "out" / "stage_times.json").read_text())
    assert summary["timing"]["frames_per_cam"] == {c: N_FRAMES for c in CAMS}
    capsys.readouterr()


# ------------------------------------------------------------------ item 2: a recording replaced at the same path
def test_replaced_recording_is_never_merged_with_the_old_run(split, other_split, tmp_path, shared, capsys):
    cams = tmp_path / "cams"
    for c in CAMS:
        (cams / c).mkdir(parents=True)
        shutil.copy(split / c / "video.mp4", cams / c / "video.mp4")
    sources = {c: cams / c / "video.mp4" for c in CAMS}

    # no run_key: the replaced recording makes a new run, whose tracklets are those of a fresh store
    root = tmp_path / "default_key"
    cfg = _config(root, shared, sources, run_key=None)
    assert main(["run", str(cfg), "--no-progress"]) == 0
    shutil.copy(other_split / "left" / "video.mp4", sources["left"])
    assert main(["run", str(cfg), "--no-progress"]) == 0
    db = root / "ids.sqlite"
    keys = [k for (k,) in _rows(db, "SELECT run_key FROM runs ORDER BY run_id")]
    assert len(keys) == 2 and keys[0] != keys[1] and all(k.startswith("batch-") for k in keys)
    fresh = tmp_path / "fresh"
    assert main(["run", str(_config(fresh, shared, sources, run_key=None)), "--no-progress"]) == 0
    sql = ("SELECT cam_id, track_id, start_frame, end_frame, n_frames, boxes_tlwh FROM tracklets WHERE run_id = ?"
           " ORDER BY cam_id, track_id, start_frame")
    assert _rows(db, sql, (2,)) == _rows(fresh / "ids.sqlite", sql, (1,))
    assert _rows(db, sql, (2,)) != _rows(db, sql, (1,))

    # an explicit run_key whose camera input changed: refused, naming the camera
    root = tmp_path / "fixed_key"
    cfg = _config(root, shared, sources, run_key="daily")
    assert main(["run", str(cfg), "--no-progress"]) == 0
    before = _store_rows(root / "ids.sqlite")
    capsys.readouterr()
    shutil.copy(split / "right" / "video.mp4", sources["left"])  # other content at the same path
    assert main(["run", str(cfg), "--no-progress"]) == 2
    line = _error_line(capsys)
    assert "run_key 'daily'" in line and "camera left's input changed" in line
    assert _store_rows(root / "ids.sqlite") == before


def test_input_fingerprint_is_content_not_mtime(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"x" * 100)
    b.write_bytes(b"x" * 99 + b"y")
    fa = input_fingerprint(str(a))
    assert fa["size"] == 100
    a.touch()  # a new modification time, the same content
    assert input_fingerprint(str(a)) == fa
    assert input_fingerprint(str(b)) != fa and input_fingerprint(str(b))["size"] == 100
    assert input_fingerprint("rtsp://10.0.0.1/stream") is None
    old, new = RunRecord({"matching.threshold": 0.05, "x": 1}, {"a": fa}), RunRecord({"matching.threshold": 0.6},
                                                                                     {"a": input_fingerprint(str(b))})
    assert changes(old, new) == ["matching.threshold 0.05 -> 0.6",
                                 "camera a's input changed (same size, other content)"]
    assert changes(old, RunRecord(old.settings, {})) == []  # a run recorded without fingerprints: settings only


# ------------------------------------------------------------------ item 3: an interrupted demo build

def test_interrupted_virtual_camera_build_is_rebuilt(pets_dir, tmp_path, shared, monkeypatch, caplog):
    from pipeline.camconfig import load_cams_config
    from pipeline.demo import prepare_demo
    from pipeline.mot import MOTSequence
    from pipeline.virtual_cameras import build_virtual_cameras, is_complete

    out = tmp_path / "cams"
    real = MOTSequence.iter_frames

    def interrupted(self, start, end):
        for i, item in enumerate(real(self, start, end)):
            if i == 5:
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(MOTSequence, "iter_frames", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_virtual_cameras(pets_dir, out, frame_range=(1, 10), progress=False)
    monkeypatch.setattr(MOTSequence, "iter_frames", real)
    assert not is_complete(out) and not (out / "left" / "video.mp4").exists()  # no full-named half video

    cfg_path = tmp_path / "demo.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "cameras": [{"id": c, "source": str(out / c / "video.mp4")} for c in CAMS],
        "detector": {"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx")},
        "store": {"path": str(tmp_path / "ids.sqlite")}, "outputs": {"dir": str(tmp_path / "o")},
        "demo": {"sequence": str(pets_dir), "out": str(out), "options": {"frames": [1, 10]}},
    }), encoding="utf-8")
    cfg = load_cams_config(cfg_path)
    assert prepare_demo(cfg, progress=False) is True
    assert is_complete(out) and read_frames(out / "left" / "video.mp4") == 10

    # a folder half-built by an older program: full-named videos, no identities.json -> rebuilt, one line
    truncated = out / "left" / "video.mp4"
    build_virtual_cameras(pets_dir, tmp_path / "short", frame_range=(1, 4), progress=False)
    shutil.copy(tmp_path / "short" / "left" / "video.mp4", truncated)
    (out / "identities.json").unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pipeline.demo"):
        assert prepare_demo(cfg, progress=False) is True
    lines = [r.getMessage() for r in caplog.records if r.name == "pipeline.demo"]
    assert len(lines) == 1 and "incomplete" in lines[0] and "rebuilding" in lines[0]
    assert is_complete(out) and read_frames(truncated) == 10
    assert prepare_demo(cfg, progress=False) is False  # complete now: nothing to do


# ------------------------------------------------------------------ item 4: recluster on a copy of a store
def test_recluster_on_a_store_copy_leaves_the_original_outputs(split, tmp_path, shared, capsys):
    root = tmp_path / "orig"
    cfg = _config(root, shared, _videos(split))
    assert main(["run", str(cfg), "--no-progress"]) == 0
    original = _files(root / "out")
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(root / "ids.sqlite", copy / "ids.sqlite")
    with sqlite3.connect(copy / "ids.sqlite") as c:  # as a backup taken while the run was interrupted
        c.execute("UPDATE runs SET status = 'interrupted'")
    capsys.readouterr()

    assert main(["recluster", "--store", str(copy / "ids.sqlite"), "--threshold", "0.5"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert any(line.startswith("warning: run k ended 'interrupted'") for line in err), err
    assert any(line.startswith("note:") and "--out" in line and str(root / "ids.sqlite") in line for line in err), err
    assert _files(root / "out") == original  # the original run's mot_global/ and events untouched

    # with --out the copy's outputs go where asked
    assert main(["recluster", "--store", str(copy / "ids.sqlite"), "--out", str(copy / "out")]) == 0
    assert sorted(p.name for p in (copy / "out" / "mot_global").iterdir()) == [f"{c}.txt" for c in CAMS]
    assert _files(root / "out") == original
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: run k ended 'interrupted'"), err  # no note: --out given

    # on the original store (complete) the run's own outputs.dir is still the default, with no warning
    assert main(["recluster", "--store", str(root / "ids.sqlite")]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == "" and str(root / "out" / "mot_global" / "left.txt") in captured.out


# ------------------------------------------------------------------ item 6: an ROI outside the frame
def test_roi_outside_the_frame_is_warned_once_per_camera(split, tmp_path, shared, caplog):
    width = cv2.VideoCapture(str(split / "left" / "video.mp4")).get(cv2.CAP_PROP_FRAME_WIDTH)
    assert roi_outside_frame([2000, 2000, 3000, 3000], 768, 576)
    assert not roi_outside_frame([700, 500, 3000, 3000], 768, 576)
    assert roi_outside_frame([[800, 0], [900, 0], [900, 100]], 768, 576)
    assert not roi_outside_frame([[0, 0], [10, 0], [10, 10]], 768, 576)
    root = tmp_path / "roi"
    cfg = _config(root, shared, _videos(split), run_key="roi")
    data = yaml.safe_load(cfg.read_text())
    data["cameras"][0]["roi"] = [2000, 2000, 3000, 3000]
    cfg.write_text(yaml.safe_dump(data), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="pipeline.runner.camera_stage"):
        assert main(["run", str(cfg), "--no-progress", "--max-frames", "4"]) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "pipeline.runner.camera_stage"]
    assert lines == [f"camera left: roi [2000, 2000, 3000, 3000] lies entirely outside its {int(width)}x576 frames,"
                     " so every detection is filtered out (was it drawn for another resolution?)"]
