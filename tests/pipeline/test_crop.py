"""The one crop rule (pipeline.core.types.crop_tlwh), hand-computed on a 10 x 20 image."""

from __future__ import annotations

import numpy as np

from pipeline.core.types import crop_tlwh

IMAGE = np.arange(10 * 20 * 3, dtype=np.uint8).reshape(10, 20, 3)  # H 10, W 20


def test_floor_left_top_ceil_right_bottom():
    # x 2.7..6.2 -> columns 2..6 (5 px), y 1.5..4.1 -> rows 1..4 (4 px): the box is never cut short
    crop = crop_tlwh(IMAGE, np.array([2.7, 1.5, 3.5, 2.6]))
    assert np.array_equal(crop, IMAGE[1:5, 2:7])


def test_clipped_to_the_image_and_edge_strip_outside():
    assert np.array_equal(crop_tlwh(IMAGE, np.array([-5, -5, 10, 10])), IMAGE[0:5, 0:5])
    assert np.array_equal(crop_tlwh(IMAGE, np.array([15, 5, 10, 10])), IMAGE[5:10, 15:20])
    assert np.array_equal(crop_tlwh(IMAGE, np.array([30, 30, 5, 5])), IMAGE[9:10, 19:20])  # wholly outside


def test_min_size_and_view():
    assert crop_tlwh(IMAGE, np.array([30, 30, 5, 5]), min_size=2) is None
    assert crop_tlwh(IMAGE, np.array([3, 3, 1.0, 5]), min_size=2) is None  # 1 px wide
    assert crop_tlwh(IMAGE, np.array([3, 3, 1.2, 5]), min_size=2).shape == (5, 2, 3)  # 3..4.2 -> 2 columns
    assert np.shares_memory(crop_tlwh(IMAGE, np.array([0, 0, 4, 4])), IMAGE)  # a view: callers that keep it copy
