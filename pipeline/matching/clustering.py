"""Constrained clustering of tracklets: the pure parts shared by the batch re-clustering
(:mod:`pipeline.matching.recluster`) and the online window re-solve (:mod:`pipeline.matching.revise`).

Cosine distances, cannot-link matrices from the matcher's coexistence rule, constrained
average-linkage agglomeration, hand-over sequence checks and the keep-the-majority-id rule.
``matcher`` arguments are :class:`~pipeline.matching.matcher.CrossCameraMatcher` instances (duck-typed:
this module does not import the matcher, which uses it).
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Callable

import numpy as np

from pipeline.core.types import TrackletEmbedding

__all__ = ["agglomerate", "assign_ids", "cannot_link_matrix", "cosine_distances", "handover_check"]


def cosine_distances(vectors: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, N) float64 ``1 - cos`` of the L2-normalised rows (zero rows stay zero vectors)."""
    v = np.asarray(vectors, dtype=np.float64)
    n = np.linalg.norm(v, axis=1, keepdims=True)
    v = np.divide(v, n, out=np.zeros_like(v), where=n > 0)
    d = 1.0 - v @ v.T
    np.fill_diagonal(d, 0.0)
    return np.clip(d, 0.0, 2.0)


def cannot_link_matrix(items: list[TrackletEmbedding], matcher) -> np.ndarray:
    """(N, N) bool, symmetric: items i and j cannot be one person (``matcher.coexists``, vectorised as
    ``matcher.coexists_matrix``); diagonal False."""
    return matcher.coexists_matrix(items)


def agglomerate(dist: np.ndarray, cannot: np.ndarray, threshold: float,
                admissible: Callable[[list[int], list[int]], bool] | None = None) -> list[list[int]]:
    """Constrained average-linkage clustering of N items.

    dist: (N, N) symmetric distances; cannot: (N, N) bool cannot-link; merges happen while the
    smallest average-linkage distance between two clusters without a cannot-link pair (and, when
    given, with ``admissible(members_a, members_b)`` true) is <= ``threshold``. Ties merge the pair
    with the smaller (first index, second index). Returns the clusters as sorted index lists, sorted
    by their first index. Cost O(N^2 log N) time, O(N^2) memory.
    """
    n = len(dist)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    sums = np.array(dist, dtype=np.float64, copy=True)  # sum of pairwise distances between live clusters
    cl = np.array(cannot, dtype=bool, copy=True)
    version = [0] * n
    alive = np.ones(n, dtype=bool)
    size = np.ones(n, dtype=np.float64)
    # the candidate pairs (i < j) in row-major order, as a double loop over i then j would list them
    iu, ju = np.nonzero(np.triu(~cl & (sums <= threshold), 1))
    heap: list[tuple[float, int, int, int, int]] = [
        (d, i, j, 0, 0) for d, i, j in zip(sums[iu, ju].tolist(), iu.tolist(), ju.tolist())]
    heapq.heapify(heap)
    while heap:
        d, a, b, va, vb = heapq.heappop(heap)
        if a not in members or b not in members or version[a] != va or version[b] != vb or cl[a, b]:
            continue  # stale: one side merged since, or the pair became cannot-link
        if admissible is not None and not admissible(members[a], members[b]):
            cl[a, b] = cl[b, a] = True
            continue
        members[a] = sorted(members[a] + members.pop(b))  # a < b: the merged cluster keeps the smaller index
        version[a] += 1
        alive[b] = False
        size[a] = len(members[a])
        sums[a, :] += sums[b, :]
        sums[:, a] = sums[a, :]
        cl[a, :] |= cl[b, :]
        cl[:, a] = cl[a, :]
        # the merged cluster's average linkage to every other live cluster (ascending index), vectorised
        avg = sums[a, :] / (size[a] * size)
        for c in np.flatnonzero(alive & ~cl[a, :] & (avg <= threshold)).tolist():
            if c == a:
                continue
            lo, hi = (a, c) if a < c else (c, a)
            heapq.heappush(heap, (float(avg[c]), lo, hi, version[lo], version[hi]))
    return [members[k] for k in sorted(members)]


def handover_check(items: list[TrackletEmbedding], matcher) -> Callable[[list[int], list[int]], bool] | None:
    """The sequence constraints of a merge (None when there are none to check): in the merged
    cluster, every sighting's previous one (latest end before its start) must be a permitted
    re-entry (``reentry_max_gap_s``) or hand-over (``matcher.transit_penalty`` finite)."""
    cfg = matcher.config
    if cfg.topology is None and cfg.reentry_max_gap_s is None:
        return None

    def ok(a: list[int], b: list[int]) -> bool:
        group = [items[i] for i in a + b]
        for it in group:
            before = [p for p in group if p.end_time < it.start_time]
            if not before:
                continue
            prev = max(before, key=lambda p: (p.end_time, p.cam_id, p.track_id))
            gap = it.start_time - prev.end_time
            if prev.cam_id == it.cam_id:
                if cfg.reentry_max_gap_s is not None and gap > cfg.reentry_max_gap_s:
                    return False
            elif not math.isfinite(matcher.transit_penalty(prev.cam_id, it.cam_id, gap)):
                return False
        return True

    return ok


def assign_ids(clusters: list[list[int]], old: list[int | None]) -> list[int | None]:
    """Per cluster (in order), the old id most of its members had (ties: smaller id) if no earlier
    cluster took it, else None (a new id is needed)."""
    taken: set[int] = set()
    out: list[int | None] = []
    for members in clusters:
        votes = Counter(old[i] for i in members if old[i] is not None)
        pick = None
        for gid, _ in sorted(votes.items(), key=lambda kv: (-kv[1], kv[0])):
            if gid not in taken:
                pick = gid
                break
        if pick is not None:
            taken.add(pick)
        out.append(pick)
    return out
