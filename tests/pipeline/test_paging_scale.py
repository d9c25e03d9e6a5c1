"""The identity layer's per-call costs at scale (task P2, docs/gallery.md): the pager serves what it holds in
RAM without SQLite, and with the ANN index in force the known-different sampling of the threshold's
calibration looks at a bounded sample of the hot set. Small random unit vectors (64-d), so no encoder runs."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.types import GlobalIdentity, Tracklet, TrackletEmbedding
from pipeline.matching.config import AutoThresholdConfig, IndexConfig, MatcherConfig, ReviseConfig
from pipeline.matching.gallery_index import GalleryIndex
from pipeline.matching.matcher import _KNOWN_DIFFERENT_IDENTITIES, CrossCameraMatcher
from pipeline.store import IdentityStore
from pipeline.store.prototypes import PrototypeTable

import paging_stream  # tests/pipeline/paging_stream.py (pytest puts this folder on the path)

pytest.importorskip("faiss", reason="faiss-cpu is a dependency (pyproject.toml); tools/setup.sh installs it")

DIM = 64


def _unit_rows(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _store_with(path: Path, emb: np.ndarray) -> None:
    """Identity g = emb[g - 1] with one tracklet in camera c1 during [g, g + 1] s."""
    with IdentityStore(path) as store:
        run = store.begin_run("fill")
        for g in range(1, len(emb) + 1):
            tr = Tracklet("c1", g, np.array([1, 2]), np.array([float(g), g + 1.0]), np.zeros((2, 4)),
                          np.zeros((0, DIM), np.float32))
            store.record_tracklet(run, tr, emb[g - 1], "v",
                                  GlobalIdentity(g, emb[g - 1], [("c1", g)], g + 1.0, "c1", [("c1", float(g), g + 1.0)]))


def test_pager_reads_no_prototype_twice_and_serves_its_identity_lru(tmp_path: Path) -> None:
    """load() takes the prototypes the re-rank has just cached instead of reading their BLOBs again, and
    prototypes() serves identities the identity LRU holds whole (paged out by the matcher) without SQLite."""
    emb = _unit_rows(10, 0)
    _store_with(tmp_path / "s.sqlite", emb)
    with IdentityStore(tmp_path / "s.sqlite") as store:
        table = PrototypeTable(store, cache_size=2)
        statements: list[str] = []  # the SQL SQLite runs, with its parameters
        store.db.conn.set_trace_callback(statements.append)
        table.prototypes([1, 2])  # the re-rank reads (and caches) 1 and 2
        assert table.reads == 2
        statements.clear()
        loaded = {g.global_id: g for g in table.load([1, 2, 3], max_spans=16)}
        assert [s.split("WHERE")[1] for s in statements if "SELECT global_id, prototype" in s] == [" global_id IN (3)"]
        for g in (1, 2, 3):
            np.testing.assert_array_equal(loaded[g].prototype, emb[g - 1])
            assert loaded[g].spans == [("c1", float(g), g + 1.0)] and loaded[g].last_cam == "c1"
        loaded[3].prototype = emb[9]  # the matcher changed it, wrote it back, and let go of it
        table.write_back([loaded[3]])
        table.keep([loaded[3]], 16)
        table.prototypes([1])  # two other reads push 3 out of the prototype LRU (2 entries) ...
        table.prototypes([2])
        reads, hits = table.reads, table.hits  # ... but the identity LRU still holds it whole
        statements.clear()
        ids, vecs, seen = table.prototypes([3])
        assert ids.tolist() == [3] and seen.tolist() == [4.0]
        np.testing.assert_array_equal(vecs[0], emb[9])
        assert (table.reads, table.hits) == (reads, hits + 1) and not statements
        store.db.conn.set_trace_callback(None)


def _busy_matcher(n_hot: int, n_recent: int, auto: AutoThresholdConfig | None = None
                  ) -> tuple[CrossCameraMatcher, list[TrackletEmbedding], list[GlobalIdentity]]:
    """An index-backed matcher holding ``n_hot`` identities, ``n_recent`` of them seen in camera a during
    [100, 110] s; 4 tracklets in camera b during [100, 110] s: each recent identity is known to be another
    person than each tracklet (two cameras whose views do not overlap, at the same time)."""
    protos = _unit_rows(n_hot, 1)
    gallery = []
    for g in range(1, n_hot + 1):
        span = ("a", 100.0, 110.0) if g <= n_recent else ("a", 10.0, 20.0)
        gallery.append(GlobalIdentity(g, protos[g - 1], [("a", g)], span[2], "a", [span]))
    index = GalleryIndex(DIM, nlist=8, pq_m=8, nprobe=4)
    index.train(protos)
    index.upsert(np.arange(1, n_hot + 1), protos)
    cfg = MatcherConfig(ttl_s=None, max_gallery=10 * n_hot, revise=ReviseConfig(enabled=False),
                        index=IndexConfig(kind="faiss", min_gallery=0, candidates=32),
                        auto_threshold=auto or AutoThresholdConfig())
    m = CrossCameraMatcher(cfg, [GlobalIdentity(g.global_id, g.prototype.copy(), list(g.members), g.last_seen,
                                                g.last_cam, list(g.spans)) for g in gallery],
                           next_id=n_hot + 1, index=index)
    items = [TrackletEmbedding("b", k + 1, 100.0, 110.0, v) for k, v in enumerate(_unit_rows(4, 2))]
    return m, items, gallery


@pytest.mark.parametrize("n_recent", [600, 1500])
def test_known_different_sampling_is_bounded_and_only_true_pairs(n_recent: int) -> None:
    """With the index in force the calibration gets at most candidates x N known-different distances per
    call, every one a real known-different pair; a hot set with more recent identities than
    _KNOWN_DIFFERENT_IDENTITIES is sampled, and the running count still records every pair (4 x n_recent)."""
    m, items, gallery = _busy_matcher(2000, n_recent)
    assert m.index_active
    gallery = m.gallery  # as the matcher holds them (prototypes re-normalised)
    exact = m.known_different_distances(items, gallery)
    assert len(exact) == 4 * n_recent  # every recent identity against every tracklet
    m.match_detailed(items)
    fed = m.calibrator.negatives
    assert len(fed) == 32 * 4 and m.calibrator.added == 4 * n_recent
    assert np.isin(np.round(fed, 9), np.round(exact, 9)).all()
    assert len(np.unique(np.round(fed, 9))) == len(fed)  # distinct pairs (random vectors: distinct distances)
    if n_recent > _KNOWN_DIFFERENT_IDENTITIES:  # sampled: pairs of identities from all over the recent ones
        vecs = np.stack([it.vector for it in items]).astype(np.float64)
        dist = 1.0 - vecs @ np.stack([g.prototype for g in gallery[:n_recent]]).astype(np.float64).T  # (4, R)
        owners = [int(np.argmin(np.abs(dist - x)) % n_recent) + 1 for x in fed]
        assert max(owners) > _KNOWN_DIFFERENT_IDENTITIES and min(owners) < n_recent - _KNOWN_DIFFERENT_IDENTITIES


@pytest.mark.parametrize("interval", [1.0, 0.0])
def test_full_calibration_samples_one_call_per_interval(interval: float) -> None:
    """auto_threshold.sample_interval_s with the index in force: until the calibration holds max_negatives
    samples every call samples; then only a call whose tracklets end ``interval`` s (stream time) after the
    last sampled call's do (0: every call)."""
    m, items, _ = _busy_matcher(2000, 600, AutoThresholdConfig(max_negatives=100, sample_interval_s=interval))
    cal = m.calibrator

    def call(end: float, first_track: int) -> int:
        """Match 4 tracklets in camera b during [100, end] s; the known-different pairs the call recorded."""
        before = cal.added
        m.match_detailed([TrackletEmbedding("b", first_track + k, 100.0, end, it.vector)
                          for k, it in enumerate(items)])
        return cal.added - before

    assert call(110.0, 1) == 4 * 600 and len(cal) == 100  # 4 x 32 candidates offered: the buffer is full
    kept = cal.negatives
    got = [call(110.5, 11), call(110.99, 21), call(111.0, 31), call(111.5, 41), call(112.0, 51)]
    if interval:  # 110 was sampled, then 111.0 (>= 110 + 1) and 112.0; the others add nothing
        assert [g > 0 for g in got] == [False, False, True, False, True]
    else:
        assert all(g > 0 for g in got)
    assert not np.array_equal(cal.negatives, kept)  # the kept samples were renewed


@pytest.mark.parametrize(("top", "want"), [(None, 3), (3, 3), (2, "new")])
def test_window_settled_candidates_keeps_each_tracklets_nearest(top, want) -> None:
    """revise.settled_candidates (a scale option): a tentative tracklet brings only its ``top`` nearest settled
    identities into the re-solve. Identities 1 and 2 are the nearest to the tracklet but coexist with it (same
    camera, same time), 3 is the next: with all candidates (None) or 3 of them it joins 3; with 2 it has no
    admissible one and opens a new identity (what the option gives up for a bounded re-solve)."""
    q = _unit_rows(1, 3)[0]
    noise = _unit_rows(5, 4)
    near = [q + s * n for s, n in zip((0.3, 0.45, 0.6, 1.2, 1.4), noise)]
    protos = np.concatenate([np.stack(near), _unit_rows(300, 5)])
    protos = (protos / np.linalg.norm(protos, axis=1, keepdims=True)).astype(np.float32)
    gallery = []
    for g in range(1, len(protos) + 1):
        span = ("c1", 100.0, 110.0) if g <= 2 else ("c2", 10.0, 20.0)
        gallery.append(GlobalIdentity(g, protos[g - 1], [(span[0], 1000 + g)], span[2], span[0], [span]))
    index = GalleryIndex(DIM, nlist=8, pq_m=8, nprobe=8)
    index.train(protos)
    index.upsert(np.arange(1, len(protos) + 1), protos)
    cfg = MatcherConfig(threshold=0.3, auto_threshold=None, ttl_s=None,
                        revise=ReviseConfig(settled_candidates=top),
                        index=IndexConfig(kind="faiss", min_gallery=0, candidates=32))
    m = CrossCameraMatcher(cfg, gallery, next_id=len(protos) + 1, index=index)
    d = 1.0 - protos[:5] @ q
    assert (np.diff(d) > 0).all() and d[3] > 0.3 >= d[2]  # 1 < 2 < 3 within the threshold, 4 and 5 beyond
    [res] = m.match_detailed([TrackletEmbedding("c1", 1, 101.0, 109.0, q)])
    assert (res.is_new if want == "new" else res.global_id == want)


def test_paging_gives_the_ids_of_a_matcher_holding_everything(tmp_path: Path) -> None:
    """Paging is transparent: a matcher holding 20 identities in memory (the store pages the others in and out,
    and the assignment reads candidates in place, paging in only those it keeps) gives every tracklet of a
    stream the id that a matcher holding all of them gives (fixed threshold, the same index). 300 stored
    people (50 of them stored twice: candidates not taken); 160 tracklets of returning people, people seen in the
    stream and new people, in 4 cameras."""

    centres = _unit_rows(300, 6)
    centres[250:] = centres[:50] + 0.15 * _unit_rows(50, 8)  # 50 people stored twice: a candidate not taken
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    paging_stream.fill_store_and_index(tmp_path / "s.sqlite", tmp_path / "i.faiss", centres)
    cfg = dict(threshold=0.3, auto_threshold=None, ttl_s=None, revise=ReviseConfig(enabled=False))
    index_cfg = IndexConfig(kind="faiss", min_gallery=0, candidates=8)
    people = [centres[p] if p < 300 else _unit_rows(1, 100 + p)[0] for p in range(330)]
    got: dict[str, list[int]] = {}
    stats = {}
    for kind in ("everything", "paged"):  # the paged run records its tracklets: it goes second
        rng = np.random.default_rng(7)
        with IdentityStore(tmp_path / "s.sqlite") as store:
            pager = PrototypeTable(store, cache_size=30)
            if kind == "paged":
                m = CrossCameraMatcher(MatcherConfig(max_gallery=20, index=index_cfg, **cfg), pager.load(range(281, 301), 16),
                                       next_id=301, pager=pager, index=GalleryIndex.load(tmp_path / "i.faiss"))
            else:
                m = CrossCameraMatcher(MatcherConfig(max_gallery=100000, index=index_cfg, **cfg), pager.load(range(1, 301), 16),
                                       next_id=301, index=GalleryIndex.load(tmp_path / "i.faiss"))
            # the runner records every tracklet: paged-in identities get their spans
            ids = paging_stream.run_stream(store, m, rng, people, kind, recorded=kind == "paged")
            got[kind], stats[kind] = ids, dict(m.paging_stats)
    assert got["paged"] == got["everything"]
    assert len(set(got["paged"])) < len(got["paged"]) and max(got["paged"]) > 300  # matches and new identities
    s = stats["paged"]
    assert s["read_in_place"] > s["paged_in"] > 0 and s["paged_out"] > 0


def test_scale_profile_is_a_valid_matching_block() -> None:
    """configs/scale.example.yaml is a `matching:` block that validates in place of cams.example.yaml's."""
    import yaml

    from pipeline.camconfig import CamsConfig
    from pipeline.core.configio import validate

    root = Path(__file__).resolve().parents[2] / "configs"
    data = yaml.safe_load((root / "cams.example.yaml").read_text())
    scale = yaml.safe_load((root / "scale.example.yaml").read_text())
    assert set(scale) == {"matching"}
    data["matching"] = scale["matching"]
    cfg = validate(CamsConfig, data, "scale.example.yaml").matcher_config()
    assert not cfg.revise.enabled and cfg.index.kind == "faiss" and cfg.index.cache_size >= 100_000


@pytest.mark.parametrize("warm", [True, False])
def test_runner_fills_the_pager_cache_at_start(tmp_path: Path, warm: bool) -> None:
    """build_identity_parts (the runner's and the Ray matcher actor's start) loads the max_gallery most recent
    identities as the matcher's gallery and, with index.warm_cache, the rest of the store into the pager's
    identity LRU, most recent last; with warm_cache off the LRU starts empty."""
    pytest.importorskip("faiss")
    import yaml

    from pipeline.camconfig import CamsConfig
    from pipeline.core.configio import validate
    from pipeline.runner.components import build_identity_parts

    emb = _unit_rows(30, 3)
    _store_with(tmp_path / "s.sqlite", emb)
    data = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs" / "cams.example.yaml").read_text())
    data["matching"] = {"max_gallery": 10, "ttl_s": None,
                        "index": {"kind": "faiss", "cache_size": 15, "warm_cache": warm}}
    cfg = validate(CamsConfig, data, "test.yaml")
    with IdentityStore(tmp_path / "s.sqlite") as store:
        _, matcher = build_identity_parts(cfg, store, "v")
        assert sorted(g.global_id for g in matcher.gallery) == list(range(21, 31))
        lru = matcher._pager._idents
        # the cache holds 15 of the 20 identities beyond the hot set: the most recent ones (6..20)
        assert list(lru) == (list(range(6, 21)) if warm else [])
        for g in lru:
            np.testing.assert_array_equal(lru[g][0].prototype, emb[g - 1])


@pytest.mark.parametrize("refresh", [True, False])
def test_encoder_change_reaches_paged_out_identities_and_the_index(tmp_path: Path, refresh: bool) -> None:
    """A hot swap's prototype refresh (pipeline.adaptation.live.refresh_prototypes) with most identities paged
    out: 400 stored identities, 50 in memory, each with one tracklet embedded by "v" and by a new model "v2"
    (another space: a random rotation). After the refresh the store holds the v2 means, the index is
    re-trained on them, and a v2 tracklet of a paged-out identity finds it at distance ~0. Without the refresh
    (the state before this was fixed for paged-out identities) the index proposes it with its old prototype,
    which is ~1 away in the new space, so a new identity is opened."""
    from pipeline.adaptation.live import refresh_prototypes

    emb = _unit_rows(400, 0)
    rot, _ = np.linalg.qr(np.random.default_rng(9).standard_normal((DIM, DIM)))
    emb2 = (emb @ rot).astype(np.float32)
    _store_with(tmp_path / "s.sqlite", emb)
    with IdentityStore(tmp_path / "s.sqlite") as store:
        for t in store.tracklets(with_arrays=False):
            store.put_embedding(t.tracklet_id, "v2", emb2[t.global_id - 1])
        pager = PrototypeTable(store, cache_size=1000)
        cfg = MatcherConfig(threshold=0.2, auto_threshold=None, ttl_s=None, max_gallery=50,
                            revise=ReviseConfig(enabled=False),
                            index=IndexConfig(kind="faiss", min_gallery=0, candidates=16, nlist=8, pq_m=8, nprobe=8))
        m = CrossCameraMatcher(cfg, pager.load(range(351, 401), cfg.max_spans), next_id=401, pager=pager)
        m.match_detailed([TrackletEmbedding("c3", 1, 500.0, 501.0, emb[399])])  # builds the index (old space)
        assert m.index_active and m.paging_stats["index_builds"] == 1
        if refresh:
            gate = threading.Event()  # holds the background build until the call below has run
            real = m._trained
            m._trained = lambda parts: (gate.wait(60), real(parts))[1]
            assert refresh_prototypes(store, m, "v2") == {"in_memory": 50, "paged_out": 350, "index_rebuilt": True}
            assert not m.index_active  # being rebuilt: candidates are the in-memory identities (exact)
            [mid] = m.match_detailed([TrackletEmbedding("c4", 1, 900.0, 901.0, _unit_rows(1, 11)[0])])
            assert mid.is_new and mid.global_id == 401
            old_index = m.index  # kept up to date, not searched
            gate.set()
            assert m.wait_index(60) and m.index_active and m.paging_stats["index_builds"] == 2
            assert m.index is not old_index and 401 in m.index  # created during the build: added at install
            ids, vecs, _ = PrototypeTable(store).prototypes([7, 380])
            np.testing.assert_allclose(vecs[np.argsort(ids)], emb2[[6, 379]], atol=1e-6)
        [res] = m.match_detailed([TrackletEmbedding("c2", 1, 1000.0, 1001.0, emb2[6])])  # identity 7, paged out
        if refresh:
            assert res.global_id == 7 and res.distance < 1e-5
        else:
            assert res.is_new and res.global_id == 401
