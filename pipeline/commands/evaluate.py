"""``reid-pipeline eval``: MOTChallenge evaluation of a folder of result files (table + JSON).

    reid-pipeline eval --gt-root ../shared/data/MOT17/train --results runs/mpn \
        [--benchmark MOT17|MOT15|MOT16|MOT20] [--clear motmetrics|trackeval] [--seqs MOT17-02-FRCNN ...] [--json FILE]

Without ``--benchmark`` the rules are guessed from the gt-root path (a folder
named MOT15/16/17/20..., symlinks as given first), else MOT17; one line says
which rules are in force and why.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "evaluate MOTChallenge result files (MOTA, IDF1, HOTA, ...) with the official evaluator's preprocessing"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt-root", type=Path, required=True,
                        help="folder of sequence folders (<seq>/seqinfo.ini, <seq>/gt/gt.txt)")
    parser.add_argument("--results", type=Path, required=True, help="folder of result files <seq>.txt")
    parser.add_argument("--benchmark", default=None, type=str.upper, choices=["MOT15", "MOT16", "MOT17", "MOT20"],
                        help="preprocessing rules: MOT16/17/20 drop distractor matches and non-pedestrian gt; "
                             "MOT15 has no classes (default: guessed from the gt-root path, else MOT17)")
    parser.add_argument("--clear", default="motmetrics", choices=["motmetrics", "trackeval"],
                        help="code that counts CLEAR-MOT (TP, FP, FN, IDSW, Frag, MOTP, MT/PT/ML): motmetrics 1.4.0 "
                             "(default) or TrackEval's CLEAR class (the official IDSW); IDF1/HOTA are the same")
    parser.add_argument("--seqs", nargs="+", default=None,
                        help="sequences to evaluate (default: every gt sequence that has a result file)")
    parser.add_argument("--json", type=Path, default=None, help="write the report as JSON to this file")
    parser.add_argument("--workers", type=int, default=None, help="processes (default min(2, CPUs, sequences))")
    parser.add_argument("--no-hota", action="store_true", help="skip HOTA (TrackEval) even when installed")


def run(args: argparse.Namespace) -> int:
    from pipeline.evaluation import evaluate_dirs
    from pipeline.evaluation.dirs import choose_benchmark

    benchmark, why = choose_benchmark(args.gt_root, args.benchmark)
    print(why, flush=True)
    report = evaluate_dirs(args.gt_root, args.results, benchmark, args.seqs, workers=args.workers,
                           hota=not args.no_hota, progress=True, clear=args.clear)
    print(report.table())
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.to_json(), indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0
