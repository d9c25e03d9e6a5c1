"""YOLO detector on an ONNX file (YOLOv5 or YOLOv8/11-style outputs), onnxruntime or OpenCV DNN."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.detectors.config import DetectorConfig
from pipeline.detectors.geometry import Letterbox, cxcywh_to_tlbr, letterbox, nms_tlbr
from pipeline.core.errors import ModelError
from pipeline.core.types import Detection, tlbr_to_tlwh


def decode_yolo(output: np.ndarray, conf: float, classes: list[int],
                layout: str = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's raw YOLO output -> (tlbr (K, 4) network pixels, scores (K,), class ids (K,)).

    YOLOv5: (N, 5 + C) rows ``cx, cy, w, h, objectness, C class scores``; score = obj * class score.
    YOLOv8/11: (4 + C, N) channels-first, no objectness; score = class score.
    ``layout="auto"`` tells them apart by shape: YOLOv8-style outputs have fewer rows than columns
    (true for real models: thousands of anchors); "v5" / "v8" force one.
    """
    out = np.asarray(output, dtype=np.float32)
    if out.ndim != 2:
        raise ModelError(f"YOLO output must be 2-D per image, got shape {out.shape}")
    if layout not in ("auto", "v5", "v8"):
        raise ModelError(f"unknown YOLO output layout '{layout}' (valid: auto, v5, v8)")
    if layout == "v8" or (layout == "auto" and out.shape[0] < out.shape[1]):   # YOLOv8/11: (4 + C, N)
        rows = out.T
        cls_scores = rows[:, 4:]
    else:                                     # YOLOv5: (N, 5 + C)
        rows = out
        cls_scores = rows[:, 5:] * rows[:, 4:5]
    class_ids = cls_scores.argmax(axis=1)
    scores = cls_scores[np.arange(len(rows)), class_ids]
    mask = (scores >= conf) & np.isin(class_ids, classes)
    return cxcywh_to_tlbr(rows[mask, :4]), scores[mask].astype(np.float64), class_ids[mask].astype(np.int64)


@dataclass(frozen=True)
class Candidates:
    """One image's decoded YOLO boxes before NMS: tlbr (K, 4) network pixels, scores (K,), class ids (K,),
    the letterbox that maps them back and the image size (pixels)."""

    tlbr: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    letterbox: Letterbox
    width: int
    height: int

    def select(self, conf: float, iou: float) -> list[Detection]:
        """Keep scores >= conf, class-aware NMS at ``iou``, map to original pixels -> detections (tlwh).
        Exactly what the detector returns when run with that conf and iou."""
        ok = self.scores >= conf
        tlbr, scores, cls = self.tlbr[ok], self.scores[ok], self.class_ids[ok]
        keep = nms_tlbr(tlbr, scores, iou, cls)
        boxes = self.letterbox.to_original_tlbr(tlbr[keep], self.width, self.height)
        dets = []
        for box, s, c in zip(boxes, scores[keep], cls[keep]):
            tlwh = tlbr_to_tlwh(box)
            if tlwh[2] > 0 and tlwh[3] > 0:
                dets.append(Detection(tlwh=tlwh, score=float(s), class_id=int(c)))
        return dets


def _blob(images_lb: list[np.ndarray]) -> np.ndarray:
    """Letterboxed BGR uint8 images -> (B, 3, S, S) float32 RGB in [0, 1]."""
    arr = np.stack(images_lb)[..., ::-1].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(arr, dtype=np.float32) / 255.0


class OnnxYoloDetector:
    """Letterbox -> YOLO ONNX -> confidence filter -> class-aware NMS -> original-pixel tlwh boxes."""

    def __init__(self, cfg: DetectorConfig) -> None:
        path = Path(cfg.weights).expanduser()
        if not path.is_file():
            raise ModelError(f"ONNX detector weights not found: {path}")
        self.cfg = cfg
        self.backend = cfg.backend
        self.fixed_batch: int | None = 1
        self.input_size: int | None = None
        if cfg.backend == "onnxruntime":
            self._init_ort(path)
        else:
            import cv2

            self.net = cv2.dnn.readNetFromONNX(str(path))
            self.fixed_batch = 1

    def _init_ort(self, path: Path) -> None:
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if self.cfg.device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own types for bad files
            raise ModelError(f"cannot load ONNX detector {path}: {str(exc).splitlines()[0]}") from exc
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        batch = inp.shape[0]
        self.fixed_batch = batch if isinstance(batch, int) else None
        size = inp.shape[2]
        if isinstance(size, int):
            # a fixed input: a smaller imgsz is letterboxed to imgsz and padded (right/bottom) to the input size
            # (the fully convolutional network then sees objects at imgsz's scale); a larger one is capped
            self.input_size = size
            if self.cfg.imgsz > size:
                self.cfg = self.cfg.model_copy(update={"imgsz": size})

    def _infer(self, blob: np.ndarray) -> np.ndarray:
        """(B, 3, S, S) -> raw output (B, ...)."""
        if self.backend == "onnxruntime":
            return self.session.run(None, {self.input_name: blob})[0]
        self.net.setInput(blob)
        return self.net.forward()

    def _run_batches(self, blobs: np.ndarray) -> list[np.ndarray]:
        step = self.fixed_batch or len(blobs)
        outs: list[np.ndarray] = []
        for i in range(0, len(blobs), step):
            outs.extend(list(self._infer(blobs[i:i + step])))
        return outs

    def candidates(self, images_bgr: list[np.ndarray], conf: float | None = None) -> list[Candidates]:
        """Batch of BGR (H, W, 3) uint8 images -> per image the person candidates scoring >= ``conf``
        (default ``cfg.conf``) BEFORE NMS, in network pixels (``Candidates.select`` finishes them)."""
        if not images_bgr:
            return []
        lbs: list[Letterbox] = []
        padded = []
        for img in images_bgr:
            lb_img, lb = letterbox(img, self.cfg.imgsz)
            if self.input_size is not None and self.input_size > self.cfg.imgsz:
                extra = self.input_size - self.cfg.imgsz
                lb_img = cv2.copyMakeBorder(lb_img, 0, extra, 0, extra, cv2.BORDER_CONSTANT, value=(114,) * 3)
            padded.append(lb_img)
            lbs.append(lb)
        outs = self._run_batches(_blob(padded))
        thr = self.cfg.conf if conf is None else conf
        result = []
        for o, lb, img in zip(outs, lbs, images_bgr):
            tlbr, scores, cls = decode_yolo(o, thr, self.cfg.classes)
            result.append(Candidates(tlbr, scores, cls, lb, img.shape[1], img.shape[0]))
        return result

    def detect(self, images_bgr: list[np.ndarray]) -> list[list[Detection]]:
        """Batch of BGR (H, W, 3) uint8 images -> per image person detections (tlwh, original pixels)."""
        return [c.select(self.cfg.conf, self.cfg.iou) for c in self.candidates(images_bgr)]
