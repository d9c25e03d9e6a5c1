"""The sliding-window revision of :class:`~pipeline.matching.matcher.CrossCameraMatcher` (``matching.revise``).

Tracklets that ended within ``revise.window_s`` of the matcher's clock are tentative: every call adds
the new ones and re-solves the whole window with the settled identities (the decision itself is
:func:`pipeline.matching.revise.solve_window`); older tracklets settle into their identity and never
move again. This mixin keeps that bookkeeping out of the matcher's one-shot assignment code; it uses
the matcher's state (``_window``, ``_settled``, ``_gallery``, ``_track_gid``, calibration) and helpers
(``_continue``, ``_update``, ``_add_span``, ``_age``), so it is only meaningful mixed into it.
"""

from __future__ import annotations

import numpy as np

from pipeline.core.types import GlobalIdentity, TrackletEmbedding
from pipeline.matching.results import MatchResult, _copy_identity, _unit
from pipeline.matching.revise import describe_changes, solve_window


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
        self._settle(protect={(it.cam_id, int(it.track_id)) for it in items})
        keys = sorted(self._window, key=lambda k: (self._window[k][0].start_time, k))
        win = [self._window[k][0] for k in keys]
        old = [self._window[k][1] for k in keys]
        if not keys:  # everything was a settled continuation
            return [bound[(it.cam_id, int(it.track_id))] for it in items]
        settled = {g: i for g, i in self._settled.items() if g in self._gallery}
        # with the ANN index in force: only the index's candidates of the window's new / longer tracklets
        settled = self._settled_candidates(settled, [self._window[k][0] for k in sorted(fresh_keys | cont)])
        sol, _ = solve_window(win, old, settled, self, lambda d, c: self._window_threshold(keys, d, c))
        self._last_window_threshold = sol.threshold
        new_ids: dict[int, int] = {}
        labels = []
        for i, lab in enumerate(sol.labels):
            if lab is None:
                if sol.group[i] not in new_ids:
                    new_ids[sol.group[i]] = self.next_id
                    self.next_id += 1
                lab = new_ids[sol.group[i]]
            labels.append(lab)
        for k, lab in zip(keys, labels):
            self._window[k][1] = lab
            self._track_gid[k] = lab
        batch_keys = {(it.cam_id, int(it.track_id)) for it in items}
        touched = {g for k, a, b in zip(keys, old, labels) if a != b or k in batch_keys for g in (a, b)} - {None}
        for g in sorted(touched):  # identities whose members or member vectors changed
            self._rebuild(g)
        remaining = set(settled) | set(labels)
        self._changes += describe_changes(win, old, labels, sol, remaining, self.link_probability)
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
        samples = len(self._pair_neg) + len(self._pair_settled)
        if samples < cfg.min_negatives:
            return self.threshold
        d = np.fromiter(list(self._pair_neg.values()) + list(self._pair_settled), dtype=np.float64, count=samples)
        q = float(np.quantile(d[-cfg.max_negatives:], cfg.false_match_rate))
        return float(np.clip(q, cfg.min_threshold, cfg.max_threshold))

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

    def _settle(self, protect: set[tuple[str, int]] | frozenset = frozenset()) -> None:
        """Tentative tracklets that ended more than window_s ago (and the oldest beyond max_tracklets)
        join their identity's settled part, in end-time order; they never move again. Tracks in
        ``protect`` (this call's items) stay for one solve, however old: a late final tracklet (a
        camera that went down long ago) is still assigned, and settled at the next call."""
        cfg = self.config.revise
        order = sorted(self._window, key=lambda k: (self._window[k][0].end_time, k))
        excess = max(0, len(order) - cfg.max_tracklets)
        gone = set()
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
            if base is None:
                self._settled[gid] = self._new_identity(gid, it)
            else:
                self._update(base, it)
                self._add_span(base, it, replace=False)
        if gone:  # their known-different pairs are final now
            for pair in [p for p in self._pair_neg if p[0] in gone or p[1] in gone]:
                self._pair_settled.append(self._pair_neg.pop(pair))

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
