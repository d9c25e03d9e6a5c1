"""Evaluate (name, gt, res) sequence pairs, in parallel processes, and combine them (counts summed)."""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from pipeline.evaluation.clear_id import check_clear, metrics_from_counts, sequence_counts
from pipeline.evaluation.preprocess import DISTRACTORS, check_benchmark, iter_frames
from pipeline.evaluation.report import EvalReport, SequenceResult, combine
from pipeline.mot.boxes import MOTBoxes

BENCHMARKS = tuple(DISTRACTORS)
log = logging.getLogger(__name__)


def evaluate_sequence(gt: MOTBoxes, res: MOTBoxes, benchmark: str = "MOT17", name: str = "",
                      hota: bool = True, clear: str = "motmetrics") -> SequenceResult:
    """Evaluate one sequence; gt rows unfiltered (as read), res = tracker rows.

    ``benchmark`` picks the preprocessing (MOT15: no classes; MOT16/17/20:
    TrackEval's distractor/pedestrian rules). HOTA is added when ``hota`` and
    TrackEval is installed. ``clear``: "motmetrics" (default) or "trackeval"
    (CLEAR counts by TrackEval's CLEAR class; identity counts are motmetrics' either way).
    """
    from pipeline.evaluation import hota as hota_mod

    frames = list(iter_frames(gt, res, check_benchmark(benchmark), name))
    counts = sequence_counts(frames, name, clear)
    metrics = metrics_from_counts(counts)
    raw = None
    if hota and hota_mod.available():
        summary, raw = hota_mod.sequence_hota(frames)
        metrics.update(summary)
    return SequenceResult(name, metrics, counts, raw)


def _evaluate_one(args: tuple[str, MOTBoxes, MOTBoxes, str, bool, str]) -> SequenceResult:
    name, gt, res, benchmark, hota, clear = args
    return evaluate_sequence(gt, res, benchmark, name, hota, clear)


def evaluate(pairs: list[tuple[str, MOTBoxes, MOTBoxes]], benchmark: str = "MOT17",
             workers: int | None = None, hota: bool = True, progress: bool = False,
             notes: list[str] | None = None, clear: str = "motmetrics") -> EvalReport:
    """Evaluate (name, gt, res) pairs and combine them (counts summed, as TrackEval does).

    ``workers``: processes to spread sequences over (default min(2, CPUs, pairs));
    1 evaluates in this process. Results keep the order of ``pairs``. ``clear``:
    "motmetrics" (default) or "trackeval": which code counts CLEAR-MOT (TP, FP,
    FN, IDSW, Frag, MOTP, MT/PT/ML); IDF1 and HOTA do not depend on it.
    """
    benchmark = check_benchmark(benchmark)
    clear = check_clear(clear)
    names = [p[0] for p in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate sequence names in {names}")
    jobs = [(name, gt, res, benchmark, hota, clear) for name, gt, res in pairs]
    if workers is None:
        workers = min(2, os.cpu_count() or 1, len(jobs))
    results = None
    if workers > 1 and len(jobs) > 1:
        results = _parallel(jobs, workers, progress)
    if results is None:
        results = list(_progress(map(_evaluate_one, jobs), len(jobs), progress))
    return combine(results, benchmark, notes, clear)


def _parallel(jobs: list, workers: int, progress: bool) -> list[SequenceResult] | None:
    """Sequences over ``workers`` forked processes (fork: works from any script, no __main__ guard needed);
    None when the pool breaks (then the caller evaluates in-process)."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            return list(_progress(pool.map(_evaluate_one, jobs), len(jobs), progress))
    except BrokenProcessPool as exc:
        log.warning("evaluation worker processes failed (%s); evaluating in this process", exc)
        return None


def _progress(it, total: int, enabled: bool):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc="evaluate", unit="seq")
