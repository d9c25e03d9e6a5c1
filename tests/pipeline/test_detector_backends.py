"""Detector speed options (issue 16): rectangular letterbox geometry and the YOLOv5 Detect decode on hand-computed
boxes; the dynamic-size cut, OpenVINO and INT8 against onnxruntime fp32 on real PETS09-S2L1 frames; config
errors; the onnxruntime provider choice for device cuda / tensorrt and its CPU fallback."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from pipeline.core.configio import validate
from pipeline.core.errors import ConfigError
from pipeline.core.types import iou_matrix_tlbr
from pipeline.detectors import DetectorConfig, build_detector
from pipeline.detectors.calibration import write_market_mosaics
from pipeline.detectors.geometry import Letterbox, letterbox, letterbox_shape
from pipeline.detectors.heads import decode_yolov5_heads
from pipeline.detectors.onnx_graph import conv_gflops, is_dynamic_hw
from pipeline.detectors.runtimes import ort_providers
from pipeline.evaluation.detection_ap import average_precision, detection_scores, detections_as_boxes
from pipeline.mot import MOTSequence

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


def test_rect_letterbox_pets_640_has_no_padding():
    img = np.full((576, 768, 3), 9, np.uint8)             # scale 640/768 = 5/6 -> 640x480, a multiple of 32
    out, lb = letterbox(img, 640, stride=32)
    assert out.shape == (480, 640, 3) and lb == Letterbox(scale=640 / 768, pad_x=0.0, pad_y=0.0)
    back = lb.to_original_tlbr(np.array([[64.0, 48.0, 128.0, 144.0]]), 768, 576)
    np.testing.assert_allclose(back, [[76.8, 57.6, 153.6, 172.8]])
    assert letterbox_shape(576, 768, 640) == (640 / 768, 640, 480, 640, 640)   # square: canvas 640x640


def test_rect_letterbox_416_pads_short_side_to_stride():
    img = np.full((576, 768, 3), 9, np.uint8)             # scale 416/768: 416x312 -> canvas 416x320, pad 4 + 4
    out, lb = letterbox(img, 416, stride=32)
    assert out.shape == (320, 416, 3) and lb.pad_x == 0.0 and lb.pad_y == 4.0
    assert (out[:4] == 114).all() and (out[316:] == 114).all() and (out[4:316] == 9).all()
    back = lb.to_original_tlbr(np.array([[65.0, 69.0, 130.0, 134.0], [0.0, 4.0, 416.0, 316.0]]), 768, 576)
    np.testing.assert_allclose(back, [[120, 120, 240, 240], [0, 0, 768, 576]])


def test_rect_letterbox_portrait_camera_odd_padding():
    img = np.zeros((576, 300, 3), np.uint8)               # scale 640/576: 333x640 -> canvas 352x640, pad 19 = 9 + 10
    out, lb = letterbox(img, 640, stride=32)
    assert out.shape == (640, 352, 3) and lb.pad_x == 9.0 and lb.pad_y == 0.0
    assert (out[:, :9] == 114).all() and (out[:, 342:] == 114).all() and (out[:, 9:342] == 0).all()
    back = lb.to_original_tlbr(np.array([[9.0 + 100 * 640 / 576, 0.0, 9.0 + 200 * 640 / 576, 640.0]]), 300, 576)
    np.testing.assert_allclose(back, [[100, 0, 200, 576]])


def test_decode_yolov5_heads_hand_computed():
    anchors = np.array([[[10, 13], [16, 30], [33, 23]]], float)
    fmap = np.full((3 * 6, 2, 3), -10.0, np.float32)     # 1 class: per anchor x, y, w, h, obj, person
    fmap[6:12, 1, 2] = [0, 0, 0, 0, 10, 10]               # anchor 1, row 1, col 2: s = 0.5 for x, y, w, h
    tlbr, scores, cls = decode_yolov5_heads([fmap], anchors, np.array([8.0]), 0.25, [0])
    # cx = (2*0.5 - 0.5 + 2) * 8 = 20, cy = (2*0.5 - 0.5 + 1) * 8 = 12, w = (2*0.5)^2 * 16 = 16, h = 30
    np.testing.assert_allclose(tlbr, [[12, -3, 28, 27]])
    np.testing.assert_allclose(scores, [(1 / (1 + np.exp(-10))) ** 2], rtol=1e-6)
    assert cls.tolist() == [0]
    assert len(decode_yolov5_heads([fmap], anchors, np.array([8.0]), 0.25, [1])[0]) == 0   # other class only


def test_detection_ap_hand_computed():
    gt = detections_as_boxes(np.array([1, 1]), np.array([[0, 0, 10, 10], [20, 0, 10, 10]]), np.ones(2))
    dets = detections_as_boxes(np.array([1, 1, 1]), np.array([[0, 0, 10, 10], [50, 50, 5, 5], [20, 0, 10, 10]]),
                               np.array([0.9, 0.8, 0.3]))
    s = detection_scores(gt, dets, "MOT15", conf=0.5)
    # TP, FP, TP: recall 0.5, 0.5, 1; precision 1, 0.5, 2/3 -> AP = 0.5 * 1 + 0.5 * 2/3
    assert s.ap50 == pytest.approx(0.5 + 1 / 3) and (s.precision, s.recall, s.n_det, s.n_gt) == (0.5, 0.5, 2, 2)
    assert average_precision(np.array([1.0]), np.array([1.0])) == 1.0


@pytest.fixture(scope="module")
def frames(pets_dir: Path) -> list[np.ndarray]:
    seq = MOTSequence(pets_dir)
    return [seq.frame_image(f) for f in (1, 200, 400, 600)]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("detector_models")


def _boxes(dets) -> list[np.ndarray]:
    return [np.array([d.tlwh for d in frame]).reshape(-1, 4) for frame in dets]


def _matched_share(ref, other, iou_min: float) -> tuple[int, int]:
    matched = total = 0
    for a, b in zip(ref, other):
        iou = iou_matrix_tlbr(np.array([d.tlbr for d in a]).reshape(-1, 4), np.array([d.tlbr for d in b]).reshape(-1, 4))
        r, c = linear_sum_assignment(-iou)
        matched += int((iou[r, c] > iou_min).sum())
        total += len(a)
    return matched, total


def test_dynamic_cut_square_equals_the_original_export(weights, frames, cache):
    ref = build_detector(DetectorConfig(kind="onnx", weights=str(weights))).detect(frames)
    cut_cfg = DetectorConfig(kind="onnx", weights=str(weights), rect=True, model_cache=str(cache))
    det = build_detector(cut_cfg)
    assert is_dynamic_hw(det.model_path) and det.model_path.parent == cache
    assert conv_gflops(det.model_path, 640, 640) == pytest.approx(conv_gflops(weights, 640, 640))  # 4.47
    det.cfg = det.cfg.model_copy(update={"rect": False})                  # same cut model, square input
    square = det.detect(frames)
    assert [len(f) for f in square] == [len(f) for f in ref] and sum(len(f) for f in ref) > 15
    for a, b in zip(_boxes(ref), _boxes(square)):
        np.testing.assert_allclose(a, b, atol=1e-3)
    rect = build_detector(cut_cfg).detect(frames)                          # 640x480: the same people
    matched, total = _matched_share(ref, rect, 0.8)
    assert matched >= 0.9 * total, (matched, total)


def test_openvino_fp32_matches_onnxruntime(weights, frames, cache):
    kw = dict(kind="onnx", weights=str(weights), rect=True, imgsz=512, model_cache=str(cache), threads=1)
    ort_boxes = _boxes(build_detector(DetectorConfig(backend="onnxruntime", **kw)).detect(frames))
    ov = build_detector(DetectorConfig(backend="openvino", **kw))
    ov_boxes = _boxes(ov.detect(frames))
    assert [len(b) for b in ort_boxes] == [len(b) for b in ov_boxes]
    for a, b in zip(ort_boxes, ov_boxes):
        np.testing.assert_allclose(a, b, atol=0.05)


def test_int8_matches_fp32_boxes(weights, frames, cache, shared, tmp_path):
    """INT8 made from the config (calibration: 8 Market-1501 mosaics, not PETS; 416 to keep the test short)
    on both backends: most fp32 boxes have an INT8 box at IoU > 0.9."""
    calib = tmp_path / "calib"
    write_market_mosaics(shared / "data" / "reid" / "Market-1501" / "bounding_box_train", calib, 8)
    kw = dict(kind="onnx", weights=str(weights), rect=True, imgsz=416, model_cache=str(cache))
    ref = build_detector(DetectorConfig(**kw)).detect(frames)
    for backend in ("onnxruntime", "openvino"):
        det = build_detector(DetectorConfig(backend=backend, precision="int8", calibration=str(calib), **kw))
        assert ".int8-" in det.model_path.name
        matched, total = _matched_share(ref, det.detect(frames), 0.9)
        assert matched >= 0.8 * total and total > 15, (backend, matched, total)


@pytest.mark.parametrize("values, message", [
    ({"kind": "onnx", "precision": "bf16"}, "detector.precision: bf16 needs backend: openvino"),
    ({"precision": "int8"}, "detector.precision: only for kind: onnx"),
    ({"kind": "onnx", "rect": True, "imgsz": 500}, "detector.imgsz: 500 with rect: true must be a multiple of 32"),
    ({"kind": "onnx", "backend": "openvino", "device": "cuda"}, "detector.device: cuda needs backend: onnxruntime"),
    ({"kind": "onnx", "backend": "opencv", "precision": "int8"}, "detector.precision: int8 needs backend"),
    ({"kind": "onnx", "backend": "tensorflow"}, "backend: Input should be"),
    ({"kind": "onnx", "backend": "opencv", "rect": True}, "detector.rect: needs backend onnxruntime or openvino"),
    ({"kind": "onnx", "threads": 0}, "threads: Input should be greater than or equal to 1"),
])
def test_bad_config_values_are_one_line_errors(values, message):
    with pytest.raises(ConfigError) as err:
        validate(DetectorConfig, values, "cams.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_int8_without_calibration_or_with_bad_folder(weights, tmp_path, cache):
    kw = dict(kind="onnx", weights=str(weights), precision="int8", model_cache=str(cache))
    with pytest.raises(ConfigError, match="^detector.calibration: precision int8 needs a folder") as err:
        build_detector(DetectorConfig(**kw))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="detector.calibration: no images"):
        build_detector(DetectorConfig(calibration=str(tmp_path), **kw))


def test_missing_openvino_is_a_one_line_error_naming_the_option(weights, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)      # import openvino -> ImportError
    with pytest.raises(ConfigError) as err:
        build_detector(DetectorConfig(kind="onnx", weights=str(weights), backend="openvino"))
    assert str(err.value).startswith("detector.backend: openvino needs the Python package 'openvino'")
    assert "\n" not in str(err.value)


def test_ort_providers_for_gpu_devices(caplog):
    assert ort_providers("cpu", [TRT, CUDA, CPU]) == [CPU]
    assert ort_providers("auto", [CUDA, CPU]) == [(CUDA, {"device_id": 0}), CPU]
    assert ort_providers("auto", [CPU]) == [CPU]
    assert ort_providers("cuda:1", [CUDA, CPU]) == [(CUDA, {"device_id": 1}), CPU]
    assert ort_providers("tensorrt", [TRT, CUDA, CPU]) == [(TRT, {"device_id": 0}), (CUDA, {"device_id": 0}), CPU]
    with caplog.at_level(logging.WARNING):
        assert ort_providers("cuda", [CPU]) == [CPU]
    assert "no CUDAExecutionProvider" in caplog.text and "running on the CPU" in caplog.text


def test_device_cuda_without_gpu_falls_back_to_cpu(weights, frames):
    """No GPU here (CI neither): device cuda must still detect, on the CPU, the same boxes."""
    cpu = build_detector(DetectorConfig(kind="onnx", weights=str(weights), device="cpu")).detect(frames[:1])
    det = build_detector(DetectorConfig(kind="onnx", weights=str(weights), device="cuda"))
    assert det.runtime.session.get_providers()[-1] == CPU
    for a, b in zip(_boxes(cpu), _boxes(det.detect(frames[:1]))):
        np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("flags, expected", [
    ("fpu sse2 avx2 fma", False),                       # AVX2 only (e.g. the AMD EPYC CI machines): 7-bit weights
    ("fpu sse2 avx2 avx512f avx512_vnni", True),         # Xeon with AVX-512 VNNI
    ("fpu sse2 avx2 avx_vnni", True),                    # AVX-VNNI
    ("fp asimd evtstrm aes", None),                      # not x86: unknown
])
def test_cpu_has_vnni_reads_the_cpu_flags(tmp_path, flags, expected):
    from pipeline.detectors.quantize import cpu_has_vnni

    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert cpu_has_vnni(info) is expected
    assert cpu_has_vnni(tmp_path / "missing") is None
