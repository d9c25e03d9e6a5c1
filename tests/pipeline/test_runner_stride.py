"""A batch run with detection stride 2 and the 'needed' embedding policy (real detector, encoder, store)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.camconfig import CamsConfig
from pipeline.core.configio import validate
from pipeline.runner.components import build_components
from pipeline.runner.loop import PipelineRunner

N_FRAMES = 10


@pytest.fixture(scope="module")
def split(pets_dir: Path, tmp_path_factory) -> Path:
    from pipeline.virtual_cameras import build_virtual_cameras

    out = tmp_path_factory.mktemp("pets_split_stride")
    build_virtual_cameras(pets_dir, out, layout="two-regions", gap=0.1, frame_range=(1, N_FRAMES), progress=False)
    return out


class CountingDetector:
    """The real detector, counting the images it is given."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.images = 0

    def detect(self, images):
        self.images += len(images)
        return self.inner.detect(images)


def test_stride_two_detects_half_the_frames_and_writes_every_frame(split: Path, tmp_path: Path, shared: Path):
    cfg = validate(CamsConfig, {
        "mode": "batch", "run_key": "stride2",
        "cameras": [{"id": c, "source": str(split / c / "video.mp4")} for c in ("left", "right")],
        "detector": {"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx")},
        "schedule": {"detect_every": 2},
        "encoder": {"policy": "needed", "refresh_every": 4},
        "tracklets": {"min_length": 3},
        "store": {"path": str(tmp_path / "ids.sqlite")},
        "outputs": {"dir": str(tmp_path / "out")},
        "matching": {"auto_threshold": {"warmup": "threshold"}},
    }, "<test>")
    comp = build_components(cfg)
    comp.detector = CountingDetector(comp.detector)
    summary = PipelineRunner(cfg, components=comp, progress=False).run()
    plan = summary["frame_plan"]
    assert {c: (p["detected"], p["predicted"]) for c, p in plan.items()} == {"left": (5, 5), "right": (5, 5)}
    assert comp.detector.images == 10  # frames 0, 2, 4, 6, 8 of each camera
    for cam in ("left", "right"):
        rows = np.loadtxt(tmp_path / "out" / "mot" / f"{cam}.txt", delimiter=",", ndmin=2)
        frames = set(rows[:, 0].astype(int))
        assert frames & {2, 4, 6, 8, 10}, f"{cam}: predicted frames (MOT 2, 4, ...) carry the tracks' boxes"
        # a track on a predicted frame keeps the id it had on the detected frame before
        ids = {f: set(rows[rows[:, 0] == f, 1].astype(int)) for f in frames}
        assert any(ids.get(f + 1, set()) & ids[f] for f in frames if f % 2 == 1)
        emb = plan[cam]["embedding"]
        assert 0 < emb["embedded"] <= emb["detections"]
    assert summary["tracklets_stored"] > 0 and summary["skipped_no_embedding"] == 0
