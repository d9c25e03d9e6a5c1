"""Label-free calibration of the cross-camera matching threshold.

A fixed cosine-distance threshold only means something for one model: the
distance scale of a re-id network trained with a margin loss and that of raw
ImageNet features differ by an order of magnitude, and it moves again when
online adaptation deploys new weights. The matcher sees, for free, pairs it
*knows* are different people:

* a tracklet and an identity with a member that overlaps it in time **in the
  same camera** (one person is not two tracks at once);
* a tracklet and an identity seen at the same time **in another camera whose
  view does not overlap** (one person is not in two places at once).

Their distances are samples of the "different people" distribution. The
calibrated threshold is its ``false_match_rate`` quantile: the distance below
which only that share of known-different pairs fall, i.e. an estimate of the
false-match rate of a single comparison, measured on the deployed cameras and
the deployed model, without labels. A newcomer is compared with every identity
of the gallery, so a per-comparison rate that suits a few dozen identities lets
hundreds of them absorb newcomers: above ``reference_identities`` identities the
rate is divided by G / ``reference_identities`` (:func:`gallery_rate`).

Until ``min_negatives`` samples exist
(``warmup``) no fresh tracklet joins an existing identity (``"no-link"``, the
default: with revision on, the window's re-solve links them once calibrated) or
the configured fixed threshold is used (``"threshold"``).

The samples outlive a run: the runner saves them in the identity store
(:mod:`pipeline.store.calibration`, schema 4) and a restarted run that uses the
same encoder version continues from them (:meth:`NegativeDistanceCalibrator.restore`),
so only the very first run of a deployment goes through the warm-up.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from pipeline.matching.config import AutoThresholdConfig


def gallery_rate(config: AutoThresholdConfig, identities: int | None) -> float:
    """The quantile the threshold is taken at for a gallery of ``identities`` (None: unknown):
    ``false_match_rate``, times ``reference_identities / identities`` when the gallery is larger
    (so the chance that a newcomer falls within the threshold of *some* identity stays about that of a
    ``reference_identities`` gallery). E.g. 0.02 with reference 50: 0.02 up to 50 identities, 0.01 at
    100, 0.002 at 500."""
    ref = getattr(config, "reference_identities", None)  # absent in configs pickled before it existed
    if ref is None or identities is None or identities <= ref:
        return config.false_match_rate
    return config.false_match_rate * ref / identities


class NegativeDistanceCalibrator:
    """Keeps the last ``max_negatives`` known-different distances; their quantile is the threshold."""

    #: samples ever added (a saver's cheap "changed since" test); class default for unpickled old checkpoints
    added: int = 0
    #: gallery size of the last :meth:`threshold_for` call (None: not given; the unscaled rate)
    identities: int | None = None

    def __init__(self, config: AutoThresholdConfig, fallback: float) -> None:
        self.config = config
        self.configured = 0.0 if config.warmup == "no-link" else float(fallback)
        self.fallback = self.configured
        self._d: deque[float] = deque(maxlen=config.max_negatives)
        self._by_rate: dict[float, float] = {}  # quantile rate -> threshold, emptied when the samples change

    def __len__(self) -> int:
        return len(self._d)

    def add(self, distances: np.ndarray) -> None:
        """Record known-different cosine distances, any shape (flattened; non-finite ignored)."""
        d = np.asarray(distances, dtype=np.float64).ravel()
        d = d[np.isfinite(d)]
        if d.size:
            self._d.extend(d.tolist())
            self._by_rate = {}
            self.added += int(d.size)

    @property
    def negatives(self) -> np.ndarray:
        """(K,) float64 copy of the kept known-different distances, oldest first (K <= max_negatives)."""
        return np.fromiter(self._d, dtype=np.float64, count=len(self._d))

    @property
    def kept_fallback(self) -> float | None:
        """The warm-up threshold when it is not the configured one (kept by :meth:`reset`), else None."""
        return None if self.fallback == self.configured else self.fallback

    def restore(self, negatives: np.ndarray, kept_fallback: float | None = None) -> None:
        """Continue from saved state: ``negatives`` (K,) (the last ``max_negatives`` are kept) and
        the fallback a :meth:`reset` had kept (None: the configured one). Replaces the current samples."""
        d = np.asarray(negatives, dtype=np.float64).ravel()
        d = d[np.isfinite(d)]
        self._d.clear()
        self._d.extend(d.tolist())
        self.fallback = self.configured if kept_fallback is None else float(kept_fallback)
        self._by_rate = {}

    def reset(self, keep_threshold: bool = True) -> None:
        """Forget all samples (after the encoder's weights change, the distance scale does too).

        ``keep_threshold``: the threshold in force becomes the fallback until new samples
        calibrate it again (a fine-tuned model's scale is close to its parent's), instead
        of the configured fixed value.
        """
        self.fallback = self.threshold if keep_threshold else self.configured
        self._d.clear()
        self._by_rate = {}

    @property
    def calibrated(self) -> bool:
        return len(self._d) >= self.config.min_negatives

    @property
    def threshold(self) -> float:
        """The threshold in force: the samples' quantile at :func:`gallery_rate` for the gallery size of the
        last :meth:`threshold_for` call, clipped to [min, max]; else the fallback."""
        return self._quantile(gallery_rate(self.config, self.identities))

    def threshold_for(self, identities: int | None) -> float:
        """The threshold for a gallery of ``identities`` identities (remembered as the size in force)."""
        self.identities = identities
        return self.threshold

    def _quantile(self, rate: float) -> float:
        if not self.calibrated:
            return self.fallback
        by_rate = self.__dict__.setdefault("_by_rate", {})  # absent in calibrators pickled before it existed
        if rate not in by_rate:
            if len(by_rate) > 64:
                by_rate.clear()
            q = float(np.quantile(np.fromiter(self._d, dtype=np.float64), rate))
            by_rate[rate] = float(np.clip(q, self.config.min_threshold, self.config.max_threshold))
        return by_rate[rate]
