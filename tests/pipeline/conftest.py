"""Fixtures for tests/pipeline: a real RTSP server (GStreamer) and real mosquitto brokers on loopback.

``rtsp_server`` is tools/rtsp_server.py started in a subprocess (Debian's /usr/bin/python3 with
python3-gi and gst-rtsp-server, installed by .ci/run) serving the PETS09-S2L1 frames looped at
7 fps on mounts /cam0 and /cam1 of a free port; ``make_rtsp_server(*extra_args)`` builds more
(e.g. with ``--user/--password``). Tests may ``stop()`` and ``start()`` it again on the same port,
or freeze it with ``proc.send_signal(SIGSTOP)``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.testing.mqtt_broker import BrokerError, MosquittoBroker, find_mosquitto
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


@pytest.fixture
def make_broker(tmp_path):
    """Factory: make_broker(port=None, start=True, users=None) -> a mosquitto broker on 127.0.0.1 (a free port
    unless given; ``users``: name -> password, else anonymous), stopped at teardown."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed (Debian package mosquitto, installed by tools/setup_system.sh)",
                    pytrace=False)
    brokers: list[MosquittoBroker] = []

    def make(port: int | None = None, start: bool = True, users: dict[str, str] | None = None) -> MosquittoBroker:
        b = MosquittoBroker(tmp_path / f"broker{len(brokers)}", port or free_port(), users)
        brokers.append(b)
        if start:
            try:
                b.start()
            except BrokerError as exc:
                pytest.fail(str(exc), pytrace=False)
        return b

    yield make
    for b in brokers:
        b.stop()
