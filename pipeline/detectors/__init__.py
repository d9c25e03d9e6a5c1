"""Person detectors: Ultralytics, ONNX YOLO (v5 / v8-style), MOT det files. Heavy libs load lazily."""

from pipeline.detectors.config import Detector, DetectorConfig
from pipeline.detectors.factory import build_detector, detector_factories
from pipeline.detectors.motfile import MotDetFileDetector

__all__ = ["Detector", "DetectorConfig", "build_detector", "detector_factories", "MotDetFileDetector"]
