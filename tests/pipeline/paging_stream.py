"""A seeded stream of tracklet embeddings for the paging tests (tests/pipeline/test_paging_scale.py,
tests/pipeline/test_matcher_fast_paths.py): people drawn at random, each sighting its person's centre plus
noise, in 4 cameras, and the runner's recording of each matched batch (so paged-in identities get spans)."""

from __future__ import annotations

import numpy as np

from pipeline.core.types import Tracklet, TrackletEmbedding
from pipeline.matching.matcher import CrossCameraMatcher
from pipeline.store import IdentityStore
from pipeline.store.records import TrackletRecord


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    """(n, dim) float32 rows of unit norm, seeded."""
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def batch(rng: np.random.Generator, people: list[np.ndarray], b: int, size: int = 4) -> list[TrackletEmbedding]:
    """Batch ``b``: ``size`` tracklets of random people (index into ``people``: (D,) centres), each 2 s long,
    10 s between batches, in cameras c0..c3; sighting k of batch b is track ``size * b + k + 1``."""
    dim = len(people[0])
    items = []
    for k in range(size):
        p = int(rng.integers(0, len(people)))
        v = people[p] + 0.25 * unit_rows(1, dim, 1000 + size * b + k)[0]
        t = 1000.0 + 10.0 * b + 2.5 * k
        items.append(TrackletEmbedding(f"c{int(rng.integers(0, 4))}", size * b + k + 1, t, t + 2.0,
                                       (v / np.linalg.norm(v)).astype(np.float32)))
    return items


def record(store: IdentityStore, run: int, matcher: CrossCameraMatcher, items: list[TrackletEmbedding],
           results: list) -> None:
    """Store the batch's tracklets with their assigned identities, as the runner does."""
    dim = len(items[0].vector)
    with store.transaction():
        store.record_tracklets(run, [
            TrackletRecord(Tracklet(it.cam_id, it.track_id, np.array([0, 1]), np.array([it.start_time, it.end_time]),
                                    np.zeros((2, 4)), np.zeros((0, dim), np.float32)), it.vector, "v",
                           matcher.identity(r.global_id), r.distance) for it, r in zip(items, results)])


def run_stream(store: IdentityStore, matcher: CrossCameraMatcher, rng: np.random.Generator,
               people: list[np.ndarray], run_key: str, batches: int = 40, recorded: bool = True) -> list[int]:
    """Match ``batches`` seeded batches (:func:`batch`) in order; the global id of every tracklet, in order.
    ``recorded``: store each matched batch as the runner does (:func:`record`) in a new run ``run_key``."""
    run = store.begin_run(run_key)
    ids: list[int] = []
    for b in range(batches):
        items = batch(rng, people, b)
        res = matcher.match_detailed(items)
        ids += [r.global_id for r in res]
        if recorded:
            record(store, run, matcher, items, res)
    return ids


def fill_store_and_index(store_path, index_path, centres: np.ndarray) -> None:
    """Identity g (1-based) = ``centres[g - 1]`` ((N, D) unit rows) with one tracklet in camera c{g % 4} during
    [g, g + 1] s in a new store at ``store_path``; an IVF-PQ index (8 lists, 8 sub-quantizers, nprobe 8) over
    them saved at ``index_path``."""
    from pipeline.core.types import GlobalIdentity
    from pipeline.matching.gallery_index import GalleryIndex

    dim = centres.shape[1]
    with IdentityStore(store_path) as store:
        run = store.begin_run("fill")
        for g in range(1, len(centres) + 1):
            cam = f"c{g % 4}"
            tr = Tracklet(cam, g, np.array([1, 2]), np.array([float(g), g + 1.0]), np.zeros((2, 4)),
                          np.zeros((0, dim), np.float32))
            store.record_tracklet(run, tr, centres[g - 1], "v",
                                  GlobalIdentity(g, centres[g - 1], [(cam, g)], g + 1.0, cam, [(cam, float(g), g + 1.0)]))
    index = GalleryIndex(dim, nlist=8, pq_m=8, nprobe=8)
    index.train(centres)
    index.upsert(np.arange(1, len(centres) + 1), centres)
    index.save(index_path)
