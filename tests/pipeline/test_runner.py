"""End-to-end batch runs on a short 2-camera virtual split of PETS09-S2L1 (real detector, encoder, store).

One module-scoped split (first 14 source frames, two regions with a blind strip); the
pipeline runs through the CLI like a user would. Checks: outputs exist and parse,
the store holds one row per stored tracklet, a re-run under the same run key adds
no rows and reproduces the global ids, and a restart (new run key, later clock)
continues the global id numbering from the reloaded gallery.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main

N_FRAMES = 14


@pytest.fixture(scope="module")
def split(pets_dir: Path, tmp_path_factory) -> Path:
    from pipeline.virtual_cameras import build_virtual_cameras

    out = tmp_path_factory.mktemp("pets_split")
    build_virtual_cameras(pets_dir, out, layout="two-regions", gap=0.1, frame_range=(1, N_FRAMES), progress=False)
    return out


def _config(split: Path, tmp: Path, shared: Path, run_key: str, offset: float = 0.0, **extra) -> Path:
    data = {
        "mode": "batch",
        "run_key": run_key,
        "cameras": [
            {"id": c, "source": str(split / c / "video.mp4"), "time_offset_s": offset} for c in ("left", "right")
        ],
        "detector": {"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx")},
        "tracklets": {"min_length": 3, "partial_every_s": 0.5},
        "store": {"path": str(tmp / "ids.sqlite")},
        "outputs": {"dir": str(tmp / f"out_{run_key}"), "video": True},
        # 14 frames never complete a calibration: the fixed warm-up threshold lets the restart link
        "matching": {"auto_threshold": {"warmup": "threshold"}},
        **extra,
    }
    p = tmp / f"{run_key}.yaml"
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p


def _rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as c:
        return c.execute(sql).fetchall()


def _assignments(db: Path, run_key: str) -> dict[tuple[str, int, int], int]:
    rows = _rows(db, "SELECT t.cam_id, t.track_id, t.start_frame, a.global_id FROM tracklets t"
                     " JOIN assignments a USING (tracklet_id) JOIN runs r USING (run_id)"
                     f" WHERE r.run_key = '{run_key}'")
    return {(c, t, f): g for c, t, f, g in rows}


def test_batch_run_outputs_rerun_and_restart(split, tmp_path, shared, capsys):
    cfg = _config(split, tmp_path, shared, "r1")
    assert main(["run", str(cfg), "--no-progress"]) == 0
    out = tmp_path / "out_r1"
    db = tmp_path / "ids.sqlite"

    # per-camera MOT txt with local ids for every processed frame range, global-id rows per tracklet
    for cam in ("left", "right"):
        rows = [line.split(",") for line in (out / "mot" / f"{cam}.txt").read_text().splitlines()]
        assert rows and all(len(r) == 10 and 1 <= int(r[0]) <= N_FRAMES for r in rows)
        assert (out / f"timeline_{cam}.png").stat().st_size > 1000
        assert (out / "video" / f"{cam}.mp4").stat().st_size > 1000
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    kinds = {e["kind"] for e in events}
    assert "appear" in kinds and "leave" in kinds and kinds <= {"appear", "leave", "handover"}
    assert {e["cam_id"] for e in events} == {"left", "right"}
    times = json.loads((out / "stage_times.json").read_text())
    assert times["timing"]["frames_per_cam"] == {"left": N_FRAMES, "right": N_FRAMES}

    first = _assignments(db, "r1")
    assert first, "no tracklet was stored"
    n_tracklets = _rows(db, "SELECT COUNT(*) FROM tracklets")[0][0]
    n_events = _rows(db, "SELECT COUNT(*) FROM events")[0][0]
    assert n_tracklets == len(first)  # every stored tracklet is assigned once
    global_rows = 0
    for cam in ("left", "right"):
        keys = [tuple(line.split(",")[:2]) for line in (out / "mot_global" / f"{cam}.txt").read_text().splitlines()]
        assert len(keys) == len(set(keys))  # one box per (frame, global id) in a camera
        global_rows += len(keys)
    assert global_rows > 0
    # every appearing identity in the event log is an identity in the store
    gids = {g for (g,) in _rows(db, "SELECT global_id FROM identities")}
    assert {e["global_id"] for e in events} <= gids

    # idempotent re-run: same run key -> no new rows, same ids
    assert main(["run", str(cfg), "--no-progress"]) == 0
    assert _rows(db, "SELECT COUNT(*) FROM tracklets")[0][0] == n_tracklets
    assert _rows(db, "SELECT COUNT(*) FROM events")[0][0] == n_events
    assert _rows(db, "SELECT COUNT(*) FROM runs")[0][0] == 1
    assert _assignments(db, "r1") == first

    # restart: a new run on the same store, 100 s later on the common clock
    cfg2 = _config(split, tmp_path, shared, "r2", offset=100.0)
    assert main(["run", str(cfg2), "--no-progress"]) == 0
    second = _assignments(db, "r2")
    old_max = max(first.values())
    new_ids = {g for g in second.values() if g not in set(first.values())}
    assert all(g > old_max for g in new_ids)  # numbering continues, never reuses
    assert set(second.values()) & set(first.values()), "the reloaded gallery matched nothing"
    capsys.readouterr()


def test_store_that_is_not_sqlite_is_one_line_error(split, tmp_path, shared, capsys):
    cfg = _config(split, tmp_path, shared, "bad")
    (tmp_path / "ids.sqlite").write_text("this is not a database\n")
    assert main(["run", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reid-pipeline: error:") and "not an SQLite database" in err and "\n" not in err


def test_sigterm_with_on_stop_finish_flushes_open_tracklets(split, tmp_path, shared):
    import os
    import signal

    from pipeline.camconfig import load_cams_config
    from pipeline.runner.loop import PipelineRunner

    class SigtermAfter6(PipelineRunner):
        def _process(self, frames, sinks):
            super()._process(frames, sinks)
            if self.cams["left"].frames == 6:
                os.kill(os.getpid(), signal.SIGTERM)  # handled: sets the stop flag

    cfg = load_cams_config(_config(split, tmp_path, shared, "stop", tracklets={"min_length": 1, "partial_every_s": None},
                                   store={"path": str(tmp_path / "ids.sqlite"), "on_stop": "finish"}))
    before = signal.getsignal(signal.SIGTERM)
    summary = SigtermAfter6(cfg, progress=False).run()
    assert signal.getsignal(signal.SIGTERM) == before  # handler restored
    assert summary["interrupted"] is True
    assert summary["timing"]["frames_per_cam"]["left"] == 6
    # no partials were configured: every stored tracklet is an open track flushed at the stop
    out = tmp_path / "out_stop"
    local_ids = {(c, int(line.split(",")[1])) for c in ("left", "right")
                 for line in (out / "mot" / f"{c}.txt").read_text().splitlines()}
    stored = set(_rows(tmp_path / "ids.sqlite", "SELECT cam_id, track_id FROM tracklets"))
    assert local_ids and stored == local_ids
    assert max(f for (f,) in _rows(tmp_path / "ids.sqlite", "SELECT end_frame FROM tracklets")) <= 6
    assert _rows(tmp_path / "ids.sqlite", "SELECT COUNT(*) FROM run_checkpoints") == [(0,)]  # a re-run starts over
