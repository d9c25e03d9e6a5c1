"""Nearest-identity search at scale: a compressed ANN index over the gallery's prototypes.

The matcher's exact search compares every tracklet with every in-memory prototype: (N, D) x (D, M)
products, fine for thousands of identities, not for millions. :class:`GalleryIndex` is a faiss
``IVF{nlist},PQ{m}`` index (inner product on L2-normalised prototypes = 1 - cosine distance) whose ids
are the global ids: ``m`` bytes per identity in RAM (64 by default, against 5,120 for a float32 1280-d
prototype) plus faiss's id bookkeeping. It only *proposes* candidates: the matcher re-ranks them
with their full-precision prototypes (in memory, or read from the store through an
:class:`IdentityPager`) and applies its thresholds and space-time constraints exactly, so the index can
cost recall (a true match not among the candidates) but never admit a forbidden pair.

Prototypes move with every matched tracklet (EMA), so the index is kept current with :meth:`upsert`
(remove + add; faiss's hash-table direct map makes removal by id O(1) per id). The coarse quantiser and
the PQ codebooks are trained once, on a random sample of the gallery (:meth:`train`); the identities
added later are encoded with them (prototypes of one encoder share one distribution).

faiss is imported when an index is built (optional dependency ``faiss-cpu``); :func:`faiss_available`
tells ``index.kind: auto`` whether it can be used.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

import numpy as np

from pipeline.core.types import GlobalIdentity

__all__ = ["GalleryIndex", "IdentityPager", "faiss_available", "default_nlist"]


class IdentityPager(Protocol):
    """Where identities that are not in the matcher's memory live (the identity store:
    :class:`pipeline.store.prototypes.PrototypeTable`)."""

    def count(self) -> int:
        """Identities in the backing store."""

    def prototypes(self, global_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids (K,) int64, prototypes (K, D) float32, last_seen (K,) float64) of the ``global_ids``
        that exist (any order)."""

    def load(self, global_ids: Iterable[int], max_spans: int) -> list[GlobalIdentity]:
        """Full identities (prototype, last sighting, last ``max_spans`` member spans) of those that exist."""

    def peek(self, global_ids: Iterable[int], max_spans: int) -> list[GlobalIdentity]:
        """:meth:`load` without handing them over: the pager keeps them (the caller only reads them)."""

    def write_back(self, identities: list[GlobalIdentity]) -> None:
        """Persist the prototypes and last sightings of identities leaving the matcher's memory."""

    def keep(self, identities: list[GlobalIdentity], max_spans: int) -> None:
        """Identities leaving the matcher's memory, as the store now holds them (a cache may keep them)."""

    def iter_prototypes(self, batch: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every stored identity as (ids (B,) int64, prototypes (B, D) float32) batches."""

    def forget(self, global_ids: Iterable[int]) -> None:
        """Drop cached copies of these identities (their stored rows were changed, e.g. a new encoder's prototypes)."""


def faiss_available() -> bool:
    """faiss-cpu is importable (``index.kind: auto`` uses it then)."""
    return importlib.util.find_spec("faiss") is not None


def default_nlist(n: int, sample: int | None = None) -> int:
    """IVF cells for a gallery of ``n`` identities trained on ``sample`` of them (default: all): about
    sqrt(n), within [64, 4096], and at most sample / 39 (faiss wants >= 39 training points per cell).
    The gallery's size, not the training sample's, sets it: at 10^6 identities trained on 65,536 that is
    1,000 cells, not 256 (each search then scans ~1/4 of the codes at the same ``nprobe``)."""
    sample = n if sample is None else min(int(sample), n)
    return int(max(1, min(4096, max(64, round(math.sqrt(max(n, 1)))), sample // 39 or 1)))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class GalleryIndex:
    """faiss IVF-PQ over L2-normalised prototypes keyed by global id.

    dim: embedding dimension D; nlist: IVF cells; pq_m: PQ sub-quantisers (bytes per identity; must
    divide D); nprobe: cells visited per search; threads: OpenMP threads of each faiss call (set for
    the call, restored after). One by default: the matcher's calls are small (a few queries, a few
    codes), and a multi-threaded faiss on a busy CPU spends its time waking threads (measured on the
    2-core bench machine: adding one code 9 ms with its default threads, 0.04 ms with one).
    """

    def __init__(self, dim: int, nlist: int, pq_m: int = 64, nprobe: int = 16, threads: int = 1,
                 pca_dim: int | None = None) -> None:
        import faiss

        coded = int(pca_dim) if pca_dim else int(dim)
        if pca_dim and not 0 < coded < dim:
            raise ValueError(f"index.pca_dim ({pca_dim}) must be between 1 and the embedding dimension ({dim}) - 1")
        if coded % pq_m:
            raise ValueError(f"index.pq_m ({pq_m}) must divide the "
                             + (f"index.pca_dim ({coded})" if pca_dim else f"embedding dimension ({dim})"))
        self.dim, self.nlist, self.pq_m = int(dim), int(nlist), int(pq_m)
        self.pca_dim = coded if pca_dim else None
        self._faiss = faiss
        if self.pca_dim:
            # PCA is fitted on centred data: inner products in the reduced space are biased by each code's
            # projection on the mean, L2 distances are not; on unit vectors L2 ranks as the inner product does
            self.index = faiss.index_factory(self.dim, f"PCA{self.pca_dim},IVF{self.nlist},PQ{self.pq_m}",
                                             faiss.METRIC_L2)
        else:
            self.index = faiss.index_factory(self.dim, f"IVF{self.nlist},PQ{self.pq_m}", faiss.METRIC_INNER_PRODUCT)
        self._ivf = faiss.downcast_index(faiss.extract_index_ivf(self.index))
        self._ivf.nprobe = int(nprobe)
        self.threads = int(threads)
        self.trained_on = 0
        self._present = np.zeros(1024, dtype=bool)  # global id -> in the index (ids are small dense ints)

    @contextmanager
    def _threads(self):
        before = self._faiss.omp_get_max_threads()
        self._faiss.omp_set_num_threads(self.threads)
        try:
            yield
        finally:
            self._faiss.omp_set_num_threads(before)

    # ------------------------------------------------------------------ build
    @property
    def trained(self) -> bool:
        return bool(self.index.is_trained)

    def train(self, sample: np.ndarray) -> None:
        """Train the coarse quantiser and the PQ codebooks on ``sample`` (S, D) prototypes
        (S >= nlist and >= 256; faiss warns below 39 * nlist)."""
        x = _unit_rows(sample)
        if len(x) < max(self.nlist, 256):
            raise ValueError(f"index training needs at least {max(self.nlist, 256)} prototypes, got {len(x)}")
        # small galleries train on fewer points than faiss's advice (39 per centroid): no warning for it
        faiss_ivf = self._ivf
        faiss_ivf.cp.min_points_per_centroid = 1
        faiss_ivf.pq.cp.min_points_per_centroid = 1
        faiss_ivf.cp.niter = 10  # coarse k-means: 10 iterations instead of 25 (a candidate proposer, re-ranked exactly)
        faiss_ivf.do_polysemous_training = False  # the factory's default; minutes of annealing, unused here
        with self._threads():
            self.index.train(x)
        self.trained_on = len(x)
        # removal by id in O(1): the ids -> (cell, offset) hash table
        self._ivf.set_direct_map_type(self._faiss.DirectMap.Hashtable)

    # ------------------------------------------------------------------ contents
    def __len__(self) -> int:
        return int(self.index.ntotal)

    def __contains__(self, global_id: int) -> bool:
        g = int(global_id)
        return 0 <= g < len(self._present) and bool(self._present[g])

    def _has(self, ids: np.ndarray) -> np.ndarray:
        inside = (ids >= 0) & (ids < len(self._present))
        out = np.zeros(len(ids), dtype=bool)
        out[inside] = self._present[ids[inside]]
        return out

    def _mark(self, ids: np.ndarray, value: bool) -> None:
        if len(ids) and int(ids.max()) >= len(self._present):
            grown = np.zeros(max(2 * len(self._present), int(ids.max()) + 1), dtype=bool)
            grown[:len(self._present)] = self._present
            self._present = grown
        self._present[ids] = value

    def upsert(self, global_ids: np.ndarray | list[int], prototypes: np.ndarray) -> None:
        """Add (K,) ids with their (K, D) prototypes, replacing the codes of ids already in the index."""
        ids = np.asarray(global_ids, dtype=np.int64).reshape(-1)
        if not len(ids):
            return
        if (ids < 0).any():
            raise ValueError("global ids must be >= 0")
        present = self._has(ids)
        with self._threads():
            if present.any():
                self.index.remove_ids(self._faiss.IDSelectorArray(np.ascontiguousarray(ids[present])))
            self.index.add_with_ids(_unit_rows(prototypes), ids)
        self._mark(ids, True)

    def remove(self, global_ids: Iterable[int]) -> None:
        """Forget these ids (absent ones are ignored)."""
        ids = np.unique(np.fromiter((int(g) for g in global_ids), dtype=np.int64))
        ids = ids[self._has(ids)]
        if len(ids):
            with self._threads():
                self.index.remove_ids(self._faiss.IDSelectorArray(ids))
            self._mark(ids, False)

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        """(N, k') int64 global ids of the approximate nearest prototypes of (N, D) ``queries``,
        nearest first (k' = min(k, len(self)); -1 where a row has fewer)."""
        k = min(int(k), len(self))
        if k <= 0 or not len(queries):
            return np.zeros((len(queries), 0), dtype=np.int64)
        with self._threads():
            _, ids = self.index.search(_unit_rows(queries), k)
        return ids

    def save(self, path) -> None:
        """Write the index to ``path`` (faiss's format) and its id flags to ``path`` + ``.ids.npy``."""
        with self._threads():
            self._faiss.write_index(self.index, str(path))
        np.save(f"{path}.ids.npy", np.flatnonzero(self._present).astype(np.int64))

    @classmethod
    def load(cls, path, nprobe: int = 16, threads: int = 1) -> GalleryIndex:
        """An index written by :meth:`save`."""
        import faiss

        raw = faiss.read_index(str(path))
        ivf = faiss.downcast_index(faiss.extract_index_ivf(raw))
        out = cls.__new__(cls)
        out._faiss, out.index, out._ivf, out.threads = faiss, raw, ivf, int(threads)
        out.dim, out.nlist, out.pq_m = int(raw.d), int(ivf.nlist), int(ivf.pq.M)
        out.pca_dim = int(ivf.d) if ivf.d != raw.d else None
        out._ivf.nprobe = int(nprobe)
        out.trained_on = int(raw.ntotal)
        out._present = np.zeros(1024, dtype=bool)
        out._mark(np.load(f"{path}.ids.npy"), True)
        return out

    def memory_bytes(self) -> int:
        """Approximate RAM of the index: per identity its PQ code, its id in the cell's list, faiss's
        id -> position hash map entry (~32 B) and the presence flag; plus the quantiser and codebooks."""
        n = len(self)
        coded = self.pca_dim or self.dim
        pca = self.dim * (coded + 1) * 4 if self.pca_dim else 0
        return int(n * (self.pq_m + 8 + 32) + len(self._present) + self.nlist * coded * 4 + coded * 256 * 4 + pca)
