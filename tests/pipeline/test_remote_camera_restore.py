"""RemoteCamera's restore (pipeline/distributed/matcher_runner.py) while Ray restarts the camera's actor.

No cluster: the actor is a stand-in whose ``restore.remote`` hands back a marker, and ``ray.get`` is replaced by
one that fails the way Ray does (ActorUnavailableError while the actor restarts, ActorDiedError when its restarts
are used up). The real cluster run that first showed the race is tests/pipeline/test_ray_cluster.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipeline.distributed import matcher_runner
from pipeline.distributed.matcher_runner import CameraLostError, RemoteCamera


@pytest.fixture
def ray():
    """Imported inside the test, never at collection: Ray reads its auth settings when first imported, and the
    cluster fixture of test_ray_cluster.py must set its token before that happens in this process."""
    return pytest.importorskip("ray")


class _Actor:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.restore = SimpleNamespace(remote=lambda epoch, snap: self.calls.append((epoch, snap)) or "ref")


def _camera() -> RemoteCamera:
    ex = SimpleNamespace(max_restarts=3, inflight=1, chunk_frames=4, queue_frames=16, snapshot_every=8)
    runner = SimpleNamespace(cfg=SimpleNamespace(executor=ex, cameras=[SimpleNamespace(id="a", fps=25.0)]))
    return RemoteCamera("a", _Actor(), runner)


def _failing_get(fail: list[Exception]):
    def get(ref, *a, **k):
        assert ref == "ref"
        if fail:
            raise fail.pop(0)
        return None
    return get


def test_start_waits_while_the_actor_restarts(monkeypatch, ray):
    """The restarted matcher starts its cameras; one camera's actor, killed with it, is still restarting:
    start() retries instead of failing the run (it used to raise ActorUnavailableError)."""
    cam = _camera()
    unavailable = [ray.exceptions.ActorUnavailableError("restarting", None) for _ in range(3)]
    monkeypatch.setattr(ray, "get", _failing_get(unavailable))
    monkeypatch.setattr(matcher_runner.time, "sleep", lambda s: None)
    cam.start()
    assert len(cam.actor.calls) == 4 and {e for e, _ in cam.actor.calls} == {cam.epoch}  # 3 refused, 1 taken


def test_start_gives_up_after_the_restart_wait(monkeypatch, ray):
    cam = _camera()
    clock = iter(range(0, 10_000, 100))  # every monotonic() call: 100 s later
    monkeypatch.setattr(matcher_runner.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(matcher_runner.time, "sleep", lambda s: None)
    monkeypatch.setattr(ray, "get", _failing_get([ray.exceptions.ActorUnavailableError("restarting", None)] * 50))
    with pytest.raises(CameraLostError, match=r"camera a: its actor did not come back within 300 s"):
        cam.start()


def test_a_dead_actor_is_a_lost_camera(monkeypatch, ray):
    cam = _camera()
    monkeypatch.setattr(ray, "get", _failing_get([ray.exceptions.ActorDiedError()]))
    with pytest.raises(CameraLostError, match=r"camera a: its actor is gone after 0 losses"):
        cam.start()
