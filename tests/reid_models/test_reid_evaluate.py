"""Query/gallery protocols of reid_models.evaluate on hand-made crop lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reid_models.datasets.index import CropItem
from reid_models.evaluate import EvalConfig, image_retrieval, mean_pool, query_gallery, tracklet_retrieval


def _items(rows):
    return [CropItem(Path(f"{i}.jpg"), pid, cam, "s", frame, "test") for i, (pid, cam, frame) in enumerate(rows)]


def test_time_protocol_queries_and_near_duplicate_mask():
    items = _items([(1, 0, f) for f in (1, 11, 21, 31, 41, 51)] + [(2, 0, 1), (2, 0, 100)])
    q, g, ignore, protocol = query_gallery(items, EvalConfig(segments=2, exclude_frames=15))
    assert protocol == "time"
    assert q.tolist() == [1, 4, 6, 7] and g.tolist() == [0, 2, 3, 5]
    assert ignore.tolist() == [[True, True, False, False],
                               [False, False, True, True],
                               [False] * 4, [False] * 4]


def test_camera_protocol_one_query_per_identity_and_camera():
    items = _items([(1, 0, 5), (1, 0, 6), (1, 0, 7), (1, 1, 50), (2, 1, 9)])
    q, g, ignore, protocol = query_gallery(items, EvalConfig())
    assert protocol == "camera" and ignore is None
    assert q.tolist() == [1, 3, 4] and g.tolist() == [0, 2]
    # query 1 (pid 1, cam 0): its gallery matches are cam 0 -> excluded; query 3 (cam 1) finds them
    feats = np.array([[0.0], [0.1], [0.2], [5.0], [9.0]])
    r = image_retrieval(items, feats, EvalConfig())
    assert r["num_queries"] == 1 and r["num_skipped"] == 2 and r["rank1"] == 100.0


def test_tracklet_retrieval_chunks_and_mean_pooling():
    # pid 1: one long run (frames 1..8) -> chunks [1..4], [5..8] adjacent -> ignored as near duplicates;
    # pid 1 again far later (frames 100..103); pid 2 (frames 1..4).
    tracklets = [
        {"pid": 1, "camid": 0, "frames": list(range(1, 9)), "paths": [Path(f"a{i}") for i in range(8)]},
        {"pid": 1, "camid": 0, "frames": list(range(100, 104)), "paths": [Path(f"b{i}") for i in range(4)]},
        {"pid": 2, "camid": 0, "frames": list(range(1, 5)), "paths": [Path(f"c{i}") for i in range(4)]},
    ]
    feat = {**{Path(f"a{i}"): np.array([1.0, 0.0]) for i in range(8)},
            **{Path(f"b{i}"): np.array([0.8, 0.6]) for i in range(4)},
            **{Path(f"c{i}"): np.array([0.0, 1.0]) for i in range(4)}}
    r = tracklet_retrieval(tracklets, feat, mean_pool, EvalConfig(chunk_len=4, exclude_frames=10))
    assert r["num_chunks"] == 4
    # queries a[0:4], a[4:8], b: nearest non-ignored = the other pid-1 run (0.8,0.6) vs pid 2 (0,1): rank 1
    assert r["num_queries"] == 3 and r["rank1"] == 100.0
    assert np.allclose(mean_pool(np.array([[3.0, 0.0], [0.0, 4.0]])), [0.6, 0.8])


def test_rerank_scores_queries_and_gallery_on_their_joint_k_reciprocal_distance():
    """``EvalConfig.rerank``: the (Q, G) block of reid_models.rerank's distance over queries + gallery together;
    the CMC of the Market rule and of the single-shot trials is computed from exactly that block."""
    from reid_models.evaluate import market_retrieval, retrieval_distances, single_shot_retrieval
    from reid_models.metrics import cmc_map_from_distances, pairwise_distances
    from reid_models.rerank import k_reciprocal_distance

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 8))
    rows = [(pid, cam, 10 * k + cam) for pid in range(6) for cam in (0, 1) for k in range(3)]
    items = _items(rows)
    feats = np.stack([centres[pid] + 0.9 * rng.normal(size=8) for pid, _, _ in rows])
    feats = (feats / np.linalg.norm(feats, axis=1, keepdims=True)).astype(np.float32)
    q, g = np.array([0, 3, 7]), np.array([1, 2, 4, 5, 6, 8, 9])
    cfg = EvalConfig(rerank=True, rerank_k1=3, rerank_k2=2, rerank_lambda=0.3)
    joint = k_reciprocal_distance(feats[np.r_[q, g]], 3, 2, 0.3)
    assert np.array_equal(retrieval_distances(feats, q, g, cfg), joint[:3, 3:].astype(np.float64))
    assert np.allclose(retrieval_distances(feats, q, g, EvalConfig()), pairwise_distances(feats[q], feats[g]))

    from reid_models.datasets.protocols import market_query_indices
    mq, mg = market_query_indices(items, 0)
    pids = np.array([r[0] for r in rows])
    cams = np.array([r[1] for r in rows])
    block = k_reciprocal_distance(feats[np.r_[mq, mg]], 3, 2, 0.3)[:len(mq), len(mq):]
    want = cmc_map_from_distances(block, pids[mq], pids[mg], cams[mq], cams[mg], 20)
    got = market_retrieval(items, feats, 0, cfg)
    assert (got["rank1"], got["mAP"]) == (want["rank1"], want["mAP"])
    plain = market_retrieval(items, feats, 0)
    assert plain["per_query"]["first_hit"] != got["per_query"]["first_hit"]  # re-ranking changed some ranking

    cuhk = [CropItem(Path(f"c{i}.jpg"), pid, cam, "", 0, "test") for i, (pid, cam, _) in enumerate(rows)]
    assert single_shot_retrieval(cuhk, feats, 2, 0, cfg)["num_queries"] == 6


def test_rerank_too_large_for_memory_is_refused_in_one_line():
    import pytest

    from pipeline.core.errors import ConfigError
    from reid_models.evaluate import retrieval_distances

    feats = np.eye(4, dtype=np.float32)
    cfg = EvalConfig(rerank=True, rerank_max_bytes=24 * 3 ** 2)  # room for 3 items, 4 asked
    with pytest.raises(ConfigError, match=r"^--rerank over 4 crops needs about 0\.0 GB"):
        retrieval_distances(feats, np.array([0, 1]), np.array([2, 3]), cfg)
    assert retrieval_distances(feats, np.array([0]), np.array([1, 2]), cfg).shape == (1, 2)
