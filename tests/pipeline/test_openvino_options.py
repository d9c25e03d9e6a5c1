"""OpenVINO options of issue 16 (task S): detector.streams (parallel infer requests) gives the boxes of one stream on
real PETS09-S2L1 frames; bf16 falls back to fp32 on a CPU without native bf16 (detector and encoder); precision auto
keeps the faster of fp32 and bf16; config errors
are one line; the bench's new_default row is what the shipped configs run."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.camconfig import EncoderSettings
from pipeline.core import openvino_cpu
from pipeline.core.configio import validate
from pipeline.core.errors import ConfigError
from pipeline.detectors import DetectorConfig, build_detector
from pipeline.mot import MOTSequence

REPO = Path(__file__).resolve().parents[2]
NO_BF16 = ["WINOGRAD", "FP32", "INT8", "BIN", "EXPORT_IMPORT"]   # an AVX2-only x86 CPU's capabilities


@pytest.fixture(scope="module")
def frames(pets_dir: Path) -> list[np.ndarray]:
    seq = MOTSequence(pets_dir)
    return [seq.frame_image(f) for f in (1, 300, 600)]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("detector_models")


def _boxes(dets) -> list[np.ndarray]:
    return [np.array([d.tlwh for d in frame]).reshape(-1, 4) for frame in dets]


def test_streams_run_the_frames_of_a_call_in_parallel_with_the_same_boxes(weights, frames, cache):
    kw = dict(kind="onnx", weights=str(weights), backend="openvino", rect=True, model_cache=str(cache), threads=2)
    one = build_detector(DetectorConfig(**kw))
    two = build_detector(DetectorConfig(streams=2, **kw))
    assert one.runtime.fixed_batch == 1 and two.runtime.fixed_batch is None   # streams: the runtime takes the batch
    ref, got = one.detect(frames), two.detect(frames)
    assert sum(len(f) for f in ref) > 10
    assert [len(f) for f in got] == [len(f) for f in ref]
    for a, b in zip(_boxes(ref), _boxes(got)):                                # input order kept
        np.testing.assert_allclose(a, b, atol=1e-3)
    assert two.runtime._queues                                                 # the parallel path ran
    # a single frame (one camera): a plain request of a LATENCY-compiled model (all threads on the one image)
    got1 = two.detect(frames[1:2])
    np.testing.assert_allclose(_boxes(got1)[0], _boxes(ref)[1], atol=1e-3)
    hints = {key[1]: str(c.get_property("PERFORMANCE_HINT")) for key, c in two.runtime._compiled.items()}
    assert "THROUGHPUT" in hints[True] and "LATENCY" in hints[False], hints


def test_inference_precision_falls_back_to_fp32_without_native_bf16(caplog):
    assert openvino_cpu.inference_precision("bf16", ["BF16", "FP32"], "detector.precision") == "bf16"
    assert openvino_cpu.inference_precision("fp32", ["BF16", "FP32"], "detector.precision") == "f32"
    assert openvino_cpu.inference_precision("int8", ["BF16", "FP32"], "detector.precision") == "f32"
    with caplog.at_level(logging.WARNING):
        assert openvino_cpu.inference_precision("bf16", NO_BF16, "encoder.precision") == "f32"
    assert "encoder.precision: precision bf16 asked for, but this CPU has no native bf16" in caplog.text


def test_bf16_detector_on_a_cpu_without_bf16_runs_fp32(weights, frames, cache, monkeypatch, caplog):
    """The fallback path end to end: the CPU is told to lack bf16; the model is compiled with an f32 hint and gives
    the fp32 detector's boxes (a real bf16 run differs from them by more than 1e-3 px)."""
    kw = dict(kind="onnx", weights=str(weights), backend="openvino", rect=True, model_cache=str(cache), threads=1)
    ref = build_detector(DetectorConfig(**kw)).detect(frames[:1])
    monkeypatch.setattr(openvino_cpu, "cpu_capabilities", lambda core: list(NO_BF16))
    with caplog.at_level(logging.WARNING):
        det = build_detector(DetectorConfig(precision="bf16", **kw))
    assert det.runtime.inference_precision == "f32" and "no native bf16" in caplog.text
    got = det.detect(frames[:1])
    compiled = next(iter(det.runtime._compiled.values()))
    assert "float32" in str(compiled.get_property("INFERENCE_PRECISION_HINT"))   # <Type: 'float32'>
    for a, b in zip(_boxes(ref), _boxes(got)):
        np.testing.assert_allclose(a, b, atol=1e-3)


def test_auto_precision_keeps_bf16_only_when_clearly_faster():
    assert openvino_cpu.auto_candidates(["BF16", "FP32", "INT8"]) == ["f32", "bf16"]
    assert openvino_cpu.auto_candidates(NO_BF16) == ["f32"]
    # medians: f32 0.100 s, bf16 0.085 s < 0.9 x 0.100 -> bf16 (the 0.50 s call, a busy core, does not decide)
    assert openvino_cpu.choose_precision({"f32": [0.10, 0.50, 0.10], "bf16": [0.08, 0.085, 0.09]}) == "bf16"
    # bf16 5 % faster: inside the 10 % margin -> fp32, the exact one
    assert openvino_cpu.choose_precision({"f32": [0.10, 0.10, 0.10], "bf16": [0.095, 0.095, 0.095]}) == "f32"
    # bf16 slower (a Xeon without AMX) -> fp32
    assert openvino_cpu.choose_precision({"f32": [0.03, 0.03, 0.03], "bf16": [0.04, 0.04, 0.04]}) == "f32"
    assert openvino_cpu.choose_precision({"f32": [0.03]}) == "f32"
    assert openvino_cpu.choose_precision({"f32": [0.10], "bf16": [0.07]}, margin=0.35) == "f32"


def test_auto_precision_times_both_on_the_first_call_and_keeps_one(weights, frames, cache, caplog):
    """precision auto on this machine's real CPU: with native bf16 both hints are timed on the first call and only
    the chosen one's compiled models stay; without it fp32 runs untimed. Either way the boxes are those of the
    detector built with the chosen precision."""
    kw = dict(kind="onnx", weights=str(weights), backend="openvino", rect=True, model_cache=str(cache), threads=2,
              streams=2)
    det = build_detector(DetectorConfig(precision="auto", **kw))
    with caplog.at_level(logging.INFO):
        got = det.detect(frames[:2])
    rt = det.runtime
    native = "BF16" in openvino_cpu.cpu_capabilities(rt._core)
    assert rt.inference_precision in (("f32", "bf16") if native else ("f32",))
    if native:
        assert set(rt.auto_times_s) == {"f32", "bf16"} and all(t > 0 for t in rt.auto_times_s.values())
        assert "detector.precision auto: fp32" in caplog.text and "per call of 2 frame(s)" in caplog.text
    else:
        assert rt.auto_times_s == {}
    assert rt._compiled and all(key[-1] == rt.inference_precision for key in rt._compiled)
    assert all(key[-1] == rt.inference_precision for key in list(rt._queues) + list(rt._requests))
    fixed = build_detector(DetectorConfig(precision="bf16" if rt.inference_precision == "bf16" else "fp32", **kw))
    ref = fixed.detect(frames[:2])
    assert sum(len(f) for f in ref) > 5 and [len(f) for f in got] == [len(f) for f in ref]
    for a, b in zip(_boxes(ref), _boxes(got)):
        np.testing.assert_allclose(a, b, atol=1e-3)
    again = det.detect(frames[:2])                                     # later calls: no more timing
    assert len(rt._compiled) == 1 and [len(f) for f in again] == [len(f) for f in got]


def test_auto_precision_falls_back_to_fp32_when_bf16_does_not_compile(weights, frames, cache, monkeypatch, caplog):
    """The CPU claims native bf16 but compiling with the bf16 hint fails: a warning, fp32 kept, fp32's boxes."""
    from pipeline.detectors.runtimes import OpenVinoRuntime

    kw = dict(kind="onnx", weights=str(weights), backend="openvino", rect=True, model_cache=str(cache), threads=1)
    monkeypatch.setattr(openvino_cpu, "cpu_capabilities", lambda core: ["BF16", "FP32"])
    real = OpenVinoRuntime._compile

    def compile_or_fail(self, shape, throughput=False):
        if self.inference_precision == "bf16":
            raise RuntimeError("Exception from src/inference: bf16 is not supported here\nsecond line")
        return real(self, shape, throughput)

    monkeypatch.setattr(OpenVinoRuntime, "_compile", compile_or_fail)
    det = build_detector(DetectorConfig(precision="auto", **kw))
    with caplog.at_level(logging.WARNING):
        got = det.detect(frames[:1])
    assert det.runtime.inference_precision == "f32" and set(det.runtime.auto_times_s) == {"f32"}
    assert "detector.precision auto: bf16 does not run here (Exception from src/inference: bf16 is not" in caplog.text
    ref = build_detector(DetectorConfig(**kw)).detect(frames[:1])
    for a, b in zip(_boxes(ref), _boxes(got)):
        np.testing.assert_allclose(a, b, atol=1e-3)


@pytest.mark.parametrize("values, message", [
    ({"kind": "onnx", "precision": "auto"}, "detector.precision: auto needs backend: openvino (backend is onnxruntime)"),
    ({"kind": "onnx", "streams": 2}, "detector.streams: 2 needs backend: openvino (backend is onnxruntime)"),
    ({"kind": "onnx", "backend": "openvino", "streams": 0}, "streams: Input should be greater than or equal to 1"),
])
def test_bad_detector_values_are_one_line_errors(values, message):
    with pytest.raises(ConfigError) as err:
        validate(DetectorConfig, values, "cams.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("values, message", [
    ({"precision": "bf16"}, "encoder.precision: bf16 needs backend: openvino (backend is torch)"),
    ({"backend": "openvino", "device": "cuda"}, "encoder.device: cuda needs backend torch or onnx"),
    ({"backend": "tensorrt"}, "backend: Input should be 'torch', 'onnx' or 'openvino'"),
    ({"backend": "openvino", "precision": "int8"}, "precision: Input should be 'fp32' or 'bf16'"),
])
def test_bad_encoder_values_are_one_line_errors(values, message):
    with pytest.raises(ConfigError) as err:
        validate(EncoderSettings, values, "cams.yaml")
    text = str(err.value).replace("cams.yaml: ", "")
    assert message.replace("encoder.", "") in text and "\n" not in text


def test_missing_openvino_encoder_is_a_one_line_error(monkeypatch):
    from reid_models.encoder import AppearanceEncoder

    monkeypatch.setitem(sys.modules, "openvino", None)      # import openvino -> ImportError
    with pytest.raises(ConfigError) as err:
        AppearanceEncoder.from_checkpoint(None, backend="openvino")
    assert str(err.value).startswith("encoder.backend: openvino needs the Python package 'openvino'")
    assert "use encoder.backend: torch" in str(err.value) and "\n" not in str(err.value)


def _speed_keys(section: dict, like: dict) -> dict:
    return {k: section.get(k) for k in like}


@pytest.mark.parametrize("config", ["configs/demo_pets.yaml", "configs/cams.example.yaml"])
def test_shipped_configs_run_the_bench_new_default(config, tool_module):
    """tools/bench_speed.py's new_default row measures what the shipped configs run (docs/speed.md)."""
    NEW_DEFAULT = tool_module("bench_speed").NEW_DEFAULT
    data = yaml.safe_load((REPO / config).read_text())
    for section in ("detector", "encoder"):
        assert _speed_keys(data[section], NEW_DEFAULT[section]) == NEW_DEFAULT[section], (config, section)
    validate(DetectorConfig, data["detector"], config)
    validate(EncoderSettings, data["encoder"], config)
