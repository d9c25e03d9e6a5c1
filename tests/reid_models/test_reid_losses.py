"""Losses of the five papers on tiny tensors with values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from reid_models import losses
from reid_models.batch_mining import pairs_from_batch, triplets_from_batch
from reid_models.heads import IdentificationHead, VerificationHead


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_triplet_hinge_and_soft_margin():
    a, p = t([[0, 0]]), t([[3, 4]])  # d_ap = 5
    assert losses.triplet(a, p, t([[6, 8]]), margin=1.0).item() == pytest.approx(0.0)  # 1 + 5 - 10 < 0
    assert losses.triplet(a, p, t([[0, 4]]), margin=1.0).item() == pytest.approx(2.0, abs=1e-5)  # 1 + 5 - 4
    assert losses.triplet(a, p, t([[0, 4]]), margin="soft").item() == pytest.approx(math.log(1 + math.e), abs=1e-5)


def test_batch_hard_picks_hardest_positive_and_negative():
    emb = t([[0.0], [1.0], [3.0], [7.0]])
    pids = torch.tensor([0, 0, 1, 1])
    # gaps (hardest pos - hardest neg): x=0: 1-3=-2 ; x=1: 1-2=-1 ; x=3: 4-2=2 ; x=7: 4-6=-2
    assert losses.batch_hard_triplet(emb, pids, margin=0.5).item() == pytest.approx(2.5 / 4, abs=1e-5)
    soft = sum(math.log1p(math.exp(g)) for g in (-2, -1, 2, -2)) / 4
    assert losses.batch_hard_triplet(emb, pids, margin="soft").item() == pytest.approx(soft, abs=1e-5)


def test_batch_hard_skips_anchors_without_positive():
    emb = t([[0.0], [1.0], [10.0]])
    pids = torch.tensor([0, 0, 1])  # the pid-1 sample has no positive: only 2 anchors count
    # x=0: 1 - 10 = -9 ; x=1: 1 - 9 = -8 -> hinge 0 with margin 1
    assert losses.batch_hard_triplet(emb, pids, margin=1.0).item() == pytest.approx(0.0)
    assert losses.batch_hard_triplet(emb, pids, margin=9.5).item() == pytest.approx((0.5 + 1.5) / 2, abs=1e-5)


def test_contrastive_same_and_different_costs():
    x1 = t([[0, 0], [0, 0], [0, 0]])
    x2 = t([[3, 4], [0, 1], [0, 3]])
    same = torch.tensor([True, False, False])
    # same: D^2/2 = 12.5 ; different D=1, m=2: (2-1)^2/2 = 0.5 ; different D=3 > m: 0
    assert losses.contrastive(x1, x2, same, margin=2.0).item() == pytest.approx(13.0 / 3, abs=1e-5)


def test_identification_is_softmax_cross_entropy():
    assert losses.identification(t([[0, 0]]), torch.tensor([0])).item() == pytest.approx(math.log(2), abs=1e-6)


def test_identification_label_smoothing():
    # softmax of [ln 3, 0] = [3/4, 1/4]; eps 0.2 over 2 classes: target [0.9, 0.1]
    logits = t([[math.log(3), 0]])
    want = -(0.9 * math.log(0.75) + 0.1 * math.log(0.25))
    assert losses.identification(logits, torch.tensor([0]), 0.2).item() == pytest.approx(want, abs=1e-6)


def test_bnneck_identification_head_normalises_before_a_bias_free_classifier():
    head = IdentificationHead(2, 3, dropout=0.0, bnneck=True).train()
    assert head.fc.bias is None and not head.bn.bias.requires_grad
    with torch.no_grad():
        head.fc.weight.copy_(t([[1, 0], [0, 1], [1, 1]]))
    x = t([[1, 10], [3, 30]])  # batch statistics: mean (2, 20), biased std (1, 10) -> rows [-1, -1], [1, 1]
    want = t([[-1, -1, -2], [1, 1, 2]])
    assert torch.allclose(head(x), want, atol=1e-3)


def test_entropy_weights_follow_label_entropy():
    labels = torch.tensor([[0, 0, 1], [1, 0, 1], [0, 0, 1], [1, 1, 1], [-1, -1, -1]])
    h_a, h_b = math.log(2), -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    w = losses.entropy_weights(labels)
    assert w.tolist() == pytest.approx([h_a / (h_a + h_b), h_b / (h_a + h_b), 0.0], abs=1e-6)
    assert losses.entropy_weights(torch.tensor([[1, 0], [1, 0]])).tolist() == pytest.approx([0.5, 0.5])


def test_multitask_adds_identification_and_weighted_attributes():
    verif = torch.tensor(1.0)
    id_logits, id_labels = torch.zeros(2, 2), torch.tensor([0, 1])
    attr_logits = [torch.zeros(2, 2), torch.zeros(2, 2)]
    attr_labels = torch.tensor([[0, 1], [1, 1]])
    # CE of uniform 2-way logits = ln 2 for every task; attribute weights sum to 1
    total = losses.multitask_entropy_weighted(verif, id_logits, id_labels, attr_logits, attr_labels)
    assert total.item() == pytest.approx(1.0 + math.log(2) + math.log(2), abs=1e-6)
    only_verif = losses.multitask_entropy_weighted(verif)
    assert only_verif.item() == pytest.approx(1.0)


def test_fusion_loss_lambda_three():
    verif_logits = torch.tensor([[0.0, math.log(3.0)]])  # p(same) = 3/4
    ident = torch.zeros(1, 4)  # uniform over 4 identities: ln 4
    loss = losses.verification_identification_fusion(verif_logits, torch.tensor([True]), ident, torch.tensor([2]),
                                                     ident, torch.tensor([3]))
    assert loss.item() == pytest.approx(3 * math.log(4 / 3) + 2 * math.log(4), abs=1e-5)


def test_video_loss_half_weights_identification():
    verif_logits = torch.tensor([[math.log(3.0), 0.0]])  # p(different) = 3/4, pair is different
    loss = losses.video_loss(verif_logits, torch.tensor([False]), torch.zeros(1, 2), torch.tensor([0]),
                             torch.zeros(1, 2), torch.tensor([1]))
    assert loss.item() == pytest.approx(math.log(4 / 3) + 0.5 * math.log(2) + 0.5 * math.log(2), abs=1e-5)


def test_verification_head_uses_squared_difference():
    head = VerificationHead(2)
    with torch.no_grad():
        head.fc.weight.copy_(t([[0, 0], [1, 1]]))
        head.fc.bias.zero_()
    logits = head(t([[1, 2]]), t([[0, 0]]))  # (1-0)^2 + (2-0)^2 = 5 on the "same" node
    assert logits.tolist() == [[0.0, 5.0]]


def test_in_batch_pairs_and_triplets_respect_identities():
    pids = torch.tensor([0, 0, 1, 1, 2])  # pid 2 has no positive
    g = torch.Generator().manual_seed(0)
    a, p, n = triplets_from_batch(pids, g)
    assert a.tolist() == [0, 1, 2, 3]
    assert all(pids[x] == pids[y] and x != y for x, y in zip(a, p))
    assert all(pids[x] != pids[y] for x, y in zip(a, n))
    ia, ib, same = pairs_from_batch(pids, g)
    assert same.tolist() == [True] * 4 + [False] * 4
    assert ((pids[ia] == pids[ib]) == same).all()


def test_distillation_feature_is_the_mean_cosine_distance():
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    t = torch.tensor([[2.0, 0.0], [1.0, 0.0], [4.0, -3.0]])  # same direction, orthogonal, orthogonal
    assert float(losses.distillation(s, t, "feature")) == pytest.approx((0 + 1 + 1) / 3)
    assert float(losses.distillation(s, -t, "feature")) == pytest.approx((2 + 1 + 1) / 3)
    with pytest.raises(ValueError, match="equal shapes"):
        losses.distillation(s, torch.ones(3, 4), "feature")


def test_distillation_relation_compares_in_batch_similarities_across_dimensions():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # student: the two orthogonal (cos 0)
    t = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])  # teacher in 3-d: cos 1/sqrt(2)
    # the 2x2 matrices differ only off the diagonal, by 1/sqrt(2): mean of (0, 1/2, 1/2, 0)
    assert float(losses.distillation(s, t, "relation")) == pytest.approx(0.25)
    assert float(losses.distillation(s, s * 5, "relation")) == pytest.approx(0.0)


def test_distillation_gives_the_teacher_no_gradient():
    s = torch.tensor([[1.0, 0.5]], requires_grad=True)
    t = torch.tensor([[0.2, 1.0]], requires_grad=True)
    losses.distillation(s, t).backward()
    assert s.grad is not None and float(s.grad.abs().sum()) > 0 and t.grad is None
