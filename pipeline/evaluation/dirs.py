"""Evaluate a folder of MOTChallenge result files ``<seq>.txt`` against a gt root of sequence folders."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.errors import DataError
from pipeline.evaluation.report import EvalReport
from pipeline.evaluation.sequences import evaluate
from pipeline.mot.boxes import read_mot_file
from pipeline.mot.sequence import MOTSequence, find_sequences


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
                  workers: int | None = None, hota: bool = True, progress: bool = False) -> EvalReport:
    """Evaluate ``results_dir/<seq folder name>.txt`` against ``gt_root/<seq>/gt/gt.txt``.

    Without ``seqs``: every gt sequence that has a result file (the others are
    listed in the report's notes). With ``seqs``: a missing result file is a
    DataError. Result rows beyond the sequence's seqLength are a DataError, as
    in the official evaluator.
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
        res = read_mot_file(res_path, "result")
        if len(res) and int(res.frame.max()) > seq.info.seq_length:
            raise DataError(res_path, f"frame {int(res.frame.max())} beyond seqLength {seq.info.seq_length}")
        pairs.append((name, seq.gt(), res))
    if not pairs:
        raise DataError(results_dir, f"no result file matches a sequence under {gt_root}")
    return evaluate(pairs, benchmark, workers=workers, hota=hota, progress=progress, notes=notes)
