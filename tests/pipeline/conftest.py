"""Fixtures for tests/pipeline: a real RTSP server (GStreamer) on loopback.

``rtsp_server`` is tools/rtsp_server.py started in a subprocess (Debian's /usr/bin/python3 with
python3-gi and gst-rtsp-server, installed by .ci/run) serving the PETS09-S2L1 frames looped at
7 fps on mounts /cam0 and /cam1 of a free port; ``make_rtsp_server(*extra_args)`` builds more
(e.g. with ``--user/--password``). Tests may ``stop()`` and ``start()`` it again on the same port,
or freeze it with ``proc.send_signal(SIGSTOP)``.
"""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from pipeline.core.paths import REPO_ROOT

SYSTEM_PYTHON = "/usr/bin/python3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """tools/rtsp_server.py in a subprocess, serving the PETS frames looped at 7 fps."""

    def __init__(self, frames: Path, port: int, extra: list[str] | None = None) -> None:
        self.cmd = [SYSTEM_PYTHON, str(REPO_ROOT / "tools" / "rtsp_server.py"), "--port", str(port),
                    "--frames", str(frames), "--mounts", "cam0", "cam1", *(extra or [])]
        self.port = port
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 45.0) -> None:  # the first GStreamer run builds its plugin registry
        # stderr goes to a file: a pipe nobody drains could fill up and freeze the server
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("READY"):
            self.log.seek(0)
            err = self.log.read()
            self.stop()
            pytest.fail(f"RTSP server did not start ({' '.join(self.cmd)}): {err.strip()[-500:]}", pytrace=False)

    def stop(self) -> None:
        """Terminate the server (also when frozen by SIGSTOP) and close its pipe."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()

    def url(self, mount: str, userinfo: str = "") -> str:
        return f"rtsp://{userinfo}127.0.0.1:{self.port}/{mount}"


@pytest.fixture
def make_rtsp_server(pets_dir: Path):
    """Factory: make_rtsp_server(*extra_args) -> a started RtspServer (stopped at teardown)."""
    servers: list[RtspServer] = []

    def make(*extra: str) -> RtspServer:
        srv = RtspServer(pets_dir / "img1", free_port(), list(extra))
        servers.append(srv)
        srv.start()
        return srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def rtsp_server(make_rtsp_server) -> RtspServer:
    return make_rtsp_server()
