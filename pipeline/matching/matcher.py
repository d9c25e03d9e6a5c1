"""Cross-camera identity matching: a gallery of prototypes + Hungarian assignment with constraints.

Each identity has a prototype (EMA of its tracklets' aggregated embeddings,
L2-normalised) and its recent member spans (cam_id, start, end). A batch of
new tracklet embeddings is matched to the gallery in one Hungarian assignment
(scipy ``linear_sum_assignment``) on cosine distances, so two tracklets of a
batch never take the same identity. A pair is *forbidden* when

* the tracklet overlaps in time a member of the identity in the same camera
  (one person is not two tracks at once in one camera);
* it overlaps a member in another camera and the two views are not declared
  overlapping (one person is not in two non-overlapping cameras at once);
* a topology is given and the hand-over from the identity's previous (or to
  its next) sighting breaks it: cameras not linked, or transit time outside the
  link's [min_s, max_s] window (or, when configured, such pairs are penalised);
* it is a re-entry in the same camera after more than ``reentry_max_gap_s``.

The threshold is calibrated without labels by default
(:mod:`pipeline.matching.calibration`): the distances of pairs the constraints
prove to be different people give the distance at which a comparison falsely
matches ``auto_threshold.false_match_rate`` of the time.
Re-entry in the camera of the previous sighting uses ``reentry_threshold``.
A tracklet whose (cam_id, track_id) already has an identity in this session
(a cumulative partial followed by its final tracklet) keeps that identity.
Unmatched tracklets open new identities, numbered from ``next_id`` upward in
start-time order. The gallery ages: see :class:`~pipeline.matching.config.MatcherConfig`.

With ``revise.enabled`` (the default) recent decisions stay revisable: instead of one final
Hungarian assignment per batch, the tracklets of the last ``revise.window_s`` seconds are
re-clustered with the settled identities on every call (:mod:`pipeline.matching.revise`), and
every change of a previously returned id is queued as an
:class:`~pipeline.matching.revise.IdentityChange` (:meth:`CrossCameraMatcher.pop_changes`).
Every link carries its distance and a calibrated probability (:mod:`pipeline.matching.confidence`).
"""

from __future__ import annotations

import math
from collections import deque
from operator import attrgetter

import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.matching.calibration import NegativeDistanceCalibrator
from pipeline.matching.cameras import CameraTables
from pipeline.matching.span_arrays import flat_spans
from pipeline.matching.confidence import LinkConfidence
from pipeline.matching.config import MatcherConfig, TopologyConfig, TransitLink
from pipeline.core.types import GlobalIdentity, TrackletEmbedding
from pipeline.matching.gallery_index import GalleryIndex, IdentityPager
from pipeline.matching.hot_gallery import HotGallery
from pipeline.matching.paging import PagedGalleryMixin
from pipeline.matching.results import MatchResult, _align_members, _copy_identity, _unit, prototype_distances
from pipeline.matching.revise import single_blas_thread
from pipeline.matching.window import RevisionWindowMixin

#: cost of a forbidden or above-threshold pair inside the assignment problem
_GATED = 1e5
#: with the ANN index in force, the known-different pairs of a call are looked for among at most this many
#: recent in-memory identities (a seeded uniform sample; the calibration keeps a uniform sample of the pairs)
_KNOWN_DIFFERENT_IDENTITIES = 1024
#: an identity's last sighting (maps over identities without a Python frame per identity)
_LAST_SEEN = attrgetter("last_seen")

__all__ = ["CrossCameraMatcher", "MatchResult", "MatcherConfig", "TopologyConfig", "TransitLink"]


class CrossCameraMatcher(RevisionWindowMixin, PagedGalleryMixin):
    """Assign global identities to tracklet embeddings (one instance for all cameras).

    pager: where identities beyond ``max_gallery`` live when an ANN index is in force (the store's
    :class:`~pipeline.store.prototypes.PrototypeTable`); index: a trained
    :class:`~pipeline.matching.gallery_index.GalleryIndex` already holding the pager's identities
    (else one is built from the pager once the gallery reaches ``index.min_gallery``). See
    :mod:`pipeline.matching.paging`."""

    def __init__(self, config: MatcherConfig, gallery: list[GlobalIdentity] | None = None, next_id: int = 1,
                 pager: IdentityPager | None = None, index: GalleryIndex | None = None) -> None:
        self.config = config
        self._gallery = HotGallery()
        for ident in gallery or []:
            ident.prototype = _unit(ident.prototype)
            _align_members(ident)
            self._gallery[ident.global_id] = ident
        self.next_id = max([int(next_id)] + [g + 1 for g in self._gallery])
        self._track_gid: dict[tuple[str, int], int] = {}
        self._clock = max([g.last_seen for g in self._gallery.values()], default=-math.inf)
        self._overlap = {frozenset((a, b)) for grp in config.overlapping_cameras for a in grp for b in grp if a != b}
        self._links: dict[tuple[str, str], TransitLink] = {}
        self._calibrator = (NegativeDistanceCalibrator(config.auto_threshold, config.threshold)
                            if config.auto_threshold is not None else None)
        if config.topology is not None:
            for link in config.topology.links:
                self._links[(link.a, link.b)] = link
                if link.bidirectional:
                    self._links.setdefault((link.b, link.a), link)
        self.confidence = LinkConfidence()
        # revision (revise.enabled): tentative tracklets (key -> [item, gid]) and settled parts of identities
        self._window: dict[tuple[str, int], list] = {}
        self._settled: dict[int, GlobalIdentity] = {g: _copy_identity(i) for g, i in self._gallery.items()}
        self._changes: list = []
        # known-different tracklet pairs (the re-solve's calibration): window pairs by key, settled ones
        self._pair_neg: dict[tuple, float] = {}
        self._pair_settled: deque[float] = deque(maxlen=config.auto_threshold.max_negatives
                                                 if config.auto_threshold is not None else 1)
        self._init_paging(pager, index)

    # ------------------------------------------------------------------ public
    @property
    def gallery(self) -> list[GlobalIdentity]:
        """Identities currently in memory (after ageing)."""
        return list(self._gallery.values())

    @property
    def threshold(self) -> float:
        """The matching threshold in force: calibrated when enough known-different pairs were seen (at the
        rate for the current gallery size, :func:`~pipeline.matching.calibration.gallery_rate`)."""
        if self._calibrator is None:
            return self.config.threshold
        return self._calibrator.threshold_for(self.gallery_size())

    @property
    def calibration(self) -> dict:
        """{threshold, calibrated, negatives}: the state of the label-free threshold calibration."""
        c = self._calibrator
        return {"threshold": self.threshold, "calibrated": bool(c and c.calibrated), "negatives": len(c) if c else 0}

    @property
    def calibrator(self) -> NegativeDistanceCalibrator | None:
        """The label-free calibration (None with ``auto_threshold: null``); saved in the store between runs."""
        return self._calibrator

    def reset_calibration(self, keep_threshold: bool = True) -> None:
        """Forget the known-different distances (call when the encoder's weights change, after the
        gallery's prototypes were refreshed); with ``keep_threshold`` the current threshold stays in
        force until they are re-sampled. The revision window settles as it is (its embeddings are
        the old model's)."""
        if self._calibrator is not None:
            self._calibrator.reset(keep_threshold)
        # the window's embeddings are the old model's: its tracklets settle as they are, the identities
        # (whose prototypes the caller refreshed with the new model) become the settled parts
        self._window.clear()
        self._settled = {g: _copy_identity(i) for g, i in self._gallery.items()}
        self._pair_neg.clear()
        self._pair_settled.clear()
        self.__dict__.pop("_overlap_monitor", None)  # its distances were the old model's
        self.__dict__.pop("_home_gid", None)  # no tentative track left to take an id back
        self.__dict__.pop("_free_gids", None)

    def identity(self, global_id: int) -> GlobalIdentity | None:
        return self._gallery.get(global_id)

    def track_global_id(self, cam_id: str, track_id: int) -> int | None:
        """The global id track (cam_id, track_id) of this session continues (the project's one track -> id map);
        None before its first match or once its identity has aged out of the gallery."""
        return self._track_gid.get((cam_id, int(track_id)))

    def bind(self, cam_id: str, track_id: int, global_id: int) -> None:
        """Declare that track (cam_id, track_id) of this session is ``global_id`` (e.g. on resume)."""
        self._track_gid[(cam_id, int(track_id))] = int(global_id)

    def add_same_track_distances(self, distances) -> None:
        """Cosine distances between two halves of one tracklet (same person): the link probability's positives."""
        self.confidence.add_positive(distances)

    def link_probability(self, distance: float | None) -> float | None:
        """Calibrated P(same person) at ``distance`` (None until both kinds of samples exist)."""
        c = self._calibrator
        if c is not None:
            self.confidence.update(c.negatives, c.added)
        return self.confidence.probability(distance)

    def pop_changes(self) -> list:
        """The identity revisions (:class:`~pipeline.matching.revise.IdentityChange`) since the last call."""
        out, self._changes = self._changes, []
        return out

    @property
    def tentative(self) -> dict[tuple[str, int], int]:
        """(cam_id, track_id) -> current id of the tracklets still inside the revision window."""
        return {k: v[1] for k, v in self._window.items()}

    def match(self, items: list[TrackletEmbedding]) -> list[int]:
        """Global id per item, in item order (new ids created as needed)."""
        return [r.global_id for r in self.match_detailed(items)]

    def match_detailed(self, items: list[TrackletEmbedding]) -> list[MatchResult]:
        """Match a batch; update prototypes, spans and ageing; one MatchResult per item.

        Runs with one BLAS thread, as the revision window's re-solve does (:func:`solve_window`): the
        call's products are small ((N, D) x (D, M) for a few tracklets and their candidates), and a
        multi-threaded BLAS waits for its second thread whenever another process or the detector holds
        that core. Measured at 10^5 identities and 1,000 tracklets/s on the 2-core bench machine
        (docs/gallery.md): p99 latency <= 31 ms in 6 of 7 runs with one thread, <= 50 ms in 3 of 6 with
        OpenBLAS's default two.
        """
        if not items:
            return []
        with single_blas_thread():
            return self._match_detailed(items)

    def _match_detailed(self, items: list[TrackletEmbedding]) -> list[MatchResult]:
        self._ensure_index()
        if self.config.revise.enabled:
            out = self._match_revise(items)
            self._flush_index()
            return out
        self._clock = max([self._clock] + [it.end_time for it in items])
        self._age()
        self._page_in_tracks(items)
        results: list[MatchResult | None] = [None] * len(items)
        fresh, later, keys = [], [], set()
        for i, it in enumerate(items):
            key = (it.cam_id, int(it.track_id))
            gid = self._track_gid.get(key)
            if key in keys:  # the same track twice in one batch (partial + final): follows the first
                later.append(i)
            elif gid is not None and gid in self._gallery:
                results[i] = self._continue(it, gid)
            else:
                fresh.append(i)
            keys.add(key)
        for i, res in zip(fresh, self._assign([items[i] for i in fresh])):
            results[i] = res
        for i in later:
            key = (items[i].cam_id, int(items[i].track_id))
            results[i] = self._continue(items[i], self._track_gid[key])
        self._flush_index()
        self._age()
        return [r for r in results if r is not None]

    # ------------------------------------------------------------------ assignment
    def _assign(self, items: list[TrackletEmbedding]) -> list[MatchResult]:
        ids = list(self._gallery)
        matched: dict[int, tuple[int, float]] = {}
        if items and ids and self._calibrator is not None:
            self._sample_known_different(items, list(self._gallery.values()))
        cands = self._candidates(items)  # None: every in-memory identity (exact search)
        cold: dict[int, GlobalIdentity] = {}  # candidates read in place (not in memory): see _near_identities
        if cands is not None:
            ids, cold = self._near_identities(cands)
        if items and ids:
            identities = [self._gallery[g] if g in self._gallery else cold[g] for g in ids]
            cost, ok = self.cost_matrix(items, identities)
            rows, cols = linear_sum_assignment(np.where(ok, cost, _GATED))
            matched = {int(r): (ids[c], float(cost[r, c])) for r, c in zip(rows, cols) if ok[r, c]}
        if cold:  # the ones a tracklet joins are paged in now, the others at the end of the call if recent enough
            taken = {g for g, _ in matched.values() if g in cold}
            self._admit_cold({g: cold[g] for g in sorted(taken)})
            self._pending_cold = {g: v for g, v in cold.items() if g not in taken}
        out: list[MatchResult | None] = [None] * len(items)
        for r, (gid, dist) in matched.items():
            out[r] = self._attach(items[r], gid, dist)
        for r in sorted((r for r in range(len(items)) if r not in matched), key=lambda r: items[r].start_time):
            out[r] = self._create(items[r])
        return [o for o in out if o is not None]

    def cost_matrix(
        self, items: list[TrackletEmbedding], identities: list[GlobalIdentity]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(N, M) float64 costs (cosine distance + penalties) and (N, M) bool admissible mask."""
        vecs = np.array([_unit(it.vector) for it in items], dtype=np.float64)  # one pass: stack + float64
        dist = prototype_distances(vecs, [g.prototype for g in identities])
        cost = dist.copy()
        ok = np.zeros(dist.shape, dtype=bool)
        # penalties are >= 0: pairs beyond the loosest threshold are out without checking constraints
        loosest = max(self.threshold, self.config.reentry_threshold or 0.0)
        rows, cols = np.nonzero(dist <= loosest)
        if len(rows):
            extra, thr = self.constraints(items, identities, rows, cols)
            cost[rows, cols] = dist[rows, cols] + extra
            ok[rows, cols] = np.isfinite(extra) & (cost[rows, cols] <= thr)
        return cost, ok

    def constraints(self, items: list[TrackletEmbedding], identities: list[GlobalIdentity],
                    rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_constraint` of the (P,) pairs (items[rows[p]], identities[cols[p]]), vectorised over all
        their member spans: (P,) penalties (inf: forbidden) and (P,) thresholds, equal to the per-pair rule
        (the latest span ending before the tracklet, the earliest starting after it; first one on ties)."""
        cfg = self.config
        n_pairs = len(rows)
        used = np.unique(cols)
        counts = np.zeros(len(identities), dtype=np.int64)
        # the used identities' spans, identity after identity: camera rows of the camera tables, starts, ends
        counts[used], sp_cam, sp_s, sp_e = flat_spans([identities[c] for c in used.tolist()], self._camera_tables())
        first = np.zeros(len(identities), dtype=np.int64)  # where identity c's spans start in the span arrays
        first[used] = np.concatenate([[0], np.cumsum(counts[used])[:-1]])
        tables = self._camera_tables()
        i_cam = tables.rows([it.cam_id for it in items])[rows]
        i_s = np.array([it.start_time for it in items], dtype=np.float64)[rows]
        i_e = np.array([it.end_time for it in items], dtype=np.float64)[rows]
        thr = np.full(n_pairs, self.threshold)
        extra = np.zeros(n_pairs)
        per = counts[cols]
        pair = np.repeat(np.arange(n_pairs), per)  # (K,) the pair of each (pair, span) row
        if len(pair):
            pos = np.arange(len(pair)) - np.repeat(np.cumsum(per) - per, per)  # span's place in its identity
            k = np.repeat(first[cols], per) + pos
            s_cam, s_s, s_e = sp_cam[k], sp_s[k], sp_e[k]
            ovl = np.minimum(i_e[pair], s_e) - np.maximum(i_s[pair], s_s) >= cfg.time_slack_s
            forbidden = np.bincount(pair, weights=ovl & tables.views[i_cam[pair], s_cam], minlength=n_pairs) > 0
            prev = self._first_per_pair(pair, ~ovl & (s_e < i_s[pair]), -s_e, pos, n_pairs)
            nxt = self._first_per_pair(pair, ~ovl & (s_s > i_e[pair]), s_s, pos, n_pairs)
            has_prev, has_nxt = prev >= 0, nxt >= 0
            p_cam, p_e = s_cam[np.maximum(prev, 0)], s_e[np.maximum(prev, 0)]
            n_cam, n_s = s_cam[np.maximum(nxt, 0)], s_s[np.maximum(nxt, 0)]
            same = has_prev & (p_cam == i_cam)
            if cfg.reentry_threshold is not None:
                thr[same] = cfg.reentry_threshold
            if cfg.reentry_max_gap_s is not None:
                extra[same & (i_s - p_e > cfg.reentry_max_gap_s)] = math.inf
            hand = has_prev & ~same
            extra[hand] += self._transit_rows(p_cam[hand], i_cam[hand], i_s[hand] - p_e[hand])
            onward = has_nxt & (n_cam != i_cam)
            extra[onward] += self._transit_rows(i_cam[onward], n_cam[onward], n_s[onward] - i_e[onward])
            extra[forbidden] = math.inf
            thr[forbidden] = self.threshold
        return extra, thr

    @staticmethod
    def _first_per_pair(pair: np.ndarray, mask: np.ndarray, key: np.ndarray, pos: np.ndarray, n_pairs: int) -> np.ndarray:
        """(P,) per pair the row (into the (K,) arrays) with the smallest ``key`` among its ``mask`` rows, the
        first span on ties; -1 where none."""
        out = np.full(n_pairs, -1, dtype=np.int64)
        cand = np.flatnonzero(mask)
        if len(cand):
            order = cand[np.lexsort((pos[cand], key[cand], pair[cand]))]
            grp, at = np.unique(pair[order], return_index=True)
            out[grp] = order[at]
        return out

    def _transits(self, cams: tuple[str, ...], c_from: np.ndarray, c_to: np.ndarray, gap: np.ndarray) -> np.ndarray:
        """:meth:`_transit` of (K,) hand-overs cams[c_from] -> cams[c_to] after ``gap`` seconds, vectorised."""
        topo = self.config.topology
        if topo is None or not len(gap):
            return np.zeros(len(gap))
        g = self._camera_tables().rows(cams)
        return self._transit_rows(g[c_from], g[c_to], gap)

    def _transit_rows(self, a: np.ndarray, b: np.ndarray, gap: np.ndarray) -> np.ndarray:
        """:meth:`_transit` of (K,) hand-overs from camera row a to camera row b (of the camera tables) after
        ``gap`` seconds, vectorised."""
        topo = self.config.topology
        if topo is None or not len(gap):
            return np.zeros(len(gap))
        tables = self._camera_tables()
        linked, lo, hi, free = tables.linked[a, b], tables.lo[a, b], tables.hi[a, b], tables.free[a, b]
        miss = math.inf if topo.non_adjacent == "forbid" else topo.penalty
        outside = math.inf if topo.outside_window == "forbid" else topo.penalty
        inside = (lo <= gap) & (gap <= hi)
        out = np.where(linked, np.where(inside, 0.0, outside), miss)
        return np.where(free, 0.0, out)

    def known_different_distances(self, items: list[TrackletEmbedding], identities: list[GlobalIdentity]) -> np.ndarray:
        """(K,) cosine distances of (item, identity) pairs that cannot be one person (item-major order).

        An identity is another person when one of its member spans overlaps the
        item in time in the same camera, or in a camera whose view does not
        overlap the item's. Only identities seen since the item started qualify.
        """
        recent, hit = self._known_different_pairs(items, identities)
        return self._pair_distances(items, recent, hit)

    def _known_different_pairs(self, items: list[TrackletEmbedding],
                               identities: list[GlobalIdentity]) -> tuple[list[GlobalIdentity], np.ndarray]:
        """(recent identities, (N, R) bool hit): item i and recent[c] cannot be one person."""
        since = min(it.start_time for it in items) if items else math.inf
        recent = [g for g in identities if g.last_seen >= since]
        hit = np.zeros((len(items), len(recent)), dtype=bool)
        n_spans, c1, s1, e1 = flat_spans(recent, self._camera_tables())  # (R,) and (K,): every member span
        if recent and n_spans.sum():  # vectorised over all member spans
            both = self._coexists_rows(items, c1, s1, e1)
            owner = np.repeat(np.arange(len(recent)), n_spans)
            r, k = np.nonzero(both)
            hit[r, owner[k]] = True
        return recent, hit

    @staticmethod
    def _pair_distances(items: list[TrackletEmbedding], recent: list[GlobalIdentity], hit: np.ndarray) -> np.ndarray:
        """(K,) cosine distances of the K ``hit`` (item, identity) pairs, item-major (identities in ``recent``
        order within an item). Only the K pairs are computed (a (K_i, D) @ (D,) product per item over its own
        hit identities), not every item against every hit identity: the same values up to float64 rounding
        (BLAS sums a row in an order that may depend on the rows beside it: ~1e-16)."""
        rows, cols = np.nonzero(hit) if hit.size else (np.zeros(0, np.int64), np.zeros(0, np.int64))
        if not len(rows):
            return np.zeros(0)
        protos = np.array([recent[c].prototype for c in cols.tolist()], dtype=np.float64)  # (K, D), item-major
        bounds = np.searchsorted(rows, np.arange(len(items) + 1))  # item i's pairs: protos[bounds[i]:bounds[i + 1]]
        out = [1.0 - protos[bounds[i]:bounds[i + 1]] @ _unit(items[i].vector).astype(np.float64)
               for i in np.flatnonzero(np.diff(bounds)).tolist()]
        return np.concatenate(out)

    def _sample_known_different(self, items: list[TrackletEmbedding], identities: list[GlobalIdentity]) -> None:
        """Feed the calibration the known-different distances of ``items``. It keeps the last
        ``max_negatives``, so only those are computed; with the ANN index in force (a large gallery, many
        coexisting identities) a seeded uniform sample of at most ``index.candidates`` x N of them, looked for
        among a seeded uniform sample of at most ``_KNOWN_DIFFERENT_IDENTITIES`` of the recent identities
        (the per-call cost no longer grows with the hot set), and once the calibration holds
        ``max_negatives`` samples, only in one call per ``auto_threshold.sample_interval_s`` of stream time (the
        others add nothing). The calibration's running count records all the pairs of a sampled call
        (estimated from the sample when the identities were sampled)."""
        c = self._calibrator
        clock = max(it.end_time for it in items)
        if self.index_active and len(c) >= c.config.max_negatives:  # full: one call per sample_interval_s
            if clock < self.__dict__.get("_kd_sampled_at", -math.inf) + c.config.sample_interval_s:
                return
        self._kd_sampled_at = clock
        scale = 1.0
        if self.index_active and len(identities) > _KNOWN_DIFFERENT_IDENTITIES:
            # a large hot set: the pairs of a seeded uniform sample of the recent identities (a uniform sample
            # of the pairs once thinned below), instead of flattening the spans of every hot identity per call
            since = min(it.start_time for it in items)
            seen = np.fromiter(map(_LAST_SEEN, identities), dtype=np.float64, count=len(identities))
            identities = [identities[k] for k in np.flatnonzero(seen >= since).tolist()]
            if len(identities) > _KNOWN_DIFFERENT_IDENTITIES:
                rng = np.random.default_rng(len(identities))
                pick = np.sort(rng.choice(len(identities), _KNOWN_DIFFERENT_IDENTITIES, replace=False))
                scale = len(identities) / _KNOWN_DIFFERENT_IDENTITIES
                identities = [identities[k] for k in pick.tolist()]
        recent, hit = self._known_different_pairs(items, identities)
        total = int(round(hit.sum() * scale))  # the running count: an estimate when the identities were sampled
        keep = c.config.max_negatives
        if self.index_active:
            keep = min(keep, self.config.index.candidates * len(items))
        found = int(hit.sum())
        if found > keep:
            rows, cols = np.nonzero(hit)
            if self.index_active:
                pick = np.sort(np.random.default_rng(found).choice(found, keep, replace=False))
            else:
                pick = np.arange(found - keep, found)
            hit = np.zeros_like(hit)
            hit[rows[pick], cols[pick]] = True
        d = self._pair_distances(items, recent, hit)
        c.add(d)
        c.added += total - int(d.size)

    def coexists_matrix(self, items: list[TrackletEmbedding]) -> np.ndarray:
        """(N, N) bool, symmetric, diagonal False: :meth:`coexists` for every pair of ``items`` (vectorised)."""
        out = self.coexists_spans(items, [(it.cam_id, it.start_time, it.end_time) for it in items])
        np.fill_diagonal(out, False)
        return out

    def coexists_spans(self, items: list[TrackletEmbedding], spans: list[tuple[str, float, float]]) -> np.ndarray:
        """(N, K) bool: :meth:`coexists` (item i, span k) for every item and (cam_id, start, end) span."""
        if not items or not spans:
            return np.zeros((len(items), len(spans)), dtype=bool)
        c1 = self._camera_tables().rows([sp[0] for sp in spans])
        s1 = np.array([sp[1] for sp in spans], dtype=np.float64)
        e1 = np.array([sp[2] for sp in spans], dtype=np.float64)
        return self._coexists_rows(items, c1, s1, e1)

    def _coexists_rows(self, items: list[TrackletEmbedding], c1: np.ndarray, s1: np.ndarray,
                       e1: np.ndarray) -> np.ndarray:
        """(N, K) bool: :meth:`coexists_spans` with the K spans given as (K,) camera rows of the camera tables,
        (K,) starts and (K,) ends."""
        tables = self._camera_tables()
        c0 = tables.rows([it.cam_id for it in items])
        s0 = np.array([it.start_time for it in items], dtype=np.float64)
        e0 = np.array([it.end_time for it in items], dtype=np.float64)
        overlap = np.minimum(e0[:, None], e1[None, :]) - np.maximum(s0[:, None], s1[None, :]) >= self.config.time_slack_s
        return overlap & tables.views[c0[:, None], c1[None, :]]

    def _camera_tables(self) -> CameraTables:
        """The per camera pair tables (built as cameras appear; not pickled: rebuilt after a resume)."""
        tables = self.__dict__.get("_cam_tables")
        if tables is None:
            tables = self.__dict__["_cam_tables"] = CameraTables(self._overlap, self._links)
        return tables

    def _views(self, cams: tuple[str, ...]) -> np.ndarray:
        """(C, C) bool: one person cannot be in cams[a] and cams[b] at once (same camera, or views not
        declared overlapping)."""
        tables = self._camera_tables()
        g = tables.rows(cams)
        return tables.views[np.ix_(g, g)]

    def constraint_penalty(self, it: TrackletEmbedding, ident: GlobalIdentity) -> float:
        """What tracklet ``it`` joining ``ident`` adds to the distance: 0, the topology's penalty,
        or inf (forbidden: coexistence, a forbidden hand-over or re-entry gap)."""
        return self._constraint(it, ident)[0]

    def coexists(self, it: TrackletEmbedding, cam: str, start: float, end: float) -> bool:
        """Public form of the cannot-link rule (also used by pipeline/matching/recluster.py)."""
        return self._coexists(it, cam, start, end)

    def transit_penalty(self, cam_from: str, cam_to: str, gap_s: float) -> float:
        """0, the topology's penalty, or inf (forbidden) for a hand-over cam_from -> cam_to after gap_s."""
        return self._transit(cam_from, cam_to, gap_s)

    def _coexists(self, it: TrackletEmbedding, cam: str, start: float, end: float) -> bool:
        """The tracklet overlaps span (cam, start, end) where one person cannot be in both:
        the same camera, or a camera whose view does not overlap the tracklet's."""
        return self._overlaps(it.start_time, it.end_time, start, end) and (
            cam == it.cam_id or frozenset((cam, it.cam_id)) not in self._overlap)

    def _overlaps(self, s0: float, e0: float, s1: float, e1: float) -> bool:
        """Spans share at least ``time_slack_s`` seconds (with 0: any common instant)."""
        return min(e0, e1) - max(s0, s1) >= self.config.time_slack_s

    def _constraint(self, it: TrackletEmbedding, ident: GlobalIdentity) -> tuple[float, float]:
        """(penalty or inf, threshold) for tracklet ``it`` joining ``ident``."""
        cfg = self.config
        prev = nxt = None
        for cam, s, e in ident.spans:
            if self._coexists(it, cam, s, e):
                return math.inf, self.threshold
            if self._overlaps(it.start_time, it.end_time, s, e):
                continue
            if e < it.start_time and (prev is None or e > prev[2]):
                prev = (cam, s, e)
            if s > it.end_time and (nxt is None or s < nxt[1]):
                nxt = (cam, s, e)
        penalty, thr = 0.0, self.threshold
        if prev is not None and prev[0] == it.cam_id:
            thr = cfg.reentry_threshold if cfg.reentry_threshold is not None else thr
            if cfg.reentry_max_gap_s is not None and it.start_time - prev[2] > cfg.reentry_max_gap_s:
                return math.inf, thr
        elif prev is not None:
            penalty += self._transit(prev[0], it.cam_id, it.start_time - prev[2])
        if nxt is not None and nxt[0] != it.cam_id:
            penalty += self._transit(it.cam_id, nxt[0], nxt[1] - it.end_time)
        return penalty, thr

    def _transit(self, cam_from: str, cam_to: str, gap_s: float) -> float:
        """Penalty (0, ``penalty`` or inf) of a hand-over cam_from -> cam_to after ``gap_s`` seconds."""
        topo = self.config.topology
        if topo is None or frozenset((cam_from, cam_to)) in self._overlap:
            return 0.0
        link = self._links.get((cam_from, cam_to))
        if link is None:
            return math.inf if topo.non_adjacent == "forbid" else topo.penalty
        if link.min_s <= gap_s <= link.max_s:
            return 0.0
        return math.inf if topo.outside_window == "forbid" else topo.penalty

    # ------------------------------------------------------------------ gallery updates
    def _create(self, it: TrackletEmbedding) -> MatchResult:
        gid = self.next_id
        self.next_id += 1
        self._gallery[gid] = GlobalIdentity(
            gid, _unit(it.vector), [(it.cam_id, int(it.track_id))], it.end_time, it.cam_id,
            [(it.cam_id, it.start_time, it.end_time)],
        )
        self._track_gid[(it.cam_id, int(it.track_id))] = gid
        self._mark(gid)
        return MatchResult(gid, True, None)

    def _attach(self, it: TrackletEmbedding, gid: int, dist: float) -> MatchResult:
        ident = self._gallery[gid]
        before = [sp for sp in ident.spans if sp[2] < it.start_time]
        prev = max(before, key=lambda sp: sp[2]) if before else None
        self._update(ident, it)
        self._add_span(ident, it, replace=False)
        self._track_gid[(it.cam_id, int(it.track_id))] = gid
        return MatchResult(gid, False, dist, prev[0] if prev else None, prev[2] if prev else None)

    def _continue(self, it: TrackletEmbedding, gid: int) -> MatchResult:
        """A longer version of a tracklet already matched this session: replace its span."""
        ident = self._gallery[gid]
        dist = float(1.0 - np.dot(_unit(it.vector), ident.prototype))
        self._update(ident, it)
        self._add_span(ident, it, replace=True)
        return MatchResult(gid, False, dist, continuation=True)

    def _add_span(self, ident: GlobalIdentity, it: TrackletEmbedding, replace: bool) -> None:
        """Add the tracklet's span (``replace``: instead of the same member's older, shorter span);
        keep the last max_spans by end time. ``members[i]`` and ``spans[i]`` describe the same tracklet.

        Only a continuation replaces: track ids restart with every run, so an
        old member with the same (cam, track) from a previous run is another tracklet.
        """
        key = (it.cam_id, int(it.track_id))
        pairs = [(m, sp) for m, sp in zip(ident.members, ident.spans) if not (replace and m == key)]
        pairs.append((key, (it.cam_id, it.start_time, it.end_time)))
        pairs = sorted(pairs, key=lambda p: p[1][2])[-self.config.max_spans:]
        ident.members = [p[0] for p in pairs]
        ident.spans = [p[1] for p in pairs]

    def _update(self, ident: GlobalIdentity, it: TrackletEmbedding) -> None:
        m = self.config.momentum
        ident.prototype = _unit(m * ident.prototype + (1.0 - m) * _unit(it.vector))
        if it.end_time >= ident.last_seen:
            ident.last_seen, ident.last_cam = it.end_time, it.cam_id
        if self._gallery.get(ident.global_id) is ident:
            self._gallery.touch(ident.global_id, ident.last_seen)
            self._mark(ident.global_id)

    def _age(self) -> None:
        """Drop identities unseen for ttl_s, then the oldest beyond max_gallery (paged out instead when
        an index and a pager are in force: :mod:`pipeline.matching.paging`)."""
        cfg = self.config
        # candidates the last assignment read in place: they join the gallery unless they would leave it now
        pending: dict[int, GlobalIdentity] = self.__dict__.pop("_pending_cold", None) or {}
        drop = set()
        if cfg.ttl_s is not None:
            drop = {g for g, ident in self._gallery.items() if ident.last_seen < self._clock - cfg.ttl_s}
            self._drop_expired(drop)
        over = len(self._gallery) + len(pending) - len(drop) - cfg.max_gallery
        if over > 0:
            old = self._gallery.least_recent(over, drop, pending)  # by (last_seen, id), a heap: no scan
            leaving = set(old)
            pending = {g: v for g, v in pending.items() if g not in leaving}
            drop.update(self._evict_or_drop([g for g in old if g in self._gallery]))
        if pending:
            self._admit_cold(pending)
        for g in drop:
            del self._gallery[g]
            self._settled.pop(g, None)
        if drop:
            self._track_gid = {k: g for k, g in self._track_gid.items() if g not in drop}
            self._window = {k: v for k, v in self._window.items() if v[1] not in drop}
