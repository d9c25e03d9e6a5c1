"""The identity store's prototype table as the matcher's pager: identities that are not in memory.

With an ANN index in force (:mod:`pipeline.matching.gallery_index`) the matcher keeps only its
``max_gallery`` most recently seen identities in memory (its hot set, least recently seen evicted
first). Every other identity lives here, in the store's ``identities`` table (one float32 prototype
BLOB per identity, ``last_seen``, ``last_cam``) and its assignments (member spans), and is read back
when the index proposes it:

* :meth:`PrototypeTable.prototypes`: full-precision prototypes + last sighting for the exact
  re-rank of index candidates, through an LRU cache of ``cache_size`` prototypes (and the identity LRU);
* :meth:`PrototypeTable.peek`: whole identities (prototype + last ``max_spans`` member spans) of the
  candidates within the threshold, read in place by the one-shot assignment (they stay here);
* :meth:`PrototypeTable.load`: the same, handed over to the matcher, which pages them in;
* :meth:`PrototypeTable.keep`: identities leaving the matcher's memory join the identity LRU
  (``cache_size`` whole identities, by last access), so paging them back in reads no SQLite;
* :meth:`PrototypeTable.write_back`: an identity leaving the matcher's memory is written first
  (prototype, last sighting; upsert), so paging it back in returns what the matcher had;
* :meth:`PrototypeTable.iter_prototypes`: every prototype in id order, to build the index.

The member spans come from the assignments: a caller that pages identities out must have recorded
their tracklets (the runner does, in the same transaction as the identity).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from pipeline.core.types import GlobalIdentity
from pipeline.store.queries import VERSION_MATCH
from pipeline.store.records import blob_view, from_blob, to_blob

if TYPE_CHECKING:
    from pipeline.store.identity_store import IdentityStore

def _vector(blob: bytes) -> np.ndarray:
    """A prototype BLOB (numpy .npy bytes, :func:`~pipeline.store.records.to_blob`) as (D,) float32: a
    little-endian float32 vector is read in place (:func:`~pipeline.store.records.blob_view`, no copy);
    anything else through :func:`from_blob`."""
    view = blob_view(blob)
    if view is not None and view.dtype == np.dtype("<f4") and view.flags.c_contiguous:
        return view.reshape(-1)
    return from_blob(blob).astype(np.float32, copy=False).reshape(-1)


#: SQLite's default limit of host parameters is 32766; stay well below it per query
_CHUNK = 900


def _trimmed(ident: GlobalIdentity, max_spans: int) -> GlobalIdentity:
    """``ident`` with only its last ``max_spans`` members / spans (they are kept oldest first)."""
    k = len(ident.spans) - int(max_spans)
    if k > 0:
        ident.members, ident.spans = ident.members[k:], ident.spans[k:]
    return ident


class PrototypeTable:
    """Pager over ``store``'s identities (see the module docstring); ``cache_size``: prototypes kept in
    the LRU cache (5 KB each at 1280-d)."""

    def __init__(self, store: IdentityStore, cache_size: int = 20000, model_version: str | None = None) -> None:
        """``model_version``: page only identities whose prototype is of that model version (or of none
        recorded), as :meth:`~pipeline.store.IdentityStore.load_gallery` loads the gallery."""
        self.store = store
        self._cache: OrderedDict[int, tuple[np.ndarray, float]] = OrderedDict()
        # whole identities (with their spans, and the max_spans they were kept with), by last access
        self._idents: OrderedDict[int, tuple[GlobalIdentity, int]] = OrderedDict()
        # SQL condition (with a leading AND) and its parameters selecting the identities of that version
        self.use_model_version(model_version)
        self.cache_size = int(cache_size)
        self.reads = 0  # prototypes read from SQLite (cache misses)
        self.hits = 0
        self.identity_reads = 0  # identities (with spans) read from SQLite
        self.identity_hits = 0  # ... served by the identity LRU

    def use_model_version(self, model_version: str | None) -> None:
        """Page identities of ``model_version`` from now on (a hot swap re-tagged the store's prototypes);
        the caches, of the old version's prototypes, are dropped."""
        self.model_version = model_version
        self._ver, self._ver_p = ((f" AND {VERSION_MATCH}", [model_version]) if model_version is not None
                                  else ("", []))
        self._cache.clear()
        self._idents.clear()

    # ------------------------------------------------------------------ reads
    def count(self) -> int:
        """Identities in the store."""
        return int(self.store.db.query(f"SELECT COUNT(*) FROM identities WHERE 1{self._ver}", self._ver_p)[0][0])

    def prototypes(self, global_ids: np.ndarray | Iterable[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids (K,) int64, prototypes (K, D) float32, last_seen (K,) float64) of those ``global_ids``
        that exist, in the order asked (duplicates once)."""
        if isinstance(global_ids, np.ndarray) and global_ids.dtype.kind in "iu":
            want = list(dict.fromkeys(global_ids.reshape(-1).tolist()))  # Python ints already
        else:
            want = list(dict.fromkeys(int(g) for g in np.asarray(list(global_ids)).reshape(-1).tolist()))
        found: dict[int, tuple[np.ndarray, float]] = {}
        missing = []
        cache_get, idents_get, to_end = self._cache.get, self._idents.get, self._cache.move_to_end
        for g in want:
            hit = cache_get(g)
            if hit is not None:
                to_end(g)
                found[g] = hit
                continue
            whole = idents_get(g)  # an identity the LRU holds whole is what the store holds
            if whole is not None:
                found[g] = (whole[0].prototype, float(whole[0].last_seen))
            else:
                missing.append(g)
        self.hits += len(want) - len(missing)
        for s in range(0, len(missing), _CHUNK):
            part = missing[s:s + _CHUNK]
            rows = self.store.db.query(
                f"SELECT global_id, prototype, last_seen FROM identities WHERE global_id IN ({','.join('?' * len(part))})"
                f"{self._ver}", part + self._ver_p)
            for g, blob, ls in rows:
                entry = (_vector(blob), float(ls))
                found[int(g)] = entry
                self._remember(int(g), entry)
            self.reads += len(rows)
        ids = [g for g in want if g in found]
        if not ids:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32), np.zeros(0)
        return (np.array(ids, dtype=np.int64), np.stack([found[g][0] for g in ids]),
                np.array([found[g][1] for g in ids], dtype=np.float64))

    def load(self, global_ids: Iterable[int], max_spans: int) -> list[GlobalIdentity]:
        """Whole identities (prototype, last sighting, last ``max_spans`` member spans oldest first) of
        those ``global_ids`` that exist, in id order: from the identity LRU (what :meth:`keep` was given
        when they left the matcher's memory, or an earlier load) when it holds them, else from SQLite.
        The caller owns them (it may replace their fields; prototypes are replaced, never written into: the
        array may be the one the prototype cache holds)."""
        ids, out, missing = self._from_lru(global_ids, max_spans, hand_over=True)
        out.update(self._load_rows(missing, max_spans))
        return [out[g] for g in ids if g in out]

    def peek(self, global_ids: Iterable[int], max_spans: int) -> list[GlobalIdentity]:
        """:meth:`load` without handing them over: the identities (in id order) stay in the identity LRU, as
        its most recently used (those read from SQLite join it), for the caller to read without changing them.
        The matcher computes a batch's constraints on the candidates it may not keep this way; :meth:`load`
        then hands over the ones it pages in (the same objects while the LRU holds them)."""
        ids, out, missing = self._from_lru(global_ids, max_spans, hand_over=False)
        read = self._load_rows(missing, max_spans)
        self.keep([read[g] for g in sorted(read)], max_spans)
        out.update(read)
        return [out[g] for g in ids if g in out]

    def _from_lru(self, global_ids: Iterable[int], max_spans: int,
                  hand_over: bool) -> tuple[list[int], dict[int, GlobalIdentity], list[int]]:
        """(ids sorted, {id: identity} of those the identity LRU holds with at least ``max_spans`` spans, the
        other ids) for :meth:`load` (``hand_over``: the entries leave the LRU, trimmed to ``max_spans``) and
        :meth:`peek` (they stay, as the most recently used; one kept with more spans is given as a trimmed view,
        the entry intact). Counts the hits and the reads still to make."""
        ids = sorted({int(g) for g in global_ids})
        out: dict[int, GlobalIdentity] = {}
        missing = []
        idents = self._idents
        for g in ids:
            hit = idents.get(g)
            if hit is None or hit[1] < max_spans:
                missing.append(g)
            elif hand_over:
                del idents[g]  # handed over: the caller keeps it until it gives it back with keep()
                out[g] = _trimmed(hit[0], max_spans)
            else:
                idents.move_to_end(g)
                ident = hit[0]
                if len(ident.spans) > max_spans:
                    ident = GlobalIdentity(g, ident.prototype, ident.members[-max_spans:], ident.last_seen,
                                           ident.last_cam, ident.spans[-max_spans:])
                out[g] = ident
        self.identity_hits += len(ids) - len(missing)
        self.identity_reads += len(missing)
        return ids, out, missing

    def keep(self, identities: list[GlobalIdentity], max_spans: int) -> None:
        """Take ``identities`` into the identity LRU (the objects themselves: the caller lets go of them), as
        the store holds them with their last ``max_spans`` member spans: the matcher calls it for the
        identities it pages out (after :meth:`write_back` for those it changed), so paging them back in
        reads no SQLite. :meth:`load` hands an entry back out (and forgets it)."""
        if self.cache_size <= 0:
            return
        for ident in identities:
            g = int(ident.global_id)
            self._idents[g] = (_trimmed(ident, max_spans), int(max_spans))
            self._idents.move_to_end(g)
            self._cache.pop(g, None)  # prototypes() serves it from here: one copy in RAM
        while len(self._idents) > self.cache_size:
            self._idents.popitem(last=False)

    def warm(self, max_spans: int, skip: Iterable[int] = (), limit: int | None = None) -> int:
        """Pre-load the identity LRU at start: the ``min(limit, cache_size)`` most recently seen identities
        of the store that are not in ``skip`` (the matcher's hot set), whole (prototype, last sighting, last
        ``max_spans`` spans), read in chunks, the most recent ending as the most recently used. What a later
        read would have read from SQLite (the same rows), so the matcher's decisions do not change; only
        where the identities come from. Returns the identities loaded (~5.5 KB of RAM each at 1280-d)."""
        n = self.cache_size if limit is None else min(int(limit), self.cache_size)
        if n <= 0:
            return 0
        skip = {int(g) for g in skip}
        rows = self.store.db.query(f"SELECT global_id FROM identities WHERE 1{self._ver}"
                                   " ORDER BY last_seen DESC, global_id DESC LIMIT ?", self._ver_p + [n + len(skip)])
        ids = [int(r[0]) for r in rows if int(r[0]) not in skip][:n][::-1]  # oldest first
        for s in range(0, len(ids), _CHUNK):
            part = ids[s:s + _CHUNK]
            read = self._load_rows(sorted(part), max_spans)
            self.keep([read[g] for g in part if g in read], max_spans)
        return len(ids)

    def _load_rows(self, ids: list[int], max_spans: int) -> dict[int, GlobalIdentity]:
        """Identities ``ids`` (sorted) from SQLite: {id: identity} of those that exist."""
        out: dict[int, GlobalIdentity] = {}
        for s in range(0, len(ids), _CHUNK):
            part = ids[s:s + _CHUNK]
            marks = ",".join("?" * len(part))
            # prototypes the LRU cache holds (the matcher's re-rank has just read them) are not read again
            cached = {g: self._cache[g] for g in part if g in self._cache}
            for g, ls, lc in self.store.db.query(
                    f"SELECT global_id, last_seen, last_cam FROM identities WHERE global_id IN ({marks}){self._ver}",
                    part + self._ver_p):
                if int(g) in cached:
                    # shared with the cache: prototypes are replaced, never changed in place
                    out[int(g)] = GlobalIdentity(int(g), cached[int(g)][0], [], float(ls), lc, [])
            rest = [g for g in part if g not in cached]
            if rest:
                for g, blob, ls, lc in self.store.db.query(
                        "SELECT global_id, prototype, last_seen, last_cam FROM identities WHERE global_id IN"
                        f" ({','.join('?' * len(rest))}){self._ver}", rest + self._ver_p):
                    out[int(g)] = GlobalIdentity(int(g), _vector(blob), [], float(ls), lc, [])
            rows = self.store.db.query(
                "SELECT global_id, cam_id, track_id, start_time, end_time FROM ("
                " SELECT a.global_id, t.cam_id, t.track_id, t.start_time, t.end_time, ROW_NUMBER() OVER"
                " (PARTITION BY a.global_id ORDER BY t.end_time DESC) AS rn"
                f" FROM assignments a JOIN tracklets t USING (tracklet_id) WHERE a.global_id IN ({marks}))"
                " WHERE rn <= ? ORDER BY global_id, end_time", part + [int(max_spans)])
            for g, cam, track, start, end in rows:
                ident = out.get(int(g))
                if ident is not None:
                    ident.members.append((cam, int(track)))
                    ident.spans.append((cam, float(start), float(end)))
        return out

    def iter_prototypes(self, batch: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every identity as (ids (B,) int64, prototypes (B, D) float32) batches, in id order."""
        last = -1
        while True:
            rows = self.store.db.query(
                f"SELECT global_id, prototype FROM identities WHERE global_id > ?{self._ver} ORDER BY global_id LIMIT ?",
                [last, *self._ver_p, int(batch)])
            if not rows:
                return
            last = int(rows[-1][0])
            yield (np.array([int(r[0]) for r in rows], dtype=np.int64),
                   np.stack([_vector(r[1]) for r in rows]))

    # ------------------------------------------------------------------ writes
    def write_back(self, identities: list[GlobalIdentity]) -> None:
        """Upsert prototype and last sighting of identities leaving the matcher's memory (one transaction);
        the cache is refreshed with them."""
        if not identities:
            return
        rows = [(int(g.global_id), to_blob(np.asarray(g.prototype, np.float32)), float(g.last_seen), g.last_cam or "")
                for g in identities]
        with self.store.db.transaction() as c:
            c.executemany(
                "INSERT INTO identities (global_id, prototype, first_seen, last_seen, first_cam, last_cam)"
                " VALUES (?1, ?2, ?3, ?3, ?4, ?4) ON CONFLICT(global_id) DO UPDATE SET prototype=excluded.prototype,"
                " last_cam=CASE WHEN excluded.last_seen >= last_seen THEN excluded.last_cam ELSE last_cam END,"
                " last_seen=MAX(last_seen, excluded.last_seen)", rows)
        for g in identities:
            self._remember(int(g.global_id), (np.asarray(g.prototype, np.float32), float(g.last_seen)))

    def forget(self, global_ids: Iterable[int]) -> None:
        """Drop cached prototypes and identities (after the store's rows were changed by someone else)."""
        for g in global_ids:
            self._cache.pop(int(g), None)
            self._idents.pop(int(g), None)

    def _remember(self, gid: int, entry: tuple[np.ndarray, float]) -> None:
        if self.cache_size <= 0:
            return
        self._cache[gid] = entry
        self._cache.move_to_end(gid)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
