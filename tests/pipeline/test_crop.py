"""The one crop rule (pipeline.core.types.crop_tlwh), hand-computed on a 10 x 20 image, and the one crop-resize rule
(resize_crop), hand-computed and against training's resize on a real PETS crop."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.types import crop_tlwh

IMAGE = np.arange(10 * 20 * 3, dtype=np.uint8).reshape(10, 20, 3)  # H 10, W 20


def test_floor_left_top_ceil_right_bottom():
    # x 2.7..6.2 -> columns 2..6 (5 px), y 1.5..4.1 -> rows 1..4 (4 px): the box is never cut short
    crop = crop_tlwh(IMAGE, np.array([2.7, 1.5, 3.5, 2.6]))
    assert np.array_equal(crop, IMAGE[1:5, 2:7])


def test_clipped_to_the_image_and_edge_strip_outside():
    assert np.array_equal(crop_tlwh(IMAGE, np.array([-5, -5, 10, 10])), IMAGE[0:5, 0:5])
    assert np.array_equal(crop_tlwh(IMAGE, np.array([15, 5, 10, 10])), IMAGE[5:10, 15:20])
    assert np.array_equal(crop_tlwh(IMAGE, np.array([30, 30, 5, 5])), IMAGE[9:10, 19:20])  # wholly outside


def test_min_size_and_view():
    assert crop_tlwh(IMAGE, np.array([30, 30, 5, 5]), min_size=2) is None
    assert crop_tlwh(IMAGE, np.array([3, 3, 1.0, 5]), min_size=2) is None  # 1 px wide
    assert crop_tlwh(IMAGE, np.array([3, 3, 1.2, 5]), min_size=2).shape == (5, 2, 3)  # 3..4.2 -> 2 columns
    assert np.shares_memory(crop_tlwh(IMAGE, np.array([0, 0, 4, 4])), IMAGE)  # a view: callers that keep it copy


def _grey(rows: list[list[int]]) -> np.ndarray:
    return np.repeat(np.asarray(rows, dtype=np.uint8)[:, :, None], 3, axis=2)


def test_resize_crop_enlarges_bilinearly_not_by_repeating_pixels():
    from pipeline.core.types import resize_crop

    crop = _grey([[0, 100], [0, 100]])  # 2x2 -> 2x4: half-pixel centres, x_src = (x + 0.5) / 2 - 0.5, clamped
    assert resize_crop(crop, (2, 4))[:, :, 0].tolist() == [[0, 25, 75, 100]] * 2
    # OpenCV's INTER_AREA would repeat pixels when enlarging: what `area` forces
    assert resize_crop(crop, (2, 4), "area")[:, :, 0].tolist() == [[0, 0, 100, 100]] * 2


def test_resize_crop_shrinks_by_area_averaging_and_rejects_unknown_filters():
    from pipeline.core.types import resize_crop

    crop = _grey([[0, 40, 80, 120], [40, 80, 120, 160], [0, 0, 8, 8], [0, 0, 8, 8]])
    assert resize_crop(crop, (2, 2))[:, :, 0].tolist() == [[40, 120], [0, 8]]  # means of the 2x2 blocks
    # shrinking one axis and enlarging the other is an enlargement: bilinear
    assert resize_crop(_grey([[0, 100]] * 4), (2, 4))[:, :, 0].tolist() == [[0, 25, 75, 100]] * 2
    with pytest.raises(ValueError, match="interpolation must be one of"):
        resize_crop(crop, (2, 2), "cubic")


def test_encoder_preprocessing_of_a_small_real_crop_matches_trainings_resize(pets_dir):
    """A far-away person (smaller than the 128x64 input) reaches the network as training's torchvision resize
    would give it, not blocky."""
    import cv2
    import torch
    from torchvision.transforms import v2

    from pipeline.core.types import crop_tlwh
    from reid_models.encoder import preprocess_crops

    gt = np.loadtxt(pets_dir / "gt" / "gt.txt", delimiter=",", ndmin=2)
    row = gt[(gt[:, 0] == 1)][0]
    crop = crop_tlwh(cv2.imread(str(pets_dir / "img1" / "000001.jpg")), row[2:6])
    assert crop.shape[0] < 128 and crop.shape[1] < 64
    mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    ours = preprocess_crops([crop], (128, 64), mean, std)[0] * 255.0
    train = v2.Resize((128, 64), antialias=True)(torch.from_numpy(np.ascontiguousarray(crop[:, :, ::-1])).permute(2, 0, 1))
    blocky = preprocess_crops([crop], (128, 64), mean, std, "area")[0] * 255.0
    gap, gap_blocky = np.abs(ours - train.numpy()).mean(), np.abs(blocky - train.numpy()).mean()
    assert gap < 1.0 and gap_blocky > 2 * gap, (gap, gap_blocky)
