"""Fault campaign: replay the faults of issue 11 against REAL local servers and the REAL CLI.

Every fault class is one independent function that starts what it needs on 127.0.0.1 (the
GStreamer RTSP server tools/rtsp_server.py through :class:`pipeline.testing.rtsp.RtspServer`,
``reid-pipeline run cams.yaml`` in subprocesses with configs written to a temporary folder),
injects its faults, measures, and cleans up (process groups, try/finally, every wait bounded)::

    .venv/bin/python tools/fault_campaign.py --quick            # the CI subset (< ~3 min on 2 cores)
    .venv/bin/python tools/fault_campaign.py                    # the fuller campaign
    .venv/bin/python tools/fault_campaign.py --only stall       # one class (repeatable)
    .venv/bin/python tools/fault_campaign.py --soak 60          # live soak: server killed every 2-3 min

Fault classes (``--only`` names):

* ``rtsp_restart``: a live run on 2 cameras; the RTSP server is killed (SIGKILL) and restarted K
  times at random intervals. Recovery = server restart -> the next captured frame of every camera,
  read from the pipeline's Prometheus endpoint (``health.metrics_port``). The final SIGTERM must end
  the run with status 130 and a ``runs.finished`` time (row ``sigterm_finishes_run``).
* ``stall``: the server frozen with SIGSTOP: every camera must notice (reconnect counter or state)
  while frozen, and deliver frames again after SIGCONT.
* ``kill9_resume``: ``kill -9`` of a batch run mid-way, then the same command again: it must finish
  (stale store lock recovered) and its store tracklets / events / mot_global rows must equal a clean
  reference run's (rows lost / duplicated). Row ``mp4_after_kill9``: the annotated MP4 of the killed
  run must still be readable, and after the re-run every camera's video holds as many frames as the
  clean run's.
* ``two_writers``: a second run on the store of a live run is refused: status 2, one line; the first
  run goes on and the store stays intact.
* ``unreachable``: batch mode on a camera nobody answers: status 2, one line, bounded time.
* ``credentials``: a live run on ``rtsp://user:secretpw@127.0.0.1:PORT/cam0?token=SECRET`` (server
  with basic auth); every file it wrote, its logs and its metrics must not contain the secrets.
* ``bad_inputs``: bad YAML, unknown key, bad camera id, missing config / camera file, empty image
  folder, random-bytes encoder .pt (default campaign: also a random-bytes ultralytics .pt):
  each must give status 2 and exactly one stderr line besides the log records (so FFmpeg/OpenCV noise
  printed straight to stderr counts), no traceback.

Per class the report has: faults injected, recovered, time to recover (s: restart / SIGCONT -> next frame
of the slower camera; the re-run's wall time for kill9_resume; the run's time to fail with one line for
unreachable and bad inputs), tracklet rows lost and
duplicated (against the clean reference where meaningful), RSS of the pipeline process at start
and end (MiB, /proc), PASS/FAIL and why. A plain table is printed; ``--json`` writes the report.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from pipeline.core.paths import shared_dir
from pipeline.testing.rtsp import RtspServer, free_port

#: a log record of the project's format (pipeline/cli.py): not counted as a user-facing stderr line
LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: ")
SECRETS = (b"secretpw", b"SECRET")
SOAK_MAX_RSS_GROWTH_PCT = 5.0  # soak: RSS growth after the first minute that fails the row (issue 11's target)


# ---------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    """How hard each class pushes. quick: the CI subset; full: the default campaign."""

    restarts: int = 1            # rtsp_restart: server kills
    interval_s: tuple[float, float] = (2.0, 4.0)   # live time between faults (uniform)
    down_s: tuple[float, float] = (1.0, 3.0)       # server down time before the restart
    stalls: int = 1
    batch_frames: int = 40       # frames of the virtual PETS split for batch classes
    kills: int = 1               # kill9_resume: kills before the final complete run
    blackhole: bool = False      # unreachable: also a port that accepts TCP but never answers
    ultralytics_pt: bool = False  # bad_inputs: also a random-bytes ultralytics .pt
    recover_timeout_s: float = 45.0
    stall_detect_timeout_s: float = 20.0  # the sources' stall_timeout_s (10 s) + a margin
    start_timeout_s: float = 120.0
    batch_timeout_s: float = 240.0
    error_timeout_s: float = 60.0  # a run that must fail (bad input, unreachable camera) ends within this


QUICK = Settings(interval_s=(1.0, 2.0), down_s=(1.0, 2.0), batch_frames=30)
FULL = Settings(restarts=4, interval_s=(3.0, 10.0), down_s=(1.0, 6.0), stalls=2, batch_frames=100, kills=2,
                blackhole=True, ultralytics_pt=True)


# ---------------------------------------------------------------------------------------------- report
@dataclass
class Row:
    """One line of the report (one fault class or one sub-check of a class)."""

    name: str
    injected: int = 0
    recovered: int = 0
    recovery_s: list[float] = field(default_factory=list)
    rows_lost: int | None = None
    rows_duplicated: int | None = None
    rss_start_mb: float | None = None
    rss_end_mb: float | None = None
    passed: bool = False
    failures: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    wall_s: float = 0.0

    def check(self, ok: bool, why: str) -> bool:
        if not ok:
            self.failures.append(why)
        return ok

    def finish(self) -> Row:
        self.passed = not self.failures and self.injected > 0 and self.recovered == self.injected
        if not self.failures and not self.passed:
            self.failures.append(f"recovered {self.recovered} of {self.injected} faults")
        return self


def _fmt(v: float | None, nd: int = 1) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def format_table(rows: list[Row]) -> str:
    head = ("fault class", "injected", "recovered", "recover s (max)", "lost", "dup", "RSS start", "RSS end",
            "result")
    lines = []
    for r in rows:
        rec = max(r.recovery_s) if r.recovery_s else None
        lines.append((r.name, str(r.injected), str(r.recovered), _fmt(rec), "-" if r.rows_lost is None else
                      str(r.rows_lost), "-" if r.rows_duplicated is None else str(r.rows_duplicated),
                      _fmt(r.rss_start_mb, 0), _fmt(r.rss_end_mb, 0), "PASS" if r.passed else "FAIL"))
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines]
    fails = [f"  {r.name}: {'; '.join(r.failures)}" for r in rows if not r.passed]
    if fails:
        out += ["", "failures:", *fails]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- processes
def reid_command() -> list[str]:
    """The venv's console script next to this interpreter, else ``python -m pipeline``."""
    script = Path(sys.executable).parent / "reid-pipeline"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "pipeline"]


def rss_mb(pid: int) -> float | None:
    """Resident set size of ``pid`` in MiB (/proc), None when gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


class Pipeline:
    """``reid-pipeline run CONFIG`` in its own process group; stdout/stderr go to files in ``workdir``."""

    def __init__(self, config: Path, workdir: Path, name: str, args: tuple[str, ...] = ()) -> None:
        self.cmd = [*reid_command(), "run", str(config), "--no-progress", *args]
        self.workdir = workdir
        self.name = name
        self.out_path = workdir / f"{name}.stdout"
        self.err_path = workdir / f"{name}.stderr"
        self.proc: subprocess.Popen | None = None
        self.t0 = 0.0
        self.last_rss: float | None = None

    def start(self) -> Pipeline:
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         cwd=self.workdir, start_new_session=True)
        self.t0 = time.monotonic()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss(self) -> float | None:
        return rss_mb(self.pid) if self.alive else None

    def wait(self, timeout: float) -> int | None:
        """Exit status, or None when still running after ``timeout`` s."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def wait_sampling(self, timeout: float, every_s: float = 1.0) -> int | None:
        """:meth:`wait` that samples the RSS meanwhile (``self.last_rss``: the last sample, MiB)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.rss()
            if r is not None:
                self.last_rss = r
            rc = self.wait(min(every_s, max(0.0, deadline - time.monotonic())))
            if rc is not None:
                return rc
        return None

    def send(self, sig: int) -> None:
        if self.alive:
            os.kill(self.pid, sig)

    def close(self) -> None:
        """SIGTERM the process group, then SIGKILL: nothing outlives a fault function. Only while the
        leader is not reaped yet (afterwards its pid, the group id, could belong to someone else)."""
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            self.wait(wait)

    def stderr(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace") if self.err_path.exists() else ""

    def user_lines(self) -> list[str]:
        """stderr lines that are not log records: the error line, tracebacks, native library noise (FFmpeg...)."""
        return [ln for ln in self.stderr().splitlines() if ln.strip() and not LOG_RECORD.match(ln)]


def _ends(lines: list[str]) -> list[str]:
    """The first three and the last of ``lines`` (for the report)."""
    return lines if len(lines) <= 4 else [*lines[:3], f"... ({len(lines) - 4} more)", lines[-1]]


def one_line_error(row: Row, p: Pipeline, rc: int | None, what: str) -> bool:
    """Status 2 and exactly one non-log stderr line ``reid-pipeline: error: ...``, no traceback."""
    lines = p.user_lines()
    ok = row.check(rc == 2, f"{what}: exit status {rc}, expected 2")
    ok &= row.check("Traceback" not in p.stderr(), f"{what}: traceback on stderr")
    ok &= row.check(len(lines) == 1 and lines[0].startswith("reid-pipeline: error:"),
                    f"{what}: {len(lines)} stderr lines, expected one 'reid-pipeline: error:' line"
                    + (f" (first: {lines[0][:120]!r})" if lines else ""))
    return ok


# ---------------------------------------------------------------------------------------------- metrics
_METRIC = re.compile(r'^(reid_camera_\w+)\{([^}]*)\}\s+(\S+)$')


def scrape(port: int, timeout: float = 1.0) -> dict[str, dict[str, float | str]] | None:
    """camera -> {frames, reconnects, fps, age, state} from ``/metrics``; None when unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as resp:
            text = resp.read().decode("utf-8", "replace")
    except OSError:
        return None
    cams: dict[str, dict[str, float | str]] = {}
    for line in text.splitlines():
        m = _METRIC.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2))), float(m.group(3))
        cam = cams.setdefault(labels.get("camera", "?"), {})
        short = name.removeprefix("reid_camera_").removesuffix("_total")
        if short == "state":
            if value == 1.0:
                cam["state"] = labels.get("state", "?")
        else:
            cam[short] = value
    return cams


def wait_for(pred: Callable[[], bool], timeout: float, proc: Pipeline | None = None, poll: float = 0.2) -> bool:
    """Poll ``pred`` until true (True), ``timeout`` s passed or ``proc`` died (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        if proc is not None and not proc.alive:
            return bool(pred())
        time.sleep(poll)
    return False


def frames_of(port: int) -> dict[str, float]:
    m = scrape(port) or {}
    return {c: float(v.get("frames", 0.0)) for c, v in m.items()}


# ---------------------------------------------------------------------------------------------- campaign
class Campaign:
    """Shared inputs (shared data, temp root, virtual PETS splits) of the fault functions."""

    def __init__(self, settings: Settings, root: Path, seed: int = 0) -> None:
        shared = shared_dir()
        if shared is None:
            raise SystemExit("fault_campaign: shared data folder not found (set REID_SHARED)")
        self.s = settings
        self.shared = shared
        self.frames = shared / "data" / "MOT15" / "train" / "PETS09-S2L1" / "img1"
        self.weights = shared / "weights" / "yolov5n.onnx"
        self.root = root
        self.rng = random.Random(seed)
        self._splits: dict[int, Path] = {}

    def workdir(self, name: str) -> Path:
        d = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))
        return d

    def split(self, n_frames: int) -> Path:
        """Two virtual cameras (left/right video.mp4) of the first ``n_frames`` PETS frames, built once."""
        if n_frames not in self._splits:
            from pipeline.virtual_cameras import build_virtual_cameras

            out = self.root / f"split{n_frames}"
            build_virtual_cameras(self.frames.parent, out, layout="two-regions", gap=0.1,
                                  frame_range=(1, n_frames), progress=False)
            self._splits[n_frames] = out
        return self._splits[n_frames]

    def server(self, extra: list[str] | None = None) -> RtspServer:
        srv = RtspServer(self.frames, free_port(), extra)
        srv.start()
        return srv

    def config(self, path: Path, cameras: list[dict], store_path: Path, out_dir: Path, mode: str, run_key: str,
               metrics_port: int | None = None, **extra) -> Path:
        """Write a cams.yaml at ``path``; ``extra`` sections are merged into the defaults below."""
        data = {
            "mode": mode,
            "run_key": run_key,
            "cameras": cameras,
            "detector": {"kind": "onnx", "weights": str(self.weights)},
            "encoder": {"every": 2, "threads": 1},
            "tracklets": {"min_length": 3, "partial_every_s": 0.5},
            "store": {"path": str(store_path)},
            "outputs": {"dir": str(out_dir), "timeline_png": False},
            "health": {"log_every_s": 2.0, "metrics_port": metrics_port},
        }
        for k, v in extra.items():
            data[k] = {**data[k], **v} if isinstance(data.get(k), dict) and isinstance(v, dict) else v
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    def live(self, work: Path, srv: RtspServer, name: str, store: Path | None = None,
             userinfo: str = "", query: str = "") -> tuple[Pipeline, int]:
        """A live run on /cam0 and /cam1 of ``srv`` with metrics on a free port; started, not waited for."""
        port = free_port()
        cams = [{"id": m, "source": srv.url(m, userinfo) + query} for m in ("cam0", "cam1")]
        cfg_dir = work / "config"
        cfg_dir.mkdir(exist_ok=True)
        run = work / "run"
        run.mkdir(exist_ok=True)
        cfg = self.config(cfg_dir / f"{name}.yaml", cams, store or run / "ids.sqlite", run / f"out_{name}",
                          "live", f"{name}-live", metrics_port=port)
        return Pipeline(cfg, run, name).start(), port

    def wait_streaming(self, row: Row, p: Pipeline, port: int, cams: tuple[str, ...] = ("cam0", "cam1")) -> bool:
        """Until every camera has captured frames (model loading included)."""
        ok = wait_for(lambda: all(frames_of(port).get(c, 0) > 0 for c in cams), self.s.start_timeout_s, p)
        if not row.check(ok, f"no frames from {cams} within {self.s.start_timeout_s:.0f} s "
                             f"(alive={p.alive}; stderr tail: {p.stderr()[-300:]!r})"):
            return False
        row.rss_start_mb = p.rss()
        return True


# ---------------------------------------------------------------------------------------------- faults
def restart_server(c: Campaign, row: Row, srv: RtspServer, p: Pipeline, port: int) -> dict:
    """Kill the server (SIGKILL), keep it down a random while, start it again on the same port and time
    restart -> the next captured frame of every camera (Prometheus ``frames`` counters). Updates ``row``."""
    srv.kill()
    row.injected += 1
    t_kill = time.monotonic()
    time.sleep(c.rng.uniform(*c.s.down_s))
    down = scrape(port) or {}
    before = {cam: float(v.get("frames", 0.0)) for cam, v in down.items()}
    srv.start()
    t_restart = time.monotonic()
    rec: dict[str, float] = {}

    def recovered() -> bool:
        for cam, n in frames_of(port).items():
            if cam not in rec and n > before.get(cam, 0.0):
                rec[cam] = time.monotonic() - t_restart
        return len(rec) == len(before) > 0

    ok = wait_for(recovered, c.s.recover_timeout_s, p, poll=0.1)
    if row.check(ok, f"restart {row.injected}: cameras {sorted(set(before) - set(rec)) or '?'} gave no "
                     f"frame within {c.s.recover_timeout_s:.0f} s of the restart"):
        row.recovered += 1
        row.recovery_s.append(round(max(rec.values()), 2))
    return {"down_s": round(t_restart - t_kill, 2), "state_while_down": {k: v.get("state") for k, v in down.items()},
            "recover_s": {k: round(v, 2) for k, v in rec.items()}}


def fault_rtsp_restart(c: Campaign) -> list[Row]:
    """Kill the RTSP server K times under a live 2-camera run; time from restart to the next frame per camera."""
    row, term = Row("rtsp_restart"), Row("sigterm_finishes_run")
    work = c.workdir("restart")
    srv = c.server()
    p: Pipeline | None = None
    try:
        p, port = c.live(work, srv, "restart")
        if c.wait_streaming(row, p, port):
            per_cam: list[dict] = []
            for _ in range(c.s.restarts):
                time.sleep(c.rng.uniform(*c.s.interval_s))
                if not row.check(p.alive, "pipeline died"):
                    break
                per_cam.append(restart_server(c, row, srv, p, port))
            row.details["restarts"] = per_cam
            row.rss_end_mb = p.rss()
            # the final SIGTERM: status 130, runs.finished set (issue 11 item 7)
            p.send(signal.SIGTERM)
            term.injected = 1
            t = time.monotonic()
            rc = p.wait(30.0)
            term.recovery_s.append(round(time.monotonic() - t, 2))
            term.details["exit_status"] = rc
            term.check(rc == 130, f"exit status {rc} after SIGTERM, expected 130")
            finished = _runs(work / "run" / "ids.sqlite")
            term.details["runs"] = finished
            if term.check(bool(finished) and all(f is not None for _, f in finished),
                          f"runs.finished is NULL after SIGTERM: {finished}"):
                term.recovered = 1
    finally:
        if p is not None:
            p.close()
        srv.stop()
    return [row.finish(), term.finish()]


def _runs(db: Path) -> list[tuple[str, float | None]]:
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0) as con:
        return [(k, f) for k, f in con.execute("SELECT run_key, finished FROM runs")]


def fault_stall(c: Campaign) -> list[Row]:
    """SIGSTOP the server (connections open, no data): a stall must be detected, SIGCONT must recover."""
    row = Row("stall")
    work = c.workdir("stall")
    srv = c.server()
    p: Pipeline | None = None
    try:
        p, port = c.live(work, srv, "stall")
        if c.wait_streaming(row, p, port):
            stalls: list[dict] = []
            for _ in range(c.s.stalls):
                time.sleep(c.rng.uniform(*c.s.interval_s))
                before = scrape(port) or {}
                srv.freeze()
                row.injected += 1
                t_freeze = time.monotonic()
                detected: dict[str, float] = {}
                try:
                    def noticed() -> bool:
                        for cam, v in (scrape(port) or {}).items():
                            b = before.get(cam, {})
                            counters = ("stalls", "reconnects", "reconnect_attempts")
                            if cam not in detected and (any(v.get(k, 0) > b.get(k, 0) for k in counters)
                                                        or v.get("state") in ("stalled", "reconnecting", "down")):
                                detected[cam] = time.monotonic() - t_freeze
                        return len(detected) == 2

                    seen = wait_for(noticed, c.s.stall_detect_timeout_s, p)
                finally:
                    srv.thaw()
                t_thaw = time.monotonic()
                at_thaw = frames_of(port)
                rec: dict[str, float] = {}

                def flowing() -> bool:
                    for cam, n in frames_of(port).items():
                        if cam not in rec and n > at_thaw.get(cam, 0.0):
                            rec[cam] = time.monotonic() - t_thaw
                    return len(rec) == 2

                back = wait_for(flowing, c.s.recover_timeout_s, p, poll=0.1)
                stalls.append({"detected_after_s": {k: round(v, 2) for k, v in detected.items()},
                               "frozen_s": round(t_thaw - t_freeze, 2),
                               "recover_s": {k: round(v, 2) for k, v in rec.items()}})
                row.check(seen, f"stall {row.injected}: not detected within {c.s.stall_detect_timeout_s:.0f} s "
                                f"(detected: {sorted(detected)})")
                row.check(back, f"stall {row.injected}: no frames within {c.s.recover_timeout_s:.0f} s of SIGCONT")
                if seen and back:
                    row.recovered += 1
                    row.recovery_s.append(round(max(rec.values()), 2))
            row.details["stalls"] = stalls
            row.rss_end_mb = p.rss()
    finally:
        if p is not None:
            p.close()
        srv.stop()
    return [row.finish()]


def _mot_rows(out: Path) -> Counter:
    """(cam, frame, x, y, w, h) of every mot_global row (global ids left out: compared separately)."""
    rows: Counter = Counter()
    for f in sorted((out / "mot_global").glob("*.txt")):
        for line in f.read_text().splitlines():
            v = line.split(",")
            if len(v) >= 6:
                rows[(f.stem, int(float(v[0])), *(round(float(x)) for x in v[2:6]))] += 1
    return rows


def _event_rows(out: Path) -> Counter:
    rows: Counter = Counter()
    path = out / "events.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                e = json.loads(line)
                rows[(e.get("kind"), e.get("cam_id"), round(float(e.get("t", 0.0)), 3))] += 1
    return rows


def _store_rows(db: Path, run_key: str) -> Counter:
    rows: Counter = Counter()
    if not db.exists():
        return rows
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0) as con:
        for r in con.execute("SELECT t.cam_id, t.track_id, t.start_frame, t.end_frame FROM tracklets t "
                             "JOIN runs r USING (run_id) WHERE r.run_key = ?", (run_key,)):
            rows[tuple(r)] += 1
    return rows


def _diff(ref: Counter, got: Counter) -> tuple[int, int]:
    """(rows of ``ref`` missing from ``got``, rows of ``got`` beyond their count in ``ref``)."""
    lost = sum(max(0, n - got.get(k, 0)) for k, n in ref.items())
    dup = sum(max(0, n - ref.get(k, 0)) for k, n in got.items() if k in ref) + sum(
        max(0, n - 1) for k, n in got.items() if k not in ref)
    return lost, dup


def _count_tracklets(db: Path) -> int | None:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2) as con:
            return int(con.execute("SELECT COUNT(*) FROM tracklets").fetchone()[0])
    except sqlite3.Error:
        return None


def _mp4_frames(path: Path) -> int:
    """Frames OpenCV can decode from ``path`` (FFmpeg's complaints about a broken file are silenced)."""
    import cv2

    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    n = 0
    try:
        cap = cv2.VideoCapture(str(path))
        try:
            while cap.isOpened():
                ok, _ = cap.read()
                if not ok:
                    break
                n += 1
        finally:
            cap.release()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return n


def _video_frames(out: Path, cam: str) -> int:
    """Readable frames of a camera's annotated video, over all its files (video/<cam>*.mp4)."""
    return sum(_mp4_frames(v) for v in sorted((out / "video").glob(f"{cam}*.mp4")))


def fault_kill9_resume(c: Campaign) -> list[Row]:
    """``kill -9`` mid-batch, then re-run the same command: compare with a clean run (store, events, mot_global)."""
    row, mp4 = Row("kill9_resume"), Row("mp4_after_kill9")
    work = c.workdir("kill9")
    split = c.split(c.s.batch_frames)
    cams = [{"id": cam, "source": str(split / cam / "video.mp4")} for cam in ("left", "right")]
    (work / "config").mkdir()
    # checkpoints every 2 s (default 10 s): the kills land after some committed progress even on a fast machine
    clean_cfg = c.config(work / "config" / "clean.yaml", cams, work / "clean.sqlite", work / "out_clean",
                         "batch", "campaign", outputs={"video": True}, store={"checkpoint_every_s": 2.0})
    cfg = c.config(work / "config" / "resume.yaml", cams, work / "resume.sqlite", work / "out_resume",
                   "batch", "campaign", outputs={"video": True}, store={"checkpoint_every_s": 2.0})
    procs: list[Pipeline] = []
    try:
        # the clean reference runs beside the killed runs (its own store and outputs): half the wall time
        ref = Pipeline(clean_cfg, work, "clean").start()
        procs.append(ref)
        kills = []
        db = work / "resume.sqlite"
        for k in range(c.s.kills):
            # kill once a checkpoint of this attempt is committed (more stored tracklets than at its start),
            # plus a random delay so the kill lands between checkpoints, with uncommitted work
            p = Pipeline(cfg, work, f"killed{k}").start()
            procs.append(p)
            n0 = _count_tracklets(db) or 0

            def due() -> bool:
                if not db.exists():
                    return False
                n = _count_tracklets(db)
                if n is None:  # unreadable from outside: kill after a fixed time
                    return time.monotonic() - p.t0 >= 20.0
                return n > n0

            reached = wait_for(due, c.s.batch_timeout_s, p, poll=0.05)
            if k == 0:
                # the MP4 row asks whether kill -9 destroys video already written: wait until every camera's
                # video holds a complete fragment (one second of frames, the writer's documented granularity);
                # killed before that, a file is empty by design, not broken (first CI run of 2026-12-06: the
                # kill landed before 'left' had completed its first fragment: 0 frames readable, 'right' 7)
                wait_for(lambda: all(_video_frames(work / "out_resume", cam["id"]) > 0 for cam in cams),
                         c.s.batch_timeout_s, p, poll=0.25)
            time.sleep(c.rng.uniform(0.0, 1.5))
            if not row.check(p.alive, f"kill {k + 1}: the run ended before the kill (status {p.wait(0)}, "
                                      f"checkpoint seen={reached})"):
                break
            row.rss_start_mb = row.rss_start_mb or p.rss()
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10.0)
            row.injected += 1
            kills.append({"after_s": round(time.monotonic() - p.t0, 2), "tracklets_before": n0,
                          "tracklets_committed_at_kill": _count_tracklets(db)})
            if k == 0:  # the annotated video the killed run left behind
                mp4.injected = 1
                vids = sorted((work / "out_resume" / "video").glob("*.mp4"))
                frames = {v.stem: _mp4_frames(v) for v in vids}
                mp4.details["frames_readable"] = frames
                if mp4.check(bool(frames) and all(n > 0 for n in frames.values()),
                             f"MP4 of the killed run unreadable: {frames or 'no video files'}"):
                    mp4.recovered = 1
        rc = ref.wait(c.s.batch_timeout_s)
        if not row.check(rc == 0, f"clean reference run: exit status {rc}: {ref.user_lines()[-1:]}"):
            return [row.finish(), mp4.finish()]
        clean = {"store": _store_rows(work / "clean.sqlite", "campaign"), "events": _event_rows(work / "out_clean"),
                 "mot_global": _mot_rows(work / "out_clean")}
        row.details["kills"] = kills
        if row.injected:
            final = Pipeline(cfg, work, "rerun").start()
            procs.append(final)
            rc = final.wait_sampling(c.s.batch_timeout_s)
            row.recovery_s.append(round(time.monotonic() - final.t0, 2))
            row.rss_end_mb = final.last_rss  # the re-run's last sample
            row.details["rerun_status"] = rc
            if row.check(rc == 0, f"re-run after kill -9: exit status {rc}: {final.user_lines()[-2:]}"):
                row.recovered = row.injected
            # after the re-run each camera's annotated video (all its files: <cam>.mp4, <cam>.partNNN.mp4) holds
            # at least the clean run's frames (frames between the checkpoint and the kill may be in two parts)
            want = {cam["id"]: _video_frames(work / "out_clean", cam["id"]) for cam in cams}
            have = {cam["id"]: _video_frames(work / "out_resume", cam["id"]) for cam in cams}
            mp4.details.update(frames_clean=want, frames_after_rerun=have,
                               files=sorted(v.name for v in (work / "out_resume" / "video").glob("*.mp4")))
            mp4.check(all(have[k] >= n > 0 for k, n in want.items()),
                      f"video after the re-run: {have} frames, the clean run has {want}")
            got = {"store": _store_rows(work / "resume.sqlite", "campaign"),
                   "events": _event_rows(work / "out_resume"), "mot_global": _mot_rows(work / "out_resume")}
            diffs = {k: _diff(clean[k], got[k]) for k in clean}
            row.details["reference_rows"] = {k: sum(v.values()) for k, v in clean.items()}
            row.details["resumed_rows"] = {k: sum(v.values()) for k, v in got.items()}
            row.details["lost_dup"] = diffs
            row.rows_lost = sum(d[0] for d in diffs.values())
            row.rows_duplicated = sum(d[1] for d in diffs.values())
            row.check(row.rows_lost == 0, f"rows lost against the clean run: {diffs}")
            row.check(row.rows_duplicated == 0, f"rows duplicated against the clean run: {diffs}")
    finally:
        for p in procs:
            p.close()
    return [row.finish(), mp4.finish()]


def fault_two_writers(c: Campaign) -> list[Row]:
    """A second run on the store of a running live run: refused (status 2, one line); the first goes on."""
    row = Row("two_writers")
    work = c.workdir("twowriters")
    srv = c.server()
    a: Pipeline | None = None
    b: Pipeline | None = None
    try:
        store = work / "run" / "ids.sqlite"
        a, port = c.live(work, srv, "first")
        if c.wait_streaming(row, a, port):
            split = c.split(c.s.batch_frames)
            cams = [{"id": cam, "source": str(split / cam / "video.mp4")} for cam in ("left", "right")]
            cfg = c.config(work / "config" / "second.yaml", cams, store, work / "run" / "out_second", "batch",
                           "second")
            b = Pipeline(cfg, work / "run", "second").start()
            row.injected = 1
            rc = b.wait(90.0)
            row.details["second_status"] = rc
            row.details["second_s"] = round(time.monotonic() - b.t0, 2)
            refused = one_line_error(row, b, rc, "second writer")
            row.details["second_stderr"] = b.user_lines()[:3]
            alive = row.check(a.alive and frames_of(port).get("cam0", 0) > 0, "the first run died")
            n0 = frames_of(port)
            flowing = wait_for(lambda: all(v > n0.get(k, 0) for k, v in frames_of(port).items()), 20.0, a)
            row.check(flowing, "the first run stopped capturing after the refusal")
            row.rss_end_mb = a.rss()
            a.send(signal.SIGTERM)
            rc_a = a.wait(30.0)
            row.details["first_status"] = rc_a
            row.check(rc_a == 130, f"first run: exit status {rc_a} after SIGTERM, expected 130")
            with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5.0) as con:
                integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
                keys = [k for (k,) in con.execute("SELECT run_key FROM runs")]
            row.details["integrity"], row.details["run_keys"] = integrity, keys
            row.check(integrity == "ok", f"store integrity_check: {integrity}")
            row.check("second" not in keys, "the refused run left a runs row in the store")
            if refused and alive and flowing:
                row.recovered = 1
                row.recovery_s.append(row.details["second_s"])
    finally:
        for p in (b, a):
            if p is not None:
                p.close()
        srv.stop()
    return [row.finish()]


def fault_unreachable(c: Campaign) -> list[Row]:
    """Batch mode on a camera nobody answers: status 2, one line, bounded time."""
    row = Row("unreachable")
    work = c.workdir("unreachable")
    holes: list[socket.socket] = []
    procs: list[Pipeline] = []
    try:
        targets = {"closed_port": free_port()}
        if c.s.blackhole:  # accepts the TCP handshake (listen backlog) but never answers RTSP
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(16)
            holes.append(s)
            targets["blackhole"] = s.getsockname()[1]
        for name, port in targets.items():
            cfg = c.config(work / f"{name}.yaml", [{"id": "cam0", "source": f"rtsp://127.0.0.1:{port}/cam0"}],
                           work / f"{name}.sqlite", work / f"out_{name}", "batch", name)
            p = Pipeline(cfg, work, name).start()
            procs.append(p)
            row.injected += 1
            rc = p.wait(c.s.error_timeout_s)
            took = round(time.monotonic() - p.t0, 2)
            row.details[name] = {"status": rc, "seconds": took, "stderr": _ends(p.user_lines())}
            row.check(rc is not None, f"{name}: still running after {c.s.error_timeout_s:.0f} s (killed)")
            p.close()
            if one_line_error(row, p, rc, name):
                row.recovered += 1
                row.recovery_s.append(took)
    finally:
        for p in procs:
            p.close()
        for s in holes:
            s.close()
    return [row.finish()]


def _grep(paths: list[Path]) -> dict[str, list[str]]:
    """file -> the secrets found in it (bytes, case-sensitive)."""
    hits: dict[str, list[str]] = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(f for f in root.rglob("*") if f.is_file())
        for f in files:
            data = f.read_bytes()
            found = [s.decode() for s in SECRETS if s in data]
            if found:
                hits[str(f)] = found
    return hits


def fault_credentials(c: Campaign) -> list[Row]:
    """A live run with ``user:secretpw@...?token=SECRET`` sources: no file, log or metric may hold the secrets."""
    row = Row("credentials")
    work = c.workdir("creds")
    srv = c.server(["--user", "user", "--password", "secretpw"])
    p: Pipeline | None = None
    try:
        p, port = c.live(work, srv, "creds", userinfo="user:secretpw@", query="?token=SECRET")
        row.injected = 1
        streaming = c.wait_streaming(row, p, port)  # proves the credentials reached the server
        metrics = ""
        if streaming:
            time.sleep(1.0)  # a few tracklets, health lines
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2.0) as resp:
                metrics = resp.read().decode("utf-8", "replace")
            row.rss_end_mb = p.rss()
        p.send(signal.SIGTERM)
        row.details["exit_status"] = p.wait(30.0)
        p.close()
        run = work / "run"  # store, outputs, captured stdout/stderr (the config itself is in work/config)
        hits = _grep([run])
        if any(s.decode() in metrics for s in SECRETS):
            hits["<metrics endpoint>"] = [s.decode() for s in SECRETS if s.decode() in metrics]
        written = sorted(str(f.relative_to(run)) for f in run.rglob("*") if f.is_file())
        # what the run wrote (store and its -wal/-shm/.lock, outputs) is its owner's only (the captured
        # stdout/stderr files are the harness's)
        modes = {str(f.relative_to(run)): f.stat().st_mode & 0o777 for f in run.rglob("*")
                 if f.suffix not in (".stdout", ".stderr")}
        open_to_others = {k: oct(m) for k, m in modes.items() if m & 0o077}
        row.details.update(files_written=written, secrets_found=hits, open_to_others=open_to_others)
        row.check(any(k.startswith("ids.sqlite") for k in modes) and not open_to_others,
                  f"written files readable by group/others: {open_to_others}")
        if row.check(not hits, f"secrets in {len(hits)} written file(s): "
                               + ", ".join(f"{Path(k).name}: {v}" for k, v in sorted(hits.items()))) and streaming:
            row.recovered = 1
    finally:
        if p is not None:
            p.close()
        srv.stop()
    return [row.finish()]


def fault_bad_inputs(c: Campaign) -> list[Row]:
    """Each bad input: status 2 and exactly one user-facing stderr line, no traceback."""
    row = Row("bad_inputs")
    work = c.workdir("badinputs")
    split = c.split(c.s.batch_frames)
    good = [{"id": cam, "source": str(split / cam / "video.mp4")} for cam in ("left", "right")]
    empty = work / "empty_folder"
    empty.mkdir()
    junk = work / "random.pt"
    junk.write_bytes(random.Random(7).randbytes(4096))

    def cfg(name: str, cameras: list[dict] = good, **extra) -> Path:
        return c.config(work / f"{name}.yaml", cameras, work / f"{name}.sqlite", work / f"out_{name}", "batch",
                        name, **extra)

    cases: dict[str, Path] = {}
    (work / "bad_yaml.yaml").write_text("mode: batch\ncameras: [\n  {id: a, source: x.mp4\n", encoding="utf-8")
    cases["bad_yaml"] = work / "bad_yaml.yaml"
    cases["unknown_key"] = cfg("unknown_key", bogus_key=1)
    cases["bad_camera_id"] = cfg("bad_camera_id", [{"id": "..", "source": good[0]["source"]}])
    cases["missing_config"] = work / "no_such_config.yaml"
    cases["missing_camera_file"] = cfg("missing_camera_file", [{"id": "a", "source": str(work / "nope.mp4")}])
    cases["empty_image_folder"] = cfg("empty_image_folder", [{"id": "a", "source": str(empty)}])
    cases["random_encoder_pt"] = cfg("random_encoder_pt", encoder={"checkpoint": str(junk)})
    if c.s.ultralytics_pt:
        cases["random_ultralytics_pt"] = cfg("random_ultralytics_pt", detector={"kind": "ultralytics",
                                                                                "weights": str(junk)})
    procs: list[Pipeline] = []
    try:
        for name, path in cases.items():
            p = Pipeline(path, work, name).start()
            procs.append(p)
            row.injected += 1
            rc = p.wait(c.s.error_timeout_s)
            took = round(time.monotonic() - p.t0, 2)
            row.details[name] = {"status": rc, "seconds": took, "stderr": _ends(p.user_lines())}
            row.check(rc is not None, f"{name}: still running after {c.s.error_timeout_s:.0f} s (killed)")
            if one_line_error(row, p, rc, name):
                row.recovered += 1
                row.recovery_s.append(took)
            p.close()
    finally:
        for p in procs:
            p.close()
    return [row.finish()]


FAULTS: dict[str, Callable[[Campaign], list[Row]]] = {
    "bad_inputs": fault_bad_inputs,
    "unreachable": fault_unreachable,
    "credentials": fault_credentials,
    "two_writers": fault_two_writers,
    "rtsp_restart": fault_rtsp_restart,
    "stall": fault_stall,
    "kill9_resume": fault_kill9_resume,
}


# ---------------------------------------------------------------------------------------------- soak
def soak(c: Campaign, minutes: float) -> list[Row]:
    """Live 2-camera run for ``minutes``; the server killed every 2-3 min at random; RSS every 10 s."""
    row = Row("soak")
    work = c.workdir("soak")
    srv = c.server()
    p: Pipeline | None = None
    samples: list[tuple[float, float]] = []
    restarts: list[dict] = []
    try:
        p, port = c.live(work, srv, "soak")
        if not c.wait_streaming(row, p, port):
            return [row.finish()]
        t_end = time.monotonic() + minutes * 60.0
        next_kill = time.monotonic() + c.rng.uniform(120.0, 180.0)
        next_sample = time.monotonic()
        while time.monotonic() < t_end and row.check(p.alive, "pipeline died"):
            now = time.monotonic()
            if now >= next_sample:
                r = p.rss()
                if r is not None:
                    samples.append((round(now - p.t0, 1), round(r, 1)))
                next_sample = now + 10.0
            if now >= next_kill:
                restarts.append({"t_s": round(now - p.t0, 1), **restart_server(c, row, srv, p, port)})
                next_kill = time.monotonic() + c.rng.uniform(120.0, 180.0)
            time.sleep(0.5)
        row.rss_end_mb = p.rss()
        # growth from the first sample after warm-up (a minute in) to the end
        warm = [r for t, r in samples if t >= 60.0] or [r for _, r in samples]
        if warm and row.rss_end_mb is not None:
            growth = round(100.0 * (row.rss_end_mb - warm[0]) / warm[0], 1)
            row.details["rss_growth_pct"] = growth
            row.check(growth <= SOAK_MAX_RSS_GROWTH_PCT, f"RSS grew {growth}% (> {SOAK_MAX_RSS_GROWTH_PCT}%)")
        row.details["rss_samples"] = samples
        row.details["restarts"] = restarts
        p.send(signal.SIGTERM)
        rc = p.wait(30.0)
        row.details["exit_status"] = rc
        row.check(rc == 130, f"exit status {rc} after the final SIGTERM, expected 130")
        if row.injected == 0:  # a soak shorter than the first kill: the run itself is the one fault survived
            row.injected = row.recovered = 1
    finally:
        if p is not None:
            p.close()
        srv.stop()
    return [row.finish()]


def plot_soak(row: Row, path: Path) -> Path:
    """PNG of the soak's RSS over time, the server kills marked, the warm-up minute shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, rss = zip(*row.details["rss_samples"])
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.plot([x / 60 for x in t], rss, lw=1.5, label="pipeline RSS")
    ax.axvspan(0, 1, color="0.9", label="warm-up (not counted)")
    for i, r in enumerate(row.details.get("restarts", [])):
        ax.axvline(r["t_s"] / 60, color="tab:red", lw=0.8, ls="--", label="RTSP server killed" if i == 0 else None)
    growth = row.details.get("rss_growth_pct")
    ax.set(xlabel="minutes", ylabel="RSS (MiB)", title=f"soak: RSS growth {growth}% after the first minute, "
           f"{row.recovered}/{row.injected} server kills recovered")
    ax.set_ylim(0, max(rss) * 1.15)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------- main
def run_campaign(settings: Settings, only: list[str] | None = None, seed: int = 0,
                 log: Callable[[str], None] = print) -> list[Row]:
    """Run the selected fault classes one after another; a class that raises becomes a FAIL row."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="fault_campaign-") as tmp:
        c = Campaign(settings, Path(tmp), seed)
        for name in only or list(FAULTS):
            t = time.monotonic()
            log(f"[fault_campaign] {name} ...")
            try:
                got = FAULTS[name](c)
            except Exception as exc:  # the harness itself failed: report it, run the next class
                r = Row(name)
                r.failures.append(f"harness error: {type(exc).__name__}: {exc}")
                r.details["traceback"] = traceback.format_exc()[-2000:]
                got = [r.finish()]
            wall = round(time.monotonic() - t, 1)
            for r in got:
                r.wall_s = wall
                log(f"[fault_campaign]   {r.name}: {'PASS' if r.passed else 'FAIL'} ({wall} s)"
                    + ("" if r.passed else f" - {'; '.join(r.failures)}"))
            rows += got
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="the CI subset (small counts)")
    g.add_argument("--soak", type=float, metavar="MINUTES", help="live soak for MINUTES (server killed every 2-3 min)")
    ap.add_argument("--only", action="append", choices=list(FAULTS), help="run only this class (repeatable)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random fault times")
    ap.add_argument("--json", type=Path, default=None, help="write the report here (default: print only)")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    if args.soak is not None:
        with tempfile.TemporaryDirectory(prefix="fault_soak-") as tmp:
            rows = soak(Campaign(FULL, Path(tmp), args.seed), args.soak)
        mode = f"soak {args.soak:g} min"
    else:
        mode = "quick" if args.quick else "full"
        rows = run_campaign(QUICK if args.quick else FULL, args.only, args.seed)
    wall = round(time.monotonic() - t0, 1)
    print(format_table(rows))
    for r in rows:
        if "rss_growth_pct" in r.details:
            print(f"\n{r.name}: RSS growth {r.details['rss_growth_pct']}% after the first minute, "
                  f"{r.recovered}/{r.injected} server restarts recovered")
    print(f"\n{mode}: {sum(r.passed for r in rows)}/{len(rows)} passed in {wall} s")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"mode": mode, "seed": args.seed, "wall_s": wall, "passed": all(r.passed for r in rows),
                  "classes": [asdict(r) for r in rows]}
        args.json.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
        for r in rows:
            if r.details.get("rss_samples"):
                print(f"wrote {plot_soak(r, args.json.with_name(args.json.stem + '_rss.png'))}")
    return 0 if rows and all(r.passed for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
