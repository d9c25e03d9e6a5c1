"""Camera-motion compensation: affine from sparse flow on a shifted real frame; exact state warp."""

from __future__ import annotations

import numpy as np

from pipeline.core.types import Detection
from trackers.cmc import SparseFlowCMC, apply_affine
from trackers.config import TrackerConfig
from trackers.tracker import Tracker


def test_sparse_flow_recovers_a_translation(pets_dir):
    import cv2

    img = cv2.imread(str(pets_dir / "img1" / "000001.jpg"))
    shifted = np.roll(img, shift=(4, 10), axis=(0, 1))  # content moves 10 px right, 4 px down
    cmc = SparseFlowCMC(downscale=2)
    np.testing.assert_allclose(cmc.estimate(img), np.eye(2, 3))
    affine = cmc.estimate(shifted)
    np.testing.assert_allclose(affine[:, :2], np.eye(2), atol=0.01)
    np.testing.assert_allclose(affine[:, 2], [10, 4], atol=1.0)


def test_apply_affine_exact():
    means = np.array([[100.0, 50.0, 0.5, 80.0, 2.0, 1.0, 0.0, 0.5]])
    covs = np.eye(8)[None]
    affine = np.array([[2.0, 0.0, 5.0], [0.0, 2.0, -3.0]])  # scale 2 + translation
    m, c = apply_affine(means, covs, affine, "xyah")
    np.testing.assert_allclose(m[0], [205, 97, 0.5, 160, 4, 2, 0, 1])
    np.testing.assert_allclose(np.diag(c[0]), [4, 4, 1, 4, 4, 4, 1, 4])


def test_tracker_with_cmc_runs_on_frames(pets_dir):
    import cv2

    cfg = TrackerConfig.model_validate({"cmc": {"method": "sparse_flow"}})
    trk = Tracker(cfg)
    for f in (1, 2, 3):
        img = cv2.imread(str(pets_dir / "img1" / f"{f:06d}.jpg"))
        out = trk.update([Detection(np.array([500.0, 158, 31, 70]), 0.95)], img)
    assert [o.track_id for o in out] == [1]
