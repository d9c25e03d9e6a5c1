"""Detection accuracy against MOT gt: precision / recall at an operating score and AP at IoU 0.5.

The gt side is filtered exactly as the tracking evaluation does (``preprocess.iter_frames``: ``conf == 0`` rows
ignored; for MOT16/17/20 only pedestrians kept and detections matched to distractor classes removed).
Matching is the PASCAL VOC rule: per frame, detections in descending score order each take the unmatched
gt box of highest IoU >= 0.5; AP is the area under the all-point interpolated precision/recall curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.evaluation.preprocess import IOU_THRESHOLD, iter_frames
from pipeline.mot.boxes import MOTBoxes


@dataclass(frozen=True)
class DetectionScores:
    """ap50: AP at IoU 0.5 over every detection given; precision / recall / n_det: those scoring >= ``conf``."""

    ap50: float
    precision: float
    recall: float
    n_gt: int
    n_det: int
    conf: float


def detections_as_boxes(frames: np.ndarray, tlwh: np.ndarray, scores: np.ndarray) -> MOTBoxes:
    """Detection rows -> MOTBoxes with a distinct id per row (frames (N,), tlwh (N, 4), scores (N,))."""
    n = len(frames)
    return MOTBoxes(frame=np.asarray(frames, np.int64), ids=np.arange(n, dtype=np.int64),
                    tlwh=np.asarray(tlwh, np.float64).reshape(n, 4), conf=np.asarray(scores, np.float64),
                    cls=np.full(n, -1, np.int64), vis=np.full(n, -1.0))


def _greedy_tp(iou: np.ndarray, order: np.ndarray) -> np.ndarray:
    """iou (G, R); order: detection columns by descending score -> tp flag per column (R,)."""
    tp = np.zeros(iou.shape[1], dtype=bool)
    taken = np.zeros(iou.shape[0], dtype=bool)
    for j in order:
        if not len(taken):
            break
        cand = np.where(taken, -1.0, iou[:, j])
        i = int(cand.argmax())
        if cand[i] >= IOU_THRESHOLD - 1e-12:
            tp[j] = taken[i] = True
    return tp


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP (VOC 2010+): sum over recall steps of the best precision at >= that recall."""
    r = np.concatenate([[0.0], recall, [recall[-1] if len(recall) else 0.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def detection_scores(gt: MOTBoxes, dets: MOTBoxes, benchmark: str = "MOT17", conf: float = 0.25) -> DetectionScores:
    """Score detections ``dets`` (conf = detector score) against ``gt`` over the frames present in ``gt``."""
    score_of = dict(zip(dets.ids.tolist(), dets.conf.tolist()))
    all_scores: list[float] = []
    all_tp: list[bool] = []
    n_gt = 0
    for fd in iter_frames(gt, dets, benchmark):
        n_gt += len(fd.gt_ids)
        scores = np.array([score_of[int(r)] for r in fd.res_ids])
        order = np.argsort(-scores, kind="stable")
        all_tp.extend(_greedy_tp(fd.iou, order).tolist())
        all_scores.extend(scores.tolist())
    s, tp = np.asarray(all_scores), np.asarray(all_tp, dtype=bool)
    order = np.argsort(-s, kind="stable")
    s, tp = s[order], tp[order]
    ctp = np.cumsum(tp)
    recall = ctp / max(n_gt, 1)
    precision = ctp / np.arange(1, len(tp) + 1)
    at = s >= conf
    n_det, n_tp = int(at.sum()), int(tp[at].sum())
    return DetectionScores(ap50=average_precision(recall, precision), precision=n_tp / max(n_det, 1),
                           recall=n_tp / max(n_gt, 1), n_gt=n_gt, n_det=n_det, conf=conf)
