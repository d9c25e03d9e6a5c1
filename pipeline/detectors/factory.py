"""Explicit detector factory: DetectorConfig.kind -> constructor."""

from __future__ import annotations

from typing import Callable

from pipeline.detectors.config import Detector, DetectorConfig
from pipeline.core.errors import ConfigError


def _ultralytics(cfg: DetectorConfig) -> Detector:
    from pipeline.detectors.ultralytics_yolo import UltralyticsDetector

    return UltralyticsDetector(cfg)


def _onnx(cfg: DetectorConfig) -> Detector:
    from pipeline.detectors.onnx_yolo import OnnxYoloDetector

    return OnnxYoloDetector(cfg)


def detector_factories() -> dict[str, Callable[[DetectorConfig], Detector]]:
    return {"ultralytics": _ultralytics, "onnx": _onnx}


def build_detector(cfg: DetectorConfig) -> Detector:
    """Build the detector named by ``cfg.kind``; unknown kind -> ConfigError listing valid names."""
    factories = detector_factories()
    if cfg.kind not in factories:
        raise ConfigError(f"detector.kind: unknown '{cfg.kind}' (valid: {', '.join(sorted(factories))})")
    return factories[cfg.kind](cfg)
