"""The official MOTChallenge evaluator's preprocessing (TrackEval ``MotChallenge2DBox``), per frame.

For MOT16/17/20 (TrackEval ``get_preprocessed_seq_data`` with ``do_preproc``):

1. Tracker boxes are matched to ALL gt boxes of the frame (Hungarian on IoU,
   pairs with IoU < 0.5 not allowed); tracker boxes matched to a gt box of a
   distractor class are removed: person_on_vehicle (2), static_person (7),
   distractor (8), reflection (12), and for MOT20 also non_mot_vehicle (6).
2. Only gt boxes of class pedestrian (1) with ``int(conf) != 0`` are kept
   (``conf == 0`` rows are "zero_marked", i.e. ignored).

For MOT15 there are no classes: no tracker box is removed and only the
``conf == 0`` gt rows are dropped.

An id twice in one frame, in the gt or in the results, is a DataError (as in
TrackEval, checked on all rows before preprocessing).

Then CLEAR/Identity matching allows pairs with IoU >= 0.5 (TrackEval's
``threshold - eps``), expressed here as a motmetrics distance matrix
``1 - IoU`` with NaN for pairs that may not match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.core.errors import ConfigError, DataError
from pipeline.mot.boxes import MOTBoxes, duplicate_id_row
from pipeline.core.types import iou_matrix_tlbr

EPS = float(np.finfo(np.float64).eps)
IOU_THRESHOLD = 0.5
PEDESTRIAN = 1
#: benchmark -> gt classes whose matched tracker boxes are removed (None: no class handling)
DISTRACTORS: dict[str, tuple[int, ...] | None] = {
    "MOT15": None,
    "MOT16": (2, 7, 8, 12),
    "MOT17": (2, 7, 8, 12),
    "MOT20": (2, 6, 7, 8, 12),
}


def check_benchmark(benchmark: str) -> str:
    """Canonical benchmark name (case-insensitive); ConfigError listing valid names."""
    name = str(benchmark).upper()
    if name not in DISTRACTORS:
        raise ConfigError(f"benchmark: unknown {benchmark!r}; valid: {', '.join(DISTRACTORS)}")
    return name


@dataclass
class FrameData:
    """One frame after preprocessing: gt_ids (G,), res_ids (R,), iou (G, R), dist (G, R) = 1 - IoU or NaN."""

    frame: int
    gt_ids: np.ndarray
    res_ids: np.ndarray
    iou: np.ndarray
    dist: np.ndarray


def _distractor_matches(iou: np.ndarray, gt_cls: np.ndarray, distractors: tuple[int, ...]) -> np.ndarray:
    """Column indices of tracker boxes Hungarian-matched (IoU >= 0.5) to a distractor-class gt box."""
    scores = iou.copy()
    scores[scores < IOU_THRESHOLD - EPS] = 0.0
    rows, cols = linear_sum_assignment(-scores)
    ok = scores[rows, cols] > EPS
    rows, cols = rows[ok], cols[ok]
    return cols[np.isin(gt_cls[rows], distractors)]


def _check_inputs(gt: MOTBoxes, res: MOTBoxes, benchmark: str, name: str) -> None:
    if DISTRACTORS[benchmark] is not None and len(gt) and (gt.cls == -1).all():
        raise DataError(name or "gt", f"gt has no class column, which {benchmark} needs; use benchmark MOT15")
    for boxes, what, default in ((gt, "gt", "gt"), (res, "tracker", "results")):
        row = duplicate_id_row(boxes.frame, boxes.ids)  # all rows, before preprocessing, as TrackEval
        if row is not None:
            raise DataError(name or default, f"frame {int(boxes.frame[row])}: {what} id {int(boxes.ids[row])} "
                                             "appears more than once (the official evaluator rejects this)")


def iter_frames(gt: MOTBoxes, res: MOTBoxes, benchmark: str = "MOT17", name: str = "") -> Iterator[FrameData]:
    """Yield preprocessed :class:`FrameData` for every frame that has gt or result rows, in order."""
    benchmark = check_benchmark(benchmark)
    _check_inputs(gt, res, benchmark, name)
    distractors = DISTRACTORS[benchmark]
    g_order = np.argsort(gt.frame, kind="stable")
    r_order = np.argsort(res.frame, kind="stable")
    g_frames, r_frames = gt.frame[g_order], res.frame[r_order]
    gt_tlbr, res_tlbr = gt.tlbr, res.tlbr
    for f in np.union1d(g_frames, r_frames):
        g = g_order[np.searchsorted(g_frames, f, "left"):np.searchsorted(g_frames, f, "right")]
        r = r_order[np.searchsorted(r_frames, f, "left"):np.searchsorted(r_frames, f, "right")]
        iou = iou_matrix_tlbr(gt_tlbr[g], res_tlbr[r])
        keep_r = np.ones(len(r), dtype=bool)
        if distractors is not None and len(g) and len(r):
            keep_r[_distractor_matches(iou, gt.cls[g], distractors)] = False
        keep_g = gt.conf[g].astype(np.int64) != 0  # TrackEval: zero_marked = int(conf)
        if distractors is not None:
            keep_g &= gt.cls[g] == PEDESTRIAN
        iou = iou[keep_g][:, keep_r]
        dist = 1.0 - iou
        dist[iou < IOU_THRESHOLD - EPS] = np.nan
        yield FrameData(int(f), gt.ids[g][keep_g], res.ids[r][keep_r], iou, dist)
