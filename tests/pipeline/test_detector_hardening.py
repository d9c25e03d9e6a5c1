"""Detector settings that were accepted and ignored, or gave wrong results silently (probe_speed findings 3, 5,
7, 10, 11, 12, 13): each is now applied or refused in one line. Real yolov5n.onnx and PETS09-S2L1 frames."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from pipeline.camconfig import load_cams_config
from pipeline.core.configio import validate
from pipeline.core.errors import ConfigError
from pipeline.detectors import DetectorConfig, build_detector
from pipeline.detectors.models import resolve_model


@pytest.fixture(scope="module")
def frames(pets_dir: Path) -> list[np.ndarray]:
    return [cv2.imread(str(pets_dir / "img1" / f"{i:06d}.jpg")) for i in (1, 100)]


def _boxes(dets) -> np.ndarray:
    return np.array([d.tlwh for d in dets]).reshape(-1, 4)


# ------------------------------------------------------------------ finding 3: kind ultralytics on a YOLOv5 ONNX

def test_ultralytics_refuses_a_yolov5_layout_onnx_in_one_line(weights: Path):
    with pytest.raises(ConfigError) as err:
        build_detector(DetectorConfig(kind="ultralytics", weights=str(weights)))
    msg = str(err.value)
    assert msg.startswith("detector.kind: ultralytics cannot decode") and "(1, 25200, 85)" in msg
    assert msg.endswith("use kind: onnx for this file") and "\n" not in msg


def _onnx_with_output(path: Path, batch: int | str, out_shape: list) -> Path:
    """A valid ONNX file: image input (batch, 3, 32, 32), one output of ``out_shape`` (a Constant)."""
    value = np.zeros([d if isinstance(d, int) else 1 for d in out_shape], np.float32)
    node = helper.make_node("Constant", [], ["output0"], value=onnx.numpy_helper.from_array(value))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, 32, 32])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)])
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_ultralytics_onnx_layout_and_batch(tmp_path: Path):
    from pipeline.detectors.ultralytics_yolo import ultralytics_onnx_batch

    assert ultralytics_onnx_batch(_onnx_with_output(tmp_path / "v8.onnx", 1, [1, 84, 525])) == 1  # one frame per call
    assert ultralytics_onnx_batch(_onnx_with_output(tmp_path / "dyn.onnx", "b", ["b", 84, 525])) is None
    with pytest.raises(ConfigError, match="has a fixed batch of 4; kind: ultralytics needs"):
        ultralytics_onnx_batch(_onnx_with_output(tmp_path / "b4.onnx", 4, [4, 84, 525]))
    with pytest.raises(ConfigError, match="YOLOv5-layout export"):
        ultralytics_onnx_batch(_onnx_with_output(tmp_path / "v5.onnx", 1, [1, 525, 85]))


# ------------------------------------------------------------------ finding 5: settings that were ignored

def test_streams_run_parallel_on_a_fixed_batch_one_export(weights: Path, frames):
    kw = dict(kind="onnx", weights=str(weights), backend="openvino", threads=1)
    one = build_detector(DetectorConfig(streams=1, **kw))
    two = build_detector(DetectorConfig(streams=2, **kw))
    assert two.fixed_batch is None  # was 1: every call went one frame at a time through the LATENCY model
    got, ref = two.detect(frames), one.detect(frames)
    assert len(two.runtime._queues) == 1  # the frames ran as parallel requests
    for a, b in zip(got, ref):
        assert len(a) == len(b) > 0
        np.testing.assert_allclose(_boxes(a), _boxes(b), atol=1e-3)


def test_imgsz_above_a_fixed_export_is_said_once(weights: Path, caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.detectors.onnx_yolo"):
        det = build_detector(DetectorConfig(kind="onnx", weights=str(weights), imgsz=1280))
    assert det.cfg.imgsz == 640
    said = [r.getMessage() for r in caplog.records if "detector.imgsz: 1280" in r.getMessage()]
    assert len(said) == 1 and "fixed input size 640" in said[0]


def test_opencv_applies_threads(weights: Path):
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        build_detector(DetectorConfig(kind="onnx", weights=str(weights), backend="opencv", threads=3))
        assert cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)


def test_calibration_without_int8_is_refused_at_load():
    with pytest.raises(ConfigError) as err:
        validate(DetectorConfig, {"kind": "onnx", "calibration": "calib"}, "cams.yaml")
    assert "detector.calibration: only used with precision: int8 (precision is fp32)" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="precision is auto"):
        validate(DetectorConfig, {"kind": "onnx", "backend": "openvino", "precision": "auto", "calibration": "c"}, "x")


# ------------------------------------------------------------------ finding 11: opencv below the export's size

def test_opencv_below_the_fixed_size_pads_like_onnxruntime(weights: Path, frames):
    kw = dict(kind="onnx", weights=str(weights), imgsz=512)
    ref = build_detector(DetectorConfig(**kw)).detect(frames)
    got = build_detector(DetectorConfig(backend="opencv", **kw)).detect(frames)  # was a cv2.error traceback
    for a, b in zip(got, ref):
        assert len(a) == len(b) > 0
        np.testing.assert_allclose(_boxes(a), _boxes(b), atol=0.05)


# ------------------------------------------------------------------ finding 7: the INT8 cache key

def test_int8_cache_follows_the_calibration_images_contents(weights: Path, pets_dir: Path, tmp_path: Path):
    calib = tmp_path / "calib"
    calib.mkdir()
    img = cv2.imread(str(pets_dir / "img1" / "000001.jpg"))
    cv2.imwrite(str(calib / "a.bmp"), img)  # BMP: the same size whatever the pixels
    kw = dict(kind="onnx", weights=str(weights), precision="int8", calibration=str(calib), calibration_frames=1,
              imgsz=64, model_cache=str(tmp_path / "cache"))
    first = resolve_model(DetectorConfig(**kw))
    cv2.imwrite(str(calib / "a.bmp"), 255 - img)  # other pixels, same name and size
    second = resolve_model(DetectorConfig(**kw))
    assert first != second and first.is_file() and second.is_file()
    # weights that are already INT8: calibration images would not be used, so they are refused
    with pytest.raises(ConfigError, match="is already an INT8 model"):
        resolve_model(DetectorConfig(**{**kw, "weights": str(first)}))


# ------------------------------------------------------------------ finding 10: model_cache in cams.yaml

def test_model_cache_is_relative_to_the_config_file(pets_dir: Path, weights: Path, tmp_path: Path):
    cfg_dir = tmp_path / "conf"
    cfg_dir.mkdir()
    (cfg_dir / "cams.yaml").write_text(
        f"cameras:\n  - id: a\n    source: {pets_dir / 'img1'}\n"
        f"detector:\n  kind: onnx\n  weights: {weights}\n  model_cache: cache/models\n")
    cfg = load_cams_config(cfg_dir / "cams.yaml")
    assert cfg.detector.model_cache == str(cfg_dir / "cache" / "models")
    (cfg_dir / "cams.yaml").write_text(f"cameras:\n  - id: a\n    source: {pets_dir / 'img1'}\n")
    assert load_cams_config(cfg_dir / "cams.yaml").detector.model_cache is None  # the per-user cache folder


def test_default_model_cache_is_a_private_per_user_folder(weights: Path, tmp_path: Path, monkeypatch):
    """Without ``model_cache`` derived models go to ``$REID_CACHE_DIR/detector_models`` (0700), never to a folder
    under the working directory; a cache folder writable by others is refused in one line."""
    import os
    import stat

    from pipeline.core.errors import ModelError
    from pipeline.detectors.config import DetectorConfig
    from pipeline.detectors.models import model_cache

    monkeypatch.setenv("REID_CACHE_DIR", str(tmp_path / "cache"))
    folder = model_cache(DetectorConfig(kind="onnx", weights=str(weights)))
    assert folder == tmp_path / "cache" / "detector_models"
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    os.chmod(folder, 0o777)
    with pytest.raises(ModelError, match="detector's model cache folder is writable by group or others") as e:
        model_cache(DetectorConfig(kind="onnx", weights=str(weights)))
    assert "\n" not in str(e.value)
    assert model_cache(DetectorConfig(kind="onnx", weights=str(weights), model_cache="x")) == Path("x")


# ------------------------------------------------------------------ finding 12: detect's .part file

def _sequence(pets_dir: Path, root: Path, good: int, corrupt: bool) -> Path:
    seq = root / "SEQ"
    (seq / "img1").mkdir(parents=True)
    n = good + int(corrupt)
    (seq / "seqinfo.ini").write_text(f"[Sequence]\nname=SEQ\nimDir=img1\nframeRate=7\nseqLength={n}\nimWidth=768\n"
                                     "imHeight=576\nimExt=.jpg\n")
    for i in range(1, good + 1):
        shutil.copy(pets_dir / "img1" / f"{i:06d}.jpg", seq / "img1" / f"{i:06d}.jpg")
    if corrupt:
        (seq / "img1" / f"{n:06d}.jpg").write_bytes(b"not a jpeg")
    return seq


def test_detect_failure_keeps_finished_rows_and_leaves_no_part(pets_dir: Path, weights: Path, tmp_path: Path):
    from pipeline.cli import main

    seq = _sequence(pets_dir, tmp_path, good=4, corrupt=True)
    out = tmp_path / "det" / "d.txt"
    assert main(["detect", str(seq), "--weights", str(weights), "--batch", "2", "--out", str(out)]) == 2
    kept = out.with_name("d.txt.frames-1-4.partial")
    assert not out.exists() and not out.with_name("d.txt.part").exists()
    rows = np.loadtxt(kept, delimiter=",", ndmin=2)
    assert set(rows[:, 0].astype(int)) == {1, 2, 3, 4}
    # nothing computed: nothing left behind
    empty = _sequence(pets_dir, tmp_path / "e", good=0, corrupt=True)
    out2 = tmp_path / "det" / "e.txt"
    assert main(["detect", str(empty), "--weights", str(weights), "--out", str(out2)]) == 2
    assert sorted(p.name for p in out2.parent.iterdir()) == ["d.txt.frames-1-4.partial"]


# ------------------------------------------------------------------ finding 13: what precision auto ran

def test_run_info_names_the_precision_auto_chose(weights: Path, frames):
    det = build_detector(DetectorConfig(kind="onnx", weights=str(weights), backend="openvino", precision="auto",
                                        rect=True, imgsz=320, threads=1))
    det.detect(frames[:1])
    info = det.run_info()
    hint = det.runtime.inference_precision
    assert info["precision"] == "auto" and info["ran_precision"] == ("fp32" if hint == "f32" else hint)
    if det.runtime.auto_times_s:  # a CPU with native bf16: both were timed
        assert set(info["auto_ms_per_call"]) == {"fp32", "bf16"}
    ort = build_detector(DetectorConfig(kind="onnx", weights=str(weights))).run_info()
    assert (ort["backend"], ort["precision"], ort["ran_precision"]) == ("onnxruntime", "fp32", "fp32")
