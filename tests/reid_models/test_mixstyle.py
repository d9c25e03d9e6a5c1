"""MixStyle (reid_models.backbones.MixStyle): hand-computed mixing, its random draws, placement, checkpoints."""

from __future__ import annotations

import math

import torch

from reid_models.backbones import MIXSTYLE_AFTER, MixStyle, mix_style
from reid_models.checkpoint import load_checkpoint, save_checkpoint
from reid_models.factory import build_model


def test_mix_style_swaps_in_the_other_images_statistics_by_hand():
    # two images, one channel, 1 x 2 pixels: image 0 = [1, 3] (mean 2, unbiased var 2),
    # image 1 = [4, 8] (mean 6, unbiased var 8)
    x = torch.tensor([[[[1.0, 3.0]]], [[[4.0, 8.0]]]])
    lam, perm = torch.tensor([1.0, 0.5]), torch.tensor([1, 0])
    y = mix_style(x, lam, perm, eps=0.0)
    # image 0 keeps its own statistics (lam 1)
    torch.testing.assert_close(y[0], x[0])
    # image 1: mean 0.5 * 6 + 0.5 * 2 = 4, std 0.5 * sqrt(8) + 0.5 * sqrt(2) = 3 / sqrt(2);
    # standardised pixels -+1/sqrt(2) -> 4 -+ 1.5
    torch.testing.assert_close(y[1], torch.tensor([[[2.5, 5.5]]]))
    # lam 0 on both: each image takes exactly the other's statistics
    z = mix_style(x, torch.zeros(2), perm, eps=0.0)
    torch.testing.assert_close(z[0], torch.tensor([[[6 - math.sqrt(8) / math.sqrt(2), 6 + 2.0]]]))
    torch.testing.assert_close(z[1], torch.tensor([[[2 - 1.0, 2 + 1.0]]]))


def test_module_is_the_identity_in_eval_or_when_not_drawn_and_uses_torch_draws_in_order():
    x = torch.randn(4, 3, 5, 2)
    m = MixStyle(p=1.0, alpha=0.1)
    assert m.eval()(x) is x
    assert MixStyle(p=0.0).train()(x) is x
    one = x[:1]
    assert m.train()(one) is one  # one image: nothing to mix with
    torch.manual_seed(7)
    y = m.train()(x)
    # the same draws, in the module's order, from the same seed: the coin, the Beta weights, the permutation
    torch.manual_seed(7)
    assert float(torch.rand(())) < 1.0
    lam = torch.distributions.Beta(0.1, 0.1).sample((4,))
    perm = torch.randperm(4)
    torch.testing.assert_close(y, mix_style(x, lam, perm))
    assert not torch.allclose(y, x)
    assert list(m.parameters()) == [] and list(m.buffers()) == []


def test_mobilenet_mixstyle_sits_after_the_stride_4_and_8_stages_and_changes_no_weights():
    plain = build_model("mobilenetv2_pool", pretrained=None, last_stride=1)
    net = build_model("mobilenetv2_pool", pretrained=None, last_stride=1, mixstyle=True)
    net.load_state_dict(plain.state_dict())  # same keys and shapes: MixStyle holds nothing
    assert net.build_kwargs()["mixstyle"] is True and "mixstyle" not in plain.build_kwargs()
    seen = []
    net.mixstyle.p = 1.0
    net.mixstyle.register_forward_hook(lambda mod, inp, out: seen.append(tuple(inp[0].shape[1:])))
    x = torch.randn(3, 3, 128, 64)
    torch.manual_seed(0)
    net.train()(x)
    assert MIXSTYLE_AFTER == (3, 6) and seen == [(24, 32, 16), (32, 16, 8)]
    net.load_state_dict(plain.state_dict())  # undo the training pass's BatchNorm running-statistics update
    with torch.no_grad():
        # inference: exactly the plain network
        torch.testing.assert_close(net.eval()(x), plain.eval()(x))


def test_mixstyle_survives_a_checkpoint_round_trip(tmp_path):
    net = build_model("mobilenetv2_pool", pretrained=None, last_stride=1, ibn=True, mixstyle=True)
    path = tmp_path / "m.pt"
    save_checkpoint(path, net, {}, {}, epoch=1)
    back, meta = load_checkpoint(path, "cpu")
    assert back.build_kwargs()["mixstyle"] is True and back.build_kwargs()["ibn"] is True
    assert isinstance(back.mixstyle, MixStyle)
    x = torch.randn(2, 3, 128, 64)
    with torch.no_grad():
        torch.testing.assert_close(back.eval()(x), net.eval()(x))
