"""Pseudo-label mining for practically unsupervised fine-tuning (seed 002 §3.2.1-3.2.2).

Works on tracklets, not labels:

* **Presumed positives** (§3.2.1): for each pair of cameras, every cross-camera
  pair of tracklets is ranked by the distance of their aggregated embeddings
  and the ``N_p = alpha * min(N1, N2)`` closest pairs are taken as positives.
* **Negatives** (§3.2.2): tracklets seen at the same time in the same camera
  are different people; when two cameras do not overlap, tracklets seen at
  the same time in both cameras are different people too.
* **Co-occurrence rule**: "seen at the same time" is, by default, overlapping
  time spans (:func:`overlaps_in_time`, tracklets of a tracker on one clock).
  Callers whose items have no common clock pass ``cooccur(i, j)`` instead, e.g.
  folder crops, where only crops cut from one video frame (same camera,
  sequence and frame in the file name) are certainly different people
  (:func:`shared_key_cooccurrence`).
* **Mining distance**: the pairs are ranked by the cosine distance of the aggregated embeddings (the
  paper), or by any (N, N) distance the caller passes, e.g. the k-reciprocal distance
  (:mod:`reid_models.rerank`), which raised the share of true pairs on the Market validation identities
  from 0.67 to 0.87 at the paper's alpha (docs/adaptation.md).
* **Tracklet positives** (not in the paper; TAUDL / UTAL's intra-camera tracklet
  discrimination): a tracklet with itself, i.e. its own crops are the mutual
  positives and its co-occurring tracklets the negatives. Every pair is certain
  (the tracker vouches for the tracklet, the clock for the negatives), so their
  precision does not depend on the base model, unlike presumed positives.
* **Tracker-continuity pairs** (guardrail, not in the paper): the two halves of
  one long single-camera tracklet are a positive the tracker vouches for;
  they give a hold-out check of a model that never used them for training.

All functions are pure: inputs are :class:`pipeline.core.types.TrackletEmbedding`
items (aggregated, L2-normalised ``vector`` of shape (D,)).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from pipeline.core.types import TrackletEmbedding


@dataclass(frozen=True)
class PositivePair:
    """Indices ``a``, ``b`` into the item list (different cameras) and their cosine distance."""

    a: int
    b: int
    distance: float


def cosine_distance_matrix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N, D) x (M, D) L2-normalised rows -> (N, M) cosine distance in [0, 2]."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return np.clip(1.0 - x @ y.T, 0.0, 2.0)


def overlaps_in_time(a: TrackletEmbedding, b: TrackletEmbedding, slack_s: float = 0.0) -> bool:
    """True when the time spans [start, end] of ``a`` and ``b`` intersect (within ``slack_s``)."""
    return a.start_time <= b.end_time + slack_s and b.start_time <= a.end_time + slack_s


#: ``cooccur(ia, ib)`` -> (len(ia), len(ib)) bool: items ia[r] and ib[c] were seen at the same moment
#: (so they are two people); an item is never seen together with itself.
Cooccur = Callable[[Sequence[int], Sequence[int]], np.ndarray]


def time_cooccurrence(items: Sequence[TrackletEmbedding]) -> Cooccur:
    """The default rule: time spans [start_time, end_time] intersect (:func:`overlaps_in_time`)."""
    start = np.array([it.start_time for it in items], dtype=np.float64)
    end = np.array([it.end_time for it in items], dtype=np.float64)

    def rule(ia: Sequence[int], ib: Sequence[int]) -> np.ndarray:
        a, b = np.asarray(ia, dtype=np.int64), np.asarray(ib, dtype=np.int64)
        m = (start[a][:, None] <= end[b][None, :]) & (start[b][None, :] <= end[a][:, None])
        return m & (a[:, None] != b[None, :])

    return rule


def shared_key_cooccurrence(keys: Sequence[Collection[Hashable]]) -> Cooccur:
    """True when ``keys[i]`` and ``keys[j]`` share an element, e.g. a (camera, sequence, frame)
    key of a crop: two crops cut from one video frame are two people."""
    holders: dict[Hashable, set[int]] = {}
    for i, ks in enumerate(keys):
        for k in ks:
            holders.setdefault(k, set()).add(i)
    near = [set().union(*(holders[k] for k in ks)) - {i} if ks else set() for i, ks in enumerate(keys)]

    def rule(ia: Sequence[int], ib: Sequence[int]) -> np.ndarray:
        col = {int(j): c for c, j in enumerate(ib)}
        m = np.zeros((len(ia), len(ib)), dtype=bool)
        for r, i in enumerate(ia):
            for j in near[int(i)]:
                c = col.get(j)
                if c is not None:
                    m[r, c] = True
        return m

    return rule


def presumed_positives(
    items: Sequence[TrackletEmbedding],
    alpha: float = 0.1,
    mutual_nearest: bool = False,
    min_pairs_per_camera_pair: int = 1,
    cooccur: Cooccur | None = None,
    distance: np.ndarray | None = None,
    pooled: bool = False,
) -> list[PositivePair]:
    """The ``N_p = alpha * min(N1, N2)`` closest cross-camera pairs for every camera pair.

    ``N_p`` is rounded down but at least ``min_pairs_per_camera_pair`` when
    both cameras have tracklets. Pairs that overlap in time are skipped: one
    person is not in two non-overlapping cameras at once (the caller passes
    only cameras whose views do not overlap). With ``mutual_nearest`` a pair is
    kept only when each member is the other's nearest tracklet in the other
    camera (fewer, cleaner positives). ``cooccur`` replaces the time-overlap
    rule (see the module docstring). ``distance``: an (N, N) distance over ``items`` that ranks the pairs
    instead of the cosine distance of their vectors (e.g. :func:`reid_models.rerank.k_reciprocal_distance`);
    the pairs carry it. With ``pooled`` the same total budget (the sum of every camera pair's ``N_p``) goes
    to the closest admissible pairs over all camera pairs together: a camera pair whose candidates are all far
    (a camera unlike the others, where the closest pairs are more often wrong) gives fewer pairs, a close one
    more. Result sorted by distance.
    """
    seen_together = cooccur or time_cooccurrence(items)
    by_cam: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_cam.setdefault(it.cam_id, []).append(i)
    pairs: list[PositivePair] = []
    budget = 0
    pool_d, pool_a, pool_b = [], [], []  # pooled: every admissible candidate of every camera pair
    for cam_a, cam_b in combinations(sorted(by_cam), 2):
        ia, ib = by_cam[cam_a], by_cam[cam_b]
        if distance is None:
            dist = cosine_distance_matrix(
                np.stack([items[i].vector for i in ia]), np.stack([items[j].vector for j in ib])
            )
        else:
            dist = np.asarray(distance)[np.ix_(ia, ib)].astype(np.float64)  # the camera pair's block only
        dist[seen_together(ia, ib)] = np.inf
        n_p = max(int(alpha * min(len(ia), len(ib))), min_pairs_per_camera_pair)
        if pooled:
            ok = np.isfinite(dist)
            if mutual_nearest:
                ok &= (dist.argmin(axis=1)[:, None] == np.arange(len(ib))[None, :]) & \
                      (dist.argmin(axis=0)[None, :] == np.arange(len(ia))[:, None])
            r, c = np.nonzero(ok)
            pool_d.append(dist[r, c])
            pool_a.append(np.asarray(ia)[r])
            pool_b.append(np.asarray(ib)[c])
            budget += n_p
            continue
        order = np.argsort(dist, axis=None, kind="stable")
        chosen: list[PositivePair] = []
        for flat in order:
            r, c = np.unravel_index(flat, dist.shape)
            if not np.isfinite(dist[r, c]) or len(chosen) >= n_p:
                break
            if mutual_nearest and not (dist[r].argmin() == c and dist[:, c].argmin() == r):
                continue
            chosen.append(PositivePair(ia[r], ib[c], float(dist[r, c])))
        pairs.extend(chosen)
    if pooled and pool_d:
        d, a, b = np.concatenate(pool_d), np.concatenate(pool_a), np.concatenate(pool_b)
        keep = np.lexsort((b, a, d))[:budget]  # closest first; ties by the items' order
        pairs = [PositivePair(int(a[k]), int(b[k]), float(d[k])) for k in keep]
    pairs.sort(key=lambda p: p.distance)
    return pairs


def tracklet_positives(items: Sequence[TrackletEmbedding]) -> list[PositivePair]:
    """Every item paired with itself (``a == b``, distance 0): its own crops are the positives.

    The trainer then draws all K positives of a batch from that one tracklet and the
    negatives from the tracklets seen at the same time (:func:`pair_negatives` of the pair).
    """
    return [PositivePair(i, i, 0.0) for i in range(len(items))]


def negatives_for(
    index: int,
    items: Sequence[TrackletEmbedding],
    non_overlapping_cameras: bool = True,
    exclude: Sequence[int] = (),
    cooccur: Cooccur | None = None,
) -> list[int]:
    """Indices of tracklets that must be other people than ``items[index]``.

    Same camera and overlapping in time -> a different person (two boxes of
    one frame). Other camera and overlapping in time -> a different person,
    valid only when the cameras' views do not overlap. ``cooccur`` replaces
    "overlapping in time" (module docstring).
    """
    me = items[index]
    together = (cooccur or time_cooccurrence(items))([index], range(len(items)))[0]
    skip = set(exclude) | {index}
    out = []
    for j, other in enumerate(items):
        if j in skip or not together[j]:
            continue
        if other.cam_id == me.cam_id or non_overlapping_cameras:
            out.append(j)
    return out


def pair_negatives(
    pair: PositivePair,
    items: Sequence[TrackletEmbedding],
    max_negatives: int = 10,
    non_overlapping_cameras: bool = True,
    rng: np.random.Generator | None = None,
    cooccur: Cooccur | None = None,
) -> list[int]:
    """Up to ``max_negatives`` negatives of either member of a presumed positive pair."""
    cand = sorted(
        set(negatives_for(pair.a, items, non_overlapping_cameras, exclude=(pair.b,), cooccur=cooccur))
        | set(negatives_for(pair.b, items, non_overlapping_cameras, exclude=(pair.a,), cooccur=cooccur))
    )
    if len(cand) <= max_negatives:
        return cand
    rng = rng or np.random.default_rng(0)
    return sorted(int(i) for i in rng.choice(cand, size=max_negatives, replace=False))


def true_positive_fraction(
    pairs: Sequence[PositivePair], identity_of: Sequence[int | None]
) -> float:
    """Share of presumed positives whose two members have the same ground-truth identity.

    ``identity_of[i]`` is the gt identity of item i (None when unknown: counted
    as wrong). Used only for measuring, never for training. Empty -> nan.
    """
    if not pairs:
        return float("nan")
    ok = sum(
        1
        for p in pairs
        if identity_of[p.a] is not None and identity_of[p.a] == identity_of[p.b]
    )
    return ok / len(pairs)
