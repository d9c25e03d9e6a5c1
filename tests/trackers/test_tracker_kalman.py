"""Kalman filter: hand-computed predict/update/gating values (xyah, deep_sort noise model)."""

from __future__ import annotations

import numpy as np
import pytest

from trackers.kalman import CHI2INV95, KalmanBoxFilter


@pytest.fixture()
def kf() -> KalmanBoxFilter:
    return KalmanBoxFilter("xyah", std_weight_position=1 / 20, std_weight_velocity=1 / 160)


def test_initiate_hand_computed(kf):
    z = kf.measurement_from_tlwh(np.array([0.0, 0.0, 50.0, 100.0]))
    np.testing.assert_allclose(z, [25.0, 50.0, 0.5, 100.0])
    mean, cov = kf.initiate(z)
    np.testing.assert_allclose(mean, [25, 50, 0.5, 100, 0, 0, 0, 0])
    # std_pos = 2 * h/20 = 10 ; std_vel = 10 * h/160 = 6.25 ; aspect: 1e-2 and 1e-5
    np.testing.assert_allclose(np.diag(cov), [100, 100, 1e-4, 100, 39.0625, 39.0625, 1e-10, 39.0625])
    assert np.count_nonzero(cov - np.diag(np.diag(cov))) == 0


def _predicted(kf):
    mean, cov = kf.initiate(np.array([25.0, 50.0, 0.5, 100.0]))
    mean[4] = 2.0  # moving right 2 px/frame
    return kf.predict(mean, cov)


def test_predict_hand_computed(kf):
    mean, cov = _predicted(kf)
    np.testing.assert_allclose(mean, [27, 50, 0.5, 100, 2, 0, 0, 0])
    # P' = F P F^T + Q ; Q std_pos = h/20 = 5, std_vel = h/160 = 0.625
    assert cov[0, 0] == pytest.approx(100 + 39.0625 + 25)
    assert cov[0, 4] == pytest.approx(39.0625)
    assert cov[4, 4] == pytest.approx(39.0625 + 0.390625)
    assert cov[2, 2] == pytest.approx(1e-4 + 1e-10 + 1e-4)


def test_update_hand_computed(kf):
    mean, cov = _predicted(kf)
    z = np.array([30.0, 50.0, 0.5, 100.0])  # 3 px right of the prediction
    new_mean, new_cov = kf.update(mean, cov, z)
    s = 164.0625 + 25.0  # innovation variance in x (R std = h/20 = 5)
    assert new_mean[0] == pytest.approx(27 + 3 * 164.0625 / s)
    assert new_mean[4] == pytest.approx(2 + 3 * 39.0625 / s)
    assert new_mean[1] == pytest.approx(50.0)
    assert new_cov[0, 0] == pytest.approx(164.0625 - 164.0625**2 / s)
    assert new_cov[4, 4] == pytest.approx(39.453125 - 39.0625**2 / s)


def test_gating_distance_hand_computed(kf):
    mean, cov = _predicted(kf)
    z = np.array([[30.0, 50.0, 0.5, 100.0], [27.0, 50.0, 0.5, 100.0]])
    d = kf.gating_distance(mean, cov, z)
    np.testing.assert_allclose(d, [9 / 189.0625, 0.0], atol=1e-12)
    np.testing.assert_allclose(kf.multi_gating_distance(mean[None], cov[None], z)[0], d)
    assert CHI2INV95[4] == pytest.approx(9.4877)


@pytest.mark.parametrize("rep", ["xyah", "xywh"])
def test_batched_ops_equal_single_track_ops(rep):
    kf = KalmanBoxFilter(rep)
    rng = np.random.default_rng(0)
    boxes = rng.uniform([0, 0, 20, 40], [500, 300, 60, 120], size=(5, 4))
    states = [kf.initiate(kf.measurement_from_tlwh(b)) for b in boxes]
    means = np.stack([m for m, _ in states])
    means[:, 4:6] = rng.normal(size=(5, 2))
    covs = np.stack([c for _, c in states])
    bm, bc = kf.multi_predict(means, covs)
    z = kf.measurement_from_tlwh(boxes + rng.normal(size=(5, 4)))
    um, uc = kf.multi_update(bm, bc, z)
    for i in range(5):
        m, c = kf.predict(means[i], covs[i])
        np.testing.assert_allclose(bm[i], m)
        np.testing.assert_allclose(bc[i], c)
        m2, c2 = kf.update(m, c, z[i])
        np.testing.assert_allclose(um[i], m2, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(uc[i], c2, rtol=1e-7, atol=1e-9)


def test_xywh_roundtrip():
    kf = KalmanBoxFilter("xywh")
    tlwh = np.array([10.0, 20.0, 30.0, 60.0])
    z = kf.measurement_from_tlwh(tlwh)
    np.testing.assert_allclose(z, [25, 50, 30, 60])
    mean, _ = kf.initiate(z)
    np.testing.assert_allclose(kf.tlwh_from_mean(mean), tlwh)
