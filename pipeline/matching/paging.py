"""The matcher's gallery at scale: ANN candidates, paging identities in and out of memory.

Mixed into :class:`~pipeline.matching.matcher.CrossCameraMatcher` (it uses the matcher's ``config``,
``_gallery``, ``_settled``, ``_window``, ``_clock`` and thresholds). With ``index.kind`` faiss (or
auto with faiss-cpu installed) and a gallery of at least ``index.min_gallery`` identities (in memory +
in the pager), every identity is in a :class:`~pipeline.matching.gallery_index.GalleryIndex`:

* candidates: per tracklet, the index proposes ``index.candidates`` identities; their full-precision
  prototypes (in memory, else from the pager) give the exact cosine distances, identities past
  ``ttl_s`` are dropped, and only those within the loosest threshold in force go on to the exact
  assignment (one-shot Hungarian, or the revision window's re-solve), which computes penalties and
  constraints as always. Below ``min_gallery`` (or with ``index.kind: exact``) every in-memory
  identity is a candidate: the matcher's original exact search, unchanged.
* paging (only with a pager, the identity store's
  :class:`~pipeline.store.prototypes.PrototypeTable`): beyond ``max_gallery`` the least recently seen
  identities leave memory (written back to the store first) but stay in the index; a candidate within
  the threshold, or the identity of a continuing track, is paged back in with its member spans.
  Identities that a tentative tracklet of the revision window belongs to are never paged out.
  Without a pager, ``max_gallery`` drops identities as it always did (from the index too).
* upkeep: identities created or changed in a call are re-encoded in the index at its end; the index
  is trained at activation on up to ``train_size`` prototypes and re-trained when the gallery has
  grown 4x since, until ``train_size`` prototypes trained it.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections.abc import Iterator
from operator import attrgetter

import numpy as np

from pipeline.core.errors import ConfigError
from pipeline.core.types import GlobalIdentity, TrackletEmbedding
from pipeline.matching.config import MIN_INDEX_TRAIN, check_index_dims
from pipeline.matching.gallery_index import GalleryIndex, IdentityPager, default_nlist, faiss_available
from pipeline.matching.results import _align_members, _copy_identity, _unit

#: an identity's last sighting (maps over identities without a Python frame per identity)
_LAST_SEEN = attrgetter("last_seen")

log = logging.getLogger(__name__)

#: the index is re-trained when it holds this many times the prototypes it was trained on
_RETRAIN_GROWTH = 4
#: fewest prototypes that can train the index (PQ codebooks have 256 centroids)
_MIN_TRAIN = MIN_INDEX_TRAIN
#: a loaded prototype whose squared norm is this close to 1 is already a unit vector (float32 rounding)
_UNIT_TOLERANCE = 1e-6
#: identities whose prototype's unit-norm test is remembered (then the memory restarts): ~100 B each
_UNIT_PASSED_LIMIT = 200_000


class PagedGalleryMixin:
    """ANN candidates and paging; mixed into CrossCameraMatcher (see the module docstring)."""

    def _init_paging(self, pager: IdentityPager | None, index: GalleryIndex | None) -> None:
        kind = self.config.index.kind
        self._use_index = kind == "faiss" or (kind == "auto" and (index is not None or faiss_available()))
        self._pager = pager
        # the model version the pager pages (a resumed run's new pager is given it again: attach_pager)
        self._pager_version = getattr(pager, "model_version", None)
        self._index = index if self._use_index else None
        self._trained_on = index.trained_on if index is not None else 0
        self._dirty: set[int] = set()
        self._modified: set[int] = set()  # changed in memory since created or paged in: written back on eviction
        self._win_cand: dict[tuple[str, int], dict[int, float]] = {}
        self._pager_base = pager.count() if (pager is not None and self._use_index and index is None) else 0
        self._next_id_base = self.next_id
        self.paging_stats = {"paged_in": 0, "paged_out": 0, "index_builds": 0, "candidates": 0}
        # a stored gallery tells the embedding dimension now: bad index keys fail at start (a pre-built index, as
        # tools/bench_scale.py loads, carries its own pq_m / pca_dim: not checked against the config)
        self._dims_checked = index is not None
        self._check_dims()
        if pager is not None and not self._use_index:
            stored = pager.count()
            if stored > self.config.max_gallery:
                log.warning("%d stored identities are beyond matching.max_gallery (%d) and will not be matched "
                            "(matching.index.kind %s%s): only an ANN index pages them back in", stored -
                            self.config.max_gallery, self.config.max_gallery, kind,
                            "" if kind == "exact" else ", faiss-cpu is not installed")

    def _check_dims(self) -> None:
        """Once the embedding dimension is known (an identity in memory), check ``index.pca_dim`` / ``pq_m``
        against it (:func:`~pipeline.matching.config.check_index_dims`): a one-line ConfigError."""
        if not self._use_index or self.__dict__.get("_dims_checked") or not self._gallery:
            return
        ident = next(iter(self._gallery.values()))
        try:
            check_index_dims(self.config.index, int(np.asarray(ident.prototype).shape[-1]))
        except ConfigError as exc:
            if self.config.index.kind == "faiss":
                raise
            # kind auto: an index these embeddings cannot have is no index (exact matching), said once
            log.warning("%s: matching.index.kind auto matches exactly (no ANN index) for these embeddings", exc)
            self._use_index, self._index = False, None
        self._dims_checked = True

    def __getstate__(self) -> dict:
        """Pickled (the runner's batch resume checkpoint) without the pager (it holds the open store) and the
        faiss index (not picklable): a restored matcher is pager-less until :meth:`attach_pager`, and rebuilds
        its index from what it holds at its next call."""
        state = self.__dict__.copy()
        state.update(_pager=None, _index=None, _trained_on=0, _dirty=set(), _modified=set(), _win_cand={})
        state.pop("_pending_cold", None)
        state.pop("_rebuild", None)  # a background index build (its thread); the index is rebuilt anyway
        state.pop("_cam_tables", None)  # rebuilt as cameras appear
        state.pop("_unit_passed", None)  # weak references
        return state

    def use_model_version(self, version: str) -> None:
        """Page identities of model ``version`` from now on (a hot swap re-tagged the store's prototypes with
        it); a later :meth:`attach_pager` keeps it."""
        self._pager_version = version
        if self._pager is not None and hasattr(self._pager, "use_model_version"):
            self._pager.use_model_version(version)

    def attach_pager(self, pager: IdentityPager) -> None:
        """(Re-)attach the store after unpickling; the index is rebuilt from it at the next call. A pager
        without a model version pages the one this matcher's gallery was loaded with (see
        :func:`~pipeline.store.queries.gallery_model_version`)."""
        version = self.__dict__.get("_pager_version")
        if version is not None and getattr(pager, "model_version", version) is None:
            pager.use_model_version(version)
        self._pager = pager
        self._index = None
        self._pager_base = pager.count() if self._use_index else 0
        self._next_id_base = self.next_id

    # ------------------------------------------------------------------ state
    @property
    def index(self) -> GalleryIndex | None:
        """The ANN index (None until in force)."""
        return self._index

    @property
    def index_active(self) -> bool:
        """Candidates come from the ANN index (gallery at least ``index.min_gallery`` and index trained)."""
        return self._index is not None and self._index.trained and self.__dict__.get("_rebuild") is None

    def gallery_size(self) -> int:
        """Identities in memory and in the pager (an estimate with a pager: its count at start + created since)."""
        if self._index is not None:
            return max(len(self._index), len(self._gallery))
        if self._pager is None:
            return len(self._gallery)
        return max(len(self._gallery), self._pager_base + self.next_id - self._next_id_base)

    def _ensure_index(self) -> None:
        """Build the index once the gallery reaches ``min_gallery``; re-train it as it grows."""
        if not self._use_index:
            return
        if self.__dict__.get("_rebuild") is not None:  # a background build: installed once it is done
            if not self._rebuild.thread.is_alive():
                self._install_rebuilt()
            return
        cfg = self.config.index
        self._check_dims()
        if self._index is None:
            if self.gallery_size() >= self._activation_size():
                self.rebuild_index()
        elif self._trained_on < cfg.train_size and len(self._index) >= _RETRAIN_GROWTH * self._trained_on:
            self.rebuild_index()

    def _activation_size(self) -> int:
        """Gallery size from which the index is built: ``index.min_gallery``, or, with a pager, as soon as the
        gallery exceeds ``max_gallery`` (identities beyond it are paged out and only the index proposes them
        again); never below the :data:`_MIN_TRAIN` prototypes training needs."""
        cfg = self.config
        size = cfg.index.min_gallery if self._pager is None else min(cfg.index.min_gallery, cfg.max_gallery + 1)
        return max(size, _MIN_TRAIN)

    def replace_prototypes(self, prototypes: dict[int, np.ndarray], background: bool = True) -> dict:
        """After an encoder change: the in-memory identities in ``prototypes`` (global id -> (D,) prototype in
        the new model's space) get theirs; for the others (paged out) the caller has already written them
        to the store, and the pager's cached copies are dropped; an index in force is then re-trained and
        re-filled from the new prototypes (its quantiser and codebooks were fit to the old model's space,
        and its codes are the old prototypes'). Identities not in ``prototypes`` keep theirs. ``background``:
        the new index is built on a thread (:meth:`_start_rebuild`: tens of seconds at 10^5 identities), else
        here. Returns {"in_memory": n, "paged_out": n (not in memory, with a pager), "index_rebuilt": bool}."""
        unit = {int(g): _unit(np.asarray(v, np.float32)) for g, v in prototypes.items()}
        hot = [g for g in unit if g in self._gallery]
        for g in hot:
            self._gallery[g].prototype = unit[g]
        cold = [g for g in unit if g not in self._gallery]
        if self._pager is not None:
            self._pager.forget(cold)
        if self._index is not None:
            if background:
                self._start_rebuild()
            else:
                self.rebuild_index()
        return {"in_memory": len(hot), "paged_out": len(cold) if self._pager is not None else 0,
                "index_rebuilt": self._index is not None}

    def _start_rebuild(self) -> None:
        """Gather every prototype now (the in-memory ones, then the pager's), then train and fill a new index
        on a thread (faiss releases the GIL). Until :meth:`_install_rebuilt` puts it in place, the old index
        is kept up to date as usual but not searched (:attr:`index_active` is False: candidates are the
        in-memory identities, exactly, as below ``index.min_gallery``); the identities changed or removed
        meanwhile are recorded and applied to the new index when it is installed."""
        parts = [p for p in self._prototype_parts() if len(p[0])]
        if sum(len(i) for i, _ in parts) < _MIN_TRAIN:
            return
        build = _Rebuild(parts)
        build.thread = threading.Thread(target=build.run, args=(self._trained,), name="gallery-index-rebuild",
                                        daemon=True)
        self._rebuild = build
        build.thread.start()

    def wait_index(self, timeout_s: float | None = None) -> bool:
        """Wait for a background index build to finish and install it; True when none is left running."""
        build = self.__dict__.get("_rebuild")
        if build is None:
            return True
        build.thread.join(timeout_s)
        if build.thread.is_alive():
            return False
        self._install_rebuilt()
        return True

    def _install_rebuilt(self) -> None:
        """Put the background build in place, with what changed while it was built; if it failed, build
        the index here instead."""
        build = self.__dict__.pop("_rebuild")
        if build.index is None:
            log.warning("background gallery index build failed (%s); rebuilding in the foreground", build.error)
            self.rebuild_index()
            return
        index = build.index
        live = sorted(g for g in build.changed if g in self._gallery)
        if live:
            index.upsert(np.array(live, dtype=np.int64), np.stack([self._gallery[g].prototype for g in live]))
        away = [g for g in build.changed if g not in self._gallery and g not in build.gone]
        if away and self._pager is not None:  # changed, then paged out (written back): the store's is current
            ids, vecs, _ = self._pager.prototypes(np.array(sorted(away), dtype=np.int64))
            index.upsert(ids, vecs)
        index.remove(build.gone)
        self._index = index
        self._trained_on = index.trained_on
        self.paging_stats["index_builds"] += 1

    def _prototype_parts(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every identity's current prototype as (ids (B,) int64, prototypes (B, D)) batches: the in-memory
        ones first (one batch, when there are any), then the pager's that are not in memory."""
        hot = {g: i.prototype for g, i in self._gallery.items()}
        if hot:
            yield np.fromiter(hot, dtype=np.int64, count=len(hot)), np.stack(list(hot.values()))
        for ids, vecs in (self._pager.iter_prototypes() if self._pager is not None else ()):
            keep = np.fromiter((int(g) not in hot for g in ids.tolist()), dtype=bool, count=len(ids))
            yield ids[keep], vecs[keep]

    def _remove_from_index(self, gids) -> None:
        """Identities leave the index (and a background build's, when it is installed)."""
        self._index.remove(gids)
        build = self.__dict__.get("_rebuild")
        if build is not None:
            build.gone.update(int(g) for g in gids)

    def rebuild_index(self) -> None:
        """(Re-)train the index on up to ``train_size`` prototypes (the in-memory ones first, then the
        pager's in id order) and add every identity; the new index replaces the old one when complete."""
        cfg = self.config.index
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        have = 0
        index = None
        for ids, vecs in self._prototype_parts():
            if index is not None:
                index.upsert(ids, vecs)
                continue
            parts.append((ids, vecs))
            have += len(ids)
            if have >= cfg.train_size:  # enough to train: the rest streams straight into the index
                index = self._trained(parts, self.gallery_size())
        if index is None:
            if have < _MIN_TRAIN:
                return
            index = self._trained(parts)
        if self._gallery:  # the in-memory prototypes are the current ones
            index.upsert(parts[0][0], parts[0][1])
        self._index = index
        self._trained_on = min(have, cfg.train_size)
        self._dirty.clear()
        self.paging_stats["index_builds"] += 1

    def _trained(self, parts: list[tuple[np.ndarray, np.ndarray]], gallery_size: int = 0) -> GalleryIndex:
        """A new index trained on (a random ``train_size`` sample of) ``parts``, which it then holds;
        ``gallery_size``: the identities it will hold when they are more than ``parts`` (sets ``nlist``)."""
        cfg = self.config.index
        sample = _training_sample([v for _, v in parts], cfg.train_size)
        total = max(sum(len(i) for i, _ in parts), int(gallery_size))
        index = GalleryIndex(sample.shape[1], cfg.nlist or default_nlist(total, len(sample)), cfg.pq_m,
                             cfg.nprobe, pca_dim=cfg.pca_dim)
        index.train(sample)
        for ids, vecs in parts:
            index.upsert(ids, vecs)
        return index

    # ------------------------------------------------------------------ candidates
    def _candidate_bound(self) -> float:
        """The largest distance any decision can link at: the loosest threshold in force."""
        window = self.__dict__.get("_last_window_threshold") if self.config.revise.enabled else None
        return max(self.threshold, self.config.reentry_threshold or 0.0, window or 0.0)

    def _candidates(self, items: list[TrackletEmbedding]) -> list[dict[int, float]] | None:
        """Per item: {global id: exact cosine distance} of the index's candidates (past ``ttl_s``
        dropped); None when the index is not in force (every in-memory identity is a candidate)."""
        if not self.index_active or not items:
            return None
        vecs = np.stack([_unit(it.vector) for it in items])
        found = self._index.search(vecs, self.config.index.candidates)  # (N, k) ids, -1 where none
        ids = np.unique(found[found >= 0])
        gallery = self._gallery
        in_hot = np.fromiter((g in gallery for g in ids.tolist()), dtype=bool, count=len(ids))
        hot = [gallery[g] for g in ids[in_hot].tolist()]
        # (T,) ids of the table's rows: the in-memory candidates (id order), then the pager's (as it returns them)
        table_ids, seen = ids[in_hot], np.fromiter(map(_LAST_SEEN, hot), dtype=np.float64, count=len(hot))
        rows = [g.prototype for g in hot]
        cold = ids[~in_hot]
        if len(cold) and self._pager is not None:
            cids, cvecs, cseen = self._pager.prototypes(cold)
            if len(cids):
                table_ids, seen = np.concatenate([table_ids, cids]), np.concatenate([seen, cseen])
                rows.extend(cvecs)
        if not rows:
            return [{} for _ in items]
        table = np.array(rows, dtype=np.float64)  # (T, D): every candidate's prototype once (one pass to float64)
        ttl = self.config.ttl_s
        alive = seen >= (self._clock - ttl if ttl is not None else -math.inf)
        order = np.argsort(table_ids, kind="stable")
        at = np.minimum(np.searchsorted(table_ids[order], found), len(order) - 1)
        pos = order[at]  # (N, k) table row of each found id (where it is there)
        use = (table_ids[pos] == found) & (found >= 0) & alive[pos]
        out = []
        for r in range(len(items)):
            keep = use[r]
            if not keep.any():
                out.append({})
                continue
            d = 1.0 - table[pos[r, keep]] @ vecs[r].astype(np.float64)
            out.append(dict(zip(found[r, keep].tolist(), d.tolist())))
        self.paging_stats["candidates"] += sum(len(c) for c in out)
        return out

    def _near_candidates(self, cands: list[dict[int, float]]) -> set[int]:
        """The candidates within the loosest threshold, paged in (those that exist)."""
        bound = self._candidate_bound()
        near = {g for c in cands for g, d in c.items() if d <= bound}
        self._page_in(near)
        return {g for g in near if g in self._gallery}

    def _near_identities(self, cands: list[dict[int, float]]) -> tuple[list[int], dict[int, GlobalIdentity]]:
        """The one-shot assignment's candidates: those within the loosest threshold that exist, as (ids: the
        in-memory ones in memory order, then the others in id order; {id: identity} of the others, read
        from the pager *without* paging them in, or {} when the hot set has room for them all: then they
        are paged in, as :meth:`_near_candidates` does).

        With a full hot set, the candidates not in memory are nearly always older than every identity in it,
        so paging them in would only page them out again at the end of the call. Instead the assignment
        reads them in place; those it attaches a tracklet to are paged in (:meth:`_admit_cold`) and the
        others wait for the end of the call (``_pending_cold``), where ``_age`` pages in those that are more
        recent than what it evicts: the same identities in memory as paging them all in and out."""
        bound = self._candidate_bound()
        near = {g for c in cands for g, d in c.items() if d <= bound}
        hot = self._gallery.in_memory_order(near)
        if self._pager is None or len(hot) == len(near):
            return hot, {}
        cold = [g for g in near if g not in self._gallery]
        if len(self._gallery) + len(cold) <= self.config.max_gallery:
            self._page_in(cold)
            return self._gallery.in_memory_order(near), {}
        views = self._normalised_views(self._pager.peek(cold, self.config.max_spans))
        self.paging_stats["read_in_place"] = self.paging_stats.get("read_in_place", 0) + len(views)
        return hot + sorted(views), views

    def _admit_cold(self, views: dict[int, GlobalIdentity]) -> None:
        """Page in identities read in place by :meth:`_near_identities` (handed over by the pager: the same
        objects while its LRU still holds them)."""
        for ident in self._pager.load(list(views), self.config.max_spans):
            self._admit(ident if ident is views.get(ident.global_id) else self._normalised(ident))

    # ------------------------------------------------------------------ paging
    def _page_in(self, gids) -> None:
        """Load identities that are not in memory from the pager (settled parts too)."""
        if self._pager is None:
            return
        cold = [g for g in gids if g not in self._gallery]
        if not cold:
            return
        for ident in self._pager.load(cold, self.config.max_spans):
            self._admit(self._normalised(ident))

    def _normalised_views(self, identities: list[GlobalIdentity]) -> dict[int, GlobalIdentity]:
        """{id: :meth:`_normalised` identity} of identities read in place. The unit-norm test is skipped for
        a prototype array that passed it before (the same object: the pager's LRU hands out the same arrays
        call after call, and prototypes are replaced, never written into), so the outcome is the test's."""
        passed = self.__dict__.get("_unit_passed")  # id -> weak reference to its prototype that passed the test
        if passed is None or len(passed) > _UNIT_PASSED_LIMIT:
            passed = self.__dict__["_unit_passed"] = {}
        out = {}
        for ident in identities:
            g, p = ident.global_id, ident.prototype
            known = passed.get(g)
            if known is not None and known() is p:
                _align_members(ident)
            else:
                self._normalised(ident)
                if ident.prototype is p:  # left as it was: it passed
                    passed[g] = weakref.ref(p)
            out[g] = ident
        return out

    @staticmethod
    def _normalised(ident: GlobalIdentity) -> GlobalIdentity:
        """A loaded identity with a unit prototype and ``members`` aligned with ``spans`` (in place). A
        prototype already of unit norm to float32 precision (the matcher's, written back or kept by the
        pager's LRU) is left as it is: dividing it by its norm again would change it by at most one ulp."""
        p = ident.prototype
        if not (p.dtype == np.float32 and p.ndim == 1 and abs(float(np.dot(p, p)) - 1.0) <= _UNIT_TOLERANCE):
            ident.prototype = _unit(p)
        _align_members(ident)
        return ident

    def _admit(self, ident: GlobalIdentity) -> None:
        """A loaded identity joins the in-memory gallery (paged in)."""
        self._gallery[ident.global_id] = ident
        if self.config.revise.enabled:  # the revision window's settled part (the one-shot matcher has none)
            self._settled[ident.global_id] = _copy_identity(ident)
        self.paging_stats["paged_in"] += 1

    def _page_in_tracks(self, items: list[TrackletEmbedding]) -> None:
        """The identities of continuing tracks that were paged out come back in."""
        if self._pager is None or self._index is None:
            return
        gids = {self._track_gid[k] for k in ((it.cam_id, int(it.track_id)) for it in items) if k in self._track_gid}
        self._page_in([g for g in gids if g not in self._gallery and g in self._index])

    def _evict_or_drop(self, old: list[int]) -> set[int]:
        """``old`` identities (least recently seen first) leave memory beyond ``max_gallery``. Paged out
        (written back, kept in the index and in the track map) when there is a pager and an index in force;
        else dropped. Returns the dropped ones (the caller forgets their tracks)."""
        if self._pager is not None and self._use_index and self._index is None:
            return set()  # stay in memory until the index is built (at most _MIN_TRAIN identities: _activation_size)
        if self._pager is None or self._index is None:
            if self._index is not None:
                self._remove_from_index(old)
            return set(old)
        pinned = {v[1] for v in self._window.values()}
        out = [g for g in old if g not in pinned]
        self._flush_index()  # their current prototypes are in the index before they leave memory
        self._pager.write_back([self._gallery[g] for g in out if g in self._modified])  # unchanged: already there
        self._pager.keep([self._gallery.pop(g) for g in out], self.config.max_spans)  # paged back in without SQLite
        for g in out:
            self._settled.pop(g, None)
            self._modified.discard(g)
        self.paging_stats["paged_out"] += len(out)
        return set()

    def _drop_expired(self, gids: set[int]) -> None:
        """Identities past ``ttl_s`` leave the index too."""
        if self._index is not None and gids:
            self._remove_from_index(gids)

    # ------------------------------------------------------------------ index upkeep
    def _mark(self, gid: int) -> None:
        if self._index is not None:
            self._dirty.add(int(gid))
            build = self.__dict__.get("_rebuild")
            if build is not None:
                build.changed.add(int(gid))
                build.gone.discard(int(gid))
            if self._pager is not None:
                self._modified.add(int(gid))

    def _flush_index(self) -> None:
        """Re-encode the identities created or changed since the last flush; forget the absorbed ones."""
        if self._index is None or not self._dirty:
            self._dirty.clear()
            return
        live = [g for g in self._dirty if g in self._gallery]
        gone = [g for g in self._dirty if g not in self._gallery]
        if live:
            self._index.upsert(np.array(live, dtype=np.int64), np.stack([self._gallery[g].prototype for g in live]))
        self._remove_from_index(gone)
        self._dirty.clear()

    def _settled_candidates(self, settled: dict[int, GlobalIdentity],
                            fresh: list[TrackletEmbedding]) -> dict[int, GlobalIdentity]:
        """The revision window's settled identities to re-solve against: all of them (exact), or with the
        index in force the candidates of every tentative tracklet within the bound, plus the identities the
        window's tracklets currently belong to. ``fresh``: window tracklets that are new or longer (their
        candidates are searched again; the others' are kept from earlier calls)."""
        if not self.index_active:
            return settled
        self._refresh_window_candidates(fresh)
        want = {g for k in self._window for g in self._window_near(k)}
        want |= {v[1] for v in self._window.values() if v[1] is not None}
        return self._settled_in_memory(want)

    def _refresh_window_candidates(self, fresh: list[TrackletEmbedding]) -> None:
        """With the index in force: search the candidates of the window's new or longer tracklets (and of
        any without candidates yet); forget those of tracklets that left the window."""
        if not self.index_active:
            return
        self._win_cand = {k: v for k, v in self._win_cand.items() if k in self._window}
        refresh = {(it.cam_id, int(it.track_id)): it for it in fresh}
        refresh.update({k: v[0] for k, v in self._window.items() if k not in self._win_cand and k not in refresh})
        keys = list(refresh)
        for key, cand in zip(keys, self._candidates(list(refresh.values())) or []):
            self._win_cand[key] = cand

    def _window_near(self, key: tuple[str, int]) -> set[int]:
        """With the index in force: the candidates of window tracklet ``key`` within the loosest threshold
        (only the ``revise.settled_candidates`` nearest of them when set; ties by id)."""
        bound = self._candidate_bound()
        near = [(d, g) for g, d in self._win_cand.get(key, {}).items() if d <= bound]
        top = self.config.revise.settled_candidates
        if top is not None and len(near) > top:
            near = sorted(near)[:top]
        return {g for _, g in near}

    def _settled_in_memory(self, want: set[int]) -> dict[int, GlobalIdentity]:
        """Page ``want`` in; their settled parts (id order) for those that exist."""
        self._page_in(want)
        return {g: self._settled[g] for g in sorted(want) if g in self._settled and g in self._gallery}


class _Rebuild:
    """A gallery index being built on a thread from prototypes gathered beforehand; ``changed`` / ``gone``:
    identities changed / removed since (applied when it is installed)."""

    def __init__(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.parts = parts
        self.changed: set[int] = set()
        self.gone: set[int] = set()
        self.index: GalleryIndex | None = None
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def run(self, trained) -> None:
        try:
            self.index = trained(self.parts)
        except BaseException as exc:  # noqa: BLE001 - reported and replaced by a foreground build
            self.error = exc
        finally:
            self.parts = []


def _training_sample(blocks: list[np.ndarray], size: int, seed: int = 0) -> np.ndarray:
    """(min(N, size), D) rows of the (N_i, D) ``blocks`` taken together: all of them in order when N <= size,
    else a seeded uniform sample without replacement, gathered block by block so the N rows are never copied
    into one array (at 10^6 1280-d prototypes that copy alone was 5 GB). The same rows, in the same order, as
    ``np.concatenate(blocks)[default_rng(seed).choice(N, size, replace=False)]``."""
    lens = np.array([len(b) for b in blocks], dtype=np.int64)
    n = int(lens.sum())
    if n <= size:
        return np.concatenate(blocks)
    pick = np.random.default_rng(seed).choice(n, size, replace=False)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    block = np.searchsorted(starts, pick, side="right") - 1
    out = np.empty((size, blocks[0].shape[1]), dtype=np.result_type(*blocks))
    for b in np.unique(block).tolist():
        rows = block == b
        out[rows] = blocks[b][pick[rows] - starts[b]]
    return out
