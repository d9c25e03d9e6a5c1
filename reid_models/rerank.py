"""k-reciprocal encoding (Zhong et al., CVPR 2017, "Re-ranking person re-identification with k-reciprocal
encoding"): a distance between items that compares their neighbourhoods instead of their embeddings.

Two items are close when each is among the other's nearest neighbours *and* their neighbourhoods overlap
(Jaccard distance of the weighted k-reciprocal sets). A "hub" embedding that sits near many people, the usual
cause of a wrong nearest-neighbour pair across cameras, has many neighbours but few reciprocal ones, so it drops
back. Unsupervised domain adaptation for re-id (SpCL, MMT) mines its pseudo-labels on this distance for that
reason; here it ranks the presumed positives of seed 002 (``adapt.mining_distance: k_reciprocal``).

No maintained PyPI package ships the function on its own (torchreid and FastReID carry a copy inside the whole
framework), so it is written here from the paper; ``k1`` 20, ``k2`` 6 and ``lambda_value`` are the paper's names
and values. Pure numpy, dense (N, N) matrices: :func:`k_reciprocal_bytes` (2.9 GB at N = 11,000); the
adaptation round refuses one over ``pipeline.adaptation.worker.K_RECIPROCAL_MAX_BYTES`` in one line.
"""

from __future__ import annotations

import numpy as np

#: bytes per item pair of :func:`k_reciprocal_distance`'s working set: three (N, N) float32 matrices and the (N, N)
#: int64 neighbour order, plus the output
BYTES_PER_PAIR = 4 * 4 + 8


def k_reciprocal_bytes(n: int) -> int:
    """Working memory of :func:`k_reciprocal_distance` over ``n`` items (about 2.9 GB at n = 11,000)."""
    return BYTES_PER_PAIR * int(n) * int(n)


def k_reciprocal_distance(features: np.ndarray, k1: int = 20, k2: int = 6, lambda_value: float = 0.0) -> np.ndarray:
    """(N, D) L2-normalised rows -> (N, N) float32 distance, every item both query and gallery.

    ``(1 - lambda_value) * jaccard + lambda_value * original``, where ``original`` is the squared Euclidean
    distance of the unit vectors (= 2 x cosine distance) divided by each column's maximum, as in the paper's
    code. ``jaccard[i, j]`` compares the k-reciprocal sets: R(i, k1) = items among i's ``k1`` + 1 nearest
    (itself included) that have i among theirs, expanded by every R(c, k1 / 2) of a member c sharing more than
    2/3 of it with R(i, k1); weights ``exp(-original)`` normalised per row, then averaged over the ``k2``
    nearest items (local query expansion; ``k2`` 1: none). ``k1`` and ``k2`` are capped at N - 1 and N, so a
    small set still gets a distance, though one whose neighbourhoods span most of the set ranks little better
    than the original distance. Ties in the neighbour order are taken by index.
    """
    x = np.asarray(features, dtype=np.float32)
    n = len(x)
    if n == 0:
        return np.zeros((0, 0), np.float32)
    k1 = max(1, min(int(k1), n - 1))
    k2 = max(1, min(int(k2), n))
    original = np.clip(2.0 - 2.0 * (x @ x.T), 0.0, None).astype(np.float32)
    np.fill_diagonal(original, 0.0)
    original /= np.maximum(original.max(axis=0, keepdims=True), 1e-12)
    rank = np.argsort(original, axis=1, kind="stable").astype(np.int64)
    weights = np.zeros((n, n), np.float32)
    half = int(np.around(k1 / 2.0))
    for i in range(n):
        recip = _reciprocal(rank, i, k1)
        expanded = recip
        for c in recip:
            cand = _reciprocal(rank, int(c), half)
            if len(np.intersect1d(cand, recip)) > 2.0 / 3.0 * len(cand):
                expanded = np.append(expanded, cand)
        expanded = np.unique(expanded)
        w = np.exp(-original[i, expanded])
        weights[i, expanded] = w / w.sum()
    if k2 > 1:
        weights = weights[rank[:, :k2]].mean(axis=1)
    holders = [np.flatnonzero(weights[:, j]) for j in range(n)]  # inverted index: items whose set holds j
    jaccard = np.zeros((n, n), np.float32)
    for i in range(n):
        shared = np.zeros(n, np.float32)
        for j in np.flatnonzero(weights[i]):
            rows = holders[j]
            shared[rows] += np.minimum(weights[i, j], weights[rows, j])
        jaccard[i] = 1.0 - shared / (2.0 - shared)
    if lambda_value == 0.0:
        return jaccard
    return (1.0 - lambda_value) * jaccard + lambda_value * original


def _reciprocal(rank: np.ndarray, i: int, k: int) -> np.ndarray:
    """Items among i's ``k`` + 1 nearest that have i among their ``k`` + 1 nearest (i included)."""
    forward = rank[i, :k + 1]
    backward = rank[forward, :k + 1]
    return forward[np.any(backward == i, axis=1)]
