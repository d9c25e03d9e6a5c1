"""A batch run killed with SIGKILL, or stopped (SIGINT / SIGTERM, ``store.on_stop: resume``), and re-run resumes
from its last checkpoint and writes exactly what an uninterrupted run writes: the same MOT files (local and
global ids), events, and store rows.

Real data and models: a 2-camera virtual split of the first 24 PETS09-S2L1 frames, the ONNX detector, the
default encoder. The killed run is a real process that sends itself SIGKILL in the middle of an iteration, after
its store writes of that iteration (which the kill must roll back) and before that iteration's checkpoint.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main
from pipeline.runner.checkpoint import loads_restricted

N_FRAMES = 24
KILL_AFTER = 15  # frames per camera processed when the process kills itself
CAMS = ("left", "right")

KILLER = """
import os, signal, sys
from pipeline.camconfig import load_cams_config
from pipeline.runner.loop import PipelineRunner

class KilledMidIteration(PipelineRunner):
    def _process(self, frames, sinks):
        super()._process(frames, sinks)  # this iteration's rows are written, its checkpoint is not
        if self.cams["left"].frames == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)

KilledMidIteration(load_cams_config(sys.argv[1]), progress=False).run()
"""


@pytest.fixture(scope="module")
def split(pets_dir: Path, tmp_path_factory) -> Path:
    from pipeline.virtual_cameras import build_virtual_cameras

    out = tmp_path_factory.mktemp("pets_resume")
    build_virtual_cameras(pets_dir, out, layout="two-regions", gap=0.1, frame_range=(1, N_FRAMES), progress=False)
    return out


def _config(split: Path, root: Path, shared: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    data = {
        "mode": "batch",
        "run_key": "resume-test",
        "cameras": [{"id": c, "source": str(split / c / "video.mp4")} for c in CAMS],
        "detector": {"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx")},
        "tracklets": {"min_length": 3, "partial_every_s": 0.5},
        "store": {"path": str(root / "ids.sqlite"), "checkpoint_every_s": 0.0},
        "outputs": {"dir": str(root / "out"), "timeline_png": False},
    }
    p = root / "cams.yaml"
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p


def _store_rows(db: Path) -> dict[str, list[tuple]]:
    """The store's content that must not depend on the interruption (wall-clock columns left out)."""
    with sqlite3.connect(db) as c:
        return {
            "tracklets": c.execute(
                "SELECT t.cam_id, t.track_id, t.start_frame, t.end_frame, t.n_frames, t.frames, t.boxes_tlwh,"
                " a.global_id, a.distance FROM tracklets t JOIN assignments a USING (tracklet_id)"
                " ORDER BY t.cam_id, t.track_id, t.start_frame").fetchall(),
            "identities": c.execute(
                "SELECT global_id, prototype, first_seen, last_seen, first_cam, last_cam FROM identities"
                " ORDER BY global_id").fetchall(),
            "events": c.execute("SELECT kind, global_id, cam_id, t, payload_json FROM events"
                                " ORDER BY kind, global_id, cam_id, t").fetchall(),
            "embeddings": c.execute("SELECT t.cam_id, t.track_id, t.start_frame, e.vector FROM embeddings e"
                                    " JOIN tracklets t USING (tracklet_id) ORDER BY 1, 2, 3").fetchall(),
        }


def _outputs(out: Path) -> dict[str, str]:
    files = [out / sub / f"{c}.txt" for sub in ("mot", "mot_global") for c in CAMS] + [out / "events.jsonl"]
    return {str(p.relative_to(out)): p.read_text(encoding="utf-8") for p in files}


@pytest.fixture(scope="module")
def clean(split, tmp_path_factory, shared) -> Path:
    """The uninterrupted run's folder (store ids.sqlite, outputs out/)."""
    root = tmp_path_factory.mktemp("clean")
    assert main(["run", str(_config(split, root, shared)), "--no-progress"]) == 0
    return root


def test_killed_batch_run_resumes_to_the_uninterrupted_result(split, clean, tmp_path, shared, capsys):
    clean_summary = json.loads((clean / "out" / "stage_times.json").read_text())
    # the summary's final counts are the store's: distinct global ids of the run's tracklets, and those in 2 cameras
    cams_of: dict[int, set] = {}
    for cam, *_, gid, _dist in _store_rows(clean / "ids.sqlite")["tracklets"]:
        cams_of.setdefault(gid, set()).add(cam)
    assert clean_summary["final_identities"] == len(cams_of) > 0
    assert clean_summary["final_multi_camera_identities"] == sum(len(c) > 1 for c in cams_of.values())
    # how the detector ran is on record (s44 probe_speed 13): onnxruntime fp32 here, the class defaults
    assert {k: clean_summary["detector"][k] for k in ("backend", "precision", "ran_precision")} == {
        "backend": "onnxruntime", "precision": "fp32", "ran_precision": "fp32"}

    cfg = _config(split, tmp_path / "killed", shared)
    proc = subprocess.run([sys.executable, "-c", KILLER, str(cfg), str(KILL_AFTER)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    db = tmp_path / "killed" / "ids.sqlite"
    with sqlite3.connect(db) as c:
        (frames_json, blob), = c.execute("SELECT frames_json, state FROM run_checkpoints").fetchall()
        partial = c.execute("SELECT COUNT(*) FROM tracklets").fetchone()[0]
    # the last committed checkpoint is the iteration before the kill; the killed iteration rolled back
    assert json.loads(frames_json) == {c: KILL_AFTER - 1 for c in CAMS}
    assert loads_restricted(blob).cameras["left"].frames == KILL_AFTER - 1
    assert 0 < partial < len(_store_rows(clean / "ids.sqlite")["tracklets"])

    assert main(["run", str(cfg), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "killed" / "out" / "stage_times.json").read_text())
    assert summary["resumed_from_frame"] == {c: KILL_AFTER - 1 for c in CAMS}  # nothing before it re-processed
    assert summary["timing"]["frames_per_cam"] == clean_summary["timing"]["frames_per_cam"]
    assert summary["tracklets_stored"] == clean_summary["tracklets_stored"]

    assert _outputs(tmp_path / "killed" / "out") == _outputs(clean / "out")
    resumed, uninterrupted = _store_rows(db), _store_rows(clean / "ids.sqlite")
    for table in uninterrupted:
        assert resumed[table] == uninterrupted[table], table
    with sqlite3.connect(db) as c:  # a completed run drops its checkpoint
        assert c.execute("SELECT COUNT(*) FROM run_checkpoints").fetchone()[0] == 0
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    capsys.readouterr()


def test_stopped_batch_run_pauses_and_resumes_to_the_uninterrupted_result(split, clean, tmp_path, shared, capsys):
    """A stop (what SIGINT / SIGTERM do) keeps the open tracks in a checkpoint instead of closing them early."""
    from pipeline.camconfig import load_cams_config
    from pipeline.runner.loop import PipelineRunner

    class StopAfter(PipelineRunner):
        def _process(self, frames, sinks):
            super()._process(frames, sinks)
            if self.cams["left"].frames == KILL_AFTER:
                self.request_stop()

    cfg = _config(split, tmp_path / "stopped", shared)
    summary = StopAfter(load_cams_config(cfg), progress=False).run()
    assert summary["interrupted"] is True and summary["paused_at_frame"] == {c: KILL_AFTER for c in CAMS}
    assert summary["timing"]["frames_per_cam"] == {c: KILL_AFTER for c in CAMS}
    db = tmp_path / "stopped" / "ids.sqlite"
    with sqlite3.connect(db) as c:
        (frames_json, blob), = c.execute("SELECT frames_json, state FROM run_checkpoints").fetchall()
        assert c.execute("SELECT status FROM runs").fetchall() == [("interrupted",)]
    assert json.loads(frames_json) == {c: KILL_AFTER for c in CAMS}
    open_tracks = {cid: cam.builder.oldest_open_frame() for cid, cam in loads_restricted(blob).cameras.items()}
    assert any(v is not None for v in open_tracks.values())  # tracks were open at the stop: kept, not closed
    # the outputs hold what ended before the stop: every global row is a stored tracklet's, none past the stop
    stored = {(cam, tid) for cam, tid, *_ in _store_rows(db)["tracklets"]}
    out = tmp_path / "stopped" / "out"
    rows = [(cam, line.split(",")) for cam in CAMS for line in (out / "mot_global" / f"{cam}.txt").read_text().splitlines()]
    assert all(int(r[0]) <= KILL_AFTER for _, r in rows)
    assert len(stored) < len(_store_rows(clean / "ids.sqlite")["tracklets"])

    assert main(["run", str(cfg), "--no-progress"]) == 0
    summary = json.loads((out / "stage_times.json").read_text())
    assert summary["resumed_from_frame"] == {c: KILL_AFTER for c in CAMS}
    assert _outputs(out) == _outputs(clean / "out")
    resumed, uninterrupted = _store_rows(db), _store_rows(clean / "ids.sqlite")
    for table in uninterrupted:
        assert resumed[table] == uninterrupted[table], table
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*) FROM run_checkpoints").fetchone()[0] == 0
    capsys.readouterr()


def test_checkpoint_refuses_code(tmp_path):
    """A tampered checkpoint (a pickle that would call os.system or a file-writing class) is refused."""

    class Evil:
        def __reduce__(self):
            return (subprocess.call, (["touch", str(tmp_path / "pwned")],))

    class EvilWriter:
        def __reduce__(self):
            from pipeline.sinks.mot import MOTWriter

            return (MOTWriter, (tmp_path / "clobbered.txt",))

    for payload in (Evil(), EvilWriter()):
        for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):
            with pytest.raises(pickle.UnpicklingError):
                loads_restricted(pickle.dumps(payload, protocol=protocol))
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "clobbered.txt").exists()
