"""Exact checks of the fine-tuning loop: batch layout, augmentation, lr schedule, determinism, frozen BN."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from reid_models.adaptation.trainer import (
    FineTuneSettings,
    augment,
    embed_sets,
    fine_tune,
    make_batch,
    mean_vector,
)


def sets(n: int = 5, per: int = 3) -> list[torch.Tensor]:
    """Tracklet i = ``per`` images of constant value i + 0.1 * crop index, shape (3, 4, 2)."""
    return [torch.stack([torch.full((3, 4, 2), i + 0.1 * c) for c in range(per)]) for i in range(n)]


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(24, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 4))


def test_make_batch_puts_the_pair_first_then_negatives():
    imgs = sets()
    batch = make_batch(imgs, (1, 3), [0, 4], k=4, p=3, rng=np.random.default_rng(0))
    owner = batch[:, 0, 0, 0].floor().long().tolist()
    assert batch.shape == (12, 3, 4, 2)
    assert owner[:2] == [1, 1] and owner[2:4] == [3, 3]  # k//2 crops of a, the rest of b
    assert set(owner[4:]) == {0, 4} and owner[4:].count(0) == 4  # (p-1)k negatives, cycled evenly


def test_augment_flip_is_an_exact_mirror_and_keeps_shape():
    x = torch.arange(2 * 3 * 4 * 2, dtype=torch.float32).reshape(2, 3, 4, 2)
    out = augment(x, torch.Generator().manual_seed(1), pad=0, flip=True)
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    assert augment(x, torch.Generator().manual_seed(1), pad=2, flip=False).shape == x.shape


def test_lr_decays_exponentially_from_lr_to_final_lr_over_the_steps():
    st = FineTuneSettings(k=2, p=2, lr=1e-5, final_lr=1e-6, max_steps=5, budget_s=1e9, pad=0)
    res = fine_tune(tiny_model(), sets(), [(0, 1)], [[2, 3]], st)
    assert res.steps == 5 and res.stopped_by == "max_steps" and len(res.losses) == 5
    assert res.lrs == pytest.approx([1e-5 * math.exp(math.log(0.1) * s / 5) for s in range(5)])


def test_fine_tune_is_seeded_leaves_the_input_and_global_rng_alone_and_freezes_bn():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    st = FineTuneSettings(k=2, p=2, lr=1e-2, final_lr=1e-3, max_steps=6, budget_s=1e9, seed=3)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = fine_tune(model, sets(), [(0, 1), (2, 3)], [[4], [0, 4]], st)
    assert torch.equal(torch.rand(1), expected_next)  # the caller's RNG stream is untouched
    b = fine_tune(model, sets(), [(0, 1), (2, 3)], [[4], [0, 4]], st)
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not torch.equal(a.state_dict["1.weight"], before["1.weight"])  # it did train
    assert torch.equal(a.state_dict["2.running_mean"], before["2.running_mean"])  # BN statistics frozen


def test_pairs_without_negatives_and_stop_requests():
    st = FineTuneSettings(k=2, p=2, max_steps=5)
    assert fine_tune(tiny_model(), sets(), [(0, 1)], [[]], st).stopped_by == "no_data"
    res = fine_tune(tiny_model(), sets(), [(0, 1)], [[2]], st, should_stop=lambda: True)
    assert res.steps == 0 and res.stopped_by == "stop_request"


def test_embed_sets_rows_are_unit_and_split_per_set():
    out = embed_sets(tiny_model(), sets(3, per=2))
    assert [o.shape for o in out] == [(2, 4)] * 3
    assert np.allclose(np.linalg.norm(np.concatenate(out), axis=1), 1.0, atol=1e-6)
    v = mean_vector(np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert v.dtype == np.float32 and np.allclose(v, [math.sqrt(0.5)] * 2)
