"""CLEAR-MOT and identity counts of one sequence with motmetrics 1.4.0.

NumPy 2 fix (documented in docs/evaluation.md): motmetrics 1.4.0 calls
``np.asfarray`` (removed in NumPy 2.0) in exactly one non-test place,
``motmetrics.distances.iou_matrix``. We never call that function: the IoU
matrix comes from the project's :func:`pipeline.core.types.iou_matrix_tlbr` (via
:mod:`pipeline.evaluation.preprocess`) and is handed to
``MOTAccumulator.update`` as the distance matrix ``1 - IoU`` (NaN = may not
pair). No monkey-patching of NumPy or motmetrics, no fork; the only other
``asfarray`` calls in the package are in its own ``tests/``. The test
``test_no_asfarray_outside_iou_matrix`` greps the installed motmetrics so a
new release that adds one is caught.

Counts follow TrackEval's names so sequences combine by summation:
GT_dets, Pred_dets, TP, FP, FN, IDSW, Frag, MOTP_sum (sum of IoU of matches),
IDTP, IDFP, IDFN, GT_ids, MT/PT/ML (TrackEval thresholds: MT when > 80 % of
an object's frames are matched, ML when < 20 %).

``clear="trackeval"`` takes the CLEAR counts (TP, FP, FN, IDSW, Frag,
MOTP_sum, MT/PT/ML) from TrackEval's own ``trackeval.metrics.CLEAR`` on the
same preprocessed frames instead; the identity counts stay motmetrics'. The two
differ in how a gt track's match is continued: motmetrics keeps the tracker id
a gt object was last matched to (any number of frames back) as the preferred
partner, TrackEval only the one matched in the previous frame. With gaps in
the tracks this changes which pairs are matched, hence IDSW (and a few FP/FN).
"""

from __future__ import annotations

import numpy as np

from pipeline.core.errors import ConfigError
from pipeline.evaluation.preprocess import FrameData

MM_METRICS = [
    "num_objects", "num_predictions", "num_detections", "num_false_positives", "num_misses",
    "num_switches", "num_fragmentations", "motp", "idtp", "idfp", "idfn", "num_unique_objects",
]


def _accumulate(frames: list[FrameData]):
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=False)
    for fd in frames:
        acc.update(fd.gt_ids, fd.res_ids, fd.dist, frameid=fd.frame)
    return acc


def _track_ratio_counts(acc) -> tuple[int, int, int]:
    """(MT, PT, ML) with TrackEval's thresholds from the accumulator's MATCH/SWITCH/MISS events."""
    ev = acc.mot_events
    ev = ev[ev.Type.isin(["MATCH", "SWITCH", "MISS"])]
    if len(ev) == 0:
        return 0, 0, 0
    matched = ev.Type.isin(["MATCH", "SWITCH"]).groupby(ev.OId).mean().to_numpy()
    mt = int(np.sum(matched > 0.8))
    pt = int(np.sum(matched >= 0.2)) - mt
    return mt, pt, int(len(matched)) - mt - pt


#: which code counts CLEAR-MOT: motmetrics 1.4.0 (the default) or TrackEval's CLEAR class
CLEAR_SOURCES = ("motmetrics", "trackeval")
_TRACKEVAL_CLEAR = {"TP": "CLR_TP", "FP": "CLR_FP", "FN": "CLR_FN", "IDSW": "IDSW", "Frag": "Frag",
                    "MOTP_sum": "MOTP_sum", "MT": "MT", "PT": "PT", "ML": "ML"}


def check_clear(clear: str) -> str:
    """A valid CLEAR source name; ConfigError otherwise, or when TrackEval is not installed for 'trackeval'."""
    from pipeline.evaluation.hota import available

    if clear not in CLEAR_SOURCES:
        raise ConfigError(f"clear: unknown {clear!r}; valid: {', '.join(CLEAR_SOURCES)}")
    if clear == "trackeval" and not available():
        raise ConfigError("clear: trackeval needs the trackeval package, which is not installed")
    return clear


def trackeval_clear_counts(frames: list[FrameData]) -> dict[str, float]:
    """TP, FP, FN, IDSW, Frag, MOTP_sum, MT, PT, ML from TrackEval's ``CLEAR.eval_sequence`` on ``frames``."""
    from trackeval.metrics import CLEAR

    from pipeline.evaluation.hota import trackeval_data

    res = CLEAR({"PRINT_CONFIG": False}).eval_sequence(trackeval_data(frames))
    return {ours: float(res[theirs]) for ours, theirs in _TRACKEVAL_CLEAR.items()}


def sequence_counts(frames: list[FrameData], name: str = "", clear: str = "motmetrics") -> dict[str, float]:
    """Summable CLEAR/identity counts of one preprocessed sequence (see module docstring).

    ``clear``: "motmetrics" (default) or "trackeval" (CLEAR counts from TrackEval's CLEAR class).
    """
    clear = check_clear(clear)
    counts = _motmetrics_counts(frames, name)
    if clear == "trackeval":
        counts.update(trackeval_clear_counts(frames))
    return counts


def _motmetrics_counts(frames: list[FrameData], name: str) -> dict[str, float]:
    import motmetrics as mm

    acc = _accumulate(frames)
    if len(acc.mot_events) == 0:  # no gt and no results at all
        return {k: 0.0 for k in COUNT_KEYS}
    row = mm.metrics.create().compute(acc, metrics=MM_METRICS, name=name or "seq").iloc[0]
    tp = float(row["num_detections"])  # MATCH + SWITCH events = TrackEval CLR_TP
    motp = float(row["motp"]) if tp > 0 else 0.0
    mt, pt, ml = _track_ratio_counts(acc)
    return {
        "GT_dets": float(row["num_objects"]), "Pred_dets": float(row["num_predictions"]),
        "TP": tp, "FP": float(row["num_false_positives"]), "FN": float(row["num_misses"]),
        "IDSW": float(row["num_switches"]), "Frag": float(row["num_fragmentations"]),
        "MOTP_sum": tp * (1.0 - motp),
        "IDTP": float(row["idtp"]), "IDFP": float(row["idfp"]), "IDFN": float(row["idfn"]),
        "GT_ids": float(row["num_unique_objects"]), "MT": float(mt), "PT": float(pt), "ML": float(ml),
    }


COUNT_KEYS = ("GT_dets", "Pred_dets", "TP", "FP", "FN", "IDSW", "Frag", "MOTP_sum",
              "IDTP", "IDFP", "IDFN", "GT_ids", "MT", "PT", "ML")


def metrics_from_counts(c: dict[str, float]) -> dict[str, float]:
    """Percentages (0-100) and counts from summed counts, as TrackEval combines sequences."""
    def pct(num: float, den: float) -> float:
        return 100.0 * num / den if den > 0 else 0.0

    out = {
        # TrackEval's form: (TP - FP - IDSW) / max(1, TP + FN); no gt but FPs gives a negative MOTA
        "MOTA": 100.0 * (c["TP"] - c["FP"] - c["IDSW"]) / max(1.0, c["TP"] + c["FN"]),
        "IDF1": pct(2 * c["IDTP"], 2 * c["IDTP"] + c["IDFP"] + c["IDFN"]),
        "MOTP": pct(c["MOTP_sum"], c["TP"]),
        "IDP": pct(c["IDTP"], c["IDTP"] + c["IDFP"]),
        "IDR": pct(c["IDTP"], c["IDTP"] + c["IDFN"]),
        "Rcll": pct(c["TP"], c["GT_dets"]),
        "Prcn": pct(c["TP"], c["TP"] + c["FP"]),
    }
    for key in ("IDSW", "FP", "FN", "MT", "PT", "ML", "Frag", "TP", "GT_dets", "GT_ids", "IDTP", "IDFP", "IDFN"):
        out[key] = int(c[key])
    return out
