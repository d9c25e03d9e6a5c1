"""YOLOv5 Detect decode in numpy, for a model cut before its decode (``onnx_graph.cut_yolov5_heads``)."""

from __future__ import annotations

import numpy as np

from pipeline.detectors.geometry import cxcywh_to_tlbr


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode_yolov5_heads(maps: list[np.ndarray], anchors: np.ndarray, strides: np.ndarray, conf: float,
                        classes: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's raw Detect maps -> (tlbr (K, 4) network pixels, scores (K,), class ids (K,)).

    maps: per level l, the conv output (3 * (5 + C), H_l, W_l) float32; anchors (L, 3, 2) w, h pixels;
    strides (L,) pixels. The same arithmetic as YOLOv5's exported Detect layer, with s = sigmoid(map):
    cx = (2 s_x - 0.5 + col) * stride, cy = (2 s_y - 0.5 + row) * stride, w = (2 s_w)^2 * anchor_w,
    h = (2 s_h)^2 * anchor_h, score = s_obj * s_class. Only cells with s_obj >= conf are decoded (a score
    is never above its objectness), so the cost is the objectness channel plus the few candidates.
    Candidates come in the export's order (level, anchor, row, col).
    """
    boxes, scores, class_ids = [], [], []
    obj_floor = -np.inf if conf <= 0 else (np.inf if conf >= 1 else float(np.log(conf / (1.0 - conf))))
    for fmap, level_anchors, stride in zip(maps, anchors, strides):
        n_out, h, w = fmap.shape
        x = fmap.reshape(3, n_out // 3, h, w)
        a, row, col = np.nonzero(x[:, 4] >= obj_floor)
        v = _sigmoid(x[a, :, row, col].astype(np.float64))          # (K, 5 + C)
        cls_scores = v[:, 5:] * v[:, 4:5]
        ids = cls_scores.argmax(axis=1)
        best = cls_scores[np.arange(len(v)), ids]
        keep = (best >= conf) & np.isin(ids, classes)
        v, a, row, col = v[keep], a[keep], row[keep], col[keep]
        cxcywh = np.stack([(2 * v[:, 0] - 0.5 + col) * stride, (2 * v[:, 1] - 0.5 + row) * stride,
                           (2 * v[:, 2]) ** 2 * level_anchors[a, 0], (2 * v[:, 3]) ** 2 * level_anchors[a, 1]], axis=1)
        boxes.append(cxcywh_to_tlbr(cxcywh))
        scores.append(best[keep])
        class_ids.append(ids[keep].astype(np.int64))
    if not boxes:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)
    return np.concatenate(boxes), np.concatenate(scores), np.concatenate(class_ids)
