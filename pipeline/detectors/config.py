"""Detector configuration schema and the ``Detector`` protocol."""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np
from pydantic import Field

from pipeline.core.configio import StrictModel
from pipeline.core.types import Detection


class DetectorConfig(StrictModel):
    """Which detector to build. ``weights``: Ultralytics name/.pt/.onnx/.yaml or an ONNX file.

    trust_weights: Ultralytics ``.pt`` files are unpickled restricted to the torch/Ultralytics
    classes a checkpoint holds, and only the model ``.yaml`` files shipped with Ultralytics are
    built; true loads any file unrestricted (its code runs: only for files you trust), with a
    logged warning."""

    kind: Literal["ultralytics", "onnx"] = "ultralytics"
    weights: str = "yolo11n.pt"
    conf: float = Field(0.25, ge=0.0, le=1.0)
    iou: float = Field(0.45, ge=0.0, le=1.0)
    imgsz: int = Field(640, ge=32)
    device: str = "auto"
    backend: Literal["onnxruntime", "opencv"] = "onnxruntime"
    classes: list[int] = Field(default_factory=lambda: [0])
    trust_weights: bool = False


class Detector(Protocol):
    def detect(self, images_bgr: list[np.ndarray]) -> list[list[Detection]]:
        """Batch of BGR uint8 (H, W, 3) images -> per image, detections (tlwh in original pixels)."""
        ...
