"""Cost functions and min_cost_matching on tiny exact inputs."""

from __future__ import annotations

import numpy as np
import pytest

from trackers import costs
from trackers.assignment import min_cost_matching


def test_iou_cost_exact():
    a = np.array([[0.0, 0.0, 2.0, 2.0]])
    b = np.array([[1.0, 0.0, 3.0, 2.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]])
    np.testing.assert_allclose(costs.iou_cost(a, b), [[1 - 2 / 6, 0.0, 1.0]])
    assert costs.iou_cost(np.zeros((0, 4)), b).shape == (0, 3)


def test_fuse_score_exact():
    c = np.array([[0.5, 0.0]])
    np.testing.assert_allclose(costs.fuse_score(c, np.array([0.8, 0.5])), [[1 - 0.5 * 0.8, 1 - 0.5]])


def test_cosine_cost_exact():
    t = np.array([[1.0, 0.0], [0.6, 0.8]])
    d = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    np.testing.assert_allclose(costs.cosine_cost(t, d), [[0.0, 1.0, 2.0], [0.4, 0.2, 1.6]])
    g = costs.gallery_cosine_cost([np.array([[1.0, 0.0], [0.0, 1.0]])], d)
    np.testing.assert_allclose(g, [[0.0, 0.0, 1.0]])


def test_fuse_motion_appearance_min_and_gates():
    motion = np.array([[0.3, 0.9], [0.2, 0.4]])
    app = np.array([[0.1, 0.05], [0.5, 0.2]])
    out = costs.fuse_motion_appearance(motion, app, proximity_thresh=0.5, appearance_thresh=0.25, fusion="min")
    # [0,1]: motion beyond proximity -> appearance ignored; [1,0]: appearance beyond threshold -> ignored
    np.testing.assert_allclose(out, [[0.1, 0.9], [0.2, 0.2]])
    w = costs.fuse_motion_appearance(motion, app, 0.5, 0.25, fusion="weighted", weight=0.5)
    np.testing.assert_allclose(w, [[0.2, 0.95], [0.6, 0.3]])



def test_proximity_gate_uses_raw_iou_distance_like_botsort():
    """A well-placed low-score detection: raw IoU distance 0.2, score 0.4 -> fused cost 1 - 0.8 * 0.4 = 0.68.
    The proximity gate (0.5) looks at the raw 0.2, so the appearance match (0.1) still counts."""
    iou_d = np.array([[0.2]])
    fused = costs.fuse_score(iou_d, np.array([0.4]))
    np.testing.assert_allclose(fused, [[0.68]])
    app = np.array([[0.1]])
    gated_on_fused = costs.fuse_motion_appearance(fused, app, 0.5, 0.25, fusion="min")
    gated_on_raw = costs.fuse_motion_appearance(fused, app, 0.5, 0.25, fusion="min", proximity_cost=iou_d)
    np.testing.assert_allclose(gated_on_fused, [[0.68]])
    np.testing.assert_allclose(gated_on_raw, [[0.1]])

def test_gate_mahalanobis():
    c = np.array([[0.1, 0.2]])
    out = costs.gate_mahalanobis(c, np.array([[1.0, 20.0]]), 9.4877)
    assert out[0, 0] == 0.1 and np.isinf(out[0, 1])


def test_direction_consistency_exact():
    prev = np.array([[0.0, 0.0]])
    last = np.array([[1.0, 0.0]])
    det = np.array([[2.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    out = costs.direction_consistency(prev, last, det, np.array([True]))
    np.testing.assert_allclose(out, [[0.5, 0.0, -0.5]], atol=1e-6)


def test_min_cost_matching_exact():
    c = np.array([[0.1, 0.9, 0.3], [0.2, 0.15, np.inf]])
    m, ur, uc = min_cost_matching(c, 0.5)
    np.testing.assert_array_equal(m, [[0, 0], [1, 1]])
    np.testing.assert_array_equal(ur, [])
    np.testing.assert_array_equal(uc, [2])


def test_min_cost_matching_global_optimum_and_limit():
    # greedy would take (0,0)=0.1 then (1,1)=0.9 > limit; optimal is (0,1)+(1,0)
    c = np.array([[0.1, 0.2], [0.3, 0.9]])
    m, ur, uc = min_cost_matching(c, 0.5)
    np.testing.assert_array_equal(m, [[0, 1], [1, 0]])
    m, ur, uc = min_cost_matching(np.array([[0.6, 0.7]]), 0.5)
    assert len(m) == 0 and list(ur) == [0] and list(uc) == [0, 1]


@pytest.mark.parametrize("shape", [(0, 3), (2, 0), (0, 0)])
def test_min_cost_matching_empty(shape):
    m, ur, uc = min_cost_matching(np.zeros(shape), 0.5)
    assert m.shape == (0, 2) and len(ur) == shape[0] and len(uc) == shape[1]
