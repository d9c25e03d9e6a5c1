"""Calibrated link probability: P(same person | cosine distance), learned without labels.

Two label-free samples exist on the deployed cameras and model:

* **negatives**: distances of pairs the space-time constraints prove to be different people
  (the threshold calibration's samples, :class:`~pipeline.matching.calibration.NegativeDistanceCalibrator`);
* **positives**: distances between the two halves of one tracklet (the same person by
  construction: one track), added by the runner for every final tracklet long enough to cut.

A one-feature logistic regression (scikit-learn ``LogisticRegression``) maps a distance to a
probability; each class enters as its 201 quantiles, so both weigh the same (the probability is the
posterior at equal priors: 0.5 where both samples are equally likely) and a fit costs milliseconds
whatever the number of samples (refit when new samples reach half of those kept). Logistic rather
than isotonic: two parameters, smooth, and monotone by construction whenever the fitted slope is negative (a fit whose slope is not negative, i.e. the
positives are not closer than the negatives, is refused: no probability until the samples say
something). Only the two coefficients are kept (checkpoints pickle plain data). Same-track halves
are closer than cross-camera sightings of one person (no change of view), so the probability is a
conservative (low) estimate for cross-camera links; it is a confidence to show, not a threshold.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

#: samples of each class needed before a fit
MIN_SAMPLES = 10
#: refit when this many new samples arrived since the last fit, or REFIT_SHARE of those kept if more
REFIT_EVERY = 25
REFIT_SHARE = 0.5
#: quantiles per class the logistic fit sees
QUANTILES = 201


class LinkConfidence:
    """P(same | distance) from known-different (negatives) and same-track (positives) distances."""

    def __init__(self, max_positives: int = 5000) -> None:
        self._pos: deque[float] = deque(maxlen=max_positives)
        self.pos_added = 0
        self.coef: tuple[float, float] | None = None  # (intercept, slope) on the distance; slope < 0
        self._fitted_at = (-1, -1)

    def __len__(self) -> int:
        return len(self._pos)

    @property
    def positives(self) -> np.ndarray:
        """(K,) float64 copy of the kept same-track distances, oldest first."""
        return np.fromiter(self._pos, dtype=np.float64, count=len(self._pos))

    def add_positive(self, distances) -> None:
        """Record same-person (two halves of one track) cosine distances, any shape (non-finite ignored)."""
        d = np.asarray(distances, dtype=np.float64).ravel()
        d = d[np.isfinite(d)]
        if d.size:
            self._pos.extend(d.tolist())
            self.pos_added += int(d.size)

    def update(self, negatives: np.ndarray, neg_added: int) -> None:
        """Refit on ``negatives`` (K,) and the kept positives when max(REFIT_EVERY, REFIT_SHARE of the
        kept samples) arrived since the last fit (``neg_added``: the negatives' running count)."""
        last_neg, last_pos = self._fitted_at
        fresh = (neg_added - last_neg) + (self.pos_added - last_pos)
        if fresh < max(REFIT_EVERY, REFIT_SHARE * (len(negatives) + len(self._pos))):
            return  # a fit costs milliseconds: not on every matcher call
        self._fitted_at = (neg_added, self.pos_added)
        self.coef = fit_logistic(np.asarray(negatives, dtype=np.float64), self.positives)

    def probability(self, distance: float | None) -> float | None:
        """P(same person) at ``distance`` (None before a valid fit or without a distance)."""
        if self.coef is None or distance is None or not math.isfinite(distance):
            return None
        return probability(self.coef, float(distance))


def probability(coef: tuple[float, float], distance: float) -> float:
    """sigmoid(intercept + slope * distance), computed without overflow."""
    z = coef[0] + coef[1] * distance
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def fit_logistic(negatives: np.ndarray, positives: np.ndarray) -> tuple[float, float] | None:
    """(intercept, slope) of P(same | d) from (K0,) negative and (K1,) positive distances, classes
    balanced; None with fewer than MIN_SAMPLES of either or a slope that is not negative."""
    if len(negatives) < MIN_SAMPLES or len(positives) < MIN_SAMPLES:
        return None
    from sklearn.linear_model import LogisticRegression

    # each class enters as its QUANTILES quantiles: the same 1-D distribution, a fit of fixed cost
    # (milliseconds) however many samples are kept, and both classes weigh the same (balanced)
    levels = np.linspace(0.0, 1.0, QUANTILES)
    neg, pos = np.quantile(negatives, levels), np.quantile(positives, levels)
    d = np.concatenate([neg, pos])
    y = np.concatenate([np.zeros(QUANTILES), np.ones(QUANTILES)])
    mu, sd = float(d.mean()), float(d.std())
    if sd <= 0:
        return None
    model = LogisticRegression(C=1e4).fit(((d - mu) / sd)[:, None], y)
    slope = float(model.coef_[0, 0]) / sd
    if not slope < 0:
        return None
    return float(model.intercept_[0]) - slope * mu, slope
