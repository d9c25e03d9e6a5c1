"""P x K / BH-switch / BH-merge batches, and the lT / lU transfer levels of seed 000 §4.2."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from pipeline.core.errors import ConfigError
from reid_models.factory import build_model
from reid_models.samplers import MultiDatasetBatchSampler, PKSampler
from reid_models.transfer import apply_transfer, freeze_frozen_batchnorm


def test_pk_sampler_gives_p_identities_with_k_samples():
    pids = [0] * 5 + [1] * 3 + [2] * 1 + [3] * 6  # identity 2 has fewer than K: drawn with replacement
    s = PKSampler(pids, p=2, k=4, seed=3)
    idx = list(s)
    assert len(idx) == len(s) == (15 // 8) * 8
    for b in range(0, len(idx), 8):
        counts = Counter(pids[i] for i in idx[b:b + 8])
        assert len(counts) == 2 and set(counts.values()) == {4}
    s.set_epoch(1)
    again = PKSampler(pids, p=2, k=4, seed=3)
    again.set_epoch(1)
    assert list(s) == list(again)  # reproducible per (seed, epoch)


def test_pk_sampler_covers_all_identities_over_batches():
    pids = [i // 2 for i in range(20)]  # 10 identities x 2
    s = PKSampler(pids, p=2, k=2, seed=0, batches_per_epoch=5)
    seen = {pids[i] for i in s}
    assert seen == set(range(10))


def test_bh_switch_batches_come_from_one_dataset_in_turn():
    pids = [0, 0, 1, 1, 2, 2, 10, 10, 11, 11, 12, 12]
    ds = [0] * 6 + [1] * 6
    s = MultiDatasetBatchSampler(pids, ds, p=2, k=2, mode="switch", seed=0, batches_per_epoch=6)
    batches = list(s)
    assert len(batches) == 6
    sources = [{ds[i] for i in b} for b in batches]
    assert sources == [{0}, {1}, {0}, {1}, {0}, {1}]


def test_bh_merge_mixes_datasets_and_rejects_shared_ids():
    pids = [0, 0, 10, 10]
    ds = [0, 0, 1, 1]
    merge = MultiDatasetBatchSampler(pids, ds, p=2, k=2, mode="merge", seed=0, batches_per_epoch=3)
    assert all({ds[i] for i in b} == {0, 1} for b in merge)  # only 2 identities: both in every batch
    with pytest.raises(ValueError, match="several datasets"):
        MultiDatasetBatchSampler([0, 0, 0, 0], ds, p=1, k=2)


def test_transfer_copies_first_lt_layers_and_freezes_all_but_last_lu():
    torch.manual_seed(0)
    source = build_model("cnn3_siamese")
    torch.manual_seed(1)
    target = build_model("cnn3_siamese")
    before = {k: v.clone() for k, v in target.state_dict().items()}
    info = apply_transfer(target, source, l_t=2, l_u=1)
    assert info == {"layers": 4, "transferred": 2, "trainable": 1, "trainable_params": 64 * 7 * 7 * 128 + 128}
    src, dst = source.layer_groups(), target.layer_groups()
    for i in (0, 1):  # copied
        assert torch.equal(dst[i].weight, src[i].weight) and torch.equal(dst[i].bias, src[i].bias)
    for i in (2, 3):  # Xavier-initialised, zero bias, different from both source and the old weights
        assert not torch.equal(dst[i].weight, src[i].weight)
        assert not torch.equal(dst[i].weight, before[["conv3.weight", "fc.weight"][i - 2]])
        assert torch.count_nonzero(dst[i].bias) == 0
        fan_in = dst[i].weight[0].numel()
        fan_out = dst[i].weight.shape[0] * (dst[i].weight[0, 0].numel() if dst[i].weight.dim() > 2 else 1)
        assert dst[i].weight.abs().max() <= (6.0 / (fan_in + fan_out)) ** 0.5 + 1e-6
    assert [all(p.requires_grad for p in g.parameters()) for g in dst] == [False, False, False, True]


def test_transfer_level_limits_and_frozen_batchnorm():
    model = build_model("mobilenetv2_fc", pretrained=None)
    with pytest.raises(ConfigError, match="within 0..21"):
        apply_transfer(model, None, 0, 22)
    with pytest.raises(ConfigError, match="needs a pre-trained model"):
        apply_transfer(model, None, 3, 3)
    apply_transfer(model, None, 0, 2)  # only fc1 (with its BN) and fc2 train
    model.train()
    freeze_frozen_batchnorm(model)
    assert not model.features[0][1].training  # frozen BN stays in eval mode
    assert model.fc1[1].training
