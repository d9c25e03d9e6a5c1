"""Ultralytics detector: any model Ultralytics loads (name, local .pt/.onnx, or a model YAML)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pipeline.detectors.config import DetectorConfig
from pipeline.core.errors import ModelError
from pipeline.core.types import Detection, tlbr_to_tlwh


def load_ultralytics_model(weights: str):
    """``ultralytics.YOLO(weights)``; a failed download -> one-line ModelError naming the weights/URL."""
    from ultralytics import YOLO

    try:
        return YOLO(weights)
    except (ConnectionError, OSError, FileNotFoundError) as exc:
        url = re.search(r"https?://\S+?\.(?:pt|onnx|yaml)", str(exc))
        tried = url.group(0) if url else weights
        raise ModelError(
            f"cannot load Ultralytics weights '{weights}' (tried to fetch {tried}; offline?): download it once "
            f"elsewhere and set detector.weights to the local .pt/.onnx path, or use the ONNX detector "
            f"(kind: onnx, weights: ../shared/weights/yolov5n.onnx)"
        ) from exc


class UltralyticsDetector:
    """Batched Ultralytics inference, persons (``cfg.classes``) only, tlwh in original pixels."""

    def __init__(self, cfg: DetectorConfig) -> None:
        from pipeline.core.device import resolve_device

        w = Path(cfg.weights).expanduser()
        if (w.suffix in (".pt", ".onnx") and (w.is_absolute() or len(w.parts) > 1)) and not w.is_file():
            raise ModelError(f"detector weights not found: {w}")
        self.cfg = cfg
        self.model = load_ultralytics_model(str(w) if w.is_file() else cfg.weights)
        self.device = str(resolve_device(cfg.device))

    def detect(self, images_bgr: list[np.ndarray]) -> list[list[Detection]]:
        """Batch of BGR (H, W, 3) uint8 images -> per image detections."""
        if not images_bgr:
            return []
        results = self.model.predict(
            list(images_bgr), conf=self.cfg.conf, iou=self.cfg.iou, imgsz=self.cfg.imgsz,
            classes=list(self.cfg.classes), device=self.device, verbose=False,
        )
        out: list[list[Detection]] = []
        for res in results:
            boxes = res.boxes
            tlbr = boxes.xyxy.cpu().numpy().astype(np.float64)
            scores = boxes.conf.cpu().numpy().astype(np.float64)
            cls = boxes.cls.cpu().numpy().astype(np.int64)
            keep = np.isin(cls, self.cfg.classes)
            out.append([
                Detection(tlwh=tlbr_to_tlwh(b), score=float(s), class_id=int(c))
                for b, s, c in zip(tlbr[keep], scores[keep], cls[keep])
            ])
        return out
