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
