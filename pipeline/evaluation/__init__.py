"""Faithful MOTChallenge evaluation: motmetrics 1.4.0 + the official evaluator's preprocessing.

* :mod:`.preprocess`: TrackEval's MOTChallenge preprocessing per frame
  (distractor removal, pedestrian class, zero_marked gt; MOT15 without classes).
* :mod:`.clear_id`: CLEAR-MOT and identity counts via ``motmetrics.MOTAccumulator``
  fed with our own IoU distances (the NumPy-2 fix: ``np.asfarray`` is never reached).
* :mod:`.hota`: HOTA through TrackEval's implementation when ``trackeval`` is installed.
* :mod:`.report`: per-sequence/overall report; sequences combine like TrackEval (sum counts).
* :mod:`.sequences`: ``evaluate`` / ``evaluate_sequence`` (parallel over sequences, combined as TrackEval).
* :mod:`.dirs`: ``evaluate_dirs`` for a gt root and a folder of ``<seq>.txt`` results;
  ``guess_benchmark`` / ``choose_benchmark``: the benchmark a gt root's path names.
* ``clear="trackeval"`` (``evaluate``, ``evaluate_dirs``): CLEAR counts from TrackEval's CLEAR class.

Metric keys: MOTA, IDF1, MOTP (mean IoU of matches, TrackEval's convention), IDSW, FP, FN,
MT, PT, ML, Frag, Rcll, Prcn, IDP, IDR (+ HOTA, DetA, AssA); percentages are 0-100.
"""

from __future__ import annotations

from pipeline.evaluation.dirs import evaluate_dirs
from pipeline.evaluation.report import EvalReport, SequenceResult
from pipeline.evaluation.sequences import BENCHMARKS, evaluate, evaluate_sequence

__all__ = ["BENCHMARKS", "EvalReport", "SequenceResult", "evaluate", "evaluate_dirs", "evaluate_sequence"]
