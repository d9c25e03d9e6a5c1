"""Test-time flip (AppearanceEncoder.flip) on real Market-1501 crops with the shipped default model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from reid_models.encoder import AppearanceEncoder


@pytest.fixture(scope="module")
def crops(shared: Path) -> list[np.ndarray]:
    folder = shared / "data" / "reid" / "Market-1501" / "bounding_box_train"
    paths = sorted(folder.glob("*.jpg"))[:6]
    return [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths]


def test_flip_is_the_normalised_sum_of_crop_and_mirror(crops):
    plain = AppearanceEncoder.from_checkpoint(None, device="cpu")
    flip = AppearanceEncoder.from_checkpoint(None, device="cpu", flip=True)
    assert flip.flip and not plain.flip and flip.version == plain.version
    # the same sum computed by hand from unnormalised forwards of the crop and of its mirror
    from reid_models.encoder import preprocess_crops

    batch = preprocess_crops(crops, plain.input_size, plain.mean, plain.std, plain.interpolation)
    raw = plain._forward(batch) + plain._forward(np.ascontiguousarray(batch[:, :, :, ::-1]))
    expected = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    got = flip.embed_crops(crops)
    assert got.shape == (len(crops), plain.dim)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # differs from the plain embedding, and a mirrored crop gets (nearly) the same flipped feature
    assert np.abs(got - plain.embed_crops(crops)).max() > 1e-3
    mirrored = flip.embed_crops([np.ascontiguousarray(c[:, ::-1]) for c in crops])
    assert np.min(np.sum(got * mirrored, axis=1)) > 0.999
