"""The identity layer's faster per-call paths compute what the plain rules compute.
Each faster path is checked against the plain rule it replaces: the per camera pair tables
against the per-pair checks, the flattened span arrays against ``coexists_spans``, the per-pair known-different
distances against every item x identity product, the blocked gallery distances against one product, the candidates' re-rank against the per-row dictionary
version, and a pre-loaded (warmed) pager against a cold one on a stream (same ids)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.types import GlobalIdentity, Tracklet, TrackletEmbedding
from pipeline.matching.config import IndexConfig, MatcherConfig, ReviseConfig, TopologyConfig, TransitLink
from pipeline.matching.gallery_index import GalleryIndex
from pipeline.matching.matcher import CrossCameraMatcher
from pipeline.matching.results import _copy_identity, _unit, prototype_distances
from pipeline.store import IdentityStore
from pipeline.store.prototypes import PrototypeTable

import paging_stream  # tests/pipeline/paging_stream.py (pytest puts this folder on the path)

pytest.importorskip("faiss", reason="faiss-cpu is a dependency (pyproject.toml); tools/setup.sh installs it")

DIM = 32
CAMS = [f"c{k}" for k in range(8)]


def _unit_rows(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _matcher(**kw) -> CrossCameraMatcher:
    """8 cameras on a ring (links 5 .. 60 s, c0 -> c4 one-way 1 .. 2 s), c6 and c7 overlapping views."""
    links = [TransitLink(a=CAMS[i], b=CAMS[(i + 1) % 8], min_s=5.0, max_s=60.0) for i in range(8)]
    links.append(TransitLink(a="c0", b="c4", min_s=1.0, max_s=2.0, bidirectional=False))
    topo = TopologyConfig(links=links, non_adjacent=kw.pop("non_adjacent", "penalize"), outside_window="forbid")
    return CrossCameraMatcher(MatcherConfig(topology=topo, overlapping_cameras=[["c6", "c7"]],
                                            revise=ReviseConfig(enabled=False), **kw))


def _identities(n: int, seed: int) -> list[GlobalIdentity]:
    rng = np.random.default_rng(seed)
    out = []
    for g in range(1, n + 1):
        spans = []
        for _ in range(int(rng.integers(1, 5))):
            s = float(rng.uniform(0, 200))
            spans.append((CAMS[int(rng.integers(0, 8))], s, s + float(rng.uniform(1, 20))))
        spans.sort(key=lambda sp: sp[2])
        out.append(GlobalIdentity(g, _unit_rows(1, 100 + g)[0], [("x", -1 - k) for k in range(len(spans))],
                                  spans[-1][2], spans[-1][0], spans))
    return out


def _items(n: int, seed: int) -> list[TrackletEmbedding]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        s = float(rng.uniform(0, 200))
        out.append(TrackletEmbedding(CAMS[int(rng.integers(0, 8))], k + 1, s, s + float(rng.uniform(1, 15)),
                                     _unit_rows(1, 500 + k)[0]))
    return out


@pytest.mark.parametrize("non_adjacent", ["penalize", "forbid"])
def test_camera_tables_equal_the_per_pair_rules(non_adjacent: str) -> None:
    """_views / _transits of any camera tuple (cameras appearing in any order, call after call) equal the
    per-pair _coexists view rule and _transit."""
    m = _matcher(non_adjacent=non_adjacent)
    rng = np.random.default_rng(0)
    for _ in range(30):
        cams = tuple(sorted(rng.choice(CAMS, size=int(rng.integers(1, 9)), replace=False).tolist()))
        want = np.array([[a == b or frozenset((a, b)) not in m._overlap for b in cams] for a in cams])
        np.testing.assert_array_equal(m._views(cams), want)
        k = 50
        c_from, c_to = rng.integers(0, len(cams), k), rng.integers(0, len(cams), k)
        gap = rng.uniform(0, 80, k)
        got = m._transits(cams, c_from, c_to, gap)
        ref = [m._transit(cams[a], cams[b], float(t)) for a, b, t in zip(c_from, c_to, gap)]
        np.testing.assert_array_equal(got, np.array(ref))


def test_known_different_pairs_equal_coexists_spans() -> None:
    """The flattened span arrays give the pairs coexists_spans gives, also after identities changed spans."""
    m = _matcher()
    idents = _identities(120, 1)
    for round_ in range(3):
        items = _items(12, 10 + round_)
        recent, hit = m._known_different_pairs(items, idents)
        since = min(it.start_time for it in items)
        want_recent = [g for g in idents if g.last_seen >= since]
        assert [g.global_id for g in recent] == [g.global_id for g in want_recent]
        want = np.zeros_like(hit)
        for c, g in enumerate(want_recent):
            if g.spans:
                want[:, c] = m.coexists_spans(items, g.spans).any(axis=1)
        np.testing.assert_array_equal(hit, want)
        assert hit.any()
        for g in idents[::3]:  # spans replaced (as _add_span does): the cache must follow
            g.spans = [(CAMS[(CAMS.index(sp[0]) + 1) % 8], sp[1] + 3.0, sp[2] + 3.0) for sp in g.spans]


def test_pair_distances_equal_the_full_products() -> None:
    """Only the hit pairs are computed: the values of every item x identity product (to float64 rounding)."""
    m = _matcher()
    idents, items = _identities(80, 2), _items(10, 3)
    hit = np.random.default_rng(4).random((len(items), len(idents))) < 0.3
    got = m._pair_distances(items, idents, hit)
    full = 1.0 - (np.stack([_unit(it.vector) for it in items]).astype(np.float64)
                  @ np.stack([g.prototype for g in idents]).astype(np.float64).T)
    rows, cols = np.nonzero(hit)
    np.testing.assert_allclose(got, full[rows, cols], rtol=0, atol=1e-12)
    assert len(m._pair_distances(items, idents, np.zeros_like(hit))) == 0


def _reference_candidates(m: CrossCameraMatcher, items: list[TrackletEmbedding]) -> list[dict[int, float]]:
    """The candidates' re-rank as it was before task P3 (per-row dictionaries)."""
    vecs = np.stack([_unit(it.vector) for it in items])
    found = m.index.search(vecs, m.config.index.candidates)
    ids = np.unique(found[found >= 0])
    hot = [g for g in ids.tolist() if g in m._gallery]
    cold = np.array([g for g in ids.tolist() if g not in m._gallery], dtype=np.int64)
    protos = {g: m._gallery[g].prototype for g in hot}
    seen = {g: m._gallery[g].last_seen for g in hot}
    if len(cold) and m._pager is not None:
        cids, cvecs, cseen = m._pager.prototypes(cold)
        for g, v, s in zip(cids.tolist(), cvecs, cseen.tolist()):
            protos[g], seen[g] = v, s
    horizon = m._clock - m.config.ttl_s if m.config.ttl_s is not None else -math.inf
    pos = {g: k for k, g in enumerate(protos)}
    table = np.stack(list(protos.values())).astype(np.float64)
    out = []
    for r in range(len(items)):
        row = [g for g in found[r].tolist() if g in protos and seen[g] >= horizon]
        d = 1.0 - table[[pos[g] for g in row]] @ vecs[r].astype(np.float64) if row else []
        out.append(dict(zip(row, list(d))))
    return out


@pytest.mark.parametrize("ttl", [None, 150.0])
def test_candidates_equal_the_per_row_version(tmp_path: Path, ttl: float | None) -> None:
    """_candidates (one table, vectorised row lookup) gives the ids, order and distances (bit for bit) of the
    per-row version, with identities in memory and in the pager, and identities past ttl_s dropped."""
    protos = _unit_rows(400, 5)
    with IdentityStore(tmp_path / "s.sqlite") as store:
        run = store.begin_run("fill")
        for g in range(1, 401):
            tr = Tracklet("c1", g, np.array([1, 2]), np.array([g / 2.0, g / 2.0 + 1]), np.zeros((2, 4)),
                          np.zeros((0, DIM), np.float32))
            store.record_tracklet(run, tr, protos[g - 1], "v",
                                  GlobalIdentity(g, protos[g - 1], [("c1", g)], g / 2.0 + 1, "c1",
                                                 [("c1", g / 2.0, g / 2.0 + 1)]))
        pager = PrototypeTable(store, cache_size=100)
        index = GalleryIndex(DIM, nlist=8, pq_m=8, nprobe=8)
        index.train(protos)
        index.upsert(np.arange(1, 401), protos)
        m = CrossCameraMatcher(MatcherConfig(ttl_s=ttl, max_gallery=50, revise=ReviseConfig(enabled=False),
                                             index=IndexConfig(kind="faiss", min_gallery=0, candidates=16)),
                               pager.load(range(351, 401), 16), next_id=401, pager=pager, index=index)
        m._clock = 201.0
        items = [TrackletEmbedding("c2", k + 1, 300.0, 302.0, protos[(37 * k) % 400] + 0.2 * _unit_rows(1, 900 + k)[0])
                 for k in range(24)]
        want = _reference_candidates(m, items)
        got = m._candidates(items)
        assert [list(c) for c in got] == [list(c) for c in want]
        assert [list(c.values()) for c in got] == [list(c.values()) for c in want]
        assert any(len(c) < 16 for c in got) == (ttl is not None)


def test_warmed_pager_gives_the_ids_of_a_cold_one(tmp_path: Path) -> None:
    """PrototypeTable.warm only changes where identities come from: a stream matched with a pre-loaded pager
    gets the ids it gets with a cold one (the store's rows, pager LRU of 60 for 300 identities), and the warmed
    pager reads fewer identities from SQLite."""

    centres = _unit_rows(300, 6)
    paging_stream.fill_store_and_index(tmp_path / "s.sqlite", tmp_path / "i.faiss", centres)
    shutil.copy(tmp_path / "s.sqlite", tmp_path / "w.sqlite")
    cfg = MatcherConfig(threshold=0.5, auto_threshold=None, ttl_s=None, max_gallery=20,
                        revise=ReviseConfig(enabled=False), index=IndexConfig(kind="faiss", min_gallery=0, candidates=8))
    people = [centres[p] if p < 300 else _unit_rows(1, 100 + p)[0] for p in range(330)]
    got: dict[str, list[int]] = {}
    reads = {}
    for kind, path in (("cold", "s.sqlite"), ("warm", "w.sqlite")):
        rng = np.random.default_rng(7)
        with IdentityStore(tmp_path / path) as store:
            pager = PrototypeTable(store, cache_size=60)
            hot = list(range(281, 301))
            m = CrossCameraMatcher(cfg, pager.load(hot, 16), next_id=301, pager=pager,
                                   index=GalleryIndex.load(tmp_path / "i.faiss"))
            if kind == "warm":
                assert pager.warm(16, skip=hot) == 60
            ids = paging_stream.run_stream(store, m, rng, people, kind)
            got[kind], reads[kind] = ids, pager.identity_reads + pager.reads
    assert got["warm"] == got["cold"]
    assert len(set(got["cold"])) < len(got["cold"]) and max(got["cold"]) > 300  # matches and new identities
    assert reads["warm"] < reads["cold"]


@pytest.mark.parametrize("m", [0, 1, 511, 512, 513, 1300])
def test_blocked_prototype_distances_equal_one_product(m):
    """The gallery distances computed a block of identities at a time equal the one (N, M) product:
    exactly up to one block, to float64 rounding beyond (BLAS may sum rows of another shape in another order)."""
    rng = np.random.default_rng(m)
    vecs = rng.standard_normal((7, 1280))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    protos = [_unit(rng.standard_normal(1280)) for _ in range(m)]
    got = prototype_distances(vecs, protos)
    want = 1.0 - vecs @ np.array(protos, dtype=np.float64).reshape(m, 1280).T
    assert got.shape == (7, m) and got.dtype == np.float64
    if m <= 512:
        assert np.array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_settled_copy_shares_a_read_only_prototype():
    """The live identity and its settled copy hold one prototype array; an in-place write to it fails
    instead of silently changing both, and an update (a new array) leaves the copy's as it was."""
    live = GlobalIdentity(3, _unit(np.arange(1.0, 9.0)), [("c0", 1)], 5.0, "c0", [("c0", 1.0, 5.0)])
    copy = _copy_identity(live)
    assert copy.prototype is live.prototype
    assert copy.members == live.members and copy.members is not live.members
    assert copy.spans is not live.spans
    with pytest.raises(ValueError):
        live.prototype[0] = 0.0
    before = copy.prototype.copy()
    live.prototype = _unit(np.ones(8))
    assert np.array_equal(copy.prototype, before)
