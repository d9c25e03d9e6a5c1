"""Shared fixtures: the real development data in ../shared (or $REID_SHARED)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from pipeline.core.paths import shared_dir


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared data folder; tests that need it fail loudly when it is missing."""
    p = shared_dir()
    if p is None:
        pytest.fail(
            "shared data folder not found: clone beside ../shared or set REID_SHARED=/path/to/shared",
            pytrace=False,
        )
    return p


@pytest.fixture(scope="session")
def pets_dir(shared: Path) -> Path:
    """MOT15 PETS09-S2L1: the only sequence with frames (795 x 768x576 JPEGs)."""
    return shared / "data" / "MOT15" / "train" / "PETS09-S2L1"


@pytest.fixture(scope="session")
def mot17_train(shared: Path) -> Path:
    return shared / "data" / "MOT17" / "train"


@pytest.fixture(scope="session")
def tool_module():
    """``tool_module('bench_speed')``: tools/bench_speed.py loaded as a module (tools/ is scripts, not a package
    the tests import), once per session."""
    loaded: dict[str, ModuleType] = {}
    root = Path(__file__).resolve().parents[1] / "tools"

    def load(name: str) -> ModuleType:
        if name not in loaded:
            spec = importlib.util.spec_from_file_location(name, root / f"{name}.py")
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            loaded[name] = mod
        return loaded[name]

    return load


class _MeanAggregator:
    def aggregate(self, emb):
        import numpy as np

        v = np.asarray(emb, np.float64).mean(axis=0)
        return v / np.linalg.norm(v)


@pytest.fixture(scope="session")
def mean_aggregator() -> _MeanAggregator:
    """A tracklet aggregator: the unit-length mean of its (T, D) embeddings."""
    return _MeanAggregator()


@pytest.fixture(scope="session")
def angle_tracklet():
    """``angle_tracklet(cam, track, f0, f1, deg)``: a Tracklet over frames f0..f1 at 1 fps (t = frame - 1), one fixed
    box, every frame embedded as the 2-D unit vector at ``deg`` degrees (cosine distance 1 - cos(angle difference):
    the hand-computed revision tests)."""
    import math

    import numpy as np

    from pipeline.core.types import Tracklet

    def make(cam: str, track: int, f0: int, f1: int, deg: float) -> Tracklet:
        frames = np.arange(f0, f1 + 1)
        boxes = np.tile(np.array([10.0, 20.0, 30.0, 60.0]), (len(frames), 1))
        v = np.array([math.cos(math.radians(deg)), math.sin(math.radians(deg))], dtype=np.float32)
        return Tracklet(cam, track, frames, (frames - 1) / 1.0, boxes, np.tile(v, (len(frames), 1)))

    return make
