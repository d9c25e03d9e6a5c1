"""The modified batch-hard triplet loss of seed 002 §3.2.3.

A batch has ``P * K`` embeddings: the first ``K`` rows are mutually positive
(crops of one presumed-positive tracklet pair) and the other ``(P - 1) * K``
rows are negatives for them (their identities among themselves are unknown).
For each of the first K rows the hardest positive (farthest of the other
K - 1) and the hardest negative (closest of the (P - 1) K) are found, and the
loss is averaged over those K anchors only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def modified_batch_hard(
    embeddings: torch.Tensor, k: int, margin: float | str = "soft"
) -> torch.Tensor:
    """embeddings: (P*K, D) float; rows [0, k) positives of each other, rows [k, N) negatives.

    Distances are Euclidean. ``margin="soft"`` uses softplus(d_ap - d_an);
    a float uses the hinge max(0, margin + d_ap - d_an). Returns a scalar.
    """
    if k < 2 or embeddings.shape[0] <= k:
        raise ValueError(f"need k >= 2 positives and at least one negative, got k={k}, n={embeddings.shape[0]}")
    anchors = embeddings[:k]
    d_pos = torch.cdist(anchors, anchors)  # (K, K)
    d_neg = torch.cdist(anchors, embeddings[k:])  # (K, N-K)
    hardest_pos = d_pos.max(dim=1).values  # self-distance is 0, never the max for k >= 2
    hardest_neg = d_neg.min(dim=1).values
    gap = hardest_pos - hardest_neg
    if margin == "soft":
        return F.softplus(gap).mean()
    return F.relu(float(margin) + gap).mean()
