"""The re-id encoder's network run by OpenVINO on the CPU (``encoder.backend: openvino``).

The model is the encoder's ONNX export (``reid_models.export.export_onnx``, input ``(N, 3, H, W)`` with a dynamic
batch), compiled once with a dynamic batch dimension, so any number of crops (all cameras' crops of an iteration
arrive in one call) runs in one forward without recompiling. ``precision``: 'fp32' (default; the embeddings match
torch's to float rounding, tests/reid_models/test_ov_encoder.py) or 'bf16' (on CPUs with native bf16, else fp32
with a warning: pipeline/core/openvino_cpu.py). ``threads``: OpenVINO's inference threads (None: one per core,
pinned to cores; set: not pinned).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core.errors import ModelError


class OpenVinoEncoderModel:
    """(N, 3, H, W) float32 normalised crops -> (N, D) float32 raw (not normalised) features."""

    def __init__(self, onnx_path: Path, precision: str = "fp32", threads: int | None = None) -> None:
        from pipeline.core.openvino_cpu import cpu_capabilities, import_openvino, inference_precision

        ov = import_openvino("encoder.backend")
        core = ov.Core()
        try:
            model = core.read_model(str(onnx_path))
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises its own types for bad files
            raise ModelError(f"cannot load ONNX encoder {onnx_path} in OpenVINO: {str(exc).splitlines()[0]}") from exc
        shape = model.inputs[0].get_partial_shape()
        if shape[0].is_static:  # a fixed-batch export: make the batch dynamic (the crops per call vary)
            model.reshape({0: ov.PartialShape([-1] + [d.get_length() for d in list(shape)[1:]])})
        self.inference_precision = inference_precision(precision, cpu_capabilities(core), "encoder.precision")
        config: dict = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": self.inference_precision}
        if threads is not None:  # a share of a machine other processes use too: unpinned (see the detector's)
            config.update({"INFERENCE_NUM_THREADS": int(threads), "ENABLE_CPU_PINNING": False})
        self._request = core.compile_model(model, "CPU", config).create_infer_request()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self._request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})
        return self._request.get_output_tensor(0).data.copy()
