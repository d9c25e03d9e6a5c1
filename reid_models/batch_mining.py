"""Pairs and triplets drawn from a P x K batch, for the pair / triplet losses.

Seed 001 presents every matching pair and an equal number of random
mismatching pairs; seed 000 trains on anchor / positive / negative triplets.
Within a P x K batch we draw, for every sample that has a positive in the
batch, one random positive and one random negative: balanced pairs, or triplets.
"""

from __future__ import annotations

import torch


def _positives_negatives(pids: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, ...]:
    """(N,) pids -> (anchor, positive, negative) index tensors (M,), M = anchors with both."""
    pids = pids.cpu()
    same = pids.unsqueeze(0) == pids.unsqueeze(1)
    eye = torch.eye(len(pids), dtype=torch.bool)
    pos_mask = (same & ~eye).float()
    neg_mask = (~same).float()
    valid = (pos_mask.sum(1) > 0) & (neg_mask.sum(1) > 0)
    anchors = torch.nonzero(valid).flatten()
    if len(anchors) == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty, empty
    pos = torch.multinomial(pos_mask[anchors], 1, generator=generator).flatten()
    neg = torch.multinomial(neg_mask[anchors], 1, generator=generator).flatten()
    return anchors, pos, neg


def triplets_from_batch(pids: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One random (anchor, positive, negative) triplet per usable anchor; index tensors (M,)."""
    return _positives_negatives(pids, generator)  # type: ignore[return-value]


def pairs_from_batch(pids: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Balanced pairs: for each usable anchor one positive and one negative pair.

    Returns (idx_a (2M,), idx_b (2M,), same (2M,) bool) — first M positive, then M negative.
    """
    a, p, n = _positives_negatives(pids, generator)
    idx_a = torch.cat([a, a])
    idx_b = torch.cat([p, n])
    same = torch.cat([torch.ones(len(a), dtype=torch.bool), torch.zeros(len(a), dtype=torch.bool)])
    return idx_a, idx_b, same
