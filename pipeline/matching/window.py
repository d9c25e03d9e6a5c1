"""The sliding-window revision of :class:`~pipeline.matching.matcher.CrossCameraMatcher` (``matching.revise``).

Tracklets that ended within ``revise.window_s`` of the matcher's clock are tentative: every call adds
the new ones and re-solves the whole window with the settled identities (the decision itself is
:func:`pipeline.matching.revise.solve_window`); older tracklets settle into their identity and never
move again. This mixin keeps that bookkeeping out of the matcher's one-shot assignment code; it uses
the matcher's state (``_window``, ``_settled``, ``_gallery``, ``_track_gid``, calibration) and helpers
(``_continue``, ``_update``, ``_add_span``, ``_age``), so it is only meaningful mixed into it.
"""

from __future__ import annotations

from itertools import islice

import numpy as np

from pipeline.core.types import GlobalIdentity, TrackletEmbedding
from pipeline.matching.calibration import gallery_rate
from pipeline.matching.overlap_check import OverlapMonitor, SuspectedOverlap
from pipeline.matching.results import MatchResult, _copy_identity, _unit, prototype_distances
from pipeline.matching.revise import describe_changes, single_blas_thread, solve_window


class RevisionWindowMixin:
    """Re-solve of the tentative window; mixed into CrossCameraMatcher (see the module docstring)."""

    def _match_revise(self, items: list[TrackletEmbedding]) -> list[MatchResult]:
        """Add ``items`` to the tentative window and re-solve it (see :mod:`pipeline.matching.revise`)."""
        self._clock = max([self._clock] + [it.end_time for it in items])
        self._age()
        self._page_in_tracks(items)
        fresh, cont, fresh_keys, bound = [], set(), set(), {}
        for it in items:
            key = (it.cam_id, int(it.track_id))
            if key in self._window:
                self._window[key][0] = it
                cont.add(key)
                continue
            gid = self._track_gid.get(key)
            if gid is not None and gid in self._gallery:  # bound on resume, or a settled track: stays settled
                bound[key] = self._continue_settled(it, gid)
            else:
                self._window[key] = [it, None]
                fresh.append(it)
                fresh_keys.add(key)
        if fresh and self._gallery and self._calibrator is not None:
            self._sample_known_different(fresh, list(self._gallery.values()))
        moved = self._settle(protect={(it.cam_id, int(it.track_id)) for it in items})
        all_keys = sorted(self._window, key=lambda k: (self._window[k][0].start_time, k))
        if not all_keys:  # everything was a settled continuation
            return [bound[(it.cam_id, int(it.track_id))] for it in items]
        changed = fresh_keys | cont
        if self.config.revise.incremental:
            with single_blas_thread():  # small products (see solve_window)
                sub, settled, thr = self._incremental_region(all_keys, changed, moved)
            keys = [all_keys[i] for i in sub]
        else:
            keys = all_keys
            settled = {g: i for g, i in self._settled.items() if g in self._gallery}
            # with the ANN index in force: only the index's candidates of the window's new / longer tracklets
            settled = self._settled_candidates(settled, [self._window[k][0] for k in sorted(changed)])
            thr = lambda d, c: self._window_threshold(keys, d, c)  # noqa: E731
        if not keys:  # incremental: nothing this call can change (every item a settled continuation)
            return [bound[(it.cam_id, int(it.track_id))] for it in items]
        win = [self._window[k][0] for k in keys]
        old = [self._window[k][1] for k in keys]
        sol, _ = solve_window(win, old, settled, self, thr)
        self._last_window_threshold = sol.threshold
        home, free = self._home_ids()
        new_ids: dict[int, int] = {}
        labels = []
        for i, lab in enumerate(sol.labels):
            if lab is None:
                if sol.group[i] not in new_ids:
                    new_ids[sol.group[i]] = self._id_for_group(keys, sol.group, sol.group[i], home, free)
                lab = new_ids[sol.group[i]]
            labels.append(lab)
        for k, lab in zip(keys, labels):
            self._window[k][1] = lab
            self._track_gid[k] = lab
            home.setdefault(k, lab)
        batch_keys = {(it.cam_id, int(it.track_id)) for it in items}
        touched = {g for k, a, b in zip(keys, old, labels) if a != b or k in batch_keys for g in (a, b)} - {None}
        for g in sorted(touched):  # identities whose members or member vectors changed
            self._rebuild(g)
            if g not in self._gallery:  # absorbed: its id is free for a track that held it first
                free.add(g)
        remaining = set(settled) | {v[1] for v in self._window.values()}
        self._changes += describe_changes(win, old, labels, sol, remaining, self.link_probability, float(self._clock))
        created = set(new_ids.values())
        pos = {k: i for i, k in enumerate(keys)}
        out = []
        for it in items:
            key = (it.cam_id, int(it.track_id))
            if key in bound:
                out.append(bound[key])
                continue
            i = pos[key]
            gid = labels[i]
            prev = self._previous_span(gid, it)
            out.append(MatchResult(gid, gid in created and key in fresh_keys, sol.link[i],
                                   prev[0] if prev else None, prev[2] if prev else None,
                                   continuation=key in cont and key not in fresh_keys,
                                   probability=self.link_probability(sol.link[i])))
        return out

    def _home_ids(self) -> tuple[dict, set]:
        """(track -> the first id it was given, for the tentative tracks; ids absorbed by a revision and not
        given out again). A group that splits off and needs an id takes back its first member's first id when
        that id is free, instead of a fresh one: a track that joined an identity and leaves it again gets back
        the id it was announced with (no id churn for consumers; :mod:`pipeline.runner.announce` then has no
        move to announce). Both shrink as tracks settle."""
        return self.__dict__.setdefault("_home_gid", {}), self.__dict__.setdefault("_free_gids", set())

    def _id_for_group(self, keys: list, group: list[int], g: int, home: dict, free: set) -> int:
        """The id of the re-solve's cluster ``g`` that no existing id fits: the first id of its earliest member
        (``keys`` are in start order) whose first id was absorbed and is free, else a new id."""
        for k, gk in zip(keys, group):
            if gk == g:
                h = home.get(k)
                if h in free:
                    free.discard(h)
                    return h
        gid = self.next_id
        self.next_id += 1
        return gid

    def _window_threshold(self, keys: list, dist: np.ndarray, cannot: np.ndarray) -> float:
        """The re-solve's threshold: the false_match_rate quantile of known-different tracklet-pair
        distances (the batch re-clustering's rule), once min_negatives pairs are known; before that
        (or without auto_threshold) the matcher's threshold in force."""
        cfg = self.config.auto_threshold
        if cfg is None:
            return self.threshold
        iu, ju = np.nonzero(np.triu(cannot, 1))
        for i, j in zip(iu.tolist(), ju.tolist()):
            self._pair_neg[(keys[i], keys[j])] = float(dist[i, j])  # the latest embeddings of the pair
        return self._pair_threshold()

    def _pair_threshold(self) -> float:
        """The quantile at :func:`~pipeline.matching.calibration.gallery_rate` (``false_match_rate``, scaled
        down for a gallery above ``reference_identities``) of the last ``max_negatives`` known-different pair
        distances (the window's pairs, then the settled ones, in that order); the matcher's threshold before
        ``min_negatives``."""
        cfg = self.config.auto_threshold
        if len(self._pair_neg) + len(self._pair_settled) < cfg.min_negatives:
            return self.threshold
        tail = list(self._pair_settled)[-cfg.max_negatives:]
        need = cfg.max_negatives - len(tail)
        if need > 0:  # the newest window pairs before them (dicts keep insertion order)
            tail = list(islice(reversed(self._pair_neg.values()), need))[::-1] + tail
        q = float(np.quantile(np.asarray(tail, dtype=np.float64), gallery_rate(cfg, self.gallery_size())))
        return float(np.clip(q, cfg.min_threshold, cfg.max_threshold))

    # ------------------------------------------------------------------ incremental re-solve
    def _window_vectors(self, keys: list, changed: set) -> np.ndarray:
        """(N, D) float64 unit embeddings of the window's tracklets ``keys`` (cached per tracklet;
        ``changed``: new or longer ones, recomputed)."""
        cache = self.__dict__.setdefault("_win_vec", {})
        for k in list(cache):
            if k not in self._window or k in changed:
                del cache[k]
        rows = []
        for k in keys:
            v = cache.get(k)
            if v is None:
                v = np.asarray(self._window[k][0].vector, np.float64)
                v = cache[k] = v / max(float(np.linalg.norm(v)), 1e-12)
            rows.append(v)
        return np.stack(rows)

    def _incremental_threshold(self, keys: list, vecs: np.ndarray, rows: list[int]) -> float:
        """:meth:`_window_threshold` from the pairs that hold a new or longer tracklet (``rows``): the
        others' distances did not change since they were recorded. Same pairs, same order."""
        if self.config.auto_threshold is None:
            return self.threshold
        if rows:
            n = len(keys)
            win = [self._window[k][0] for k in keys]
            c_rows = self.coexists_spans([win[i] for i in rows], [(it.cam_id, it.start_time, it.end_time) for it in win])
            c_rows[np.arange(len(rows)), rows] = False
            d_rows = np.clip(1.0 - vecs[rows] @ vecs.T, 0.0, 2.0)
            cannot = np.zeros((n, n), dtype=bool)
            dist = np.zeros((n, n))
            cannot[rows, :] = c_rows
            cannot[:, rows] |= c_rows.T
            dist[rows, :] = d_rows
            dist[:, rows] = d_rows.T
            iu, ju = np.nonzero(np.triu(cannot, 1))
            for i, j, d in zip(iu.tolist(), ju.tolist(), dist[iu, ju].tolist()):
                self._pair_neg[(keys[i], keys[j])] = d
        return self._pair_threshold()

    def _incremental_region(self, keys: list, changed: set, moved: dict) -> tuple[list[int], dict, float]:
        """The part of the window this call can change (``revise.incremental``): (indices into ``keys`` of
        the tentative tracklets to re-solve, the settled identities they may join, the threshold).

        The candidate graph's nodes are the tentative tracklets and the identities; a tracklet is linked to
        the tracklets within the threshold, to the identity it belongs to and to its candidate identities
        (with the index in force: the index's candidates within the loosest threshold; else the settled
        identities within the threshold). The region is the union of the components that hold a new or
        longer tracklet (``changed``) or a tracklet linked to an identity whose settled part moved this
        call (``moved``: id -> settled prototype before, None when new). Average linkage only joins
        clusters that hold a pair within the threshold, so components never share a cluster and the
        other components' clusters are those of the last solve that included them."""
        fresh = [self._window[k][0] for k in keys if k in changed]
        self._refresh_window_candidates(fresh)
        vecs = self._window_vectors(keys, changed)
        pos = {k: i for i, k in enumerate(keys)}
        thr = self._incremental_threshold(keys, vecs, sorted(pos[k] for k in changed if k in pos))
        label = [self._window[k][1] for k in keys]
        by_id: dict[int, list[int]] = {}
        for i, g in enumerate(label):
            if g is not None:
                by_id.setdefault(g, []).append(i)
        indexed = self.index_active
        if indexed:
            near = [self._window_near(k) for k in keys]
            for i, ids in enumerate(near):
                for g in ids:
                    by_id.setdefault(g, []).append(i)
        else:  # exact: every settled identity in memory, linked within the threshold
            sids = [g for g in self._settled if g in self._gallery]
            to_settled = prototype_distances(vecs, [self._settled[g].prototype for g in sids])  # (K, S)
        inside = np.zeros(len(keys), dtype=bool)
        inside[[pos[k] for k in changed if k in pos]] = True
        last = self.__dict__.get("_win_whole_threshold")
        stats = self.__dict__.setdefault("window_stats", {"whole": 0, "part": 0, "resolved": 0, "tentative": 0, "seeded": 0})
        if last is None or abs(thr - last) > self.config.revise.threshold_tolerance:
            inside[:] = True  # the threshold moved: the whole window
            self._win_whole_threshold = thr
            stats["whole"] += 1
        else:
            stats["part"] += 1
        for g, before in moved.items():  # tracklets near an identity's settled part, before or after it moved
            hit = [i for i in by_id.get(g, [])]
            for proto in (before, self._settled[g].prototype if g in self._settled else None):
                if proto is not None:
                    p = np.asarray(proto, np.float64)
                    hit += np.flatnonzero(1.0 - vecs @ (p / max(float(np.linalg.norm(p)), 1e-12)) <= thr).tolist()
            inside[hit] = True
        idents: set[int] = set()
        frontier = np.flatnonzero(inside)
        stats["seeded"] += len(frontier)
        while len(frontier):
            reach = (1.0 - vecs[frontier] @ vecs.T <= thr).any(axis=0)
            new_ids: set[int] = set()
            if indexed:
                for i in frontier.tolist():
                    new_ids |= near[i]
            elif sids:
                new_ids |= {sids[c] for c in np.flatnonzero((to_settled[frontier] <= thr).any(axis=0))}
            new_ids |= {label[i] for i in frontier.tolist() if label[i] is not None}
            new_ids -= idents
            idents |= new_ids
            for g in new_ids:
                reach[by_id.get(g, [])] = True
            if not indexed and new_ids and sids:
                col = [c for c, g in enumerate(sids) if g in new_ids]
                reach |= (to_settled[:, col] <= thr).any(axis=1)
            frontier = np.flatnonzero(reach & ~inside)
            inside |= reach
        settled = self._settled_in_memory(idents)
        stats["resolved"] += int(inside.sum())
        stats["tentative"] += len(keys)
        return np.flatnonzero(inside).tolist(), settled, thr

    @property
    def overlap_monitor(self) -> OverlapMonitor:
        """The settled known-different pairs by camera pair (:mod:`pipeline.matching.overlap_check`)."""
        return self.__dict__.setdefault("_overlap_monitor", OverlapMonitor())

    def suspected_overlaps(self) -> list[SuspectedOverlap]:
        """Camera pairs whose coexisting tracklets look like the same people (an overlap the config does not
        declare), from the settled pairs and the window's."""
        return self.overlap_monitor.suspects((a[0], b[0], d) for (a, b), d in self._pair_neg.items())

    @property
    def window_threshold(self) -> float | None:
        """The re-solve's last threshold (None before the first re-solve)."""
        return self.__dict__.get("_last_window_threshold")

    def _continue_settled(self, it: TrackletEmbedding, gid: int) -> MatchResult:
        """A tracklet of a settled track (bound on resume): a continuation outside the window."""
        res = self._continue(it, gid)
        base = self._settled.get(gid)
        if base is not None:
            self._update(base, it)
            self._add_span(base, it, replace=True)
        return res

    def _previous_span(self, gid: int, it: TrackletEmbedding) -> tuple[str, float, float] | None:
        ident = self._gallery.get(gid)
        before = [sp for sp in (ident.spans if ident else []) if sp[2] < it.start_time]
        return max(before, key=lambda sp: sp[2]) if before else None

    def _settle(self, protect: set[tuple[str, int]] | frozenset = frozenset()) -> dict[int, np.ndarray | None]:
        """Tentative tracklets that ended more than window_s ago (and the oldest beyond max_tracklets)
        join their identity's settled part, in end-time order; they never move again. Tracks in
        ``protect`` (this call's items) stay for one solve, however old: a late final tracklet (a
        camera that went down long ago) is still assigned, and settled at the next call."""
        cfg = self.config.revise
        order = sorted(self._window, key=lambda k: (self._window[k][0].end_time, k))
        excess = max(0, len(order) - cfg.max_tracklets)
        gone = set()
        moved: dict[int, np.ndarray | None] = {}
        for n, key in enumerate(order):
            it, gid = self._window[key]
            if n >= excess and it.end_time >= self._clock - cfg.window_s:
                break
            if key in protect:
                continue
            del self._window[key]
            gone.add(key)
            if gid is None:  # cannot happen after a solve; a fresh item is never settled before one
                continue
            base = self._settled.get(gid)
            moved.setdefault(gid, None if base is None else base.prototype)
            if base is None:
                self._settled[gid] = self._new_identity(gid, it)
            else:
                self._update(base, it)
                self._add_span(base, it, replace=False)
        if gone:  # their known-different pairs are final now
            monitor = self.overlap_monitor
            for pair in [p for p in self._pair_neg if p[0] in gone or p[1] in gone]:
                d = self._pair_neg.pop(pair)
                self._pair_settled.append(d)
                monitor.add(pair[0][0], pair[1][0], d)
            home, free = self._home_ids()
            for key in gone:  # a settled track never moves again: no id to take back
                home.pop(key, None)
            free.intersection_update(home.values())
        return moved

    def _new_identity(self, gid: int, it: TrackletEmbedding) -> GlobalIdentity:
        return GlobalIdentity(gid, _unit(it.vector), [(it.cam_id, int(it.track_id))], it.end_time, it.cam_id,
                              [(it.cam_id, it.start_time, it.end_time)])

    def _rebuild(self, gid: int) -> None:
        """The live identity = its settled part + its tentative members folded in end-time order;
        an identity with neither leaves the gallery (absorbed)."""
        base = _copy_identity(self._settled[gid]) if gid in self._settled else None
        members = sorted((v[0] for v in self._window.values() if v[1] == gid),
                         key=lambda it: (it.end_time, it.cam_id, it.track_id))
        for it in members:
            if base is None:
                base = self._new_identity(gid, it)
            else:
                self._update(base, it)
                self._add_span(base, it, replace=False)
        if base is None:
            self._gallery.pop(gid, None)
        else:
            self._gallery[gid] = base
        self._mark(gid)  # the ANN index re-encodes (or forgets) it
