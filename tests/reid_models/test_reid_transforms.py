"""Train/test transforms and the 10-crop test-time averaging of seed 001."""

from __future__ import annotations

import numpy as np
import torch

from reid_models.evaluate import ten_crop_images
from reid_models.transforms import build_test_transform, build_train_transform, ten_crop_batch, ten_crop_features


def test_train_and_test_transforms_shapes_and_normalisation():
    img = torch.full((3, 100, 40), 255, dtype=torch.uint8)
    out = build_test_transform((128, 64))(img)
    assert out.shape == (3, 128, 64) and out.dtype == torch.float32
    assert torch.allclose(out[0], torch.full((128, 64), (1 - 0.485) / 0.229), atol=1e-5)
    torch.manual_seed(0)
    aug = build_train_transform((128, 64), pad=10)
    outs = [aug(img) for _ in range(8)]
    assert all(o.shape == (3, 128, 64) for o in outs)
    # random crop of the zero-padded image shows padding (black) in some outputs
    assert any((o[0] < 0).any() for o in outs)


def test_ten_crop_batch_corners_centre_and_flips():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    crops = ten_crop_batch(x, scale=0.5)
    assert crops.shape == (10, 2, 3, 8, 8)
    assert torch.equal(crops[5], torch.flip(crops[0], dims=[3]))
    assert torch.equal(crops[9], torch.flip(crops[4], dims=[3]))
    assert crops[0].mean() < crops[4].mean() < crops[3].mean()  # TL < centre < BR on a ramp


def test_ten_crop_features_of_constant_image_equal_plain_features():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 8, 5))
    x = torch.ones(1, 3, 16, 8) * torch.tensor([0.2, -0.3, 0.7]).view(1, 3, 1, 1)
    plain = torch.nn.functional.normalize(model(x), dim=1)
    assert torch.allclose(ten_crop_features(model, x), plain, atol=1e-5)


def test_ten_crop_images_on_bgr_crop():
    img = np.zeros((16, 8, 3), np.uint8)
    img[:, :4] = 200  # left half bright
    crops = ten_crop_images(img, scale=0.5)
    assert len(crops) == 10 and all(c.shape == img.shape for c in crops)
    assert crops[0].mean() == 200 and crops[1].mean() == 0  # top-left / top-right corner
    assert np.array_equal(crops[6], crops[1][:, ::-1])


def test_random_low_resolution_blurs_fine_detail_and_keeps_coarse_structure():
    import pytest

    from reid_models.transforms import RandomLowResolution

    # one-pixel checkerboard: shrinking by 2 (antialiased) averages every 2x2 cell to 127.5, so the
    # enlarged image is flat grey; a half-black / half-white image keeps its halves away from the edge
    checker = torch.zeros(3, 128, 64, dtype=torch.uint8)
    checker[:, ::2, ::2] = 255
    checker[:, 1::2, 1::2] = 255
    out = RandomLowResolution(1.0, scale=0.5)(checker)
    assert out.shape == checker.shape and out.dtype == torch.uint8
    assert int(out.min()) >= 120 and int(out.max()) <= 135
    halves = torch.zeros(3, 128, 64, dtype=torch.uint8)
    halves[:, 64:] = 255
    out = RandomLowResolution(1.0, scale=0.25)(halves)
    assert int(out[:, :56].max()) == 0 and int(out[:, 72:].min()) == 255
    # p = 0: untouched; the drawn scale stays within [min_scale, 1]
    assert torch.equal(RandomLowResolution(0.0)(checker), checker)
    g = torch.Generator().manual_seed(0)
    outs = [RandomLowResolution(1.0, min_scale=0.9, generator=g)(checker) for _ in range(5)]
    assert all(0 < int(o.float().std()) for o in outs)  # at s >= 0.9 the checkerboard is not wiped out
    with pytest.raises(ValueError, match="min_scale"):
        RandomLowResolution(0.5, min_scale=0.0)


def test_train_transform_with_low_resolution_gives_network_input():
    img = torch.randint(0, 256, (3, 100, 40), dtype=torch.uint8)
    torch.manual_seed(0)
    aug = build_train_transform((128, 64), low_resolution=1.0, low_resolution_min_scale=0.25)
    out = aug(img)
    assert out.shape == (3, 128, 64) and out.dtype == torch.float32


def test_grayscale_turns_every_crop_grey_at_p_1_and_none_at_p_0():
    """``grayscale``: with p = 1 the three channels of the (de-normalised) output are equal, the ITU-R 601 luma of
    the input (pure red 255 -> 0.299 * 255 = 76); with p = 0 a red crop stays red."""
    from reid_models.transforms import IMAGENET_MEAN, IMAGENET_STD

    red = torch.zeros(3, 128, 64, dtype=torch.uint8)
    red[0] = 255
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    kw = dict(flip=False, random_crop=False)
    grey = build_train_transform((128, 64), grayscale=1.0, **kw)(red) * std + mean
    assert torch.allclose(grey[0], grey[1], atol=1e-5) and torch.allclose(grey[1], grey[2], atol=1e-5)
    assert abs(float(grey[0].mean()) * 255 - 76) < 1.0
    kept = build_train_transform((128, 64), grayscale=0.0, **kw)(red) * std + mean
    assert float(kept[0].mean()) > 0.99 and float(kept[1].mean()) < 0.01
