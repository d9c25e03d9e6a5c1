"""The benchmark's detection sets: variants derived from cached pre-NMS candidates equal a detector run with that
score threshold / NMS IoU (hand-made candidates and the real yolov5n ONNX on PETS09 frames), the cache round
trip, and the smaller input emulated inside the fixed 640 ONNX input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.detectors import DetectorConfig
from pipeline.detectors.geometry import Letterbox
from pipeline.detectors.onnx_yolo import Candidates, OnnxYoloDetector
from pipeline.mot import MOTSequence, read_mot_file
from pipeline.mot.bench_sets import YOLO_SETS, derive_det_file, load_candidates, save_candidates

# network pixels; letterbox scale 0.5, pad (0, 10): original = (net - pad) / 0.5
LB = Letterbox(scale=0.5, pad_x=0.0, pad_y=10.0)
HAND = Candidates(
    tlbr=np.array([[0, 10, 10, 30],      # A 0.9
                   [1, 10, 11, 30],      # B 0.6: IoU with A = 180 / 220 = 0.818 -> suppressed at 0.45 and 0.6
                   [0, 16, 10, 36],      # C 0.5: IoU with A = 140 / 260 = 0.538 -> suppressed at 0.45, kept at 0.6
                   [50, 10, 60, 30],     # D 0.3: alone
                   [0, 10, 10, 30]]),    # E 0.2, class 2: same box as A, other class -> never suppressed by A
    scores=np.array([0.9, 0.6, 0.5, 0.3, 0.2]), class_ids=np.array([0, 0, 0, 0, 2]), letterbox=LB,
    width=200, height=100)


def _tlwh(dets) -> list[list[float]]:
    return [list(np.round(d.tlwh, 6)) for d in dets]


def test_select_thresholds_and_nms_by_hand():
    assert _tlwh(HAND.select(0.25, 0.45)) == [[0, 0, 20, 40], [100, 0, 20, 40]]                 # A, D
    assert _tlwh(HAND.select(0.25, 0.6)) == [[0, 0, 20, 40], [0, 12, 20, 40], [100, 0, 20, 40]]  # A, C, D
    assert [d.score for d in HAND.select(0.4, 0.6)] == [0.9, 0.5]                               # A, C
    assert [d.score for d in HAND.select(0.5, 0.9)] == [0.9, 0.6, 0.5]                          # no suppression
    assert [(d.score, d.class_id) for d in HAND.select(0.1, 0.45)] == [(0.9, 0), (0.3, 0), (0.2, 2)]


def test_candidates_cache_round_trip_and_det_file(tmp_path: Path):
    empty = Candidates(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), LB, 200, 100)
    save_candidates(tmp_path / "raw.npz", [1, 2, 3], [HAND, empty, HAND])
    back = load_candidates(tmp_path / "raw.npz")
    assert sorted(back) == [1, 2, 3] and len(back[2].scores) == 0
    np.testing.assert_array_equal(back[3].tlbr, HAND.tlbr)
    assert back[1].letterbox == LB and (back[1].width, back[1].height) == (200, 100)
    n = derive_det_file(back, 0.25, 0.6, tmp_path / "det.txt")
    rows = read_mot_file(tmp_path / "det.txt", "det")
    assert n == 6 and rows.frame.tolist() == [1, 1, 1, 3, 3, 3]
    np.testing.assert_allclose(rows.tlwh[:3], [[0, 0, 20, 40], [0, 12, 20, 40], [100, 0, 20, 40]])
    with pytest.raises(ValueError, match="floor"):
        derive_det_file(back, 0.05, 0.6, tmp_path / "low.txt")


def test_grid_names_are_unique_and_cover_the_issue_grid():
    names = [s.name for s in YOLO_SETS]
    assert len(set(names)) == len(names) == 13 and "yolov5n" in names and "yolov5n-480-c50-n60" in names


@pytest.fixture(scope="module")
def frames(pets_dir: Path):
    seq = MOTSequence(pets_dir)
    return [seq.frame_image(f) for f in (1, 400)]


@pytest.mark.parametrize("imgsz", [640, 480])
def test_derived_variants_equal_detector_runs(shared: Path, frames, imgsz: int):
    weights = str(shared / "weights" / "yolov5n.onnx")
    raw = OnnxYoloDetector(DetectorConfig(kind="onnx", weights=weights, conf=0.1, imgsz=imgsz)).candidates(frames)
    assert raw[0].letterbox.scale == pytest.approx(imgsz / 768)
    for conf, iou in ((0.25, 0.45), (0.5, 0.6)):
        direct = OnnxYoloDetector(DetectorConfig(kind="onnx", weights=weights, conf=conf, iou=iou, imgsz=imgsz))
        for c, dets in zip(raw, direct.detect(frames)):
            derived = c.select(conf, iou)
            assert len(derived) == len(dets) >= 3
            np.testing.assert_array_equal([d.tlwh for d in derived], [d.tlwh for d in dets])
            np.testing.assert_array_equal([d.score for d in derived], [d.score for d in dets])


def test_box_embedding_cache_is_keyed_by_weights_and_preprocessing(shared: Path, tmp_path: Path):
    """Embeddings cached by the benchmark tools are replayed only for the same weights *and* crop resize / flip:
    after the crop-resize fix a cache made under the old rule must not come back (it once did, keyed by version)."""
    import cv2

    from pipeline.mot.bench_sets import BoxCachedEncoder, emb_cache_path
    from reid_models.encoder import AppearanceEncoder

    img = cv2.imread(str(shared / "data" / "MOT15" / "train" / "PETS09-S2L1" / "img1" / "000001.jpg"))
    boxes = np.array([[537.0, 97.0, 23.0, 60.0], [300.0, 300.0, 40.0, 100.0]])  # a small and a larger crop
    auto = AppearanceEncoder.from_checkpoint(None, device="cpu")
    area = AppearanceEncoder.from_checkpoint(None, device="cpu")
    area.interpolation = "area"  # the encoder's rule before the crop-resize fix
    flip = AppearanceEncoder.from_checkpoint(None, device="cpu", flip=True)
    assert auto.version == area.version == flip.version
    keys = {e.embedding_key for e in (auto, area, flip)}
    assert keys == {f"{auto.version}.auto", f"{auto.version}.area", f"{auto.version}.auto.flip"}
    assert emb_cache_path(auto).name == f"{auto.version}.auto.npz"

    path = tmp_path / f"{area.embedding_key}.npz"
    old = BoxCachedEncoder(area, path)
    e_area = old.embed_boxes(img, boxes)
    old.save()
    again = BoxCachedEncoder(area, path)  # same weights, same rule: replayed, not recomputed
    assert len(again.cache) == 2
    np.testing.assert_array_equal(again.embed_boxes(img, boxes), e_area)
    other = BoxCachedEncoder(auto, path)  # same weights, other resize: nothing of the file is used
    assert other.cache == {}
    e_auto = other.embed_boxes(img, boxes)
    np.testing.assert_allclose(e_auto, auto.embed_boxes(img, boxes), atol=1e-6)
    assert float(np.abs(e_auto[0] - e_area[0]).max()) > 1e-3  # the small crop differs between the two rules
    # a file written before the key existed (version only) is ignored
    np.savez(tmp_path / "legacy.npz", version=np.array(auto.version), image=np.array(["x"]),
             box=np.zeros((1, 4)), emb=np.zeros((1, auto.dim), np.float32))
    assert BoxCachedEncoder(auto, tmp_path / "legacy.npz").cache == {}
