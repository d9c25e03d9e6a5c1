"""The matcher's gallery at scale (pipeline/matching/gallery_index.py, paging.py, pipeline/store/prototypes.py)
on REAL embeddings: 469 Market-1501 crops (the first 100 identities of bounding_box_train, up to 5 crops each)
embedded with the shipped default model once per module."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.types import GlobalIdentity, Tracklet, TrackletEmbedding
from pipeline.matching.config import AutoThresholdConfig, IndexConfig, MatcherConfig, ReviseConfig
from pipeline.matching.gallery_index import GalleryIndex
from pipeline.matching.matcher import CrossCameraMatcher
from pipeline.store import IdentityStore
from pipeline.store.prototypes import PrototypeTable

pytest.importorskip("faiss", reason="faiss-cpu is a dependency (pyproject.toml); tools/setup.sh installs it")


@pytest.fixture(scope="module")
def market(shared: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1280) unit embeddings and (N,) person ids: up to 5 crops of each of the first 100 identities (N = 469)."""
    import cv2

    from reid_models.encoder import AppearanceEncoder

    src = shared / "data" / "reid" / "Market-1501" / "bounding_box_train"
    files = sorted(src.glob("*.jpg"))
    if not files:
        pytest.fail(f"{src}: no Market-1501 crops; see ../shared/data/README.md", pytrace=False)
    by_pid: dict[int, list[Path]] = {}
    for f in files:
        by_pid.setdefault(int(f.name.split("_")[0]), []).append(f)
    pick = [(pid, f) for pid in sorted(by_pid)[:100] for f in by_pid[pid][:5]]
    enc = AppearanceEncoder.from_checkpoint(device="cpu")
    emb = enc.embed_crops([cv2.imread(str(f)) for _, f in pick])
    return emb.astype(np.float32), np.array([pid for pid, _ in pick])


def _index(gallery: np.ndarray, nlist: int = 8, pq_m: int = 64, nprobe: int = 4,
           pca_dim: int | None = None) -> GalleryIndex:
    idx = GalleryIndex(gallery.shape[1], nlist, pq_m, nprobe, pca_dim=pca_dim)
    idx.train(gallery)
    idx.upsert(np.arange(1, len(gallery) + 1), gallery)
    return idx


def test_index_candidates_hold_the_exact_nearest(market) -> None:
    """Recall of the exact nearest prototype among the index's 32 candidates, measured against brute
    force: 300 crops are the gallery, the other 100 the queries."""
    emb, _ = market
    gallery, queries = emb[:300], emb[300:]
    idx = _index(gallery)
    exact = np.argmax(queries @ gallery.T, axis=1) + 1
    found = idx.search(queries, 32)
    recall32 = float(np.mean([e in row for e, row in zip(exact, found)]))
    recall1 = float(np.mean(found[:, 0] == exact))
    assert recall32 >= 0.95, recall32  # measured 0.987 (nprobe 4 of 8 cells, PQ64)
    assert recall1 >= 0.6, recall1  # PQ-ranked top-1 alone is coarser: hence the exact re-rank
    # a one-byte code visiting one cell does not hold the nearest: the test can fail
    poor = _index(gallery, nlist=16, pq_m=1, nprobe=1).search(queries, 2)
    assert np.mean([e in row for e, row in zip(exact, poor)]) < recall32


def test_pca_before_the_index_keeps_the_exact_nearest(market) -> None:
    """``pca_dim``: prototypes reduced by a PCA fitted at training (here 1280 -> 128 on 300 crops), L2 on
    the reduced unit vectors; the candidates still hold the exact nearest (measured 0.97 of 100 queries)."""
    emb, _ = market
    gallery, queries = emb[:300], emb[300:]
    idx = _index(gallery, pq_m=16, pca_dim=128)
    assert idx.pca_dim == 128 and len(idx) == 300
    exact = np.argmax(queries @ gallery.T, axis=1) + 1
    recall32 = float(np.mean([e in row for e, row in zip(exact, idx.search(queries, 32))]))
    assert recall32 >= 0.95, recall32
    # too few components to tell people apart: the test can fail
    coarse = _index(gallery, pq_m=1, nprobe=1, pca_dim=2).search(queries, 2)
    assert np.mean([e in row for e, row in zip(exact, coarse)]) < recall32
    with pytest.raises(ValueError, match="pca_dim"):
        GalleryIndex(1280, 8, 64, pca_dim=100)  # 64 does not divide 100


@pytest.mark.parametrize("pca_dim", [None, 128])
def test_upsert_replaces_and_remove_forgets(market, tmp_path: Path, pca_dim: int | None) -> None:
    emb, _ = market
    _index(emb[:300], pq_m=16 if pca_dim else 64, pca_dim=pca_dim).save(tmp_path / "g.faiss")
    idx = GalleryIndex.load(tmp_path / "g.faiss", nprobe=4)  # a saved index keeps its ids and removal by id
    assert idx.pca_dim == pca_dim
    assert len(idx) == 300 and 5 in idx
    idx.upsert([5], emb[[350]])  # identity 5's prototype moved to crop 350
    assert len(idx) == 300
    assert 5 in idx.search(emb[[350]], 8)[0]
    idx.remove([5, 999])
    assert len(idx) == 299 and 5 not in idx
    assert 5 not in idx.search(emb[[350]], 64)[0]


def _identities(emb: np.ndarray, cam: str = "c1") -> list[GlobalIdentity]:
    """Identity g = crop g-1, seen in ``cam`` during [g, g + 1] s."""
    return [GlobalIdentity(g, emb[g - 1], [(cam, -g)], g + 1.0, cam, [(cam, float(g), g + 1.0)])
            for g in range(1, len(emb) + 1)]


def _config(kind: str, revise: bool, min_gallery: int = 0, **kw) -> MatcherConfig:
    return MatcherConfig(auto_threshold=AutoThresholdConfig(warmup="threshold"), threshold=0.25, ttl_s=None,
                         revise=ReviseConfig(enabled=revise),
                         index=IndexConfig(kind=kind, min_gallery=min_gallery, nlist=8, nprobe=4), **kw)


@pytest.mark.parametrize("revise", [False, True])
def test_constraints_stay_exact_with_the_index(market, revise: bool) -> None:
    """A query crop whose nearest identity coexists with it (same camera, same time) must not join it:
    with the index on, the forbidden nearest is a candidate and the constraint still rejects it; the
    result equals the exact matcher's."""
    emb, pid = market
    gallery = _identities(emb[:300])
    q = 300  # crop 300 (a person whose other crops are in the gallery)
    nearest = int(np.argmax(emb[:300] @ emb[q])) + 1
    start = float(nearest)  # overlaps the nearest identity's span [nearest, nearest + 1] in c1
    item = TrackletEmbedding("c1", 10_000, start, start + 0.5, emb[q])
    out = {}
    for kind in ("exact", "faiss"):
        m = CrossCameraMatcher(_config(kind, revise), [GlobalIdentity(g.global_id, g.prototype.copy(), list(g.members),
                                                                      g.last_seen, g.last_cam, list(g.spans))
                                                       for g in gallery], next_id=301)
        out[kind] = m.match_detailed([item])[0]
        assert m.index_active == (kind == "faiss")
    assert out["faiss"].global_id != nearest
    # the same decision; the distance equal up to float rounding (a product over the candidates' columns
    # instead of the whole gallery's: BLAS may sum in another order, e.g. 0.14515791847561343 vs ...132)
    assert replace(out["faiss"], distance=None) == replace(out["exact"], distance=None)
    assert out["faiss"].distance == pytest.approx(out["exact"].distance, abs=1e-12)
    # the same crop from another, non-overlapping camera much later is free to join its nearest
    later = TrackletEmbedding("c2", 10_001, 1e4, 1e4 + 1, emb[q])
    m = CrossCameraMatcher(_config("faiss", revise), _identities(emb[:300]), next_id=301)
    dist = 1.0 - float(emb[nearest - 1] @ emb[q])
    assert m.match([later])[0] == (nearest if dist <= 0.25 else 301)


def test_below_min_gallery_the_matcher_is_the_exact_one(market) -> None:
    """index faiss with min_gallery above the gallery: no index, the same ids, distances and calibration as
    ``index: exact`` on a stream of real crops in 3 cameras."""
    emb, _ = market
    items = [TrackletEmbedding(f"c{k % 3}", k, 2.0 * k, 2.0 * k + 3.0, emb[k]) for k in range(len(emb))]
    res = {}
    for kind in ("exact", "faiss"):
        m = CrossCameraMatcher(_config(kind, True, min_gallery=10_000))
        res[kind] = ([m.match_detailed(items[k:k + 4]) for k in range(0, len(items), 4)], m.calibration)
        assert m.index is None or kind == "exact"
    assert res["faiss"] == res["exact"]


def _store_with(path: Path, emb: np.ndarray, cam: str = "c1") -> None:
    """Identity g = crop g-1 with one tracklet in ``cam`` during [g, g + 1] s (recorded like the runner does)."""
    with IdentityStore(path) as store:
        run = store.begin_run("fill")
        for g in range(1, len(emb) + 1):
            tr = Tracklet(cam, g, np.array([1, 2]), np.array([float(g), g + 1.0]), np.zeros((2, 4)),
                          np.zeros((0, emb.shape[1]), np.float32))
            ident = GlobalIdentity(g, emb[g - 1], [(cam, g)], g + 1.0, cam, [(cam, float(g), g + 1.0)])
            store.record_tracklet(run, tr, emb[g - 1], "v", ident)


def test_prototype_table_round_trip_cache_and_write_back(market, tmp_path: Path) -> None:
    emb, _ = market
    _store_with(tmp_path / "s.sqlite", emb[:10])
    with IdentityStore(tmp_path / "s.sqlite") as store:
        table = PrototypeTable(store, cache_size=2)
        assert table.count() == 10
        ids, vecs, seen = table.prototypes([3, 1, 42, 3])
        assert ids.tolist() == [3, 1] and seen.tolist() == [4.0, 2.0]
        np.testing.assert_array_equal(vecs, emb[[2, 0]])
        assert table.reads == 2
        table.prototypes([1])  # cached
        assert (table.reads, table.hits) == (2, 1)
        table.prototypes([5])  # cache holds 2: 3 (least recently used) leaves
        table.prototypes([3])
        assert table.reads == 4
        [ident] = table.load([7], max_spans=16)
        assert ident.spans == [("c1", 7.0, 8.0)] and ident.members == [("c1", 7)] and ident.last_cam == "c1"
        moved = GlobalIdentity(7, emb[20], [], 50.0, "c9", [])
        table.write_back([moved])
        np.testing.assert_array_equal(table.prototypes([7])[1][0], emb[20])
        fresh = PrototypeTable(store)
        [back] = fresh.load([7], 16)
        np.testing.assert_array_equal(back.prototype, emb[20])
        assert (back.last_seen, back.last_cam) == (50.0, "c9")
        got = np.concatenate([i for i, _ in fresh.iter_prototypes(batch=3)])
        assert got.tolist() == list(range(1, 11))


@pytest.mark.parametrize("revise", [False, True])
def test_paged_out_identities_are_matched_again(market, tmp_path: Path, revise: bool) -> None:
    """300 identities in the store, 20 in memory (max_gallery): the index proposes the paged-out ones, which
    come back in with their spans. The exact matcher with the same max_gallery cannot find them."""
    emb, pid = market
    # the first person's second crop is the query; the other 300 crops are identities 1..300 in the store
    q = 1
    rest = [k for k in range(301) if k != q]
    _store_with(tmp_path / "s.sqlite", emb[rest])
    nearest = int(np.argmax(emb[rest] @ emb[q])) + 1
    assert pid[rest[nearest - 1]] == pid[q] and nearest <= 100  # the same person, an old identity: paged out
    item = TrackletEmbedding("c2", 1, 1000.0, 1001.0, emb[q])
    got = {}
    for kind in ("exact", "faiss"):
        with IdentityStore(tmp_path / "s.sqlite") as store:
            pager = PrototypeTable(store)
            gallery = pager.load(range(281, 301), 16)  # the 20 most recently seen
            m = CrossCameraMatcher(_config(kind, revise, max_gallery=20), gallery, next_id=301,
                                   pager=pager if kind == "faiss" else None)
            got[kind] = m.match_detailed([item])[0]
            if kind == "faiss":
                assert m.index_active and len(m.index) == 300
                assert m.paging_stats["paged_in"] >= 1
                assert m.identity(nearest).spans[0] == ("c1", float(nearest), nearest + 1.0)
                # max_gallery + what this call paged in (paged out again from the next call on)
                assert len(m.gallery) <= 20 + m.config.index.candidates + 1
    dist = 1.0 - float(emb[nearest - 1] @ emb[q])
    assert dist <= 0.25  # a real re-identification within the threshold
    assert got["faiss"].global_id == nearest
    assert got["exact"].global_id != nearest  # out of memory: a new identity, or a wrong one in memory


def test_eviction_writes_back_and_pages_in_again(market, tmp_path: Path) -> None:
    """Beyond max_gallery the least recently seen identity leaves memory with its current prototype
    written to the store; a continuation of its track pages it back in."""
    emb, pid = market
    _store_with(tmp_path / "s.sqlite", emb[:300])
    # one crop each of ten people other than crop 350's (crops are grouped by person, so 300 + 6k could be
    # crop 350's own person, whom a good model rightly re-identifies instead of pushing out)
    others = [i for i in range(300, len(pid)) if pid[i] != pid[350] and pid[i] != pid[i - 1]][:10]
    assert len(others) == 10 and len({int(pid[i]) for i in others}) == 10
    with IdentityStore(tmp_path / "s.sqlite") as store:
        pager = PrototypeTable(store)
        m = CrossCameraMatcher(_config("faiss", False, max_gallery=5), pager.load(range(296, 301), 16),
                               next_id=301, pager=pager)
        first = m.match_detailed([TrackletEmbedding("c3", 1, 2000.0, 2001.0, emb[350])])[0]
        gid = first.global_id
        proto = m.identity(gid).prototype.copy()
        for k, i in enumerate(others):  # newer sightings of ten other people push it out
            m.match_detailed([TrackletEmbedding("c4", 10 + k, 3000.0 + k, 3000.5 + k, emb[i])])
        assert m.identity(gid) is None and m.paging_stats["paged_out"] >= 1
        np.testing.assert_allclose(PrototypeTable(store).prototypes([gid])[1][0], proto, atol=1e-6)
        again = m.match_detailed([TrackletEmbedding("c3", 1, 2000.0, 2002.0, emb[351])])[0]
        assert again.global_id == gid and again.continuation


def test_a_paging_matcher_pickles_without_store_and_index(market, tmp_path: Path) -> None:
    """The runner's resume checkpoint pickles the matcher: the pager (open store) and the faiss index stay
    out; the restored matcher rebuilds the index from memory, and re-attached to the store pages again."""
    import pickle

    emb, _ = market
    _store_with(tmp_path / "s.sqlite", emb[:300])
    with IdentityStore(tmp_path / "s.sqlite") as store:
        pager = PrototypeTable(store)
        m = CrossCameraMatcher(_config("faiss", False, max_gallery=20), pager.load(range(281, 301), 16),
                               next_id=301, pager=pager)
        first = m.match([TrackletEmbedding("c2", 1, 1000.0, 1001.0, emb[350])])
        back = pickle.loads(pickle.dumps(m))
        assert back.index is None and back.gallery_size() == len(back.gallery)
        back.attach_pager(pager)
        assert back.match([TrackletEmbedding("c2", 1, 1000.0, 1002.0, emb[351])]) == first  # a continuation
        assert back.index_active and len(back.index) == 300


def test_default_nlist_follows_the_gallery_not_the_training_sample() -> None:
    from pipeline.matching.gallery_index import default_nlist

    assert default_nlist(10_000) == 100  # sqrt(n)
    assert default_nlist(1_000_000, 65_536) == 1000  # sqrt(n), not sqrt(65,536) = 256
    assert default_nlist(100_000_000, 65_536) == 65_536 // 39  # capped by 39 training points per cell
    assert default_nlist(300) == 300 // 39  # small galleries: at most n / 39 (below the floor of 64)
    assert default_nlist(10**9) == 4096


def test_a_streamed_rebuild_sizes_nlist_by_the_whole_gallery() -> None:
    """The foreground rebuild trains on the first ``train_size`` prototypes and streams the rest in: the
    cells are sized for all 10,000 identities (sqrt: 100), not for the 6,144 read before training (78)."""

    class Pager:  # the two IdentityPager calls a rebuild makes, over 10,000 stored 64-d prototypes
        def __init__(self) -> None:
            self.vecs = np.random.default_rng(0).normal(size=(10_000, 64)).astype(np.float32)

        def count(self) -> int:
            return len(self.vecs)

        def iter_prototypes(self, batch: int = 2048):
            for lo in range(0, len(self.vecs), batch):
                yield np.arange(lo + 1, lo + 1 + len(self.vecs[lo:lo + batch]), dtype=np.int64), self.vecs[lo:lo + batch]

    cfg = MatcherConfig(ttl_s=None, revise=ReviseConfig(enabled=False),
                        index=IndexConfig(kind="faiss", min_gallery=0, pq_m=8, train_size=5000))
    m = CrossCameraMatcher(cfg, pager=Pager())
    m.rebuild_index()
    assert len(m._index) == 10_000
    assert m._index.nlist == 100


def test_training_sample_is_the_concatenated_sample_without_the_copy() -> None:
    from pipeline.matching.paging import _training_sample

    rng = np.random.default_rng(1)
    blocks = [rng.normal(size=(n, 3)).astype(np.float32) for n in (5, 0, 17, 1, 40)]
    whole = np.concatenate(blocks)
    for size in (1, 10, 62, 63, 100):
        want = whole if size >= len(whole) else whole[np.random.default_rng(0).choice(len(whole), size, replace=False)]
        assert np.array_equal(_training_sample(blocks, size), want)
