"""Evaluate a folder of MOTChallenge result files ``<seq>.txt`` against a gt root of sequence folders.

Also the one rule that picks a benchmark's evaluation conventions from a gt
root's path (:func:`guess_benchmark`, :func:`choose_benchmark`), shared by
``reid-pipeline eval`` and ``benchmark mot``.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.core.errors import DataError
from pipeline.evaluation.preprocess import DISTRACTORS
from pipeline.evaluation.report import EvalReport
from pipeline.evaluation.sequences import evaluate
from pipeline.mot.boxes import check_unique_ids, read_mot_file
from pipeline.mot.sequence import MOTSequence, find_sequences

DEFAULT_BENCHMARK = "MOT17"


def benchmark_in_path(root: Path) -> tuple[str, str] | None:
    """(benchmark, the path it was read from) when a folder name on ``root`` starts with MOT15/16/17/20.

    The path as given (made absolute, symlinks kept: a link named ``MOT20``
    counts) is searched first, from the innermost folder out, then the
    resolved path. None when neither names a benchmark.
    """
    for path in (Path(os.path.abspath(root)), Path(root).resolve()):
        for part in reversed(path.parts):
            for name in DISTRACTORS:
                if part.upper().startswith(name):
                    return name, str(path)
    return None


def guess_benchmark(root: Path) -> str:
    """The benchmark a gt root's path names (see :func:`benchmark_in_path`), else MOT17."""
    found = benchmark_in_path(root)
    return found[0] if found else DEFAULT_BENCHMARK


def choose_benchmark(root: Path, requested: str | None = None) -> tuple[str, str]:
    """(benchmark, one line saying which rules are in force and why) for gt root ``root``.

    ``requested`` (a ``--benchmark`` value) wins; the line then says when the
    path names another benchmark. Without it the path decides, else MOT17.
    """
    found = benchmark_in_path(root)
    if requested:
        bench = str(requested).upper()
        if found and found[0] != bench:
            return bench, (f"rules: {bench} (--benchmark {bench}; note: the gt-root path {found[1]} "
                           f"names {found[0]})")
        return bench, f"rules: {bench} (--benchmark {bench})"
    if found:
        return found[0], f"rules: {found[0]} (from the gt-root path {found[1]}; --benchmark to change)"
    return DEFAULT_BENCHMARK, (f"rules: {DEFAULT_BENCHMARK} (default: the gt-root path {os.path.abspath(root)} "
                               f"names no benchmark; --benchmark to change)")


def _select(gt_root: Path, seqs: list[str] | None) -> list[MOTSequence]:
    if seqs is None:
        return find_sequences(gt_root)
    out = []
    for name in seqs:
        seq_dir = gt_root / name
        if not (seq_dir / "seqinfo.ini").is_file():
            raise DataError(seq_dir, f"sequence {name!r} not found under the gt root")
        out.append(MOTSequence(seq_dir))
    return out


def evaluate_dirs(gt_root: Path, results_dir: Path, benchmark: str = "MOT17", seqs: list[str] | None = None,
                  workers: int | None = None, hota: bool = True, progress: bool = False,
                  clear: str = "motmetrics") -> EvalReport:
    """Evaluate ``results_dir/<seq folder name>.txt`` against ``gt_root/<seq>/gt/gt.txt``.

    Without ``seqs``: every gt sequence that has a result file (the others are
    listed in the report's notes). With ``seqs``: a missing result file is a
    DataError. As in the official evaluator, gt or result rows beyond the
    sequence's seqLength and an id twice in one frame are a DataError naming
    the file. ``clear``: which code counts CLEAR-MOT (see
    :func:`pipeline.evaluation.sequences.evaluate`).
    """
    gt_root, results_dir = Path(gt_root), Path(results_dir)
    if not results_dir.is_dir():
        raise DataError(results_dir, "results folder not found")
    pairs, notes = [], []
    for seq in _select(gt_root, seqs):
        name = seq.seq_dir.name
        res_path = results_dir / f"{name}.txt"
        if not res_path.is_file():
            if seqs is not None:
                raise DataError(res_path, f"missing result file for sequence {name}")
            notes.append(f"{name}: no result file, skipped")
            continue
        length = seq.info.seq_length
        gt = read_mot_file(seq.gt_path(), "gt", max_frame=length)
        check_unique_ids(seq.gt_path(), gt, "gt")
        res = read_mot_file(res_path, "result", max_frame=length)
        check_unique_ids(res_path, res, "tracker")
        pairs.append((name, gt, res))
    if not pairs:
        raise DataError(results_dir, f"no result file matches a sequence under {gt_root}")
    return evaluate(pairs, benchmark, workers=workers, hota=hota, progress=progress, notes=notes, clear=clear)
