"""A SIGTERM on a Ray batch run (``executor.address: local``) pauses it, and the same command continues it to the
uninterrupted run's outputs, as with the local executor.

The run's driver is this process (``pipeline.cli.main``, the signal handler on the main thread); a helper thread
watches the matcher actor's progress and sends this process SIGTERM after a few frames (not a multiple of
``snapshot_every``: the matcher runs on to the next iteration where every camera's snapshot is current and pauses
there). While the private cluster runs, the helper also checks it is on loopback (the node address and the GCS's
listening socket). The reference is the local executor (a Ray run gives byte-identical outputs,
tests/pipeline/test_ray_cluster.py). Two Ray starts: about 60-90 s on a 2-core machine.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main

pytestmark = pytest.mark.ray
N_FRAMES = 30
CAMS = ("left", "right")
SNAPSHOT_EVERY = 8
STOP_AFTER = 3  # frames per camera consumed before the SIGTERM


@pytest.fixture(scope="module")
def split(pets_dir: Path, tmp_path_factory) -> Path:
    from pipeline.virtual_cameras import build_virtual_cameras

    out = tmp_path_factory.mktemp("pets_two")
    build_virtual_cameras(pets_dir, out, layout="two-regions", frame_range=(1, N_FRAMES), progress=False)
    return out


def _config(split: Path, tmp: Path, shared: Path, tag: str, executor: dict) -> Path:
    data = {
        "mode": "batch",
        "run_key": f"stop-{tag}",
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


def _outputs(tmp: Path, tag: str) -> dict[str, bytes]:
    out = tmp / f"out_{tag}"
    files = [out / "events.jsonl"] + [out / sub / f"{c}.txt" for sub in ("mot", "mot_global") for c in CAMS]
    return {str(p.relative_to(out)): p.read_bytes() for p in files}


def _listening_on(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp* writes them) of the sockets listening on ``port``."""
    found = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.rsplit(":", 1)
            if state == "0A" and int(p, 16) == port:
                found.add(addr)
    return found


LOOPBACK_HEX = {"0100007F", "0000000000000000FFFF00000100007F"}  # 127.0.0.1, ::ffff:127.0.0.1


class _Stopper(threading.Thread):
    """Sends this process SIGTERM once the matcher consumed STOP_AFTER frames of every camera."""

    def __init__(self, run_key: str) -> None:
        super().__init__(daemon=True)
        self.run_key = run_key
        self.sent_at: dict | None = None
        self.bound: set[str] = set()
        self.node_ip = ""
        self.error: str | None = None

    def run(self) -> None:
        import ray

        deadline = time.monotonic() + 300
        try:
            while time.monotonic() < deadline:
                if ray.is_initialized():
                    try:
                        matcher = ray.get_actor("matcher", namespace=f"reid-{self.run_key}")
                        done = ray.get(matcher.progress.remote(), timeout=10)
                    except Exception:  # noqa: BLE001 - not created yet
                        done = None
                    if done and min(done.values()) >= STOP_AFTER:
                        node = ray._private.worker.global_worker.node
                        self.node_ip = node.node_ip_address
                        self.bound = _listening_on(int(node.gcs_address.rsplit(":", 1)[1]))
                        self.sent_at = done
                        os.kill(os.getpid(), signal.SIGTERM)
                        return
                time.sleep(0.05)
            self.error = "the run never reached the stop frame"
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = repr(exc)


def test_sigterm_pauses_a_ray_run_and_the_same_command_continues_it(split, shared, tmp_path):
    pytest.importorskip("ray")
    ref = _config(split, tmp_path, shared, "local", {"kind": "local"})
    assert main(["run", str(ref), "--no-progress"]) == 0

    ex = {"kind": "ray", "address": "local", "camera_num_cpus": 1, "matcher_num_cpus": 0.5, "chunk_frames": 1,
          "queue_frames": 2, "inflight": 1, "snapshot_every": SNAPSHOT_EVERY, "max_restarts": 0}
    cfg = _config(split, tmp_path, shared, "ray", ex)
    tmp_before = set(Path("/tmp").glob("reidray*"))
    token_before = os.environ.get("RAY_AUTH_TOKEN")
    stopper = _Stopper("stop-ray")
    stopper.start()
    rc = main(["run", str(cfg), "--no-progress"])
    stopper.join(timeout=5)
    assert stopper.error is None, stopper.error
    assert rc == 130  # interrupted ...
    with sqlite3.connect(tmp_path / "ray.sqlite") as conn:  # ... and paused: the open tracks are in the checkpoint
        (paused,) = conn.execute("SELECT count(*) FROM run_checkpoints").fetchone()
    assert paused == 1
    # the private cluster was on loopback only; its temp dir and token are gone with it
    assert stopper.node_ip == "127.0.0.1"
    assert stopper.bound and stopper.bound <= LOOPBACK_HEX, stopper.bound
    assert set(Path("/tmp").glob("reidray*")) <= tmp_before
    assert os.environ.get("RAY_AUTH_TOKEN") == token_before

    assert main(["run", str(cfg), "--no-progress"]) == 0  # the same command continues it
    got, want = _outputs(tmp_path, "ray"), _outputs(tmp_path, "local")
    for name in want:
        assert got[name] == want[name], f"{name} differs from the uninterrupted run"
