"""executor.kind: ray on a real two-node Ray cluster on this machine (head + one worker node, ray start).

One module-scoped split (4 virtual PETS cameras, the ``grid`` layout, the first 24 source frames) is run
once by the local runner (the reference) and then on the cluster:

* a Ray batch run gives byte-identical MOT files (local and global ids), events.jsonl and store rows
  (tracklets, assignments, identities, embeddings, crops, events), with cameras on both nodes, with two
  ``step`` calls in flight per camera actor (``executor.inflight``, the default; the call log shows the actor
  was sent its next call before the matcher took the previous reply) and with one;
* a Ray run during which a camera actor's process is killed (SIGKILL), then the matcher actor's, then
  the whole worker node: every camera and the matcher come back (the killed camera in a new process,
  the worker node's cameras on the head) and the outputs are still identical to the reference, so no
  tracklet was lost or duplicated;
* a live run (the same files, not paced: the sources drop what the actors cannot keep up with) ends
  normally with every frame a camera delivered consumed by the matcher.

Detection runs per camera in the actors and batched over cameras in the local loop; on this data the
ONNX detector gives the same boxes either way (the comparison is exact). The cluster is started and
stopped by the module fixture (also on failure); every run is bounded by a timeout.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main

pytestmark = pytest.mark.ray
N_FRAMES = 24
CAMS = ("bottom_left", "bottom_right", "top_left", "top_right")
RUN_TIMEOUT_S = 420


@pytest.fixture(scope="module")
def split(pets_dir: Path, tmp_path_factory) -> Path:
    from pipeline.virtual_cameras import build_virtual_cameras

    out = tmp_path_factory.mktemp("pets_grid")
    build_virtual_cameras(pets_dir, out, layout="grid", gap=0.1, frame_range=(1, N_FRAMES), progress=False)
    return out


def _config(split: Path, tmp: Path, shared: Path, tag: str, executor: dict) -> Path:
    data = {
        "mode": "batch",
        "run_key": f"grid-{tag}",
        "cameras": [{"id": c, "source": str(split / c / "video.mp4")} for c in CAMS],
        "detector": {"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx"), "imgsz": 320},
        "encoder": {"threads": 1},
        "tracklets": {"min_length": 3, "partial_every_s": 0.5},
        "store": {"path": str(tmp / f"{tag}.sqlite"), "checkpoint_every_s": 0},
        "outputs": {"dir": str(tmp / f"out_{tag}")},
        "matching": {"auto_threshold": {"warmup": "threshold"}},
        "executor": executor,
    }
    p = tmp / f"{tag}.yaml"
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p


def _ray_executor(address: str, inflight: int = 2) -> dict:
    # 1 logical CPU per camera: SPREAD puts two cameras on each node; the head (5 CPUs) holds all four
    # and the matcher once the worker node (2 CPUs) is gone. Small chunks and snapshots: faults land mid-run;
    # two calls of 2 frames in flight fill queue_frames.
    return {"kind": "ray", "address": address, "camera_num_cpus": 1, "matcher_num_cpus": 0.5,
            "chunk_frames": 2, "queue_frames": 4, "inflight": inflight, "snapshot_every": 4, "max_restarts": 4}


@pytest.fixture(scope="module")
def reference(split: Path, shared: Path, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("local")
    assert main(["run", str(_config(split, tmp, shared, "local", {"kind": "local"})), "--no-progress"]) == 0
    return tmp


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from pipeline.testing.ray_cluster import LoopbackRayCluster

    c = LoopbackRayCluster(log_dir=tmp_path_factory.mktemp("ray_logs"))
    # the test's own driver (fault injection) needs the token in its environment before ray is imported
    saved = {k: os.environ.get(k) for k in c.env}
    os.environ.update(c.env)
    try:
        c.start(head_cpus=5)
        c.add_node(cpus=2)
        yield c
    finally:
        c.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _outputs(tmp: Path, tag: str) -> dict[str, bytes]:
    out = tmp / f"out_{tag}"
    files = [out / "events.jsonl"] + [out / sub / f"{c}.txt" for sub in ("mot", "mot_global") for c in CAMS]
    return {str(p.relative_to(out)): p.read_bytes() for p in files}


def _store(tmp: Path, tag: str) -> dict[str, list]:
    """Every row a run writes, without wall-clock columns (assigned_at) and the run's own key."""
    queries = {
        "tracklets": "SELECT tracklet_id, cam_id, track_id, start_frame, end_frame, start_time, end_time, n_frames,"
                     " frames, boxes_tlwh, frame_embeddings FROM tracklets ORDER BY tracklet_id",
        "assignments": "SELECT tracklet_id, global_id, distance, probability FROM assignments ORDER BY tracklet_id",
        "identities": "SELECT global_id, prototype, first_seen, last_seen, first_cam, last_cam FROM identities"
                      " ORDER BY global_id",
        "embeddings": "SELECT tracklet_id, vector FROM embeddings ORDER BY tracklet_id",
        "crops": "SELECT tracklet_id, frame, jpeg FROM crops ORDER BY tracklet_id, frame",
        "events": "SELECT kind, global_id, cam_id, t, payload_json FROM events ORDER BY event_id",
    }
    with sqlite3.connect(tmp / f"{tag}.sqlite") as conn:
        return {name: conn.execute(sql).fetchall() for name, sql in queries.items()}


def _assert_same_as_reference(reference: Path, tmp: Path, tag: str) -> None:
    ref, got = _outputs(reference, "local"), _outputs(tmp, tag)
    for name in ref:
        assert got[name] == ref[name], f"{name} differs from the local run"
    ref_rows, rows = _store(reference, "local"), _store(tmp, tag)
    assert ref_rows["tracklets"] and ref_rows["crops"]  # the comparison compares something
    for table in ref_rows:
        assert rows[table] == ref_rows[table], f"store table {table} differs from the local run"


def _start_run(cfg: Path, cluster, log: Path) -> subprocess.Popen:
    env = {**os.environ, **cluster.env}
    return subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(cfg), "--no-progress"],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)


def _finish(proc: subprocess.Popen, log: Path) -> None:
    try:
        rc = proc.wait(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"the Ray run took over {RUN_TIMEOUT_S} s; log: {log.read_text()[-3000:]}")
    assert rc == 0, log.read_text()[-4000:]


def _executor_json(tmp: Path, tag: str) -> dict:
    import json

    return json.loads((tmp / f"out_{tag}" / "ray_executor.json").read_text())


def _overlapping_calls(ex: dict) -> int:
    """Step calls sent before the matcher had taken the reply to the camera's previous call (the log of
    ray_executor.json, each camera's calls in order)."""
    f = ex["step_call_fields"]
    sub, rec = f.index("submitted"), f.index("received")
    return sum(b[sub] < a[rec] for calls in ex["step_calls"].values() for a, b in zip(calls, calls[1:]))


@pytest.mark.parametrize("inflight", [2, 1])
def test_ray_batch_run_equals_local_run(split, shared, reference, cluster, tmp_path, inflight):
    tag = f"ray-inflight{inflight}"
    cfg = _config(split, tmp_path, shared, tag, _ray_executor(cluster.address, inflight))
    log = tmp_path / "run.log"
    _finish(_start_run(cfg, cluster, log), log)
    _assert_same_as_reference(reference, tmp_path, tag)
    ex = _executor_json(tmp_path, tag)
    assert len({c["node_id"] for c in ex["cameras_started"].values()}) == 2  # cameras on both nodes
    assert ex["matcher_restarts"] == 0
    # every frame came through the logged calls: 24 per camera (the last call, which finds the camera done,
    # may return none); with 2 in flight the next call was sent while the previous one ran, with 1 never
    frames_at = ex["step_call_fields"].index("frames")
    assert all(sum(c[frames_at] for c in calls) == N_FRAMES for calls in ex["step_calls"].values())
    assert (_overlapping_calls(ex) > 0) == (inflight > 1)
    # executor.size_threads: each camera actor ran its detector and encoder on its 1 CPU's worth of threads
    # (the local reference ran them on the library defaults: the outputs above are the same)
    assert all((c["threads"]["detector"], c["threads"]["encoder"], c["threads"]["sized"]) == (1, 1, True)
               for c in ex["cameras_started"].values())


class _Cluster:
    """The test's own driver connection, to find the run's named actors and their processes."""

    def __init__(self, cluster, run_key: str) -> None:
        import ray  # the cluster fixture set its token in the environment before this import

        ray.init(address=cluster.address, namespace=f"reid-{run_key}", logging_level="ERROR", log_to_driver=False)
        self.ray = ray

    def actor(self, name: str, timeout: float = 120.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.ray.get_actor(name)
            except ValueError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def wait_progress(self, proc: subprocess.Popen, log: Path, frames: int, what: str,
                      timeout: float = 240.0) -> None:
        """Until the matcher has consumed ``frames`` frames of every camera (the run must still be going)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"the run ended before {what}; log: {log.read_text()[-4000:]}"
            try:
                done = self.ray.get(self.actor("matcher").progress.remote(), timeout=10)
                if done and min(done.values()) >= frames:
                    return
            except Exception:  # noqa: BLE001 - the matcher may be restarting
                pass
            time.sleep(0.3)
        pytest.fail(f"the run did not reach frame {frames} before {what} within {timeout:.0f} s")

    def pid(self, name: str) -> tuple[int, str]:
        info = self.ray.get(self.actor(name).info.remote(), timeout=60)
        return info["pid"], info["node_id"]

    def close(self) -> None:
        self.ray.shutdown()


def test_ray_run_survives_killed_camera_matcher_and_node(split, shared, reference, cluster, tmp_path):
    cfg = _config(split, tmp_path, shared, "faults", _ray_executor(cluster.address))
    log = tmp_path / "run.log"
    proc = _start_run(cfg, cluster, log)
    drv = _Cluster(cluster, "grid-faults")
    try:
        drv.wait_progress(proc, log, 4, "the camera kill")
        cam_pid, _ = drv.pid("camera-top_left")
        os.kill(cam_pid, 9)  # the camera actor's worker process
        drv.wait_progress(proc, log, 10, "the matcher kill")
        matcher_pid, head_node = drv.pid("matcher")
        os.kill(matcher_pid, 9)
        drv.wait_progress(proc, log, 14, "the node stop")
        cluster.stop_node(1)  # the worker node: raylet, object store and its actors' processes
        _finish(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        drv.close()
    _assert_same_as_reference(reference, tmp_path, "faults")  # nothing lost, nothing twice
    ex = _executor_json(tmp_path, "faults")
    assert ex["matcher_restarts"] == 1
    assert ex["cameras_ended"]["top_left"]["pid"] != cam_pid
    moved = [c for c, s in ex["cameras_started"].items() if s["node_id"] != head_node]
    assert moved, "no camera started on the worker node"
    # the worker node's cameras moved
    assert all(ex["cameras_ended"][c].get("node_id") == head_node for c in CAMS), (head_node, ex["cameras_ended"])


def test_ray_live_run_consumes_what_the_cameras_deliver(split, shared, cluster, tmp_path):
    """mode live, the 4 camera files unpaced: each source drops the frames its actor cannot keep up with; the run
    ends when the files do, and every frame a source delivered was processed and consumed (2 calls in flight)."""
    import json

    cfg = _config(split, tmp_path, shared, "live", _ray_executor(cluster.address))
    data = yaml.safe_load(cfg.read_text())
    cfg.write_text(yaml.safe_dump({**data, "mode": "live"}), encoding="utf-8")
    log = tmp_path / "run.log"
    _finish(_start_run(cfg, cluster, log), log)
    summary = json.loads((tmp_path / "out_live" / "stage_times.json").read_text())
    for cam in CAMS:
        health = summary["cameras"][cam]
        assert health["state"] == "finished" and health["frames"] == N_FRAMES, health
        assert summary["timing"]["frames_per_cam"][cam] == health["delivered"] >= 1, (health, summary["timing"])
        assert health["delivered"] + health["drops"] <= N_FRAMES
