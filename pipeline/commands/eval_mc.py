"""``reid-pipeline eval-mc --gt DIR --results DIR``: per-camera MOTA/IDF1 and the cross-camera global IDF1."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "multi-camera evaluation: per-camera MOTA/IDF1 and cross-camera global IDF1 (DukeMTMC MTMC style)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", type=Path, required=True,
                        help="folder with <cam>/gt/gt.txt and identities.json (from virtual-cameras)")
    parser.add_argument("--results", type=Path, required=True,
                        help="folder with <cam>.txt result files carrying global ids (the runner's mot_global/)")
    parser.add_argument("--benchmark", default="MOT15", help="gt conventions for the evaluator (MOT15, MOT17)")
    parser.add_argument("--cams", nargs="*", default=None, help="cameras to evaluate (default: all in identities.json)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON report to this file")


def run(args: argparse.Namespace) -> int:
    from pipeline.evaluation.multicam import evaluate_multicam

    report = evaluate_multicam(args.gt, args.results, benchmark=args.benchmark, cams=args.cams)
    data = report.to_json()
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data, indent=1), encoding="utf-8")
    print(json.dumps(data, indent=1) if args.json else report.table())
    return 0
