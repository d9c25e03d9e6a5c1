"""Guardrails for pseudo-label fine-tuning: a hold-out check the tracker vouches for.

Pseudo-labels amplify a weak model, so a candidate model is deployed only if
it does not score worse than the current one on pairs it never trained on:

* positives: the first and second half of one held-out single-camera
  tracklet (the tracker kept them together, so they are one person);
* negatives: halves of two held-out tracklets seen at the same time in the
  same camera (two boxes of one frame are two people).

The score is the verification AUC, P(d_negative > d_positive) with ties
counted one half (Mann-Whitney U / (n_pos * n_neg)), of cosine distances.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HalfTracklet:
    """One half of a held-out tracklet: its camera, time span and mean embedding (D,)."""

    tracklet: int
    cam_id: str
    start_time: float
    end_time: float
    vector: np.ndarray


def verification_auc(d_pos: np.ndarray, d_neg: np.ndarray) -> float:
    """P(negative distance > positive distance), ties 1/2. Empty side -> nan."""
    d_pos = np.asarray(d_pos, dtype=np.float64).ravel()
    d_neg = np.asarray(d_neg, dtype=np.float64).ravel()
    if d_pos.size == 0 or d_neg.size == 0:
        return float("nan")
    greater = (d_neg[None, :] > d_pos[:, None]).sum()
    ties = (d_neg[None, :] == d_pos[:, None]).sum()
    return float((greater + 0.5 * ties) / (d_pos.size * d_neg.size))


def continuity_pairs(halves: Sequence[HalfTracklet], cooccur: Callable[[int, int], bool] | None = None,
                     ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(positive index pairs, negative index pairs) over a list of halves.

    Positives: the two halves of one tracklet. Negatives: halves of different
    tracklets in the same camera whose tracklets overlap in time, or, with
    ``cooccur(tracklet_a, tracklet_b)``, that rule says were seen together
    (e.g. they hold crops of one video frame).
    """
    span: dict[int, tuple[float, float, str]] = {}
    for h in halves:
        s, e, _ = span.get(h.tracklet, (h.start_time, h.end_time, h.cam_id))
        span[h.tracklet] = (min(s, h.start_time), max(e, h.end_time), h.cam_id)
    pos, neg = [], []
    for i in range(len(halves)):
        for j in range(i + 1, len(halves)):
            a, b = halves[i], halves[j]
            if a.tracklet == b.tracklet:
                pos.append((i, j))
                continue
            sa, ea, ca = span[a.tracklet]
            sb, eb, cb = span[b.tracklet]
            together = cooccur(a.tracklet, b.tracklet) if cooccur is not None else sa <= eb and sb <= ea
            if ca == cb and together:
                neg.append((i, j))
    return pos, neg


def continuity_auc(halves: Sequence[HalfTracklet], cooccur: Callable[[int, int], bool] | None = None) -> float:
    """Verification AUC of the continuity pairs (:func:`continuity_pairs`) under the halves' current vectors."""
    pos, neg = continuity_pairs(halves, cooccur)
    if not pos or not neg:
        return float("nan")
    v = np.stack([np.asarray(h.vector, dtype=np.float64) for h in halves])
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def dist(pairs: list[tuple[int, int]]) -> np.ndarray:
        idx = np.asarray(pairs)
        return 1.0 - np.einsum("nd,nd->n", v[idx[:, 0]], v[idx[:, 1]])

    return verification_auc(dist(pos), dist(neg))


@dataclass(frozen=True)
class DeployDecision:
    deploy: bool
    baseline: float
    candidate: float
    reason: str


def decide_deploy(baseline: float, candidate: float, min_gain: float = 0.0) -> DeployDecision:
    """Deploy only when the candidate's hold-out score is at least ``baseline + min_gain``."""
    if not np.isfinite(candidate):
        return DeployDecision(False, baseline, candidate, "no hold-out pairs to check the candidate on")
    if np.isfinite(baseline) and candidate < baseline + min_gain:
        return DeployDecision(
            False, baseline, candidate,
            f"hold-out AUC {candidate:.4f} below current {baseline:.4f} + {min_gain:.4f}: refused",
        )
    return DeployDecision(True, baseline, candidate, f"hold-out AUC {baseline:.4f} -> {candidate:.4f}")
