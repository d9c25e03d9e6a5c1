"""Folder-mode mining (issue 13) on hand-made Market-style name sets and hand-made embeddings.

Names carry camera, sequence and frame only; the identity field is arbitrary (never read).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.adaptation.data import set_cooccurrence, split_holdout
from pipeline.adaptation.folder import crop_sets, group_crops, link_threshold, parse_crop_name, same_frame_distances
from pipeline.core.errors import DataError
from pipeline.core.types import TrackletEmbedding
from reid_models.adaptation.mining import pair_negatives, presumed_positives, shared_key_cooccurrence


def crops_of(names: list[str]):
    return [parse_crop_name(Path("/data") / n) for n in names]


def unit(*v: float) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def test_name_parsing_ignores_the_identity_and_names_a_bad_file():
    c = parse_crop_name(Path("/x/0042_c3s2_001275_01.jpg"))
    assert (c.cam, c.seq, c.frame, c.key) == (3, 2, 1275, (3, 2, 1275))
    assert parse_crop_name(Path("/x/whoever_c1s1_000025_07.jpg")).key == (1, 1, 25)
    with pytest.raises(DataError, match=r"/x/0042_c3_001275\.jpg: file name is not"):
        parse_crop_name(Path("/x/0042_c3_001275.jpg"))


def test_shared_key_rule_is_exactly_shared_frames():
    rule = shared_key_cooccurrence([{(1, 1, 10)}, {(1, 1, 10), (1, 1, 35)}, {(1, 1, 35)}, {(2, 1, 10)}, set()])
    m = rule(range(5), range(5))
    want = np.zeros((5, 5), bool)
    want[0, 1] = want[1, 0] = want[1, 2] = want[2, 1] = True  # 0-1 share frame 10, 1-2 frame 35; camera 2 is another clock
    assert (m == want).all()
    assert rule([2], [0, 1]).tolist() == [[False, True]]


def test_grouping_links_close_crops_in_the_window_never_two_of_one_frame():
    names = ["a_c1s1_000100_01.jpg", "b_c1s1_000100_02.jpg", "a_c1s1_000125_01.jpg", "b_c1s1_000150_01.jpg",
             "a_c1s1_000400_01.jpg", "a_c1s2_000125_01.jpg", "a_c2s1_000125_01.jpg"]
    crops = crops_of(names)
    x, y = unit(1, 0, 0), unit(0, 1, 0)
    v = np.stack([x, unit(0.9, 0.1, 0), unit(1, 0.05, 0), y, x, x, x])  # crop 1 is close to x but shares frame 100
    # same-frame pairs: only (0, 1): distance 1 - cos(x, (0.9, 0.1)) -> the link threshold of any quantile
    d = same_frame_distances(crops, v)
    assert d.shape == (1,) and d[0] == pytest.approx(1 - 0.9 / np.hypot(0.9, 0.1))
    assert link_threshold(crops, v, 0.5) == pytest.approx(d[0])
    groups = group_crops(crops, v, window_frames=100, threshold=0.2)
    # 0 and 2 link (125 - 100 <= 100, distance ~0.001); 1 cannot join 0 (frame 100) and starts a group;
    # 3 (y) is far from both; 4 is 275 frames after 2 (window closed); 5 and 6 are other sequences / cameras
    assert sorted(map(sorted, groups)) == [[0, 2], [1], [3], [4], [5], [6]]
    assert group_crops(crops, v, window_frames=10, threshold=0.2) == [[0], [1], [2], [3], [4], [5], [6]]


def test_negatives_come_from_shared_frames_through_the_groups():
    names = ["p_c1s1_000100_01.jpg", "p_c1s1_000100_02.jpg", "p_c1s1_000125_01.jpg", "p_c1s1_000500_01.jpg",
             "p_c2s1_000100_01.jpg"]
    crops = crops_of(names)
    groups = [[0, 2], [1], [3], [4]]
    imgs = [np.zeros((4, 2, 3), np.uint8)] * len(crops)
    sets = crop_sets(crops, imgs, groups)
    assert [s.keys for s in sets][0] == frozenset({(1, 1, 100), (1, 1, 125)})
    rule = set_cooccurrence(sets, range(4))
    vecs = [unit(1, 0, 0), unit(0, 1, 0), unit(0, 0, 1), unit(1, 0.1, 0)]  # group 3 (camera 2) is closest to group 0
    items = [TrackletEmbedding(s.cam_id, s.track_id, s.start_time, s.end_time, v) for s, v in zip(sets, vecs)]
    pos = presumed_positives(items, alpha=1.0, cooccur=rule)
    # camera 2's one group vs camera 1's three: min(3, 1) = 1 pair; nothing excluded across cameras (no shared clock),
    # although c2s1 frame 100 has the number of c1s1 frame 100
    assert len(pos) == 1 and {pos[0].a, pos[0].b} == {3, 0}
    negs = pair_negatives(pos[0], items, max_negatives=10, cooccur=rule)
    assert negs == [1]  # group 1 shares frame 100 with group 0; group 2 (frame 500) is no evidence
    train, hold = split_holdout(sets, 0.5, seed=0, min_crops=1)
    assert sorted(hold) == [0, 1] and train == [2, 3]  # the only same-camera pair seen together


def test_presumed_positive_count_per_camera_pair_is_alpha_min():
    rng = np.random.default_rng(0)
    sizes = {"c1": 10, "c2": 20, "c3": 5}
    items, keys = [], []
    for cam, n in sizes.items():
        for i in range(n):
            items.append(TrackletEmbedding(cam, i, 0.0, 1.0, unit(*rng.normal(size=8))))
            keys.append({(cam, 1, i)})
    rule = shared_key_cooccurrence(keys)
    pos = presumed_positives(items, alpha=0.2, cooccur=rule)
    cams = lambda p: tuple(sorted((items[p.a].cam_id, items[p.b].cam_id)))  # noqa: E731
    counts = {}
    for p in pos:
        counts[cams(p)] = counts.get(cams(p), 0) + 1
    assert counts == {("c1", "c2"): 2, ("c1", "c3"): 1, ("c2", "c3"): 1}  # int(0.2 * min): 2, 1, 1
    # the same spans with the default time rule overlap: every cross-camera pair is excluded
    assert presumed_positives(items, alpha=0.2) == []
    # and they are the closest pairs of their camera pair
    c1 = [i for i, it in enumerate(items) if it.cam_id == "c1"]
    c2 = [i for i, it in enumerate(items) if it.cam_id == "c2"]
    d = np.array([[1 - items[i].vector @ items[j].vector for j in c2] for i in c1])
    best = sorted(d.ravel())[:2]
    got = sorted(p.distance for p in pos if cams(p) == ("c1", "c2"))
    assert got == pytest.approx(best)
