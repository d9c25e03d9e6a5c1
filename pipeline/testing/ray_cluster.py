"""A Ray cluster on loopback for the tests and tools/bench_ray.py: a head node and worker nodes started
with ``ray start --block`` (each node in its own process group, so one node can be stopped alone).

Loopback as far as Ray allows: the nodes are given ``--node-ip-address 127.0.0.1`` and the head's address is
127.0.0.1, but Ray replaces 127.0.0.1 by the machine's reachable address for node-to-node traffic and its
servers listen on every interface; the cluster therefore requires a random auth token (``RAY_AUTH_MODE=token``,
:attr:`LoopbackRayCluster.env`), which drivers (the pipeline run, the test itself) need in their environment.

Every process a node starts carries the cluster's own ``--temp-dir`` in its command line; :meth:`stop`
kills the nodes' process groups and then any process left with that temp dir (by pid), so nothing
outlives the cluster. Health checks are tightened (1 s period, 5 misses of 2 s each) so a stopped node is
declared dead within seconds instead of half a minute. Not tighter: a live raylet that misses the checks (a
busy 2-core machine, a restarted actor importing its models) is declared dead too, and a raylet told so aborts
(``NodeRemoved`` in its log; seen here with the head's raylet stopped for 8-12 s under the earlier 3 misses of
1 s), taking the head's actors, the matcher among them, with it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from pipeline.testing.rtsp import free_port

#: GCS health-check settings of the cluster (environment of ``ray start --head``)
FAST_HEALTH = {"RAY_health_check_initial_delay_ms": "1000", "RAY_health_check_period_ms": "1000",
               "RAY_health_check_failure_threshold": "5", "RAY_health_check_timeout_ms": "2000",
               "RAY_USAGE_STATS_ENABLED": "0"}


class RayClusterError(RuntimeError):
    """The loopback cluster did not come up."""


class LoopbackRayCluster:
    """``start(head_cpus)``, ``add_node(cpus)`` -> node index, ``stop_node(i)``, ``stop()``; ``address``.

    ``token``: the auth token (default: a random one); ``env``: what a driver needs in its environment."""

    def __init__(self, log_dir: Path | None = None, token: str | None = None) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        # short: Ray's unix socket paths live under it (108-byte limit)
        self.temp_dir = Path(tempfile.gettempdir()) / f"rl{uuid.uuid4().hex[:8]}"
        self.log_dir = Path(log_dir) if log_dir else self.temp_dir
        self.nodes: list[subprocess.Popen] = []
        self.ray = str(Path(sys.executable).with_name("ray"))
        #: environment a driver of this cluster needs (token authentication)
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token or secrets.token_hex(16), "RAY_USAGE_STATS_ENABLED": "0"}

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the node's lifetime
        env = {**os.environ, **FAST_HEALTH, **self.env}
        proc = subprocess.Popen([self.ray, "start", "--block", "--node-ip-address", "127.0.0.1", *args],
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.nodes.append(proc)
        return proc

    def start(self, head_cpus: float, timeout: float = 90.0) -> None:
        """The head node (GCS on ``address``, no dashboard); waits until a driver can connect."""
        self._spawn(["--head", "--port", str(self.port), "--include-dashboard=false", "--num-cpus", f"{head_cpus:g}",
                     "--temp-dir", str(self.temp_dir), "--disable-usage-stats"], "head")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.nodes[0].poll() is not None:
                raise RayClusterError(f"ray start --head exited ({self.nodes[0].returncode}); see {self.log_dir}/head.log")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                if self.alive_nodes(timeout=max(5.0, deadline - time.monotonic())) >= 1:
                    return
            except OSError:
                time.sleep(0.5)
        raise RayClusterError(f"the Ray head did not come up within {timeout:.0f} s; see {self.log_dir}/head.log")

    def add_node(self, cpus: float, timeout: float = 90.0) -> int:
        """A worker node joined to the head; returns its index (for :meth:`stop_node`)."""
        want = self.alive_nodes() + 1
        self._spawn(["--address", self.address, "--num-cpus", f"{cpus:g}"], f"node{len(self.nodes)}")
        if self.alive_nodes(want, timeout) < want:
            raise RayClusterError(f"the worker node did not join within {timeout:.0f} s; see {self.log_dir}")
        return len(self.nodes) - 1

    def alive_nodes(self, want: int = 1, timeout: float = 0.0) -> int:
        """How many nodes the GCS reports alive (polled until ``want`` or ``timeout``); asked from a
        subprocess, so this process does not become a Ray driver."""
        code = ("import ray, json; ray.init(address=%r, logging_level='ERROR', log_to_driver=False);"
                "print(json.dumps(sum(1 for n in ray.nodes() if n['Alive'])))" % self.address)
        deadline = time.monotonic() + timeout
        n = 0
        while True:
            try:
                out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                                     env={**os.environ, **self.env})
                n = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0
            except (subprocess.TimeoutExpired, ValueError, IndexError):
                n = 0
            if n >= want or time.monotonic() >= deadline:
                return n
            time.sleep(1.0)

    def stop_node(self, index: int) -> None:
        """Kill one node: every process below its ``ray start`` (raylet, object store, its workers), then
        its process group."""
        proc = self.nodes[index]
        # the tree first (a worker that raylet put in a process group of its own would otherwise outlive
        # its node and keep answering calls), then the group (anything the tree walk raced with)
        tree = _descendants({proc.pid}) if proc.poll() is None else set()
        for pid in sorted(tree):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    def stop(self) -> None:
        """Kill every node and any process still carrying this cluster's temp dir; remove the temp dir."""
        for i in range(len(self.nodes)):
            self.stop_node(i)
        for pid in self._leftovers():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def pids(self) -> list[int]:
        """Every process of this cluster now: the nodes' ``ray start`` processes and their descendants
        (GCS, raylets, workers; a worker renames itself ``ray::...``, so the temp dir is not in its
        command line), plus any other process carrying the temp dir."""
        return sorted(_descendants({p.pid for p in self.nodes if p.poll() is None}) | set(self._leftovers()))

    def _leftovers(self) -> list[int]:
        mark = str(self.temp_dir).encode()
        pids = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit() and int(d.name) != os.getpid():
                try:
                    if mark in (d / "cmdline").read_bytes():
                        pids.append(int(d.name))
                except OSError:
                    continue
        return pids

    def __enter__(self) -> LoopbackRayCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _descendants(roots: set[int]) -> set[int]:
    """``roots`` and every process below them now (parent links read from /proc/<pid>/stat)."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found = set(roots)
    grew = True
    while grew:
        more = {pid for pid, pp in parent.items() if pp in found and pid not in found}
        found |= more
        grew = bool(more)
    return found


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """{pid: user + system CPU seconds so far} of the processes still alive (from /proc/<pid>/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return out
