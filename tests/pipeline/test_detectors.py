"""Detectors: letterbox/NMS/decoding on hand-computed boxes, the ONNX YOLOv5n detector on real PETS09
frames against gt (both backends), the Ultralytics path offline (untrained YAML model, missing weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from pipeline.detectors import DetectorConfig, MotDetFileDetector, build_detector
from pipeline.detectors.geometry import Letterbox, cxcywh_to_tlbr, letterbox, nms_tlbr
from pipeline.detectors.onnx_yolo import decode_yolo
from pipeline.core.errors import ConfigError, ModelError
from pipeline.mot import MOTSequence
from pipeline.core.types import iou_matrix_tlbr, tlwh_to_tlbr


def test_letterbox_even_padding_and_inverse_mapping():
    img = np.full((100, 200, 3), 7, np.uint8)           # h=100, w=200 -> scale 0.32, 64x32, pad 16 top/bottom
    out, lb = letterbox(img, 64)
    assert out.shape == (64, 64, 3)
    assert lb == Letterbox(scale=0.32, pad_x=0.0, pad_y=16.0)
    assert (out[:16] == 114).all() and (out[48:] == 114).all() and (out[16:48] == 7).all()
    back = lb.to_original_tlbr(np.array([[0.0, 16.0, 64.0, 48.0], [16.0, 24.0, 32.0, 40.0]]), 200, 100)
    np.testing.assert_allclose(back, [[0, 0, 200, 100], [50, 25, 100, 75]])


def test_letterbox_odd_padding_and_clipping():
    img = np.zeros((100, 300, 3), np.uint8)            # scale 64/300, new h round(21.33)=21, pad 43 -> 21 top, 22 bottom
    out, lb = letterbox(img, 64)
    assert out.shape == (64, 64, 3) and lb.pad_y == 21.0 and lb.pad_x == 0.0
    assert (out[:21] == 114).all() and (out[42:] == 114).all() and (out[21:42] == 0).all()
    back = lb.to_original_tlbr(np.array([[-5.0, 0.0, 70.0, 64.0]]), 300, 100)
    np.testing.assert_allclose(back, [[0, 0, 300, 100]])   # outside the image -> clipped


def test_cxcywh_to_tlbr():
    np.testing.assert_allclose(cxcywh_to_tlbr(np.array([[10.0, 20.0, 4.0, 6.0]])), [[8, 17, 12, 23]])


def test_nms_class_aware_exact():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    cls = np.array([0, 0, 0, 1])
    # IoU(A, B) = 90 / 110 = 0.818; D overlaps A fully but is another class
    assert nms_tlbr(boxes, scores, 0.45, cls).tolist() == [0, 2, 3]
    assert nms_tlbr(boxes, scores, 0.45).tolist() == [0, 2]              # class-agnostic: D suppressed
    assert nms_tlbr(boxes, scores, 0.85, cls).tolist() == [0, 1, 2, 3]   # 0.818 <= 0.85: B kept
    assert nms_tlbr(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_decode_yolov5_and_yolov8_layouts():
    v5 = np.zeros((3, 5 + 3), np.float32)               # 3 classes: person=0
    v5[0, :5] = [10, 10, 4, 4, 0.5]; v5[0, 5:] = [0.8, 0.1, 0.1]   # person 0.4
    v5[1, :5] = [30, 30, 2, 2, 0.9]; v5[1, 5:] = [0.1, 0.9, 0.0]   # class 1
    v5[2, :5] = [50, 50, 2, 2, 0.2]; v5[2, 5:] = [0.9, 0.0, 0.0]   # person 0.18 < conf
    tlbr, s, c = decode_yolo(v5, 0.25, [0], layout="v5")
    np.testing.assert_allclose(tlbr, [[8, 8, 12, 12]]); np.testing.assert_allclose(s, [0.4], rtol=1e-6)
    assert c.tolist() == [0]
    v8 = np.zeros((4 + 2, 5), np.float32)               # channels-first, no objectness
    v8[:, 0] = [10, 10, 4, 4, 0.7, 0.1]
    v8[:, 1] = [20, 20, 2, 2, 0.1, 0.95]
    tlbr, s, c = decode_yolo(v8, 0.25, [0], layout="v8")
    np.testing.assert_allclose(tlbr, [[8, 8, 12, 12]]); np.testing.assert_allclose(s, [0.7], rtol=1e-6)
    tlbr, s, c = decode_yolo(v8, 0.25, [0, 1], layout="v8")
    assert c.tolist() == [0, 1]
    auto = np.zeros((84, 8400), np.float32)            # real YOLOv8 shape is recognised
    auto[:, 3] = 0; auto[:4, 3] = [100, 100, 10, 20]; auto[4, 3] = 0.9
    tlbr, s, _ = decode_yolo(auto, 0.25, [0])
    np.testing.assert_allclose(tlbr, [[95, 90, 105, 110]])


FRAMES = [1, 150, 300, 450, 600, 750]


@pytest.fixture(scope="module")
def pets_frames(pets_dir: Path):
    seq = MOTSequence(pets_dir)
    return seq, [seq.frame_image(f) for f in FRAMES]


def _recall_precision(seq: MOTSequence, results) -> tuple[float, float]:
    gt = seq.gt()
    tp = n_gt = n_det = 0
    for f, dets in zip(FRAMES, results):
        g = tlwh_to_tlbr(gt.tlwh[gt.frame == f])
        d = np.array([x.tlbr for x in dets]).reshape(-1, 4)
        iou = iou_matrix_tlbr(g, d)
        r, c = linear_sum_assignment(-iou)
        tp += int((iou[r, c] >= 0.5).sum()); n_gt += len(g); n_det += len(d)
    return tp / n_gt, tp / n_det


def test_onnx_yolov5n_on_pets_frames_both_backends(shared: Path, pets_frames):
    seq, images = pets_frames
    weights = shared / "weights" / "yolov5n.onnx"
    results = {}
    for backend in ("onnxruntime", "opencv"):
        det = build_detector(DetectorConfig(kind="onnx", weights=str(weights), backend=backend, conf=0.25))
        results[backend] = det.detect(images)              # batched interface, model batch 1 -> looped
        assert len(results[backend]) == len(images)
        rec, prec = _recall_precision(seq, results[backend])
        assert rec >= 0.9 and prec >= 0.9, (backend, rec, prec)   # measured: 31/32 recall, 31/33 precision
        for dets in results[backend]:
            for d in dets:
                assert d.class_id == 0 and 0.25 <= d.score <= 1
                x, y, w, h = d.tlwh
                assert x >= 0 and y >= 0 and x + w <= 768 + 1e-6 and y + h <= 576 + 1e-6 and w > 0 and h > 0
    for a, b in zip(results["onnxruntime"], results["opencv"]):
        assert len(a) == len(b)
        np.testing.assert_allclose([d.tlwh for d in a], [d.tlwh for d in b], atol=0.05)


def test_onnx_missing_file_is_model_error(tmp_path: Path):
    with pytest.raises(ModelError, match="not found"):
        build_detector(DetectorConfig(kind="onnx", weights=str(tmp_path / "none.onnx")))


def test_unknown_kind_lists_valid_names():
    cfg = DetectorConfig()
    object.__setattr__(cfg, "kind", "ssd")
    with pytest.raises(ConfigError, match="onnx, ultralytics"):
        build_detector(cfg)


def test_ultralytics_untrained_yaml_model_plumbing(pets_frames):
    _, images = pets_frames
    det = build_detector(DetectorConfig(kind="ultralytics", weights="yolo11n.yaml", conf=0.0, imgsz=160, device="cpu"))
    out = det.detect(images[:3])
    assert len(out) == 3
    assert sum(len(d) for d in out) > 0               # random weights, conf 0 -> some boxes survive NMS
    for dets in out:
        for d in dets:
            assert d.class_id == 0 and d.tlwh.shape == (4,) and d.tlwh.dtype == np.float64
            assert d.tlwh[0] >= 0 and d.tlwh[1] >= 0 and d.tlwh[0] + d.tlwh[2] <= 768 + 1e-3
    cats = build_detector(DetectorConfig(weights="yolo11n.yaml", conf=0.0, imgsz=160, device="cpu", classes=[15]))
    assert all(d.class_id == 15 for dets in cats.detect(images[:1]) for d in dets)
    assert det.detect([]) == []


def test_ultralytics_offline_missing_weights_one_line(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)                        # no yolo11n.pt lying in the working directory
    try:
        det = build_detector(DetectorConfig(weights="yolo11n.pt"))
    except ModelError as err:
        msg = str(err)
        assert "\n" not in msg and "yolo11n.pt" in msg and "onnx" in msg and "local" in msg
    else:  # online machine: the download worked, nothing to check here
        assert det is not None
        pytest.skip("weights could be downloaded (online)")


def test_missing_local_weights_path(tmp_path: Path):
    with pytest.raises(ModelError, match="not found"):
        build_detector(DetectorConfig(weights=str(tmp_path / "mine.pt")))


def test_mot_det_file_detector(pets_dir: Path):
    seq = MOTSequence(pets_dir)
    boxes = seq.det("det")
    det = MotDetFileDetector(boxes)
    f1 = det.for_frame(1)
    assert len(f1) == int((boxes.frame == 1).sum())
    np.testing.assert_allclose(sorted(d.tlwh[0] for d in f1), sorted(boxes.tlwh[boxes.frame == 1, 0]))
    assert det.for_frame(10_000) == [] and len(det.detect_frames([1, 2])) == 2
