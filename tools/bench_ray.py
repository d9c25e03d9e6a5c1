#!/usr/bin/env python3
"""Throughput and steady-state CPU of the Ray executor: 4 virtual PETS cameras, local executor vs Ray on 1 node
vs Ray on 2 nodes.

The ``grid`` split of PETS09-S2L1 (4 cameras) runs with the shipped detector and encoder settings
(configs/cams.example.yaml: OpenVINO fp32 rect 640, 2 streams, OpenVINO encoder) under each executor, one
after the other in this one invocation (so the ratios compare like with like on a shared machine):

    local          executor.kind: local (one process; detection and embedding batched over the 4 cameras)
    ray-1          executor.kind: ray on a one-node loopback cluster (head only): Ray's own overhead, same work
    ray-1-unsized  (with --unsized) ray-1 with executor.size_threads: false (library-default thread pools)
    ray-1-inflight1 (with --inflight1) ray-1 with executor.inflight: 1 (one step call in flight per camera actor)
    ray-2          executor.kind: ray on a head + one worker node (SPREAD: two cameras per node)

Each row runs ``python -m pipeline run --max-frames N`` in a subprocess at two frame counts N1 < N2
(``--frames N1,N2``; the Ray rows on one cluster). CPU seconds are those of every process of the run (the
driver and, for Ray, every process of the cluster: GCS, raylets, workers, actors), from /proc every 0.25 s,
split by role (driver / camera actors / matcher actor / Ray's daemons and idle workers). Reported per row:

* steady-state CPU per camera-frame = (CPU(N2) - CPU(N1)) / (4 (N2 - N1)): the marginal cost of a frame. The
  fixed costs (process and cluster start, 4 actors importing torch and loading models, OpenVINO compiles on the
  first frame, flushing the tracklets at the end) are the same at both counts and cancel; they are reported
  apart as the intercept CPU(N1) - 4 N1 x marginal. Ray's overhead = ray-1 / local - 1 of this (issue 15:
  <= 10 %). For the Ray rows CPU(N) counts from the moment every camera actor had built its models (the
  executor records it in ray_executor.json): the 4 actors' start-up varies by several CPU-seconds from run to
  run on a loaded machine, more than the frames cost, and made the marginal too noisy to read;
* camera-frames/s over the frame loop (the run summary's timing, at N2) and end to end, CPU seconds end to
  end and CPU utilisation = CPU seconds / (end-to-end wall x cores), as before.

Where the frame loop's wall time goes (second table of ``results.md``, ``timeline.png``): each CPU's busy share
over the loop (/proc/stat), each camera actor's step calls as the matcher logged them (the actor busy in a call
vs idle, its CPU seconds per busy second, how long replies waited to be taken), and the camera actors' (Ray) or
the driver's (local) CPU seconds by the CPU affinity their threads had when sampled (OpenVINO pins the threads
it infers on).

Writes ``results.json``, ``results.md``, ``throughput.png`` and ``timeline.png`` under ``--out``::

    nice -n 10 .venv/bin/python tools/bench_ray.py [--frames 10,30] [--unsized] [--out runs/bench_ray]

The two local "nodes" share this machine's cores: ray-2 measures the placement and the cross-node traffic,
not more hardware.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml
from tqdm import tqdm

from pipeline.core.paths import REPO_ROOT, shared_dir
from pipeline.testing.ray_cluster import LoopbackRayCluster, cpu_seconds

CAMS = ("bottom_left", "bottom_right", "top_left", "top_right")
ROLES = ("driver", "camera actors", "matcher actor", "ray daemons")
TICK = os.sysconf("SC_CLK_TCK")


def core_jiffies() -> list[tuple[int, int]]:
    """(busy, total) clock ticks so far of each CPU of the machine (/proc/stat ``cpuN`` lines; busy = all but
    idle and iowait)."""
    out = []
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            v = [int(x) for x in line.split()[1:]]
            out.append((sum(v) - v[3] - v[4], sum(v)))
    return out


def thread_cpu(pid: int) -> dict[int, tuple[float, str]]:
    """{thread id: (CPU seconds so far, CPUs it may run on now: ``Cpus_allowed_list``)} of a process's threads."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            f = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            allowed = next(ln.split()[-1] for ln in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines()
                           if ln.startswith("Cpus_allowed_list"))
        except (OSError, IndexError, ValueError, StopIteration):
            continue
        out[int(tid)] = ((int(f[11]) + int(f[12])) / TICK, allowed)
    return out


def role_of(pid: int, driver: int) -> str | None:
    """The role of a process of the run from its command line (a Ray worker names itself ``ray::<Actor>...``
    once it holds an actor; before that ``ray::IDLE``); None: unknown yet."""
    if pid == driver:
        return "driver"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    if "CameraWorker" in cmd:
        return "camera actors"
    if "MatcherActor" in cmd:
        return "matcher actor"
    return "ray daemons"


class CpuSampler(threading.Thread):
    """Keeps the largest CPU seconds seen per pid of ``pids()`` and each pid's role until stopped (dead
    processes keep theirs; a worker counts as an actor once it has held one)."""

    def __init__(self, pids, driver: int) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.driver = driver
        self.seen: dict[int, float] = {}
        self.base: dict[int, float] = {}
        self.roles: dict[int, str] = {}
        self.series: list[tuple[float, dict[str, float]]] = []  # (time.time(), CPU seconds by role so far)
        self.cores: list[tuple[float, list[tuple[int, int]]]] = []  # (time.time(), per CPU (busy, total) ticks)
        self.threads: dict[tuple[int, int], float] = {}  # (pid, tid) -> CPU seconds at the last sample
        self.by_affinity: dict[str, float] = {}  # camera actors'/driver's CPU seconds by the thread's affinity then
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(0.25)

    def sample(self) -> None:
        for pid, s in cpu_seconds(self.pids()).items():
            self.seen[pid] = max(self.seen.get(pid, 0.0), s)
            if self.roles.get(pid) in (None, "ray daemons"):
                role = role_of(pid, self.driver)
                if role is not None:
                    self.roles[pid] = role
        now = time.time()
        self.series.append((now, self.by_role()))
        self.cores.append((now, core_jiffies()))
        for pid, role in list(self.roles.items()):  # where the inference threads may run (OpenVINO pins them)
            if role not in ("camera actors", "driver"):
                continue
            for tid, (sec, allowed) in thread_cpu(pid).items():
                last = self.threads.get((pid, tid))
                self.threads[(pid, tid)] = sec
                if last is not None and sec > last:
                    key = "any" if "-" in allowed or "," in allowed else f"core {allowed}"
                    self.by_affinity[key] = self.by_affinity.get(key, 0.0) + sec - last

    def core_busy(self, t0: float, t1: float) -> list[float] | None:
        """Each CPU's busy fraction between the samples nearest wall-clock times ``t0`` and ``t1``."""
        inside = [c for c in self.cores if t0 <= c[0] <= t1]
        if len(inside) < 2:
            return None
        (_, a), (_, b) = inside[0], inside[-1]
        return [round((b[i][0] - a[i][0]) / max(1, b[i][1] - a[i][1]), 3) for i in range(len(a))]

    def by_role(self) -> dict[str, float]:
        out = dict.fromkeys(ROLES, 0.0)
        for pid, s in self.seen.items():
            out[self.roles.get(pid, "ray daemons")] += s - self.base.get(pid, 0.0)
        return out

    def before(self, when: float) -> dict[str, float]:
        """CPU seconds by role at the last sample taken before wall-clock time ``when``."""
        got = dict.fromkeys(ROLES, 0.0)
        for t, roles in self.series:
            if t > when:
                break
            got = roles
        return got

    def start(self) -> None:
        self.base = cpu_seconds(self.pids())  # processes already running (an idle cluster) count from now
        super().start()

    def finish(self, driver_cpu: float) -> dict[str, float]:
        """CPU seconds per role; ``driver_cpu``: the driver's own, exact (its rusage at exit)."""
        self.stop_event.set()
        self.join()
        by_role = dict.fromkeys(ROLES, 0.0)
        for pid, s in self.seen.items():
            if pid != self.driver:
                by_role[self.roles.get(pid, "ray daemons")] += s - self.base.get(pid, 0.0)
        by_role["driver"] = driver_cpu
        return by_role


def shipped_models(shared: Path, imgsz: int | None) -> dict:
    """The detector and encoder sections of configs/cams.example.yaml (the shipped defaults), with the
    shared weights path (and ``imgsz`` when given)."""
    data = yaml.safe_load((REPO_ROOT / "configs" / "cams.example.yaml").read_text(encoding="utf-8"))
    det = {**data["detector"], "weights": str(shared / "weights" / "yolov5n.onnx")}
    if imgsz is not None:
        det["imgsz"] = imgsz
    return {"detector": det, "encoder": data["encoder"]}


def write_config(split: Path, run_dir: Path, models: dict, tag: str, executor: dict) -> Path:
    """A fresh run folder (config, store, outputs) for one run."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    data = {
        "mode": "batch",
        "run_key": f"bench-{tag}",
        "cameras": [{"id": c, "source": str(split / c / "video.mp4")} for c in CAMS],
        **models,
        "store": {"path": str(run_dir / "ids.sqlite")},
        "outputs": {"dir": str(run_dir / "out"), "timeline_png": False},
        "executor": executor,
    }
    p = run_dir / "cams.yaml"
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p


def run_once(cfg: Path, frames: int, env: dict, extra_pids) -> dict:
    """One ``pipeline run --max-frames frames`` in a subprocess; its summary figures and CPU seconds."""
    log = cfg.parent / "run.log"
    t0 = time.monotonic()
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(cfg), "--no-progress",
                                 "--max-frames", str(frames)],
                                stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **env})
        sampler = CpuSampler(lambda: [proc.pid, *extra_pids()], proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    end_to_end, exited = time.monotonic() - t0, time.time()
    roles = sampler.finish(usage.ru_utime + usage.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"bench_ray: {cfg} failed (exit {proc.returncode}); see {log}")
    summary = json.loads((cfg.parent / "out" / "stage_times.json").read_text())
    timing = summary["timing"]
    n = sum(timing["frames_per_cam"].values())
    cpu = sum(roles.values())
    res = {"camera_frames": n, "loop_wall_s": timing["wall_s"], "camera_fps": round(n / timing["wall_s"], 3),
           "end_to_end_s": round(end_to_end, 2), "camera_fps_end_to_end": round(n / end_to_end, 3),
           "cpu_s": round(cpu, 2), "cpu_s_by_role": {k: round(v, 2) for k, v in roles.items()},
           "cpu_utilisation": round(cpu / (end_to_end * (os.cpu_count() or 1)), 3),
           "tracklets_stored": summary["tracklets_stored"], "global_ids": summary["global_ids"],
           "cpu_s_by_thread_affinity": {k: round(v, 2) for k, v in sorted(sampler.by_affinity.items())}}
    placed = cfg.parent / "out" / "ray_executor.json"
    # the frame loop's span: the matcher's (Ray), or the loop's wall time ending at the local process's exit
    loop = (exited - timing["wall_s"], exited)
    if placed.exists():
        ex = json.loads(placed.read_text())
        loop = tuple(ex["loop_span"])
        res["actors"] = actor_calls(ex, loop)
        res["step_calls"] = ex["step_calls"]
        res["loop_span"] = loop
        res["nodes_used"] = ex["nodes"]
        res["camera_stage_s"] = {c: v.get("stage_s") for c, v in ex["cameras_ended"].items()}
        res["camera_threads"] = next(iter(ex["cameras_started"].values())).get("threads")
        # from the moment every camera actor had built its models: the actors' start-up (imports, model loading)
        # varies by seconds of CPU from run to run on a loaded machine and would swamp the marginal cost
        at_ready = sampler.before(ex["actors_ready_at"])
        res["cpu_s_by_role_from_ready"] = {k: round(roles[k] - at_ready[k], 2) for k in ROLES}
    res["core_busy_in_loop"] = sampler.core_busy(*loop)
    res["core_series"] = [(round(t - loop[0], 3), c) for t, c in sampler.cores]
    return res


def actor_calls(ex: dict, loop: tuple[float, float]) -> dict:
    """Where each camera actor's time in the frame loop went, from the matcher's log of ``step`` calls
    (``ray_executor.json``): ``busy`` (inside a call: processing its frames), ``idle`` (the rest: no call
    queued, or done before the loop ended), ``cpu_in_busy`` (the actor's CPU seconds per busy second: below 1 it
    was runnable but waiting for a core), ``reply_wait`` (seconds replies sat ready before the matcher took
    them), ``calls``; fractions of the loop's wall time, averaged over the cameras."""
    fields = ex["step_call_fields"]
    span = loop[1] - loop[0]
    per_cam = {}
    for cam, calls in ex["step_calls"].items():
        rows = [dict(zip(fields, c)) for c in calls]
        busy = sum(r["ended"] - r["started"] for r in rows)
        per_cam[cam] = {"calls": len(rows), "busy": round(busy / span, 3), "idle": round(1 - busy / span, 3),
                        "cpu_in_busy": round(sum(r["cpu_s"] for r in rows) / busy, 3) if busy > 0 else None,
                        "reply_wait": round(sum(max(0.0, r["received"] - r["ended"]) for r in rows) / span, 3)}
    mean = {k: round(sum(c[k] or 0 for c in per_cam.values()) / len(per_cam), 3)
            for k in ("busy", "idle", "cpu_in_busy", "reply_wait")}
    return {"loop_s": round(span, 2), "mean": mean, "cameras": per_cam}


def steady(row: dict) -> dict:
    """The marginal CPU per camera-frame between the row's two frame counts (total and per role), the fixed
    cost (intercept) and Ray's daemons' CPU per second of run, from ``row['runs']`` = {N: [run result per
    repeat]} (means over the repeats)."""
    (n1, r1), (n2, r2) = sorted((int(k), v) for k, v in row["runs"].items())

    def mean(runs: list[dict], key) -> float:
        return sum(key(r) for r in runs) / len(runs)

    key = "cpu_s_by_role_from_ready" if "cpu_s_by_role_from_ready" in r1[0] else "cpu_s_by_role"
    frames = mean(r2, lambda r: r["camera_frames"]) - mean(r1, lambda r: r["camera_frames"])
    per_role = {k: (mean(r2, lambda r: r[key][k]) - mean(r1, lambda r: r[key][k])) / frames for k in ROLES}
    marginal = sum(per_role.values())
    each = [(sum(b[key].values()) - sum(a[key].values())) / (b["camera_frames"] - a["camera_frames"])
            for a, b in zip(r1, r2)]
    wall = mean(r2, lambda r: r["end_to_end_s"]) - mean(r1, lambda r: r["end_to_end_s"])
    loop = mean(r2, lambda r: r["loop_wall_s"]) - mean(r1, lambda r: r["loop_wall_s"])
    return {"cpu_per_camera_frame": round(marginal, 4), "per_repeat": [round(x, 4) for x in each],
            # frames/s of the frame loop without what every run pays once in it (first-frame compiles, flush)
            "camera_fps_marginal": round(frames / loop, 3) if loop > 0 else None,
            "by_role": {k: round(v, 4) for k, v in per_role.items()},
            "daemons_cpu_per_s": round(per_role["ray daemons"] * frames / wall, 4) if wall > 0 else None,
            "fixed_cpu_s": round(mean(r1, lambda r: r["cpu_s"]) - marginal * mean(r1, lambda r: r["camera_frames"]), 2),
            "n1": n1, "n2": n2}


def idle_background(cluster: LoopbackRayCluster, seconds: float) -> dict:
    """CPU seconds per second that Ray itself burns with nothing to do: the cluster's daemons and 4 idle actors
    (each a worker process with Ray's core worker threads), created by a driver subprocess (``--idle-probe``;
    Ray reads the auth token when it is first imported, so the driver gets the cluster's environment)."""
    probe = subprocess.Popen([sys.executable, __file__, "--idle-probe", cluster.address], stdout=subprocess.PIPE,
                             stdin=subprocess.PIPE, text=True, env={**os.environ, **cluster.env})
    try:
        apids = set(json.loads(probe.stdout.readline()))
        time.sleep(3.0)
        pids = cluster.pids()
        before, t0 = cpu_seconds(pids), time.monotonic()
        time.sleep(seconds)
        after, dt = cpu_seconds(pids), time.monotonic() - t0
    finally:
        probe.stdin.close()
        probe.wait(timeout=60)
    delta = {p: after[p] - before[p] for p in pids if p in before and p in after}
    return {"seconds": round(dt, 1), "actors_cpu_per_s": round(sum(v for p, v in delta.items() if p in apids) / dt, 4),
            "daemons_cpu_per_s": round(sum(v for p, v in delta.items() if p not in apids) / dt, 4)}


class _Idle:
    def pid(self) -> int:
        return os.getpid()


def idle_probe(address: str) -> int:
    """The driver of :func:`idle_background`: 4 idle actors, their pids on stdout, held until stdin closes."""
    import ray

    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    actors = [ray.remote(num_cpus=1)(_Idle).remote() for _ in range(4)]
    print(json.dumps(ray.get([a.pid.remote() for a in actors])), flush=True)
    sys.stdin.read()
    ray.shutdown()
    return 0


def at_n2(row: dict) -> dict:
    """The row's runs at its larger frame count: the mean of each number over the repeats (the first run's
    other fields)."""
    runs = row["runs"][str(row["steady"]["n2"])]
    return {k: (sum(r[k] for r in runs) / len(runs) if isinstance(v, (int, float)) else v) for k, v in runs[0].items()}


def plot(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    fps = [at_n2(rows[n])["camera_fps"] for n in names]
    axes[0].bar(names, fps, color="#777")
    axes[0].set_title(f"camera-frames/s (frame loop, {rows['local']['steady']['n2']} frames per camera)", fontsize=10)
    for i, v in enumerate(fps):
        axes[0].text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=9)
    bottom = [0.0] * len(names)
    for role, color in zip(ROLES, ("#555", "#3a7", "#37a", "#c73")):
        vals = [max(0.0, rows[n]["steady"]["by_role"][role]) for n in names]
        axes[1].bar(names, vals, bottom=bottom, color=color, label=role)
        bottom = [b + v for b, v in zip(bottom, vals)]
    for i, n in enumerate(names):
        axes[1].text(i, bottom[i], f"{rows[n]['steady']['cpu_per_camera_frame']:.3f}", ha="center", va="bottom",
                     fontsize=9)
    axes[1].set_title("steady-state CPU-s per camera-frame, by process", fontsize=10)
    axes[1].legend(fontsize=8, loc="lower right")
    for ax in axes:
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle("4 PETS cameras: local executor vs Ray (shared, loaded 2-core machine: indicative)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_timeline(rows: dict, path: Path) -> None:
    """Per Ray row (first repeat at the larger frame count): each camera actor's step calls over the frame loop
    (bars: the actor running a call; dots: the matcher taking the reply) and each CPU's busy fraction; the
    local row's CPUs for comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n2 = str(rows["local"]["steady"]["n2"])
    names = list(rows)
    fig, axes = plt.subplots(len(names), 1, figsize=(11, 2.2 + 1.6 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        r = rows[name]["runs"][n2][0]
        cores = r.get("core_series") or []
        span = (r["loop_span"][1] - r["loop_span"][0]) if r.get("loop_span") else r["loop_wall_s"]
        for i in range(len(cores[0][1]) if cores else 0):  # each CPU's busy share between samples, as a line
            ts, vals = [], []
            for (t0, a), (t1, b) in zip(cores, cores[1:]):
                if 0 <= t1 <= span and b[i][1] > a[i][1]:
                    ts.append(t1)
                    vals.append(-1.6 - 1.2 * i + 1.0 * (b[i][0] - a[i][0]) / (b[i][1] - a[i][1]))
            ax.plot(ts, vals, lw=1, color=("#c73", "#37a", "#3a7", "#777")[i % 4])
            ax.axhline(-1.6 - 1.2 * i, color="#ccc", lw=0.5)
        labels = [f"cpu{i} busy" for i in range(len(cores[0][1]) if cores else 0)]
        ticks = [-1.1 - 1.2 * i for i in range(len(labels))]
        if r.get("step_calls"):
            t0 = r["loop_span"][0]
            for j, (cam, calls) in enumerate(sorted(r["step_calls"].items())):
                for sub, st, en, rec, _n, _cpu in calls:
                    ax.broken_barh([(st - t0, en - st)], (j * 1.0 + 0.1, 0.8), color="#3a7", alpha=0.8)
                    ax.plot([rec - t0], [j * 1.0 + 0.5], "k.", ms=2)
                labels.append(cam)
                ticks.append(j * 1.0 + 0.5)
        ax.set_yticks(ticks, labels, fontsize=7)
        ax.set_xlim(0, span)
        ax.set_title(f"{name}: frame loop, {n2} frames per camera (green: actor in a step call; dot: reply taken)"
                     if r.get("step_calls") else f"{name}: frame loop, {n2} frames per camera", fontsize=9)
    axes[-1, 0].set_xlabel("seconds since the frame loop began")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


def table(rows: dict, meta: dict) -> str:
    loc = rows["local"]["steady"]["cpu_per_camera_frame"]
    n1, n2 = meta["frames"]
    loc_fps = at_n2(rows["local"])["camera_fps"]
    lines = [
        "# Ray executor throughput and steady-state CPU (tools/bench_ray.py)", "",
        f"`{meta['command']}`", "",
        f"4 virtual PETS cameras (grid split), detector/encoder as shipped: {meta['models']}. Each row ran at "
        f"{n1} and {n2} frames per camera, {meta['repeats']} time(s) each, the rows' runs interleaved, on a shared "
        f"{meta['cores']}-core machine (other jobs running: absolute figures are indicative, compare the ratios). "
        f"Steady-state = (CPU({n2}) - CPU({n1})) / (4 x {n2 - n1}); the other columns are at {n2} frames "
        "(means over the repeats).", "",
        "| run | steady CPU-s / camera-frame (per repeat) | vs local | of which driver / camera actors / matcher /"
        " Ray daemons | Ray daemons CPU-s/s | fixed CPU-s | camera-frames/s (loop) | vs local | end to end (s) |"
        " CPU s | CPU-s / camera-frame (end to end) | CPU utilisation | nodes | actor threads | tracklets | ids |"
        f" marginal camera-frames/s (loop, {n1} -> {n2}) | vs local |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        st, r = row["steady"], at_n2(row)
        roles = " / ".join(f"{st['by_role'][k]:.4f}" for k in ROLES)
        th = r.get("camera_threads")
        th_s = "-" if th is None else f"det {th['detector']}, enc {th['encoder']}, streams {th['streams']}"
        rate = "-" if name == "local" or st.get("daemons_cpu_per_s") is None else f"{st['daemons_cpu_per_s']:.3f}"
        lines.append(
            f"| {name} | {st['cpu_per_camera_frame']:.4f} ({', '.join(f'{x:.4f}' for x in st['per_repeat'])}) | "
            f"{st['cpu_per_camera_frame'] / loc:.2f} | {roles} | {rate} | "
            f"{st['fixed_cpu_s']:.1f} | {r['camera_fps']:.2f} | {r['camera_fps'] / loc_fps:.2f} | "
            f"{r['end_to_end_s']:.1f} | {r['cpu_s']:.1f} | {r['cpu_s'] / r['camera_frames']:.3f} | "
            f"{100 * r['cpu_utilisation']:.0f} % | {r.get('nodes_used', 1):g} | {th_s} | {r['tracklets_stored']:g} | "
            f"{r['global_ids']:g} | {_fmt(st.get('camera_fps_marginal'))} | "
            f"{_ratio(st.get('camera_fps_marginal'), rows['local']['steady'].get('camera_fps_marginal'))} |")
    if "ray-1" in rows:
        over = rows["ray-1"]["steady"]["cpu_per_camera_frame"] / loc - 1
        lines += ["", f"Ray's own overhead (same work, ray-1 vs local, steady-state CPU per camera-frame): "
                      f"{100 * over:+.1f} % (target <= 10 %)."]
    if "ray-2" in rows and "ray-1" in rows:
        lines.append(f"2 nodes vs 1: {at_n2(rows['ray-2'])['camera_fps'] / at_n2(rows['ray-1'])['camera_fps']:.2f}"
                     " x the frames/s (both nodes share the same cores here).")
    lines += ["", f"Where the frame loop's wall time went ({n2} frames, first repeat; per-core busy from /proc/stat over "
                  "the loop, which includes other jobs on a shared machine; actor busy / idle / CPU per busy second "
                  "and reply wait from the matcher's log of step calls, means over the 4 cameras; driver and camera "
                  "actor CPU-s by the affinity their thread had when sampled: OpenVINO pins its inference thread):", "",
              "| run | core busy in loop | actor busy | actor idle | actor CPU-s per busy s | reply wait | CPU-s by thread"
              " affinity |", "|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        r = row["runs"][str(n2)][0]
        busy = r.get("core_busy_in_loop")
        busy_s = "-" if not busy else " / ".join(f"{100 * b:.0f} %" for b in busy)
        a = (r.get("actors") or {}).get("mean")
        aff = ", ".join(f"{k} {v:.1f}" for k, v in (r.get("cpu_s_by_thread_affinity") or {}).items()) or "-"
        if a:
            lines.append(f"| {name} | {busy_s} | {100 * a['busy']:.0f} % | {100 * a['idle']:.0f} % | "
                         f"{a['cpu_in_busy']:.2f} | {100 * a['reply_wait']:.0f} % | {aff} |")
        else:
            lines.append(f"| {name} | {busy_s} | - | - | - | - | {aff} |")
    if meta.get("idle_background"):
        ib = meta["idle_background"]
        lines.append(f"Ray idle (one node, nothing to do, {ib['seconds']:g} s): daemons {ib['daemons_cpu_per_s']:.4f} "
                     f"CPU-s/s, 4 idle actors {ib['actors_cpu_per_s']:.4f} CPU-s/s together.")
    return "\n".join(lines) + "\n"


def ray_rows(args) -> list[tuple[str, list[float], dict]]:
    """(row name, node CPUs, executor overrides) of the Ray rows asked for."""
    rows = [("ray-1", [5], {})]
    if args.unsized:
        rows.append(("ray-1-unsized", [5], {"size_threads": False}))
    if args.inflight1:
        rows.append(("ray-1-inflight1", [5], {"inflight": 1}))
    if not args.no_two_nodes:
        rows.append(("ray-2", [3, 2], {}))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", default="10,30", help="the two frame counts per camera N1,N2 (default 10,30)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per row and frame count (default 1)")
    ap.add_argument("--imgsz", type=int, default=None, help="detector input size (default: the shipped config's)")
    ap.add_argument("--unsized", action="store_true", help="also run ray-1 with executor.size_threads: false")
    ap.add_argument("--no-two-nodes", action="store_true", help="skip the ray-2 row")
    ap.add_argument("--inflight1", action="store_true",
                    help="also run ray-1 with executor.inflight: 1 (one step call in flight per camera actor)")
    ap.add_argument("--idle-seconds", type=float, default=15.0, help="Ray's idle background measurement (0: skip)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench_ray"))
    ap.add_argument("--report-only", action="store_true", help="rewrite results.md / throughput.png from results.json")
    ap.add_argument("--idle-probe", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.idle_probe:
        return idle_probe(args.idle_probe)
    out = args.out.resolve()
    if args.report_only:
        saved = json.loads((out / "results.json").read_text())
        (out / "results.md").write_text(table(saved["rows"], saved), encoding="utf-8")
        plot(saved["rows"], out / "throughput.png")
        plot_timeline(saved["rows"], out / "timeline.png")
        print(table(saved["rows"], saved))
        return 0
    counts = sorted(int(x) for x in args.frames.split(","))
    if len(counts) != 2 or counts[0] < 1 or counts[0] == counts[1]:
        raise SystemExit(f"bench_ray: --frames {args.frames}: expected two different positive counts N1,N2")
    shared = shared_dir()
    if shared is None:
        raise SystemExit("bench_ray: the shared data folder (../shared or $REID_SHARED) is missing")
    from pipeline.virtual_cameras import build_virtual_cameras

    split = out / f"split_{counts[1]}"
    if not (split / "cams.yaml").exists():
        build_virtual_cameras(shared / "data/MOT15/train/PETS09-S2L1", split, layout="grid", gap=0.1,
                              frame_range=(1, counts[1]), progress=True)
    models = shipped_models(shared, args.imgsz)
    cmd = " ".join(["nice -n 10 .venv/bin/python tools/bench_ray.py", *sys.argv[1:]])
    meta = {"command": cmd, "frames": counts, "repeats": args.repeats, "cores": os.cpu_count(),
            "models": f"detector {models['detector']['backend']} {models['detector']['precision']} imgsz "
                      f"{models['detector']['imgsz']} rect {models['detector']['rect']} streams "
                      f"{models['detector']['streams']}, encoder {models['encoder']['backend']}"}
    rows: dict[str, dict] = {"local": {"runs": {str(n): [] for n in counts}}}
    for name, _, _ in ray_rows(args):
        rows[name] = {"runs": {str(n): [] for n in counts}}
    with contextlib.ExitStack() as stack:  # every cluster up for the whole bench: the rows' runs interleave
        clusters: dict[tuple, LoopbackRayCluster] = {}
        for _, nodes, _ in ray_rows(args):
            if tuple(nodes) not in clusters:
                c = stack.enter_context(LoopbackRayCluster(log_dir=out / f"ray_{'_'.join(map(str, nodes))}_logs"))
                c.start(head_cpus=nodes[0])
                for cpus in nodes[1:]:
                    c.add_node(cpus)
                clusters[tuple(nodes)] = c
        if args.idle_seconds > 0:
            meta["idle_background"] = idle_background(clusters[(5,)], args.idle_seconds)
            print(f"[bench_ray] Ray idle background: {meta['idle_background']}", flush=True)
        plan = [(rep, n, name) for rep in range(args.repeats) for n in counts for name in rows]
        for rep, n, name in tqdm(plan, desc="bench_ray runs", unit="run"):
            tag = f"{name}_{n}_r{rep}"
            if name == "local":
                cfg = write_config(split, out / tag, models, tag, {"kind": "local"})
                rows[name]["runs"][str(n)].append(run_once(cfg, n, {}, list))
                continue
            nodes, over = next((tuple(nd), ov) for nm, nd, ov in ray_rows(args) if nm == name)
            c = clusters[nodes]
            ex = {"kind": "ray", "address": c.address, "camera_num_cpus": 1, "matcher_num_cpus": 0.5, **over}
            cfg = write_config(split, out / tag, models, tag, ex)
            rows[name]["runs"][str(n)].append(run_once(cfg, n, c.env, c.pids))
    for row in rows.values():
        row["steady"] = steady(row)
    meta["rows"] = rows
    (out / "results.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    (out / "results.md").write_text(table(rows, meta), encoding="utf-8")
    plot(rows, out / "throughput.png")
    plot_timeline(rows, out / "timeline.png")
    print(table(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
