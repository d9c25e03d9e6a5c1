"""HOTA (Luiten et al. 2021) through TrackEval's own implementation, when PyPI ``trackeval`` is installed.

Optional: :func:`available` is False without ``trackeval`` and the report
then has no HOTA column. TrackEval 1.3.0 runs on NumPy 2. It is fed the same
preprocessed frames as motmetrics (TrackEval's MOTChallenge preprocessing,
:mod:`pipeline.evaluation.preprocess`), with ids relabelled 0..n-1 as
TrackEval does; HOTA/DetA/AssA are the mean over the 19 alpha thresholds.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from pipeline.evaluation.preprocess import FrameData


def available() -> bool:
    return importlib.util.find_spec("trackeval") is not None


def _relabel(ids_per_frame: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    uniq = np.unique(np.concatenate(ids_per_frame)) if ids_per_frame else np.zeros(0, np.int64)
    return [np.searchsorted(uniq, ids).astype(int) for ids in ids_per_frame], int(len(uniq))


def _summary(res: dict) -> dict[str, float]:
    return {k: 100.0 * float(np.mean(res[k])) for k in ("HOTA", "DetA", "AssA")}


def trackeval_data(frames: list[FrameData]) -> dict:
    """The preprocessed frames as TrackEval's metrics take a sequence (``eval_sequence``'s ``data``).

    Only frames with rows are listed: TrackEval's metrics skip empty frames
    without changing any state, so the results are the same.
    """
    gt_ids, n_gt = _relabel([f.gt_ids for f in frames])
    tr_ids, n_tr = _relabel([f.res_ids for f in frames])
    return {
        "gt_ids": gt_ids, "tracker_ids": tr_ids, "similarity_scores": [f.iou for f in frames],
        "num_gt_ids": n_gt, "num_tracker_ids": n_tr,
        "num_gt_dets": int(sum(len(i) for i in gt_ids)), "num_tracker_dets": int(sum(len(i) for i in tr_ids)),
        "num_timesteps": len(frames),
    }


def sequence_hota(frames: list[FrameData]) -> tuple[dict[str, float], dict]:
    """(HOTA/DetA/AssA in percent, TrackEval's raw per-alpha result for :func:`combine_hota`)."""
    from trackeval.metrics import HOTA

    res = HOTA().eval_sequence(trackeval_data(frames))
    return _summary(res), res


def combine_hota(raws: list[dict]) -> dict[str, float]:
    """Combined HOTA/DetA/AssA over sequences, as TrackEval's ``combine_sequences``."""
    from trackeval.metrics import HOTA

    return _summary(HOTA().combine_sequences({str(i): r for i, r in enumerate(raws)}))
