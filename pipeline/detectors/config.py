"""Detector configuration schema and the ``Detector`` protocol."""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np
from pydantic import Field, model_validator

from pipeline.core.configio import StrictModel
from pipeline.core.types import Detection


class DetectorConfig(StrictModel):
    """Which detector to build. ``weights``: Ultralytics name/.pt/.onnx/.yaml or an ONNX file.

    trust_weights: Ultralytics ``.pt`` files are unpickled restricted to the torch/Ultralytics
    classes a checkpoint holds, and only the model ``.yaml`` files shipped with Ultralytics are
    built; true loads any file unrestricted (its code runs: only for files you trust), with a
    logged warning.

    Speed options of ``kind: onnx`` (docs/speed.md, "Detector"; measured by tools/bench_detector.py):

    * ``backend``: ``onnxruntime`` (default), ``openvino`` (PyPI ``openvino``; x86 AVX2/AVX-512 CPUs, Intel
      or AMD; reads the ONNX file itself) or ``opencv`` (OpenCV DNN, fp32, batch 1).
    * ``precision``: ``fp32`` (default); ``int8``: the model statically quantised (QDQ, per-channel weights)
      with ``calibration`` images, made on first use and cached in ``model_cache`` (or ``weights`` is already
      an INT8 model, e.g. from ``tools/quantize_detector.py``); runs on onnxruntime or openvino.
      ``bf16``: openvino only, on CPUs with AVX512_BF16/AMX (elsewhere it runs fp32, with a logged warning).
      ``auto``: openvino only: on a CPU with native bf16, fp32 and bf16 are timed on the first detector call
      (5 calls each, interleaved, medians) and bf16 is kept only if >= 10 % faster; elsewhere fp32. The choice is
      logged. Native bf16 is faster on some CPUs (AMD Zen 4: 1.37x) and slower on others (a Xeon without AMX:
      0.7-0.85x), so the shipped configs use ``auto`` (docs/speed.md).
    * ``imgsz``: the network input's long side (640 / 512 / 416 measured). ``rect: true``: letterbox to the
      camera's aspect ratio and pad only to a multiple of 32 (768x576 -> 640x480 at 640, not 640x640);
      needs an ONNX model with a dynamic input height/width: a fixed-size YOLOv5 export is converted on
      first use (cached in ``model_cache``). ``rect: false`` (default): the square letterbox as before.
    * ``threads``: the backend's intra-op threads (None: its default, one per core). Set, OpenVINO does not pin
      them to cores (a process sized to a share of the machine: pinned, every such process would use the same
      first cores; docs/scaling.md). ``backend: opencv`` applies it with ``cv2.setNumThreads``, which is
      process-wide (OpenCV's other work in the process uses that many threads too).
    * ``streams`` (openvino): 1 (default) = one image after another, each over all threads (PERFORMANCE_HINT
      LATENCY); n > 1 = n CPU streams (PERFORMANCE_HINT THROUGHPUT): the cameras' frames of one detector call run
      as parallel infer requests. Same boxes; more frames/s when a call has several frames (several cameras).
      Works on a fixed batch-1 export too (each request is one frame), with or without ``rect``.
    * ``device``: ``auto`` / ``cpu`` / ``cuda[:N]`` / ``tensorrt[:N]``: onnxruntime's CUDA (or TensorRT, then
      CUDA) execution provider when the installed onnxruntime has it, else the CPU with a warning.
    * ``calibration``: a folder of images (jpg/png) for INT8 calibration, not frames of the clip you
      evaluate on (only with ``precision: int8``; refused otherwise, and with weights already INT8);
      ``calibration_frames``: how many of them (evenly spaced by name).
    * ``model_cache``: the folder for derived models (dynamic-size cut, INT8), keyed by the source file's hash
      (INT8: and the calibration images' contents). None (default): ``detector_models`` in the per-user cache
      folder (``$REID_CACHE_DIR``, else ``~/.cache/reid-pipeline``; created 0700, refused when another user's or
      writable by others). Relative: against cams.yaml's folder (``load_cams_config``), else the working
      directory.
    """

    kind: Literal["ultralytics", "onnx"] = "ultralytics"
    weights: str = "yolo11n.pt"
    conf: float = Field(0.25, ge=0.0, le=1.0)
    iou: float = Field(0.45, ge=0.0, le=1.0)
    imgsz: int = Field(640, ge=32)
    device: str = "auto"
    backend: Literal["onnxruntime", "openvino", "opencv"] = "onnxruntime"
    precision: Literal["fp32", "bf16", "int8", "auto"] = "fp32"
    rect: bool = False
    threads: int | None = Field(None, ge=1, le=256)
    streams: int = Field(1, ge=1, le=64)
    calibration: str | None = None
    calibration_frames: int = Field(64, ge=1, le=10000)
    model_cache: str | None = None
    classes: list[int] = Field(default_factory=lambda: [0])
    trust_weights: bool = False

    @model_validator(mode="after")
    def _onnx_options(self) -> "DetectorConfig":
        onnx_only = [k for k, on in (("backend", self.backend != "onnxruntime"), ("precision", self.precision != "fp32"),
                                     ("rect", self.rect), ("threads", self.threads is not None)) if on]
        if self.kind != "onnx" and onnx_only:
            raise ValueError(f"detector.{onnx_only[0]}: only for kind: onnx (kind is {self.kind})")
        if self.precision in ("bf16", "auto") and self.backend != "openvino":
            raise ValueError(f"detector.precision: {self.precision} needs backend: openvino (backend is {self.backend})")
        if self.precision != "fp32" and self.backend == "opencv":
            raise ValueError(f"detector.precision: {self.precision} needs backend onnxruntime or openvino (backend is opencv)")
        if self.backend in ("openvino", "opencv") and self.device.strip().lower() not in ("auto", "cpu"):
            raise ValueError(f"detector.device: {self.device} needs backend: onnxruntime (backend {self.backend} "
                             "runs on the CPU here); use device: cpu or auto")
        if self.streams > 1 and self.backend != "openvino":
            raise ValueError(f"detector.streams: {self.streams} needs backend: openvino (backend is {self.backend})")
        if self.rect and self.backend == "opencv":
            raise ValueError("detector.rect: needs backend onnxruntime or openvino (opencv runs the square export)")
        if self.calibration is not None and self.precision != "int8":
            raise ValueError(f"detector.calibration: only used with precision: int8 (precision is {self.precision}); "
                             "remove it or set precision: int8")
        if self.rect and self.imgsz % 32:
            raise ValueError(f"detector.imgsz: {self.imgsz} with rect: true must be a multiple of 32 (the model stride)")
        return self


class Detector(Protocol):
    def detect(self, images_bgr: list[np.ndarray]) -> list[list[Detection]]:
        """Batch of BGR uint8 (H, W, 3) images -> per image, detections (tlwh in original pixels)."""
        ...
