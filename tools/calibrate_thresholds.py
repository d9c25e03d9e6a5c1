"""Carry distance thresholds from one re-id model to another at the same false-match rate, on training data.

A cosine-distance threshold (the tracker's ``appearance.appearance_thresh``, the matcher's fixed
warm-up ``matching.threshold``) means "how often two different people pass". When the shipped
encoder changes, its distance scale changes; this tool measures, on the **Market-1501 train
identities of the benchmark split** (501 ids; the new default was trained on them, so no test
identity is used for tuning), the false-match rate of each old threshold under the old model and
returns the new model's distance with the same false-match rate, with both models' true-match
rates at that point. Pairs: seeded, balanced, positives across cameras, negatives of different
identities.

    .venv/bin/python tools/calibrate_thresholds.py --old runs/old_default.pt --new default \
        --thresholds 0.35 0.4 [--crops 2500] [--pairs 20000] [--out runs/calibrate_thresholds.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def balanced_pairs(pids: np.ndarray, cams: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, same) index arrays: n/2 same-identity cross-camera pairs and n/2 different-identity pairs."""
    rng = np.random.default_rng(seed)
    by_pid: dict[int, np.ndarray] = {int(p): np.nonzero(pids == p)[0] for p in np.unique(pids)}
    keys = [p for p, idx in by_pid.items() if len(np.unique(cams[idx])) > 1]
    a, b = [], []
    while len(a) < n // 2:
        idx = by_pid[keys[int(rng.integers(len(keys)))]]
        i, j = rng.choice(idx, 2, replace=False)
        if cams[i] != cams[j]:
            a.append(i)
            b.append(j)
    na, nb = [], []
    while len(na) < n // 2:
        i, j = rng.integers(len(pids), size=2)
        if pids[i] != pids[j]:
            na.append(i)
            nb.append(j)
    same = np.r_[np.ones(len(a), bool), np.zeros(len(na), bool)]
    return np.array(a + na), np.array(b + nb), same


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old", required=True, help="model spec of the old encoder (checkpoint path, default, imagenet)")
    ap.add_argument("--new", default="default")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.35, 0.4])
    ap.add_argument("--crops", type=int, default=2500, help="Market train-split crops to embed (seeded sample)")
    ap.add_argument("--pairs", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/calibrate_thresholds.json"))
    args = ap.parse_args(argv)

    from pipeline.commands.eval_reid import load_encoder
    from pipeline.core.errors import ReidPipelineError
    from pipeline.core.paths import require_shared
    from reid_models.datasets.index import load_market_folder
    from reid_models.datasets.protocols import market_split
    from reid_models.evaluate import EvalConfig, embed_paths

    try:
        folder = require_shared() / "data" / "reid" / "Market-1501" / "bounding_box_train"
        train = [it for it in market_split(load_market_folder(folder)) if it.split == "train"]
        keep = np.sort(np.random.default_rng(args.seed).choice(len(train), min(args.crops, len(train)), replace=False))
        items = [train[int(i)] for i in keep]
        pids = np.array([it.pid for it in items])
        cams = np.array([it.camid for it in items])
        a, b, same = balanced_pairs(pids, cams, args.pairs, args.seed)
        dist = {}
        for role, spec in (("old", args.old), ("new", args.new)):
            enc = load_encoder(spec, "auto")
            f = embed_paths(enc.embed_crops, [it.path for it in items], EvalConfig(), progress=True)
            # cosine distance 1 - cos, as the tracker and the matcher use
            dist[role] = (1.0 - np.sum(f[a] * f[b], axis=1), enc.version)
    except ReidPipelineError as exc:
        print(f"calibrate_thresholds: error: {exc}", file=sys.stderr)
        return 2
    rows = []
    d_old, d_new = dist["old"][0], dist["new"][0]
    for t in args.thresholds:
        fmr = float(np.mean(d_old[~same] <= t))
        t_new = float(np.quantile(d_new[~same], fmr)) if fmr > 0 else float(d_new[~same].min())
        rows.append({"old_threshold": t, "false_match_rate": fmr, "new_threshold": round(t_new, 4),
                     "old_true_match_rate": float(np.mean(d_old[same] <= t)),
                     "new_true_match_rate": float(np.mean(d_new[same] <= t_new))})
        print(f"old {t:.3f}: false-match rate {fmr:.4f} (TPR {rows[-1]['old_true_match_rate']:.3f}) -> new "
              f"{t_new:.4f} (TPR {rows[-1]['new_true_match_rate']:.3f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"data": "Market-1501 train identities of the 501/250 split (seed 0)",
                                    "crops": len(items), "pairs": int(len(same)), "old": dist["old"][1],
                                    "new": dist["new"][1], "rows": rows}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
