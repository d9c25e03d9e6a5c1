"""Per-camera BatchNorm statistics (camera-based BN): estimation, storage in a version, use by the encoder.

Real crops: PETS09-S2L1 gt boxes of two frame ranges stand in for two cameras (the shipped default model)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from reid_models.adaptation.bn import (batchnorm_statistics, camera_statistics, reestimate_batchnorm,
                                       statistics_items, with_statistics)
from reid_models.adaptation.trainer import embed_sets, tensors_from_crops
from reid_models.checkpoint import load_checkpoint, state_hash


def _crops(pets_dir: Path, frames: range, per_frame: int = 3) -> list[np.ndarray]:
    gt = np.loadtxt(pets_dir / "gt" / "gt.txt", delimiter=",")
    out = []
    for f in frames:
        img = cv2.imread(str(pets_dir / "img1" / f"{f:06d}.jpg"))
        for row in gt[gt[:, 0] == f][:per_frame]:
            x, y, w, h = (int(round(v)) for v in row[2:6])
            crop = img[max(y, 0):y + h, max(x, 0):x + w]
            if crop.size:
                out.append(crop)
    return out


@pytest.fixture(scope="module")
def setup(pets_dir: Path):
    torch.set_num_threads(1)
    from reid_models.encoder import DEFAULT_CHECKPOINT

    model, _ = load_checkpoint(DEFAULT_CHECKPOINT)
    a = _crops(pets_dir, range(1, 60, 4))
    b = [cv2.convertScaleAbs(c, alpha=0.6, beta=40) for c in _crops(pets_dir, range(300, 360, 4))]  # duller "camera"
    ta, tb = (tensors_from_crops(x, model.input_size, model.pixel_mean, model.pixel_std) for x in (a, b))
    return model, a, b, ta, tb


def test_camera_statistics_are_each_cameras_own(setup):
    model, _, _, ta, tb = setup
    stats = camera_statistics(model, {"left": [ta], "right": [tb], "empty": [ta[:0]]})
    assert sorted(stats) == ["left", "right"]  # a camera without crops gets none
    for cam, t in (("left", ta), ("right", tb)):
        own = batchnorm_statistics(reestimate_batchnorm(model, [t]))
        assert all(torch.equal(stats[cam][k], own[k]) for k in own)
    k = "features.0.1.running_mean"
    assert not torch.allclose(stats["left"][k], stats["right"][k])  # the duller camera has other statistics
    # a copy with a camera's statistics has them, and nothing else changed
    net = with_statistics(model, stats["right"])
    assert torch.equal(net.state_dict()[k], stats["right"][k])
    assert torch.equal(net.state_dict()["features.0.0.weight"], model.state_dict()["features.0.0.weight"])
    with pytest.raises(ValueError, match="unknown BatchNorm"):
        with_statistics(model, {"nope.running_mean": torch.zeros(1)})
    assert set(statistics_items(stats)) == {f"camera_bn/{c}/{n}" for c in stats for n in stats[c]}


def test_embed_sets_use_each_sets_camera(setup):
    model, _, _, ta, tb = setup
    m = reestimate_batchnorm(model, [ta, tb])
    m.camera_bn = camera_statistics(m, {"left": [ta], "right": [tb]})
    got = embed_sets(m, [ta, tb, ta], cams=["left", "right", "other"])
    want_a = embed_sets(with_statistics(m, m.camera_bn["left"]), [ta])[0]
    want_b = embed_sets(with_statistics(m, m.camera_bn["right"]), [tb])[0]
    plain = embed_sets(m, [ta])[0]  # a camera without statistics: the weights' own
    np.testing.assert_allclose(got[0], want_a, atol=1e-5)
    np.testing.assert_allclose(got[1], want_b, atol=1e-5)
    np.testing.assert_allclose(got[2], plain, atol=1e-5)
    assert not np.allclose(got[0], plain, atol=1e-3)


def test_version_bytes_keep_camera_statistics_and_the_encoder_uses_them(setup):
    from reid_models.adaptation.weights import checkpoint_bytes, model_from_weights
    from reid_models.encoder import AppearanceEncoder

    model, a, b, ta, tb = setup
    cams = camera_statistics(model, {"left": [ta], "right": [tb]})
    blob = checkpoint_bytes(model, model.state_dict(), {"x": 1}, "parent", camera_bn=cams)
    back = model_from_weights(blob)
    assert sorted(back.camera_bn) == ["left", "right"]
    assert all(torch.equal(back.camera_bn[c][k], cams[c][k]) for c in cams for k in cams[c])
    assert model_from_weights(checkpoint_bytes(model, model.state_dict())).camera_bn is None

    enc = AppearanceEncoder(model, "base", device="cpu")
    plain = enc.embed_crops(b)
    assert enc.camera_ids == [] and np.allclose(enc.embed_crops(b, cam_id="right"), plain)
    enc.load_state(back.state_dict(), camera_bn=back.camera_bn)
    assert enc.camera_ids == ["left", "right"]
    assert enc.version == state_hash({**back.state_dict(), **statistics_items(cams)}) != state_hash(back.state_dict())
    want = embed_sets(with_statistics(model, cams["right"]), [tb])[0]
    np.testing.assert_allclose(enc.embed_crops(b, cam_id="right"), want, atol=1e-5)
    np.testing.assert_allclose(enc.embed_crops(b), plain, atol=1e-5)  # no camera (a search probe): own statistics
    np.testing.assert_allclose(enc.embed_crops(b, cam_id="elsewhere"), plain, atol=1e-5)
    enc.load_state(model.state_dict())  # a version without statistics drops them
    assert enc.camera_ids == [] and enc.camera_bn is None


def test_runner_embeds_each_cameras_detections_with_its_statistics(setup, pets_dir: Path):
    """FramePlan.embed (the runner's embedding step) with a version holding per-camera statistics: every
    detection's embedding is its own camera's, although the frames of both cameras arrive in one call."""
    from pipeline.camconfig import EncoderSettings, ScheduleSettings
    from pipeline.core.types import Detection, Frame, crop_tlwh
    from pipeline.runner.components import CameraState
    from pipeline.runner.frame_plan import FramePlan
    from reid_models.encoder import AppearanceEncoder

    model, _, _, ta, tb = setup
    enc = AppearanceEncoder(model, "base", device="cpu")
    enc.load_state(model.state_dict(), camera_bn=camera_statistics(model, {"left": [ta], "right": [tb]}))
    gt = np.loadtxt(pets_dir / "gt" / "gt.txt", delimiter=",")
    img = cv2.imread(str(pets_dir / "img1" / "000100.jpg"))
    boxes = gt[gt[:, 0] == 100][:, 2:6]
    frames = [Frame("left", 99, 3.96, img), Frame("right", 99, 3.96, img)]
    dets = [[Detection(np.array(b, np.float64), 1.0) for b in boxes] for _ in frames]
    plan = FramePlan(ScheduleSettings(), EncoderSettings(policy="every", every=1))
    cams = {c: CameraState(c, None, None, None) for c in ("left", "right")}
    plan.embed(enc, frames, dets, cams)
    crops = [crop_tlwh(img, b, min_size=2) for b in boxes]
    for frame, ds in zip(frames, dets):
        want = enc.embed_crops(crops, cam_id=frame.cam_id)
        np.testing.assert_allclose(np.stack([d.embedding for d in ds]), want, atol=1e-5)
    assert not np.allclose(dets[0][0].embedding, dets[1][0].embedding, atol=1e-3)  # same crop, two cameras
