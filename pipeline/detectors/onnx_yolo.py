"""YOLO detector on an ONNX file (YOLOv5 or YOLOv8/11-style outputs): onnxruntime, OpenVINO or OpenCV DNN."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.detectors.config import DetectorConfig
from pipeline.detectors.geometry import Letterbox, cxcywh_to_tlbr, letterbox, nms_tlbr
from pipeline.detectors.heads import decode_yolov5_heads
from pipeline.core.errors import ModelError
from pipeline.core.types import Detection, tlbr_to_tlwh

log = logging.getLogger(__name__)


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
    """Letterboxed BGR uint8 images, all (H, W, 3) -> (B, 3, H, W) float32 RGB in [0, 1]."""
    arr = np.stack(images_lb)[..., ::-1].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(arr, dtype=np.float32) / 255.0


class OnnxYoloDetector:
    """Letterbox -> YOLO ONNX -> confidence filter -> class-aware NMS -> original-pixel tlwh boxes.

    The file run is ``models.resolve_model(cfg)``: the weights, or their dynamic-size cut (``rect``) or INT8
    quantisation (``precision: int8``); a cut model's Detect maps are decoded by ``heads.decode_yolov5_heads``.
    """

    STRIDE = 32

    def __init__(self, cfg: DetectorConfig) -> None:
        from pipeline.detectors.models import resolve_model
        from pipeline.detectors.onnx_graph import read_heads_spec
        from pipeline.detectors.runtimes import open_runtime

        self.cfg = cfg
        self.backend = cfg.backend
        self.model_path = resolve_model(cfg)
        self.runtime = open_runtime(self.model_path, cfg.backend, cfg.device, cfg.threads, cfg.precision,
                                    cfg.streams)
        self.fixed_batch: int | None = self.runtime.fixed_batch
        self.heads = read_heads_spec(self.runtime.metadata)
        self.input_size: int | None = None
        hw = self.runtime.fixed_hw
        if hw is not None and not cfg.rect:
            # a fixed input: a smaller imgsz is letterboxed to imgsz and padded (right/bottom) to the input size
            # (the fully convolutional network then sees objects at imgsz's scale); a larger one is capped
            self.input_size = hw[0]
            if self.cfg.imgsz > hw[0]:
                log.warning("detector.imgsz: %d is above the fixed input size %d of %s: running at %d (rect: true "
                            "runs a YOLOv5 export at any size)", self.cfg.imgsz, hw[0], self.model_path, hw[0])
                self.cfg = self.cfg.model_copy(update={"imgsz": hw[0]})

    def run_info(self) -> dict:
        """What this detector runs, for a run's record (``stage_times.json``): the backend, the configured
        precision, the precision it runs (``precision: auto``: the one chosen on the first call, None before it)
        and, for auto, the median ms per timed call of each candidate."""
        ran: str | None = self.cfg.precision
        hint = getattr(self.runtime, "inference_precision", None)  # OpenVINO: bf16 may fall back, auto chooses
        if self.cfg.precision in ("auto", "bf16") and hint:
            ran = None if getattr(self.runtime, "_auto", None) else ("fp32" if hint == "f32" else hint)
        info: dict = {"backend": self.backend, "precision": self.cfg.precision, "ran_precision": ran,
                      "model": str(self.model_path), "imgsz": self.cfg.imgsz}
        times = getattr(self.runtime, "auto_times_s", None)
        if times:
            info["auto_ms_per_call"] = {("fp32" if h == "f32" else h): round(1000 * t, 1) for h, t in times.items()}
        return info

    def _infer(self, blob: np.ndarray) -> list[list[np.ndarray]]:
        """(B, 3, H, W) -> per image its raw outputs (one per model output)."""
        outs = self.runtime.run(blob)
        return [[o[i] for o in outs] for i in range(len(blob))]

    def _run_batches(self, blobs: np.ndarray) -> list[list[np.ndarray]]:
        step = self.fixed_batch or len(blobs)
        outs: list[list[np.ndarray]] = []
        for i in range(0, len(blobs), step):
            outs.extend(self._infer(blobs[i:i + step]))
        return outs

    def letterbox_image(self, img: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """BGR (H, W, 3) uint8 -> the network input image (h, w, 3) uint8 this detector makes and its mapping."""
        if self.cfg.rect:
            return letterbox(img, self.cfg.imgsz, stride=self.STRIDE)
        lb_img, lb = letterbox(img, self.cfg.imgsz)
        if self.input_size is not None and self.input_size > self.cfg.imgsz:
            extra = self.input_size - self.cfg.imgsz
            lb_img = cv2.copyMakeBorder(lb_img, 0, extra, 0, extra, cv2.BORDER_CONSTANT, value=(114,) * 3)
        return lb_img, lb

    def _decode(self, outputs: list[np.ndarray], conf: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.heads is not None:
            return decode_yolov5_heads(outputs, self.heads.anchors, self.heads.strides, conf, self.cfg.classes)
        return decode_yolo(outputs[0], conf, self.cfg.classes)

    def candidates(self, images_bgr: list[np.ndarray], conf: float | None = None) -> list[Candidates]:
        """Batch of BGR (H, W, 3) uint8 images -> per image the person candidates scoring >= ``conf``
        (default ``cfg.conf``) BEFORE NMS, in network pixels (``Candidates.select`` finishes them).
        With ``rect`` the images of one forward share a shape (a batch is split by letterboxed shape)."""
        if not images_bgr:
            return []
        letterboxed = [self.letterbox_image(img) for img in images_bgr]
        outs: list[list[np.ndarray] | None] = [None] * len(images_bgr)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, (lb_img, _) in enumerate(letterboxed):
            by_shape.setdefault(lb_img.shape, []).append(i)
        for idx in by_shape.values():
            for i, o in zip(idx, self._run_batches(_blob([letterboxed[i][0] for i in idx]))):
                outs[i] = o
        thr = self.cfg.conf if conf is None else conf
        result = []
        for o, (_, lb), img in zip(outs, letterboxed, images_bgr):
            tlbr, scores, cls = self._decode(o, thr)
            result.append(Candidates(tlbr, scores, cls, lb, img.shape[1], img.shape[0]))
        return result

    def detect(self, images_bgr: list[np.ndarray]) -> list[list[Detection]]:
        """Batch of BGR (H, W, 3) uint8 images -> per image person detections (tlwh, original pixels)."""
        return [c.select(self.cfg.conf, self.cfg.iou) for c in self.candidates(images_bgr)]
