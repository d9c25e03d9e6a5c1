"""ROI filter on foot points, hand-computed."""

import numpy as np

from pipeline.runner.roi import filter_roi, foot_points, inside_roi
from pipeline.core.types import Detection


def test_foot_points_and_box_roi():
    pts = foot_points(np.array([[10.0, 20.0, 4.0, 30.0]]))
    assert pts.tolist() == [[12.0, 50.0]]
    dets = [Detection(np.array([10.0, 20.0, 4.0, 30.0]), 0.9), Detection(np.array([100.0, 0.0, 10.0, 10.0]), 0.8)]
    kept = filter_roi(dets, [0, 0, 50, 60])
    assert len(kept) == 1 and kept[0].score == 0.9
    assert filter_roi(dets, None) is dets


def test_polygon_roi_triangle():
    tri = [[0, 0], [10, 0], [0, 10]]
    got = inside_roi(np.array([[1.0, 1.0], [6.0, 6.0], [-1.0, 1.0], [4.0, 4.0]]), tri)
    assert got.tolist() == [True, False, False, True]
