"""Camera-motion compensation (optional): sparse optical flow + partial affine (BoT-SORT's "sparseOptFlow").

The estimated 2x3 affine maps the previous frame's pixels to the current
frame's; :func:`apply_affine` moves predicted track states with it.
"""

from __future__ import annotations

import numpy as np


class SparseFlowCMC:
    """Keeps the previous grey frame; ``estimate(image)`` returns a (2, 3) float64 affine (identity at first)."""

    def __init__(self, downscale: int = 2, max_corners: int = 1000) -> None:
        self.downscale = max(1, int(downscale))
        self.max_corners = int(max_corners)
        self._prev: np.ndarray | None = None
        self._prev_pts: np.ndarray | None = None

    def estimate(self, image_bgr: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 BGR -> (2, 3) affine from the previous frame to this one."""
        import cv2

        eye = np.eye(2, 3)
        grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY) if image_bgr.ndim == 3 else image_bgr
        if self.downscale > 1:
            grey = cv2.resize(grey, (grey.shape[1] // self.downscale, grey.shape[0] // self.downscale))
        pts = cv2.goodFeaturesToTrack(grey, maxCorners=self.max_corners, qualityLevel=0.01,
                                      minDistance=1, blockSize=3, useHarrisDetector=False, k=0.04)
        prev, prev_pts = self._prev, self._prev_pts
        self._prev, self._prev_pts = grey, pts
        if prev is None or prev_pts is None or len(prev_pts) < 4 or prev.shape != grey.shape:
            return eye
        nxt, status, _ = cv2.calcOpticalFlowPyrLK(prev, grey, prev_pts, None)
        ok = status.reshape(-1).astype(bool)
        if ok.sum() < 4:
            return eye
        affine, _ = cv2.estimateAffinePartial2D(prev_pts[ok], nxt[ok], method=cv2.RANSAC)
        if affine is None:
            return eye
        affine = affine.astype(np.float64)
        affine[:, 2] *= self.downscale
        return affine


def apply_affine(means: np.ndarray, covs: np.ndarray, affine: np.ndarray, representation: str) -> tuple[np.ndarray, np.ndarray]:
    """Warp (N, 8) means and (N, 8, 8) covs by a (2, 3) affine.

    The centre and centre velocity are rotated/scaled by the 2x2 part and the
    centre is translated; for ``xywh`` the size and its velocity scale with the
    affine's scale factor, for ``xyah`` the height does (aspect is unchanged).
    """
    if len(means) == 0 or np.allclose(affine, np.eye(2, 3)):
        return means, covs
    r = affine[:, :2]
    scale = float(np.sqrt(abs(np.linalg.det(r))))
    m8 = np.eye(8)
    m8[0:2, 0:2] = r
    m8[4:6, 4:6] = r
    size_idx = [2, 3] if representation == "xywh" else [3]
    for i in size_idx:
        m8[i, i] = scale
        m8[4 + i, 4 + i] = scale
    new_means = means @ m8.T
    new_means[:, :2] += affine[:, 2]
    new_covs = m8 @ covs @ m8.T
    return new_means, new_covs
