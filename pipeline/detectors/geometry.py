"""Letterbox preprocessing and class-aware NMS (pure numpy, exact and unit-tested)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.core.types import iou_matrix_tlbr


@dataclass(frozen=True)
class Letterbox:
    """How an image was letterboxed: new = old * scale + (pad_x, pad_y)."""

    scale: float
    pad_x: float
    pad_y: float

    def to_original_tlbr(self, tlbr: np.ndarray, width: int, height: int) -> np.ndarray:
        """(N, 4) tlbr in network pixels -> (N, 4) tlbr in original pixels, clipped to the image."""
        out = np.asarray(tlbr, dtype=np.float64).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
        return out


def letterbox_shape(height: int, width: int, size: int, stride: int | None = None) -> tuple[float, int, int, int, int]:
    """The letterbox of an (height, width) image for a ``size`` network input.

    ``stride=None``: square, the image scaled to fit (size, size) and padded to it.
    ``stride=s`` (rectangular inference): scaled the same way (long side = size), then padded only up to the
    next multiple of ``s`` on each side, e.g. 768x576 at 640 -> 640x480, at 416 -> 416x312 padded to 416x320.
    Returns (scale, new_w, new_h, canvas_w, canvas_h) in pixels.
    """
    scale = min(size / height, size / width)
    new_w, new_h = int(round(width * scale)), int(round(height * scale))
    if stride is None:
        return scale, new_w, new_h, size, size
    return scale, new_w, new_h, -(-new_w // stride) * stride, -(-new_h // stride) * stride


def letterbox(image_bgr: np.ndarray, size: int, color: int = 114,
              stride: int | None = None) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping aspect ratio to fit (size, size), pad centred with ``color``.

    Returns the (size, size, 3) uint8 image (``stride`` given: the (canvas_h, canvas_w, 3) image of
    ``letterbox_shape``, each side a multiple of ``stride``) and the mapping. Padding is split as
    YOLOv5 does: left/top = round(pad/2 - 0.1), right/bottom = round(pad/2 + 0.1).
    """
    h, w = image_bgr.shape[:2]
    scale, new_w, new_h, canvas_w, canvas_h = letterbox_shape(h, w, size, stride)
    dw, dh = (canvas_w - new_w) / 2, (canvas_h - new_h) / 2
    if (new_w, new_h) != (w, h):
        image_bgr = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    out = cv2.copyMakeBorder(image_bgr, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(color,) * 3)
    return out, Letterbox(scale=scale, pad_x=float(left), pad_y=float(top))


def cxcywh_to_tlbr(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) centre x, centre y, width, height -> (N, 4) tlbr."""
    b = np.asarray(boxes, dtype=np.float64)
    half = b[:, 2:4] / 2
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)


def nms_tlbr(boxes_tlbr: np.ndarray, scores: np.ndarray, iou_thresh: float,
             class_ids: np.ndarray | None = None) -> np.ndarray:
    """Greedy NMS -> indices kept, in descending score order.

    A box is suppressed by a higher-scoring kept box of the SAME class whose
    IoU (``pipeline.core.types.iou_matrix_tlbr``) is strictly greater than ``iou_thresh``.
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-np.asarray(scores), kind="stable")
    iou = iou_matrix_tlbr(np.asarray(boxes_tlbr)[order], np.asarray(boxes_tlbr)[order])
    if class_ids is not None:
        cls = np.asarray(class_ids)[order]
        iou = np.where(cls[:, None] == cls[None, :], iou, 0.0)
    suppressed = np.zeros(n, dtype=bool)
    keep = []
    for i in range(n):
        if suppressed[i]:
            continue
        keep.append(order[i])
        suppressed |= iou[i] > iou_thresh
    return np.asarray(keep, dtype=np.int64)
