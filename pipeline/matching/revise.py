"""Revisable online identities: re-solve the recent tracklets' identities as evidence arrives.

The matcher keeps the tracklets that ended within the last ``revise.window_s`` seconds as
*tentative* (at most ``revise.max_tracklets``; the oldest settle first). Each identity is its
*settled* part (prototype and spans of its members that left the window, never touched again)
plus its tentative members. On every matcher call the tentative tracklets are clustered again,
together with the settled identities they could join (:func:`solve_window`):

* nodes: the N tentative tracklets and the M candidate settled identities (their settled
  prototypes). Candidates (the gallery pre-filter, which bounds the cost): the identities a
  tentative tracklet currently belongs to, plus those within the threshold of at least one
  tentative tracklet. The filter is exact: average linkage can only join a settled identity to a
  cluster holding a member within the threshold of it, so no other identity could join anyway;
* distances: cosine ``1 - cos`` between tracklets; tracklet -> settled prototype plus the
  topology's penalty of that hand-over;
* cannot-link: two tracklets that coexist (the matcher's rule, one camera or two non-overlapping
  cameras at once: :meth:`CrossCameraMatcher.coexists_matrix`); a tracklet and a settled
  identity it coexists with or whose hand-over the topology forbids; any two settled identities
  (the settled past is not re-decided: settled identities never merge);
* the same constrained average-linkage agglomeration as the batch re-clustering
  (:func:`pipeline.matching.clustering.agglomerate`, hand-over sequence checks included) up to the
  threshold of the batch re-clustering's rule: the ``auto_threshold.false_match_rate`` quantile of
  the distances of known-different *tracklet pairs* (cannot-link pairs; each pair counted once, at
  its latest embeddings; pairs that settle are kept, the last ``max_negatives``). Tracklet-to-tracklet
  distances are on another scale than the one-shot matcher's tracklet-to-prototype ones (a
  prototype is an average, close to more people), so the matcher's own calibrated threshold is
  only the fallback while fewer than ``min_negatives`` pairs are known (it follows ``warmup``).

Why agglomerative and not a local search: it is the batch re-clustering's algorithm (one
behaviour online and offline, no second implementation), deterministic, exact on the
constraints, and at the window's size (tens to a few hundred tracklets) cheap enough to run
from scratch every call, so the result depends only on the evidence, not on the order of
earlier decisions. Average linkage needs a whole group to be close, so one close pair does not
chain two people together, and a later tracklet that is far from part of a cluster splits it.

Ids: a cluster with a settled identity takes its id; the others keep the id most of their
members had (:func:`~pipeline.matching.recluster.assign_ids`), else the first id of a member whose first id
was absorbed and is free again (a track that joined an identity and leaves it gets back the id it was announced
with: :meth:`~pipeline.matching.window.RevisionWindowMixin._id_for_group`), else a new one. Every move of a
previously assigned tracklet is an :class:`IdentityChange`: a ``merge`` when the identity it left
has no member left (absorbed into the one that took them), a ``split`` when it keeps members.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from pipeline.core.types import GlobalIdentity, TrackletEmbedding
from pipeline.matching.clustering import agglomerate, assign_ids, cosine_distances, handover_check
from pipeline.matching.results import prototype_distances

__all__ = ["IdentityChange", "WindowSolution", "describe_changes", "solve_window"]


@dataclass(frozen=True)
class IdentityChange:
    """One revision: tracklets ``moved`` ((cam_id, track_id) of this session) left ``source`` for ``into``.

    kind: "merge" (``source`` has no member left: absorbed into ``into``) or "split" (``source``
    keeps members; ``into`` may be a new id). global_id: the event's id (merge: ``into``;
    split: ``source``). cam_id / t: camera and start time of the first moved tracklet.
    distance: average cosine distance of the moved tracklets to the rest of ``into`` (None when
    ``into`` has nothing else); distance_from: the same to what stays in ``source`` (None: nothing);
    probability: the calibrated P(same) at ``distance`` (None when unknown). decided_t: the matcher's
    clock (the newest tracklet end it had seen) when the re-solve made the change, so a change that
    rewrites the past says when it was decided (None: unknown, e.g. the batch re-clustering). moved_t: the
    start time of each moved tracklet (aligned with ``moved``; empty: unknown). announced_t: the matcher's clock
    when the change was announced, if later than decided (``revise.announce_after_s``,
    :mod:`pipeline.runner.announce`); None: announced when decided.
    """

    kind: str
    global_id: int
    into: int
    source: int
    moved: tuple[tuple[str, int], ...]
    cam_id: str
    t: float
    distance: float | None
    distance_from: float | None
    probability: float | None = None
    decided_t: float | None = None
    moved_t: tuple[float, ...] = ()
    announced_t: float | None = None

    def payload(self) -> dict:
        """The event payload (JSON-ready)."""
        r = lambda v: None if v is None else round(float(v), 6)  # noqa: E731
        return {"ids": [self.into, self.source] if self.kind == "merge" else [self.source, self.into],
                "into": self.into, "from": self.source, **({"absorbed": self.source} if self.kind == "merge" else {}),
                "tracklets": len(self.moved), "moved": [{"cam_id": c, "track_id": t} for c, t in self.moved],
                "distance": r(self.distance), "distance_from": r(self.distance_from),
                "probability": r(self.probability), "decided_t": r(self.decided_t),
                **({} if self.announced_t is None else {"announced_t": r(self.announced_t)}), "by": "revise"}


class NodeDistances:
    """The (N+M, N+M) distances between the re-solve's nodes (N tentative tracklets, then M settled
    identities) without holding the (M, M) block (settled identities never join: distance 0, cannot-link).

    d_ww: (N, N) tracklet distances; d_ws: (N, M) tracklet -> settled distances (penalties included)."""

    def __init__(self, d_ww: np.ndarray, d_ws: np.ndarray) -> None:
        self.d_ww, self.d_ws, self.n = d_ww, d_ws, len(d_ww)

    def block(self, rows, cols) -> np.ndarray:
        """(len(rows), len(cols)) distances between the nodes ``rows`` and ``cols``."""
        r, c, n = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64), self.n
        out = np.zeros((len(r), len(c)))
        rt, ct = r < n, c < n
        out[np.ix_(rt, ct)] = self.d_ww[np.ix_(r[rt], c[ct])]
        out[np.ix_(rt, ~ct)] = self.d_ws[np.ix_(r[rt], c[~ct] - n)]
        out[np.ix_(~rt, ct)] = self.d_ws[np.ix_(c[ct], r[~rt] - n)].T
        return out


@dataclass
class WindowSolution:
    """labels: (N,) cluster label per tentative tracklet: an existing id or None (needs a new id,
    ``group`` says which tracklets share it); link: (N,) average distance of each tracklet to the
    rest of its cluster (None when alone); dist: the node distances (:class:`NodeDistances`); nodes
    N.. are ``candidates``' settled prototypes."""

    labels: list[int | None]
    group: list[int]
    link: list[float | None]
    dist: NodeDistances
    clusters: list[list[int]] = field(default_factory=list)
    threshold: float = 0.0


@lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def single_blas_thread():
    """Context manager: BLAS limited to one thread (the window's products are small; see :func:`solve_window`)."""
    return _blas_controller().limit(limits=1, user_api="blas")


def solve_window(items: list[TrackletEmbedding], old: list[int | None], settled: dict[int, GlobalIdentity],
                 matcher, threshold) -> tuple[WindowSolution, list[int]]:
    """Re-solve the tentative ``items`` (N) whose current ids are ``old`` (None: fresh) against the
    ``settled`` identities (id -> settled part). Returns the solution and the candidate ids (M).

    ``threshold``: a float, or a function ``(dist (N, N), cannot (N, N)) -> float`` called with the
    tracklets' distances and cannot-link pairs (the matcher calibrates on them).

    Runs with one BLAS thread: its products are small, and a multi-threaded BLAS on a CPU the
    detector and encoder keep busy spends far more time waking threads than computing (measured:
    7x slower on the 2-core bench machine)."""
    with single_blas_thread():
        return _solve_window(items, old, settled, matcher, threshold)


def _solve_window(items, old, settled, matcher, threshold):
    n = len(items)
    vecs = np.stack([np.asarray(it.vector, np.float64) for it in items])
    vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    d_ww, c_ww = cosine_distances(vecs), matcher.coexists_matrix(items)
    if callable(threshold):
        threshold = float(threshold(d_ww, c_ww))
    ids = sorted(settled)
    to_settled = prototype_distances(vecs, [settled[g].prototype for g in ids])  # (N, S)
    current = {g for g in old if g is not None}
    near = (to_settled <= threshold).any(axis=0) if ids else np.zeros(0, bool)
    keep = [k for k, g in enumerate(ids) if g in current or near[k]]
    cand = [ids[k] for k in keep]
    d_ws = to_settled[:, keep]
    c_ws = _coexists_settled(items, [settled[g] for g in cand], matcher)
    check = handover_check(items, matcher)
    band = getattr(matcher.config.revise, "hysteresis", 0.0) * threshold
    band_ww, band_ws = _dead_band(old, cand, band) if band > 0 else (0.0, 0.0)  # off by default: no work
    d_ws -= band_ws  # the clustering's view; the topology's penalties are added to it in place
    clusters = _agglomerate_components(items, d_ww - band_ww if band > 0 else d_ww, c_ww, d_ws, c_ws,
                                       [settled[g] for g in cand], threshold, matcher, check)
    d_ws += band_ws  # real distances (with penalties) for the links and the events
    dist = NodeDistances(d_ww, d_ws)
    labels: list[int | None] = [None] * n
    group = [-1] * n
    link: list[float | None] = [None] * n
    free = [c for c in clusters if not any(i >= n for i in c)]
    in_cand = set(cand)
    masked = [None if g in in_cand else g for g in old]
    picks = dict(zip(map(tuple, free), assign_ids(free, masked)))
    for k, c in enumerate(clusters):
        if c[0] >= n:  # a settled identity alone
            continue
        s = [i for i in c if i >= n]
        label = cand[s[0] - n] if s else picks.get(tuple(c))
        mean = dist.block(c, c).sum(axis=1) / max(len(c) - 1, 1)  # diagonal is 0
        for i, avg in zip(c, mean):
            if i < n:
                labels[i] = label
                group[i] = k
                link[i] = float(avg) if len(c) > 1 else None
    return WindowSolution(labels, group, link, dist, clusters, threshold), cand


def _dead_band(old: list[int | None], cand: list[int], band: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, N) and (N, M) amounts taken off the distances of the tentative tracklets (current ids ``old``) to the
    other members of their current identity and to its settled part (``cand``: the settled candidates' ids):
    ``band`` there, 0 elsewhere (:class:`~pipeline.matching.config.ReviseConfig` ``hysteresis``)."""
    ids = np.array([-1 if g is None else g for g in old], dtype=np.int64)
    same = (ids[:, None] == ids[None, :]) & (ids[:, None] >= 0)
    np.fill_diagonal(same, False)
    own = (ids[:, None] == np.asarray(cand, dtype=np.int64).reshape(1, -1)) & (ids[:, None] >= 0)
    return band * same, band * own


def _agglomerate_components(items, d_ww: np.ndarray, c_ww: np.ndarray, d_ws: np.ndarray, c_ws: np.ndarray,
                            idents: list[GlobalIdentity], threshold: float, matcher, check) -> list[list[int]]:
    """:func:`agglomerate` of the N tracklets and M settled identities (nodes N..), one connected component
    of the graph of pairs within ``threshold`` that may link at a time: average linkage only merges two
    clusters holding such a pair, so no cluster spans two components, and within a component the merges
    (ties by node order included) are those of the whole problem. The topology's penalties and forbidden
    hand-overs (tracklet -> identity) are computed for the pairs inside a component only. ``d_ws`` and
    ``c_ws`` get them in place. Returns every node's cluster (sorted node lists, by first node)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n, m = d_ws.shape
    a_ww = np.triu((d_ww <= threshold) & ~c_ww, 1)
    a_ws = (d_ws <= threshold) & ~c_ws  # penalties only add, forbidden pairs only remove: a superset
    r1, q1 = np.nonzero(a_ww)
    r2, q2 = np.nonzero(a_ws)
    graph = coo_matrix((np.ones(len(r1) + len(r2), dtype=np.int8),
                        (np.concatenate([r1, r2]), np.concatenate([q1, q2 + n]))), shape=(n + m, n + m))
    _, comp = connected_components(graph, directed=False)
    order = np.argsort(comp, kind="stable")  # nodes grouped by component, ascending within
    bounds = np.flatnonzero(np.diff(comp[order])) + 1
    rules = matcher.config.topology is not None or matcher.config.reentry_max_gap_s is not None
    clusters: list[list[int]] = []
    for nodes in np.split(order, bounds):
        if len(nodes) == 1:
            clusters.append([int(nodes[0])])
            continue
        t, s = nodes[nodes < n], nodes[nodes >= n] - n
        if rules and len(s):  # hand-over / re-entry rules of these pairs (matcher.constraint_penalty, vectorised)
            rows, cols = np.nonzero(~c_ws[np.ix_(t, s)])
            if len(rows):
                extra, _ = matcher.constraints([items[i] for i in t.tolist()], [idents[j] for j in s.tolist()],
                                               rows, cols)
                finite = np.isfinite(extra)
                d_ws[t[rows], s[cols]] += np.where(finite, extra, 0.0)
                c_ws[t[rows], s[cols]] = ~finite
        k = len(t)
        dist = np.zeros((len(nodes), len(nodes)))
        cannot = np.zeros((len(nodes), len(nodes)), dtype=bool)
        dist[:k, :k], cannot[:k, :k] = d_ww[np.ix_(t, t)], c_ww[np.ix_(t, t)]
        dist[:k, k:], cannot[:k, k:] = d_ws[np.ix_(t, s)], c_ws[np.ix_(t, s)]
        dist[k:, :k], cannot[k:, :k] = dist[:k, k:].T, cannot[:k, k:].T
        cannot[k:, k:] = True
        np.fill_diagonal(cannot, False)
        glob = nodes.tolist()
        admissible = None if check is None else (
            lambda a, b, glob=glob: check([glob[i] for i in a if glob[i] < n], [glob[i] for i in b if glob[i] < n]))
        clusters.extend([glob[i] for i in c] for c in agglomerate(dist, cannot, threshold, admissible))
    return sorted(clusters, key=lambda c: c[0])


def _coexists_settled(items: list[TrackletEmbedding], idents: list[GlobalIdentity], matcher) -> np.ndarray:
    """(N, M) bool: item i coexists with a member span of identity j (the matcher's rule,
    :meth:`CrossCameraMatcher.coexists_spans`, vectorised over all spans)."""
    n, m = len(items), len(idents)
    out = np.zeros((n, m), dtype=bool)
    spans = [sp for g in idents for sp in g.spans]
    if n == 0 or not spans:
        return out
    both = matcher.coexists_spans(items, spans)  # (N, total spans), identity j's spans contiguous
    k = 0
    for j, g in enumerate(idents):
        if g.spans:
            out[:, j] = both[:, k:k + len(g.spans)].any(axis=1)
        k += len(g.spans)
    return out


def describe_changes(items: list[TrackletEmbedding], old: list[int | None], new: list[int],
                     sol: WindowSolution, remaining: set[int], probability,
                     decided_t: float | None = None) -> list[IdentityChange]:
    """The revisions from ``old`` to ``new`` ids of the tentative ``items`` (only those with an old id).

    remaining: ids that still have members afterwards (settled or tentative); probability:
    distance -> P(same) or None; decided_t: the matcher clock of this re-solve. Sorted by (t, camera, id)."""
    moves: dict[tuple[int, int], list[int]] = {}
    for i, (a, b) in enumerate(zip(old, new)):
        if a is not None and a != b:
            moves.setdefault((a, b), []).append(i)
    n = len(items)
    out = []
    for (src, dst), idx in sorted(moves.items()):
        idx = sorted(idx, key=lambda i: (items[i].start_time, items[i].cam_id, items[i].track_id))
        moved = set(idx)
        clus = sol.clusters[sol.group[idx[0]]]
        rest_into = [j for j in clus if j not in moved]
        rest_from = [j for j in range(n) if new[j] == src and j not in moved]
        d_into = float(sol.dist.block(idx, rest_into).mean()) if rest_into else None
        d_from = float(sol.dist.block(idx, rest_from).mean()) if rest_from else None
        kind = "split" if src in remaining else "merge"
        first = items[idx[0]]
        out.append(IdentityChange(kind, dst if kind == "merge" else src, dst, src,
                                  tuple((items[i].cam_id, int(items[i].track_id)) for i in idx),
                                  first.cam_id, float(first.start_time), d_into, d_from, probability(d_into),
                                  decided_t, tuple(float(items[i].start_time) for i in idx)))
    return sorted(out, key=lambda c: (c.t, c.cam_id, c.global_id, c.kind))
