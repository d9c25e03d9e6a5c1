"""k-reciprocal distance (reid_models.rerank), hand-computed, and its use by the presumed-positive miner."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.core.types import TrackletEmbedding
from reid_models.adaptation.mining import presumed_positives
from reid_models.rerank import k_reciprocal_distance


def unit(angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([math.cos(a), math.sin(a)], dtype=np.float32)


def test_two_tight_pairs_by_hand():
    # items 0, 1 at 0 and 10 deg; 2, 3 at 90 and 100 deg. k1 = 1, k2 = 1 (no query expansion):
    # R(i, 1) = {i, twin} (each is the other's nearest), the expansion R(c, 0) = {c} adds nothing
    x = np.stack([unit(0), unit(10), unit(90), unit(100)])
    d = k_reciprocal_distance(x, k1=1, k2=1)
    sq = lambda deg: 2 - 2 * math.cos(math.radians(deg))  # noqa: E731  squared distance of unit vectors
    colmax = sq(100)  # column 0: items 1, 2, 3 are 10, 90, 100 deg away
    colmax_1 = max(sq(10), sq(80), sq(90))  # column 1: items 0, 2, 3 are 10, 80, 90 deg away
    colmax_2 = max(sq(90), sq(80), sq(10))  # column 2: items 0, 1, 3
    # row 0's weights over {0, 1}: exp(-0), exp(-sq(10) / colmax_1), normalised; row 1's: exp(-sq(10) / colmax), 1
    e01, e10 = math.exp(-sq(10) / colmax_1), math.exp(-sq(10) / colmax)
    w0 = np.array([1, e01]) / (1 + e01)
    w1 = np.array([e10, 1]) / (1 + e10)
    shared = np.minimum(w0, w1).sum()
    assert d[0, 1] == pytest.approx(1 - shared / (2 - shared), abs=1e-6)
    assert d[0, 0] == pytest.approx(0, abs=1e-6)  # own set against itself: shared = 1 -> 1 - 1/1
    assert d[0, 2] == d[0, 3] == d[1, 2] == 1.0  # disjoint neighbourhoods: Jaccard distance 1
    # lambda 0.5 mixes in the column-normalised original distance
    mixed = k_reciprocal_distance(x, k1=1, k2=1, lambda_value=0.5)
    assert mixed[0, 2] == pytest.approx(0.5 * 1 + 0.5 * sq(90) / colmax_2, abs=1e-6)
    assert mixed[0, 1] == pytest.approx(0.5 * d[0, 1] + 0.5 * sq(10) / colmax_1, abs=1e-6)


def test_a_hub_loses_its_false_pairs():
    # two people seen in cameras A and B (A0 / B0 at 0 / 8 deg, A1 / B1 at 60 / 66 deg) and a crop H in camera B
    # at 32 deg, between them. Cross-camera cosine order: (A1, B1) 6 deg, (A0, B0) 8 deg, then (A1, H) 28 deg:
    # with three pairs to take, cosine mining pairs A1 with H
    items = [TrackletEmbedding("A", 0, 0, 1, unit(0)), TrackletEmbedding("A", 1, 0, 1, unit(60)),
             TrackletEmbedding("B", 0, 5, 6, unit(8)), TrackletEmbedding("B", 1, 5, 6, unit(66)),
             TrackletEmbedding("B", 2, 5, 6, unit(32))]
    cosine = presumed_positives(items, alpha=1.0, min_pairs_per_camera_pair=3)
    assert [(p.a, p.b) for p in cosine] == [(1, 3), (0, 2), (1, 4)]
    # k1 = 1: H's nearest is B0 (24 deg), whose nearest is A0 (8 deg), so H has no reciprocal neighbour and
    # its Jaccard distance to every other item is 1; the true pairs are each other's nearest, so below 1
    d = k_reciprocal_distance(np.stack([it.vector for it in items]), k1=1, k2=1)
    assert d[4, :4].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert d[0, 2] < 1 and d[1, 3] < 1
    rerank = presumed_positives(items, alpha=1.0, min_pairs_per_camera_pair=3, distance=d)
    assert {(p.a, p.b) for p in rerank[:2]} == {(0, 2), (1, 3)}  # the true pairs first ...
    assert rerank[2].distance == 1.0  # ... and the third pair only at the largest distance, like every other
    assert [p.distance for p in rerank[:2]] == sorted([float(d[0, 2]), float(d[1, 3])])


def test_small_and_empty_sets():
    assert k_reciprocal_distance(np.zeros((0, 4), np.float32)).shape == (0, 0)
    d = k_reciprocal_distance(np.stack([unit(0), unit(10), unit(50)]))  # k1 20 -> 2, k2 6 -> 3
    assert d.shape == (3, 3) and np.all(np.isfinite(d)) and np.all((d >= -1e-6) & (d <= 1 + 1e-6))


def test_the_round_mines_on_the_configured_distance():
    """``adapt.mining_distance: k_reciprocal`` reaches the worker's miner: the hub case above, as crop sets."""
    from pipeline.adaptation.data import CropSet
    from pipeline.adaptation.settings import AdaptSettings
    from pipeline.adaptation.worker import _mine

    spec = [("A", 0, 0), ("A", 1, 60), ("B", 0, 8), ("B", 1, 66), ("B", 2, 32)]
    sets = [CropSet(i, cam, tid, 0.0 if cam == "A" else 5.0, 1.0 if cam == "A" else 6.0, np.array([0]),
                    np.array([0.0]), [np.zeros((8, 4, 3), np.uint8)]) for i, (cam, tid, _) in enumerate(spec)]
    vectors = [unit(angle)[None, :] for _, _, angle in spec]  # one crop per set

    def mined(**kw):
        settings = AdaptSettings(alpha=1.0, **kw)
        pairs, _ = _mine(sets, list(range(5)), vectors, settings, non_overlapping=True)
        return [(p.a, p.b) for p in pairs]

    assert mined() == [(1, 3), (0, 2)]  # N_p = alpha * min(2, 3) = 2: cosine already right here
    cos3 = presumed_positives([TrackletEmbedding(s.cam_id, s.track_id, s.start_time, s.end_time, v[0])
                               for s, v in zip(sets, vectors)], alpha=1.0, min_pairs_per_camera_pair=3)
    assert (1, 4) in [(p.a, p.b) for p in cos3]
    d = k_reciprocal_distance(np.concatenate(vectors), k1=1, k2=1)
    got = mined(mining_distance="k_reciprocal", k1=1, k2=1)
    assert set(got) == {(0, 2), (1, 3)}
    assert got == sorted(got, key=lambda ab: d[ab])  # ranked by the k-reciprocal distance


def test_a_round_too_large_for_k_reciprocal_is_refused_in_one_line(monkeypatch):
    from pipeline.adaptation import worker
    from pipeline.adaptation.data import CropSet
    from pipeline.adaptation.settings import AdaptSettings
    from pipeline.core.errors import ConfigError
    from reid_models.rerank import k_reciprocal_bytes

    assert k_reciprocal_bytes(11_000) == 24 * 11_000 ** 2  # 2.9 GB: the Market train + test round measured
    sets = [CropSet(i, "AB"[i % 2], i, 0.0, 1.0, np.array([0]), np.array([0.0]), [np.zeros((8, 4, 3), np.uint8)])
            for i in range(4)]
    vectors = [unit(10 * i)[None, :] for i in range(4)]
    monkeypatch.setattr(worker, "K_RECIPROCAL_MAX_BYTES", k_reciprocal_bytes(3))
    with pytest.raises(ConfigError, match=r"adapt.mining_distance: k_reciprocal over 4 tracklets needs about"):
        worker._mine(sets, [0, 1, 2, 3], vectors, AdaptSettings(mining_distance="k_reciprocal"), non_overlapping=True)
    worker._mine(sets, [0, 1, 2, 3], vectors, AdaptSettings(), non_overlapping=True)  # cosine: no such limit
