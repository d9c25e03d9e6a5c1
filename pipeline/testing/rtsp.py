"""A real RTSP server on loopback: tools/rtsp_server.py (GStreamer) in a subprocess.

Used by the RTSP fixtures of tests/pipeline/conftest.py and by tools/fault_campaign.py. The
server runs under Debian's ``/usr/bin/python3`` (python3-gi + gst-rtsp-server live in Debian's
dist-packages, not in the venv) and serves the PETS09-S2L1 frames looped at 7 fps on the
mounts given (default /cam0 and /cam1) of ``127.0.0.1:port``. It can be stopped and started
again on the same port, killed (SIGKILL, a crash) or frozen (SIGSTOP / SIGCONT).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from pipeline.core.paths import REPO_ROOT

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = REPO_ROOT / "tools" / "rtsp_server.py"


class RtspServerError(RuntimeError):
    """The server did not print READY in time (message: the command and the tail of its stderr)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspServer:
    """tools/rtsp_server.py in its own process group, serving ``frames`` (NNNNNN.jpg) looped at 7 fps.

    extra: more server arguments, e.g. ``["--user", "alice", "--password", "pw"]``.
    """

    def __init__(
        self, frames: Path, port: int, extra: list[str] | None = None, mounts: tuple[str, ...] = ("cam0", "cam1"),
    ) -> None:
        self.cmd = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--address", "127.0.0.1", "--port", str(port),
                    "--frames", str(frames), "--mounts", *mounts, *(extra or [])]
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.log = None

    def start(self, timeout: float = 45.0) -> None:
        """Start and wait for the READY line (the first GStreamer run builds its plugin registry)."""
        # stderr goes to a file: a pipe nobody drains could fill up and freeze the server
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     start_new_session=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("READY"):
            self.log.seek(0)
            err = self.log.read()
            self.stop()
            raise RtspServerError(f"RTSP server did not start ({' '.join(self.cmd)}): {err.strip()[-500:]}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def freeze(self) -> None:
        """SIGSTOP: connections stay open, no data flows (a hung camera)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL (a crash: no RTSP TEARDOWN, the kernel closes the sockets); start() brings it back."""
        if self.running:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._close()

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
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._close()

    def _close(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.log is not None:
            self.log.close()
            self.log = None

    def url(self, mount: str, userinfo: str = "") -> str:
        return f"rtsp://{userinfo}127.0.0.1:{self.port}/{mount}"

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
