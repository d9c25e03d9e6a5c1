"""ReplayDetector: stored detections looked up by exact pixels; the layout PNG of virtual cameras."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import DataError
from pipeline.core.types import Detection


def test_replay_by_pixels_returns_copies_and_refuses_unknown_images() -> None:
    from pipeline.detectors.replay import ReplayDetector, image_key

    a = np.zeros((4, 6, 3), dtype=np.uint8)
    b = a.copy()
    b[1, 2, 0] = 1  # one pixel differs
    det = Detection(tlwh=np.array([1.0, 2.0, 3.0, 4.0]), score=0.9)
    replay = ReplayDetector({image_key(a): [det], image_key(b): []}, where="cams")
    got_a, got_b = replay.detect([a, b])
    assert got_b == [] and len(got_a) == 1 and got_a[0].score == 0.9
    got_a[0].embedding = np.ones(2, dtype=np.float32)  # the runner sets embeddings: the store stays untouched
    assert det.embedding is None
    assert image_key(a) != image_key(a.reshape(6, 4, 3))  # same bytes, other shape
    with pytest.raises(DataError, match=r"cams: an image of shape \(4, 6, 3\) has no stored detections"):
        replay.detect([np.full((4, 6, 3), 7, dtype=np.uint8)])


def test_layout_png_darkens_blind_strips_and_adds_a_timeline(tmp_path: Path) -> None:
    import cv2

    from pipeline.evaluation.layout_png import draw_layout
    from pipeline.virtual_cameras import plan_layout

    frame = np.full((120, 160, 3), 200, dtype=np.uint8)
    cuts = plan_layout("regions-windows", 160, 120, 1, 100, 7.0, gap=0.25, n=2, time_gap=0.1)
    path = draw_layout(frame, cuts, "t", tmp_path / "layout.png")
    img = cv2.imread(str(path))
    assert img.shape[1] == 160 and img.shape[0] > 120  # frame + one timeline row per camera
    # width per camera: 160 * 0.75 / 2 = 60 -> blind strip x 60..100; inside it is darkened, cameras are not
    assert img[60:100, 75:85].mean() < 100 and img[60:100, 20:40].mean() > 150


def test_caching_detector_saves_and_reloads_its_outputs(tmp_path: Path) -> None:
    from pipeline.detectors.replay import CachingDetector

    class Counting:
        calls = 0

        def detect(self, images):
            Counting.calls += len(images)
            return [[Detection(tlwh=np.array([1.5, 2.25, 3.0, 4.0]), score=0.8125, class_id=0)] for _ in images]

    img = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    first = CachingDetector(Counting())
    first.detect([img])
    assert first.detect([img])[0][0].score == 0.8125 and Counting.calls == 1  # the second call is replayed
    first.save(tmp_path / "dets.json")
    again = CachingDetector(Counting())
    assert again.load(tmp_path / "dets.json") == 1
    (d,), = again.detect([img])
    assert Counting.calls == 1 and d.score == 0.8125 and d.tlwh.tolist() == [1.5, 2.25, 3.0, 4.0]
