"""Print how far our evaluator is from TrackEval's reference, per sequence and combined.

    .venv/bin/python tools/eval_vs_trackeval.py [--ref tests/data/trackeval_mot17_mpntrack.json]

Evaluates ../shared/data/MOT17/results/MPNTrack against ../shared/data/MOT17/train (MOT17 rules)
and prints, for each metric, the largest |ours - TrackEval| over the 21 sequences and where.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pipeline.evaluation import evaluate_dirs
from pipeline.core.paths import require_shared

KEYS = ("MOTA", "IDF1", "HOTA", "MOTP", "IDSW", "FP", "FN", "MT", "ML", "IDTP")


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", type=Path, default=here / "tests" / "data" / "trackeval_mot17_mpntrack.json")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    ref = json.loads(args.ref.read_text())
    data = require_shared() / "data" / "MOT17"
    t0 = time.perf_counter()
    report = evaluate_dirs(data / "train", data / "results" / "MPNTrack", "MOT17", workers=args.workers)
    wall = time.perf_counter() - t0
    print(f"evaluated {len(report.per_sequence)} sequences in {wall:.1f} s")
    print(f"{'metric':8s} {'max |dev| per seq':>18s}  {'sequence':16s} {'ours combined':>14s} {'TrackEval':>10s}")
    for key in KEYS:
        if key not in report.overall:
            continue
        devs = {s: abs(report.per_sequence[s][key] - r[key]) for s, r in ref["per_sequence"].items()}
        worst = max(devs, key=devs.get)
        print(f"{key:8s} {devs[worst]:18.4f}  {worst:16s} {report.overall[key]:14.4f} {ref['combined'][key]:10.4f}")


if __name__ == "__main__":
    main()
