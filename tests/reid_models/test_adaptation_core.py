"""Hand-computed checks of the seed-002 adaptation core: mining, modified batch-hard, guardrails."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.core.types import TrackletEmbedding
from reid_models.adaptation.holdout import (
    HalfTracklet,
    continuity_auc,
    continuity_pairs,
    decide_deploy,
    verification_auc,
)
from reid_models.adaptation.loss import modified_batch_hard
from reid_models.adaptation.mining import (
    negatives_for,
    pair_negatives,
    presumed_positives,
    tracklet_positives,
    true_positive_fraction,
)


def unit(angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([math.cos(a), math.sin(a)], dtype=np.float32)


def te(cam: str, tid: int, t0: float, t1: float, angle: float) -> TrackletEmbedding:
    return TrackletEmbedding(cam, tid, t0, t1, unit(angle))


def test_modified_batch_hard_hinge_and_soft_exact():
    # anchors 0 and 1 (k=2), negatives 3 and -1, 1-D embeddings
    emb = torch.tensor([[0.0], [1.0], [3.0], [-1.0]])
    # anchor 0: hardest pos 1, hardest neg min(3, 1) = 1 -> gap 0
    # anchor 1: hardest pos 1, hardest neg min(2, 2) = 2 -> gap -1
    hinge = modified_batch_hard(emb, k=2, margin=0.5)
    assert hinge.item() == pytest.approx((0.5 + 0.0) / 2)
    soft = modified_batch_hard(emb, k=2, margin="soft")
    assert soft.item() == pytest.approx((math.log(2.0) + math.log(1.0 + math.exp(-1.0))) / 2, rel=1e-6)


def test_modified_batch_hard_averages_over_first_k_only():
    # the negatives' own (unknown) positives never enter the loss: moving the
    # negatives relative to each other, at equal distance from the anchors, changes nothing
    a = torch.tensor([[0.0, 0.0], [0.0, 1.0], [5.0, 0.5], [5.0, 0.5]])
    b = torch.tensor([[0.0, 0.0], [0.0, 1.0], [5.0, 0.5], [-5.0, 0.5]])
    assert modified_batch_hard(a, 2).item() == pytest.approx(modified_batch_hard(b, 2).item())


def test_modified_batch_hard_rejects_batches_without_negatives():
    with pytest.raises(ValueError):
        modified_batch_hard(torch.zeros(2, 3), k=2)


def test_presumed_positives_take_alpha_min_closest_cross_camera_pairs():
    items = [
        te("A", 1, 0, 10, 0), te("A", 2, 0, 10, 40), te("A", 3, 0, 10, 90), te("A", 4, 0, 10, 180),
        te("B", 1, 20, 30, 2), te("B", 2, 20, 30, 45), te("B", 3, 20, 30, 130), te("B", 4, 20, 30, 270),
    ]
    # N_p = int(0.5 * min(4, 4)) = 2: the two closest pairs are (A1,B1) at 2 deg and (A2,B2) at 5 deg
    pairs = presumed_positives(items, alpha=0.5)
    assert [(p.a, p.b) for p in pairs] == [(0, 4), (1, 5)]
    assert pairs[0].distance == pytest.approx(1 - math.cos(math.radians(2)), abs=1e-6)
    # alpha 0.1 -> int(0.4) = 0, raised to the minimum of one pair per camera pair
    assert [(p.a, p.b) for p in presumed_positives(items, alpha=0.1)] == [(0, 4)]


def test_pooled_budget_gives_the_closest_pairs_over_all_camera_pairs():
    # cameras A, B, C with two tracklets each, all at different times (no co-occurrence)
    # A: 0, 90 deg; B: 1, 93 deg; C: 40, 200 deg. alpha 0.5 -> N_p = 1 per camera pair, 3 in all
    items = [te("A", 1, 0, 1, 0), te("A", 2, 2, 3, 90), te("B", 1, 4, 5, 1), te("B", 2, 6, 7, 93),
             te("C", 1, 8, 9, 40), te("C", 2, 10, 11, 200)]
    # per camera pair: A-B (A1,B1) 1 deg; A-C (A1,C1) 40 deg; B-C (B1,C1) 39 deg
    per_pair = presumed_positives(items, alpha=0.5)
    assert sorted((p.a, p.b) for p in per_pair) == [(0, 2), (0, 4), (2, 4)]
    # pooled: the 3 closest admissible pairs of all: (A1,B1) 1, (A2,B2) 3, (B1,C1) 39 deg; A-C gives none
    pooled = presumed_positives(items, alpha=0.5, pooled=True)
    assert [(p.a, p.b) for p in pooled] == [(0, 2), (1, 3), (2, 4)]
    assert pooled[1].distance == pytest.approx(1 - math.cos(math.radians(3)), abs=1e-6)
    # co-occurring pairs stay out: B2 seen at the time of A2
    items[3] = te("B", 2, 2, 3, 93)
    assert (1, 3) not in [(p.a, p.b) for p in presumed_positives(items, alpha=0.5, pooled=True)]


def test_mutual_nearest_keeps_only_pairs_that_choose_each_other():
    # A1 at 0 deg, A2 at 10 deg; B1 at 4 deg, B2 at 60 deg. Closest pairs: (A1,B1) 4, (A2,B1) 6, (A2,B2) 50, ...
    items = [te("A", 1, 0, 10, 0), te("A", 2, 0, 10, 10), te("B", 1, 20, 30, 4), te("B", 2, 20, 30, 60)]
    # without the rule alpha 1.0 (N_p = 2) takes the two closest: (A1,B1) and (A2,B1), B1 twice
    assert [(p.a, p.b) for p in presumed_positives(items, alpha=1.0)] == [(0, 2), (1, 2)]
    # with it: A2's nearest is B1 but B1's nearest is A1, so (A2,B1) goes; (A2,B2) is not mutual either
    # (B2's nearest is A2 but A2's is B1), so only (A1,B1) is left
    assert [(p.a, p.b) for p in presumed_positives(items, alpha=1.0, mutual_nearest=True)] == [(0, 2)]


def test_presumed_positives_never_pair_tracklets_that_overlap_in_time():
    items = [te("A", 1, 0, 10, 0), te("B", 1, 5, 15, 0), te("B", 2, 30, 40, 60)]
    pairs = presumed_positives(items, alpha=1.0)
    assert [(p.a, p.b) for p in pairs] == [(0, 2)]


def test_negatives_from_co_occurrence():
    items = [te("A", 1, 0, 10, 0), te("A", 2, 5, 8, 0), te("A", 3, 11, 20, 0), te("B", 1, 9, 12, 0)]
    assert negatives_for(0, items, non_overlapping_cameras=True) == [1, 3]
    assert negatives_for(0, items, non_overlapping_cameras=False) == [1]
    pair_items = items + [te("B", 2, 30, 40, 0)]
    from reid_models.adaptation.mining import PositivePair

    negs = pair_negatives(PositivePair(0, 4, 0.0), pair_items, max_negatives=10)
    assert negs == [1, 3]
    assert len(pair_negatives(PositivePair(0, 4, 0.0), pair_items, max_negatives=1)) == 1


def test_tracklet_positives_pair_each_tracklet_with_itself_against_what_it_was_seen_with():
    items = [te("A", 1, 0, 10, 0), te("A", 2, 5, 8, 90), te("A", 3, 11, 20, 0), te("B", 1, 9, 12, 0)]
    pairs = tracklet_positives(items)
    assert [(p.a, p.b, p.distance) for p in pairs] == [(0, 0, 0.0), (1, 1, 0.0), (2, 2, 0.0), (3, 3, 0.0)]
    # the negatives of (i, i) are i's co-occurring tracklets, never i itself
    assert pair_negatives(pairs[0], items, non_overlapping_cameras=True) == [1, 3]
    assert pair_negatives(pairs[1], items, non_overlapping_cameras=True) == [0]
    assert pair_negatives(pairs[2], items, non_overlapping_cameras=True) == [3]
    assert pair_negatives(pairs[3], items, non_overlapping_cameras=False) == []


def test_true_positive_fraction():
    from reid_models.adaptation.mining import PositivePair

    pairs = [PositivePair(0, 1, 0.1), PositivePair(2, 3, 0.2), PositivePair(0, 3, 0.3)]
    assert true_positive_fraction(pairs, [7, 7, 8, None]) == pytest.approx(1 / 3)
    assert math.isnan(true_positive_fraction([], []))


def test_verification_auc_counts_ties_half():
    assert verification_auc([0.1, 0.2], [0.3, 0.4]) == 1.0
    assert verification_auc([0.5], [0.4, 0.5, 0.6]) == pytest.approx((0 + 0.5 + 1) / 3)
    assert math.isnan(verification_auc([], [1.0]))


def test_continuity_pairs_and_auc():
    halves = [
        HalfTracklet(1, "A", 0, 5, unit(0)), HalfTracklet(1, "A", 5, 10, unit(10)),
        HalfTracklet(2, "A", 2, 6, unit(90)), HalfTracklet(2, "A", 6, 9, unit(100)),
        HalfTracklet(3, "B", 0, 10, unit(0)),  # other camera: never a negative here
    ]
    pos, neg = continuity_pairs(halves)
    assert pos == [(0, 1), (2, 3)]
    assert neg == [(0, 2), (0, 3), (1, 2), (1, 3)]
    assert continuity_auc(halves) == 1.0
    swapped = [halves[0], HalfTracklet(1, "A", 5, 10, unit(95)), halves[2], HalfTracklet(2, "A", 6, 9, unit(5))]
    assert continuity_auc(swapped) < 0.5


def test_decide_deploy_refuses_worse_models():
    assert decide_deploy(0.9, 0.95).deploy
    assert not decide_deploy(0.9, 0.85).deploy
    assert not decide_deploy(0.9, float("nan")).deploy
    assert decide_deploy(float("nan"), 0.7).deploy


def test_reestimated_batchnorm_statistics_are_those_of_the_target_crops():
    """AdaBN: after re-estimation, a BatchNorm layer's running mean / variance equal the statistics of the
    crops it saw (computed here by hand from the layer's input), every weight is unchanged, the input model
    is untouched, and the copy normalises the target crops to zero mean."""
    from torch import nn

    from reid_models.adaptation.bn import reestimate_batchnorm

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5))
    model.eval()
    target = [torch.randn(40, 3, 8, 4) * 3.0 + 2.0, torch.randn(24, 3, 8, 4) * 3.0 + 2.0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapted = reestimate_batchnorm(model, target, batch_size=64)  # one batch of all 64 crops
    with torch.no_grad():
        x = model[0](torch.cat(target))  # the BatchNorm's input
    mean = x.mean(dim=(0, 2, 3))
    var = x.var(dim=(0, 2, 3), unbiased=True)
    bn = adapted[1]
    assert torch.allclose(bn.running_mean, mean, atol=1e-5) and torch.allclose(bn.running_var, var, atol=1e-4)
    assert bn.momentum == model[1].momentum and not adapted.training
    assert torch.equal(adapted[0].weight, model[0].weight) and torch.equal(bn.weight, model[1].weight)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the input is unchanged
    with torch.no_grad():
        out = adapted[1](adapted[0](torch.cat(target)))
    assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-4  # normalised to zero mean on the target
    # no crop: an unchanged copy
    same = reestimate_batchnorm(model, [torch.zeros(0, 3, 8, 4)])
    assert torch.equal(same[1].running_mean, model[1].running_mean)
