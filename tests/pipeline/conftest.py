"""Fixtures for tests/pipeline: a real RTSP server (GStreamer) on loopback.

``rtsp_server`` is tools/rtsp_server.py started in a subprocess (Debian's /usr/bin/python3 with
python3-gi and gst-rtsp-server, installed by .ci/run) serving the PETS09-S2L1 frames looped at
7 fps on mounts /cam0 and /cam1 of a free port; ``make_rtsp_server(*extra_args)`` builds more
(e.g. with ``--user/--password``). Tests may ``stop()`` and ``start()`` it again on the same port,
or freeze it with ``proc.send_signal(SIGSTOP)``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.testing.rtsp import RtspServer as _LibRtspServer
from pipeline.testing.rtsp import RtspServerError, free_port


class RtspServer(_LibRtspServer):
    """pipeline.testing.rtsp.RtspServer whose start failure fails the test (no traceback)."""

    def start(self, timeout: float = 45.0) -> None:  # the first GStreamer run builds its plugin registry
        try:
            super().start(timeout)
        except RtspServerError as exc:
            pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def weights(shared: Path) -> Path:
    """The shipped YOLOv5n ONNX detector (../shared/weights)."""
    return shared / "weights" / "yolov5n.onnx"


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
