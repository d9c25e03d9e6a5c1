"""Selection logic of the MOT-derived generator: hand-made rows and the real MOT17 gt (no frames needed)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from reid_models.datasets.selection import (
    SelectionConfig, balanced_pairs, sample_positive_pairs, sample_triplets, select_rows, split_identities,
    tracklet_runs,
)


def _rows(table):
    a = np.array(table, dtype=np.float64)
    return SimpleNamespace(frame=a[:, 0].astype(int), ids=a[:, 1].astype(int), tlwh=a[:, 2:6],
                           conf=a[:, 6], cls=a[:, 7].astype(int), vis=a[:, 8])


def test_select_rows_each_rule_on_hand_made_rows():
    rows = _rows([
        # frame id  x    y   w   h  conf cls vis
        [1, 1, 10, 10, 30, 80, 1, 1, 0.9],    # kept
        [1, 2, 10, 10, 30, 80, 0, 1, 0.9],    # conf 0 (ignore region)
        [1, 3, 10, 10, 30, 80, 1, 7, 0.9],    # static person (MOT17 class 7)
        [1, 4, 10, 10, 30, 80, 1, 1, 0.2],    # visibility below 0.25
        [1, 5, 10, 10, 30, 40, 1, 1, 0.9],    # too small (height 40 < 50)
        [1, 6, 10, 10, 30, 80, 1, -1, -1],    # MOT15: no class / visibility columns -> pedestrian
        [2, 1, 10, 10, 30, 80, 1, 1, 0.9],    # off the stride-2 grid (frames 1, 3, ...)
        [3, 1, 10, 530, 30, 80, 1, 1, 0.9],   # clipped by the 576-high image to height 46
        [3, 7, 10, 10, 30, 80, 1, 1, 0.25],   # visibility exactly at the limit -> kept
    ])
    cfg = SelectionConfig(min_vis=0.25, min_height=50, stride=2)
    mask = select_rows(rows, cfg, image_wh=(768, 576))
    assert mask.tolist() == [True, False, False, False, False, True, False, False, True]
    assert select_rows(rows, SelectionConfig(stride=1), None)[[6, 7]].tolist() == [True, True]


def test_positive_pairs_are_exactly_the_k_apart_pairs():
    pids = np.array([1, 1, 1, 1, 2, 2])
    frames = np.array([1, 2, 3, 15, 1, 5])  # id 2 has no pair >= 10 frames apart
    pairs = sample_positive_pairs(pids, frames, k=10, n=10, rng=np.random.default_rng(0))
    assert pairs == [(0, 3), (1, 3), (2, 3)]


def test_split_is_identity_disjoint_seeded_and_proportional():
    keys = [("A", i) for i in range(10)] + [("B", i) for i in range(9)]
    s = split_identities(keys, (0.5, 0.0, 0.5), seed=3)
    assert set(s) == set(keys) and set(s.values()) == {"train", "test"}
    assert sorted(list(s.values()).count(x) for x in ("train", "test")) == [9, 10]
    assert s == split_identities(list(reversed(keys)), (0.5, 0.0, 0.5), seed=3)
    assert s != split_identities(keys, (0.5, 0.0, 0.5), seed=4)
    s3 = split_identities(keys, (0.6, 0.2, 0.2), seed=0)
    assert [list(s3.values()).count(x) for x in ("train", "val", "test")] == [11, 4, 4]


def test_tracklet_runs_break_at_gaps():
    runs = tracklet_runs(np.array([5, 1, 2, 3, 9, 10, 11, 12, 20]), max_gap=1, min_len=2)
    assert [r.tolist() for r in runs] == [[1, 2, 3], [4, 5, 6, 7]]


@pytest.fixture(scope="module")
def mot17_02(mot17_train):
    from pipeline.mot import read_mot_file

    return read_mot_file(mot17_train / "MOT17-02-FRCNN" / "gt" / "gt.txt", "gt")


def test_mot17_selection_keeps_only_visible_large_pedestrians(mot17_02):
    gt = mot17_02
    cfg = SelectionConfig(min_vis=0.25, min_height=50)
    mask = select_rows(gt, cfg, image_wh=(1920, 1080))
    assert 0 < mask.sum() < len(gt)
    assert set(np.unique(gt.cls[mask])) == {1}
    assert (gt.conf[mask] != 0).all() and (gt.vis[mask] >= 0.25).all() and (gt.tlwh[mask, 3] >= 50).all()
    assert not mask[np.isin(gt.cls, [2, 7, 8, 12])].any()  # persons on vehicles, static persons, distractors, reflections
    good = (gt.cls == 1) & (gt.conf == 1) & (gt.vis >= 0.5) & (gt.tlwh[:, 3] >= 60) & (gt.tlwh[:, 0] >= 0) \
        & (gt.tlwh[:, 1] >= 0) & (gt.tlwh[:, 0] + gt.tlwh[:, 2] <= 1920) & (gt.tlwh[:, 1] + gt.tlwh[:, 3] <= 1080)
    assert mask[good].all()
    strided = select_rows(gt, SelectionConfig(stride=5), (1920, 1080))
    assert ((gt.frame[strided] - 1) % 5 == 0).all() and strided.sum() < mask.sum()


def test_mot17_pairs_triplets_balanced_k_apart_and_disjoint(mot17_02):
    gt = mot17_02
    mask = select_rows(gt, SelectionConfig(), (1920, 1080))
    ids, frames = gt.ids[mask], gt.frame[mask]
    split = split_identities(sorted(set(ids.tolist())), (0.5, 0.0, 0.5), seed=0)
    assert not {i for i, s in split.items() if s == "train"} & {i for i, s in split.items() if s == "test"}
    test = np.array([split[i] == "test" for i in ids])
    p, f = ids[test], frames[test]
    seqs = np.zeros(len(p), dtype=int)
    pairs = balanced_pairs(p, f, seqs, k=10, n=300, seed=0)
    pos = [(a, b) for a, b, s in pairs if s == 1]
    neg = [(a, b) for a, b, s in pairs if s == 0]
    assert len(pos) == len(neg) == 300 and len(set(pos)) == 300
    assert all(p[a] == p[b] and abs(f[a] - f[b]) >= 10 for a, b in pos)
    assert all(p[a] != p[b] for a, b in neg)
    trip = sample_triplets(p, f, seqs, k=10, n=200, seed=1)
    assert len(trip) == 200
    assert all(p[a] == p[q] and abs(f[a] - f[q]) >= 10 and p[a] != p[n] for a, q, n in trip)


def test_estimated_visibility_for_gt_without_visibility_column():
    from pipeline.core.types import estimate_visibility

    frame = np.array([1, 1, 1, 2])
    tlwh = np.array([[0, 0, 10, 20], [5, 10, 10, 20], [100, 0, 5, 5], [0, 0, 10, 20]], dtype=float)
    # box 0 is covered on its lower-right quarter by box 1, whose bottom (30) is nearer the camera
    assert estimate_visibility(frame, tlwh).tolist() == [0.75, 1.0, 1.0, 1.0]
    rows = _rows([[1, 1, 0, 0, 10, 60, 1, -1, -1], [1, 2, 0, 5, 10, 60, 1, -1, -1]])
    assert select_rows(rows, SelectionConfig(min_vis=0.25, min_height=50, min_width=5)).tolist() == [False, True]
    off = SelectionConfig(min_vis=0.25, min_height=50, min_width=5, estimate_vis=False)
    assert select_rows(rows, off).tolist() == [True, True]
