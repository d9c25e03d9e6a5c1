"""Re-id metrics on tiny hand-computed examples (CMC/mAP, ROC per seed 000 Table 3, Eq. 5 accuracy)."""

from __future__ import annotations

import numpy as np
import pytest

from reid_models.metrics import (
    cmc_map, cmc_map_from_distances, paired_difference, pairwise_distances, roc_table, roc_verification,
    triplet_accuracy,
)

# 2 queries x 4 gallery. q0: pid 1 cam 0; q1: pid 2 cam 0. gallery pids 1,2,1,3 cams 0,1,1,1.
DIST = np.array([[0.1, 0.2, 0.5, 0.3],
                 [0.4, 0.1, 0.3, 0.2]])
QP, QC = np.array([1, 2]), np.array([0, 0])
GP, GC = np.array([1, 2, 1, 3]), np.array([0, 1, 1, 1])


def test_cmc_map_excludes_same_camera_same_identity():
    r = cmc_map_from_distances(DIST, QP, GP, QC, GC, max_rank=4)
    # q0: g0 (same id, same cam) removed -> order g1(2) g3(3) g2(1): first hit at rank 3, AP 1/3
    # q1: g1 (id 2, other camera) nearest -> rank 1, AP 1
    assert r["cmc"] == pytest.approx([50.0, 50.0, 100.0, 100.0])
    assert r["rank1"] == pytest.approx(50.0)
    assert r["mAP"] == pytest.approx(100.0 * (1 / 3 + 1) / 2)
    assert r["num_queries"] == 2 and r["num_skipped"] == 0


def test_cmc_map_without_cameras_and_with_ignore_mask():
    r = cmc_map_from_distances(DIST, QP, GP, max_rank=4)
    # q0: order g0(1) g1 g3 g2(1): hits at positions 1 and 4 -> AP (1/1 + 2/4)/2 = 0.75
    assert r["rank1"] == pytest.approx(100.0)
    assert r["mAP"] == pytest.approx(100.0 * (0.75 + 1.0) / 2)
    ignore = np.zeros((2, 4), bool)
    ignore[1, 1] = True  # q1's only true match hidden -> query skipped
    r2 = cmc_map_from_distances(DIST, QP, GP, max_rank=4, ignore=ignore)
    assert r2["num_queries"] == 1 and r2["num_skipped"] == 1
    assert r2["mAP"] == pytest.approx(75.0)


def test_per_query_first_hit_and_ap_list_the_valid_queries_in_order():
    r = cmc_map_from_distances(DIST, QP, GP, QC, GC, max_rank=4)
    # the two queries of the first test: first hits at rank 3 and 1 (0-based 2 and 0), APs 1/3 and 1
    assert r["per_query"]["pid"] == [1, 2]
    assert r["per_query"]["first_hit"] == [2, 0]
    assert r["per_query"]["ap"] == pytest.approx([100 / 3, 100.0])
    ignore = np.zeros((2, 4), bool)
    ignore[1, 1] = True  # q1 skipped: only q0 listed (no camera rule: first hit rank 1, AP 0.75)
    r2 = cmc_map_from_distances(DIST, QP, GP, max_rank=4, ignore=ignore)
    assert r2["per_query"] == {"pid": [1], "first_hit": [0], "ap": pytest.approx([75.0])}


def test_paired_difference_resamples_whole_identities():
    # identity 1: model a right on both queries, b wrong on both; identity 2: both right; identity 3: b better
    a = np.array([100.0, 100.0, 100.0, 0.0])
    b = np.array([0.0, 0.0, 100.0, 100.0])
    groups = np.array([1, 1, 2, 3])
    r = paired_difference(a, b, groups, n_boot=4000, seed=0)
    assert r["diff"] == pytest.approx((100 + 100 + 0 - 100) / 4)
    assert r["groups"] == 3 and r["queries"] == 4
    # a resample of identities gives (200 k1 - 100 k3) / (2 k1 + k2 + k3) for counts k of each identity:
    # the lowest value is -100 (identity 3 only), the highest 100 (identity 1 only)
    assert -100.0 <= r["lo"] < r["diff"] < r["hi"] <= 100.0
    # identical models: no difference and a zero-width interval
    same = paired_difference(a, a, groups, n_boot=100)
    assert same["diff"] == same["lo"] == same["hi"] == 0.0
    with pytest.raises(ValueError):
        paired_difference(a, b[:3], groups)


def test_cmc_map_from_features_uses_euclidean_distance():
    g = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
    q = np.array([[0.9, 0.0]])
    assert pairwise_distances(q, g) == pytest.approx(np.array([[0.9, np.hypot(2.1, 4.0), 0.1]]))
    r = cmc_map(q, np.array([7]), None, g, np.array([5, 7, 6]), None, max_rank=3)
    # order: g2 (pid 6), g0 (pid 5), g1 (pid 7) -> rank 3
    assert r["cmc"] == pytest.approx([0.0, 0.0, 100.0])
    assert r["mAP"] == pytest.approx(100.0 / 3)


D = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
SAME = np.array([1, 1, 0, 1, 0, 0])


def test_roc_points_auc_eer_and_tpr_at_fpr():
    r = roc_verification(D, SAME, max_fpr=0.1)
    assert r["tpr"] == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    assert r["fpr"] == pytest.approx([0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    assert r["thresholds"][1:] == pytest.approx(D.tolist())
    assert r["tp"] == [0, 1, 2, 2, 3, 3, 3] and r["tn"] == [3, 3, 3, 2, 2, 1, 0]
    assert r["auc"] == pytest.approx(8 / 9)  # = P(d_pos < d_neg) = 8 of 9 pos/neg pairs
    assert r["eer"] == pytest.approx(1 / 3)  # at th 0.3: FPR = FNR = 1/3
    assert r["tpr_at_fpr"] == pytest.approx(2 / 3) and r["threshold_at_fpr"] == pytest.approx(0.2)
    r2 = roc_verification(D, SAME, max_fpr=0.34)
    assert r2["tpr_at_fpr"] == pytest.approx(1.0) and r2["threshold_at_fpr"] == pytest.approx(0.4)


def test_roc_ties_form_one_point_and_needs_both_classes():
    r = roc_verification(np.array([0.5, 0.5]), np.array([1, 0]))
    assert r["tpr"] == [0.0, 1.0] and r["fpr"] == [0.0, 1.0] and r["auc"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        roc_verification(np.array([0.1, 0.2]), np.array([1, 1]))


def test_roc_table_rows_like_seed_table_3():
    rows = roc_table(D, SAME, np.array([0.0, 0.35, 1.0]))
    assert rows[0] == {"th": 0.0, "TN": 3, "FN": 3, "TP": 0, "FP": 0, "TPR": 0.0, "FPR": 0.0}
    assert (rows[1]["TP"], rows[1]["FP"], rows[1]["TN"], rows[1]["FN"]) == (2, 1, 2, 1)
    assert rows[2]["TPR"] == 1.0 and rows[2]["FPR"] == 1.0


def test_triplet_accuracy_eq5_with_margin():
    d_ap = np.array([0.1, 0.5, 0.3])
    d_an = np.array([0.2, 0.4, 0.3])
    assert triplet_accuracy(d_ap, d_an) == pytest.approx(2 / 3)  # 0.3 + 0 <= 0.3 counts
    assert triplet_accuracy(d_ap, d_an, margin=0.05) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        triplet_accuracy(d_ap, d_an[:2])
