"""Constant-velocity Kalman filter over box states, stateless like deep_sort.

The state is 8-D: a 4-D box measurement plus its velocity. Two measurement
representations are supported:

* ``"xyah"`` (deep_sort / ByteTrack): centre x, centre y, aspect ratio w/h, height;
  noise scales with the height.
* ``"xywh"`` (BoT-SORT): centre x, centre y, width, height; x/w noise scales with
  the width, y/h noise with the height.

The single-track operations (:meth:`KalmanBoxFilter.predict`, :meth:`update`) are
filterpy's ``predict``/``update`` on a filterpy-style (F, H, Q, R) model; the
batched :meth:`multi_predict` / :meth:`multi_update` do the same algebra on
(N, 8) means and (N, 8, 8) covariances at once, for speed.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from filterpy.kalman import predict as fp_predict
from filterpy.kalman import update as fp_update

from pipeline.core.types import tlwh_to_xyah, tlwh_to_xywh, xyah_to_tlwh, xywh_to_tlwh

#: 0.95 quantile of the chi-square distribution with N degrees of freedom
#: (N = 1..9), the Mahalanobis gate of deep_sort.
CHI2INV95: dict[int, float] = {
    1: 3.8415,
    2: 5.9915,
    3: 7.8147,
    4: 9.4877,
    5: 11.070,
    6: 12.592,
    7: 14.067,
    8: 15.507,
    9: 16.919,
}

Representation = Literal["xyah", "xywh"]


class KalmanBoxFilter:
    """Stateless constant-velocity filter; every method takes and returns (mean, cov).

    mean: (8,) float64 ``[box(4), velocity(4)]``; cov: (8, 8) float64. Batched
    variants take (N, 8) and (N, 8, 8).
    """

    ndim = 4

    def __init__(
        self,
        representation: Representation = "xyah",
        std_weight_position: float = 1.0 / 20,
        std_weight_velocity: float = 1.0 / 160,
        dt: float = 1.0,
    ) -> None:
        self.representation: Representation = representation
        self._w_pos = float(std_weight_position)
        self._w_vel = float(std_weight_velocity)
        self.F = np.eye(8)
        for i in range(4):
            self.F[i, 4 + i] = dt
        self.H = np.eye(4, 8)

    # --- measurement conversions -------------------------------------------------
    def measurement_from_tlwh(self, tlwh: np.ndarray) -> np.ndarray:
        """(..., 4) tlwh -> (..., 4) measurement in this filter's representation."""
        return tlwh_to_xyah(tlwh) if self.representation == "xyah" else tlwh_to_xywh(tlwh)

    def tlwh_from_mean(self, mean: np.ndarray) -> np.ndarray:
        """(..., 8) means -> (..., 4) tlwh boxes."""
        box = np.asarray(mean)[..., :4]
        return xyah_to_tlwh(box) if self.representation == "xyah" else xywh_to_tlwh(box)

    # --- noise models ------------------------------------------------------------
    def _scales(self, box: np.ndarray) -> np.ndarray:
        """(..., 4) box -> (..., 4) per-component scale (pixels) for the noise stds."""
        box = np.asarray(box, dtype=np.float64)
        out = np.empty(box.shape, dtype=np.float64)
        h = box[..., 3]
        out[..., 1] = h
        out[..., 3] = h
        if self.representation == "xyah":
            out[..., 0] = h
            out[..., 2] = 1.0
        else:
            out[..., 0] = box[..., 2]
            out[..., 2] = box[..., 2]
        return out

    def _abs_std(self, box: np.ndarray, w: float, aspect_std: float) -> np.ndarray:
        std = w * self._scales(box)
        if self.representation == "xyah":
            std[..., 2] = aspect_std
        return std

    def process_noise(self, mean: np.ndarray) -> np.ndarray:
        """(..., 8) means -> (..., 8) diagonal of Q (variances)."""
        box = np.asarray(mean)[..., :4]
        std_pos = self._abs_std(box, self._w_pos, 1e-2)
        std_vel = self._abs_std(box, self._w_vel, 1e-5)
        return np.concatenate([std_pos, std_vel], axis=-1) ** 2

    def measurement_noise(self, mean: np.ndarray) -> np.ndarray:
        """(..., 8) means -> (..., 4) diagonal of R (variances)."""
        return self._abs_std(np.asarray(mean)[..., :4], self._w_pos, 1e-1) ** 2

    # --- single-track operations ---------------------------------------------------
    def initiate(self, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(4,) measurement -> new track (mean (8,), cov (8, 8)), zero velocity."""
        z = np.asarray(measurement, dtype=np.float64)
        mean = np.concatenate([z, np.zeros(4)])
        std_pos = self._abs_std(z, 2 * self._w_pos, 1e-2)
        std_vel = self._abs_std(z, 10 * self._w_vel, 1e-5)
        return mean, np.diag(np.concatenate([std_pos, std_vel]) ** 2)

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One time step: x' = F x, P' = F P F^T + Q (filterpy.kalman.predict)."""
        q = np.diag(self.process_noise(mean))
        x, p = fp_predict(np.asarray(mean, dtype=np.float64), np.asarray(cov, dtype=np.float64), self.F, q)
        return x, p

    def project(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """State -> measurement space: (4,) mean and (4, 4) innovation covariance H P H^T + R."""
        r = np.diag(self.measurement_noise(mean))
        return self.H @ mean, self.H @ cov @ self.H.T + r

    def update(self, mean: np.ndarray, cov: np.ndarray, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct with one (4,) measurement (filterpy.kalman.update)."""
        r = np.diag(self.measurement_noise(mean))
        x, p = fp_update(np.asarray(mean, dtype=np.float64), np.asarray(cov, dtype=np.float64),
                         np.asarray(measurement, dtype=np.float64), r, self.H)
        return x, p

    # --- batched operations --------------------------------------------------------
    def multi_predict(self, means: np.ndarray, covs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Batched predict: (N, 8), (N, 8, 8) -> same shapes."""
        if len(means) == 0:
            return means, covs
        q = self.process_noise(means)
        new_means = means @ self.F.T
        new_covs = self.F @ covs @ self.F.T
        idx = np.arange(8)
        new_covs[:, idx, idx] += q
        return new_means, new_covs

    def multi_update(self, means: np.ndarray, covs: np.ndarray, measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Batched update: (N, 8), (N, 8, 8), (N, 4) -> corrected (N, 8), (N, 8, 8)."""
        if len(means) == 0:
            return means, covs
        r = self.measurement_noise(means)
        s = covs[:, :4, :4].copy()
        idx = np.arange(4)
        s[:, idx, idx] += r
        pht = covs[:, :, :4]  # P H^T, (N, 8, 4)
        gain = np.linalg.solve(s, pht.transpose(0, 2, 1)).transpose(0, 2, 1)  # K = P H^T S^-1 (S symmetric)
        innovation = measurements - means[:, :4]
        new_means = means + np.einsum("nij,nj->ni", gain, innovation)
        new_covs = covs - gain @ s @ gain.transpose(0, 2, 1)
        return new_means, new_covs

    def gating_distance(
        self, mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray, only_position: bool = False
    ) -> np.ndarray:
        """Squared Mahalanobis distance of (M, 4) measurements to one track -> (M,)."""
        proj_mean, proj_cov = self.project(mean, cov)
        z = np.asarray(measurements, dtype=np.float64).reshape(-1, 4)
        if only_position:
            proj_mean, proj_cov, z = proj_mean[:2], proj_cov[:2, :2], z[:, :2]
        chol = np.linalg.cholesky(proj_cov)
        d = z - proj_mean
        sol = np.linalg.solve(chol, d.T)
        return np.sum(sol * sol, axis=0)

    def multi_gating_distance(self, means: np.ndarray, covs: np.ndarray, measurements: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distances (N tracks x M measurements) -> (N, M)."""
        z = np.asarray(measurements, dtype=np.float64).reshape(-1, 4)
        if len(means) == 0 or len(z) == 0:
            return np.zeros((len(means), len(z)))
        s = covs[:, :4, :4].copy()
        idx = np.arange(4)
        s[:, idx, idx] += self.measurement_noise(means)
        d = z[None, :, :] - means[:, None, :4]  # (N, M, 4)
        sol = np.linalg.solve(s, d.transpose(0, 2, 1))  # (N, 4, M)
        return np.einsum("nmk,nkm->nm", d, sol)
