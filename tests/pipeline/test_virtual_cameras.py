"""Virtual cameras: layouts, gt re-expressed per region, and a real cut of PETS09-S2L1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.virtual_cameras import CameraCut, cut_boxes, plan_layout


def test_two_regions_grid_and_time_windows_layouts() -> None:
    left, right = plan_layout("two-regions", 768, 576, 1, 795, 7.0, gap=0.1)
    # width per camera: 768 * 0.45 = 345.6 -> 344 (even); gap strip 344..424 (80 px)
    assert (left.x0, left.x1, right.x0, right.x1) == (0, 344, 424, 768)
    assert (left.y0, left.y1, left.f0, left.f1) == (0, 576, 1, 795)
    grid = plan_layout("grid", 768, 576, 1, 795, 7.0, gap=0.1)
    # height per row: 576 * 0.45 = 259.2 -> 258
    assert [(c.cam_id, c.x0, c.y0, c.x1, c.y1) for c in grid] == [
        ("top_left", 0, 0, 344, 258), ("top_right", 424, 0, 768, 258),
        ("bottom_left", 0, 318, 344, 576), ("bottom_right", 424, 318, 768, 576)]
    w1, w2 = plan_layout("time-windows", 768, 576, 1, 795, 7.0, gap=0.1, n=2)
    # 795 * 0.9 / 2 = 357.75 -> 357 frames each; the 81 left over are the gap
    assert (w1.f0, w1.f1, w2.f0, w2.f1) == (1, 357, 439, 795)
    assert w1.time_offset_s == 0.0 and w2.time_offset_s == pytest.approx(438 / 7.0)
    with pytest.raises(ConfigError, match="unknown layout 'ring'"):
        plan_layout("ring", 768, 576, 1, 795, 7.0)


def test_cut_boxes_clips_and_keeps_mostly_visible() -> None:
    cut = CameraCut("right", 424, 0, 768, 576, 11, 20)
    frames = np.array([11, 11, 12, 25, 20])
    ids = np.array([1, 2, 3, 4, 5])
    tlwh = np.array([
        [400, 10, 40, 80],   # 16/40 of its width inside -> 0.4 < 0.5: dropped
        [410, 10, 40, 80],   # 26/40 = 0.65 inside: kept, clipped to x 424..450
        [500, 20, 30, 60],   # fully inside
        [500, 20, 30, 60],   # frame 25 outside the window [11, 20]
        [750, 550, 40, 40],  # 18 x 26 of 40 x 40 = 0.29: dropped
    ], dtype=float)
    lf, lid, box = cut_boxes(frames, ids, tlwh, cut, min_visible=0.5)
    assert lf.tolist() == [1, 2] and lid.tolist() == [2, 3]
    np.testing.assert_allclose(box, [[0, 10, 26, 80], [76, 20, 30, 60]])
