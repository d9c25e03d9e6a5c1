#!/usr/bin/env python
"""Live adaptation benchmark (issue 13, live-path items) on the 2-camera PETS09-S2L1 split.

Runs ``tools/bench_pipeline.py``'s 2-camera benchmark (default re-id encoder, the same split,
tracker, matcher and cams.yaml) twice on the same input, with the detector running in both (as
deployed), or replaying stored detector outputs (``--detections-from``: identical detections, no
detector; the clip then takes ~12 s, too short for a round to finish):

1. ``off``: adaptation off (the default);
2. ``on``: ``adapt: {enabled: true, background: true, ...}``: crops are stored with every final
   tracklet, a spawned, niced worker process runs rounds on the store during the run, and the
   runner hot-swaps every deployed version (``pipeline/adaptation/live.py``).

Reports per-camera fps of both runs (target: on >= 80 % of off), the rounds run and each candidate's
guardrail verdict (from the store's ``model_versions``), the seconds of training, re-embedding
(worker side) and hot swap (runner side: weights load + prototype refresh), global IDF1
(``evaluate_multicam``) of both runs, and cross-camera tracklet re-id rank-1 / mAP of the on-run's
stored tracklets embedded by the base model and by the deployed model at the end (scored as
``tools/bench_adapt.py`` does: gt id by IoU majority vote, ``reid_models.metrics.cmc_map``).

Writes results.json and results.md under ``--out`` (default runs/bench_adapt_live)::

    .venv/bin/python -m tools.bench_adapt_live [--detections-from runs/taskB/all_6c61c6d] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.core.paths import REPO_ROOT

TARGET_FPS_RATIO = 0.8


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "bench_adapt_live")
    ap.add_argument("--detections-from", type=Path, default=None,
                    help="replay a bench_pipeline output dir's detections.json (or pets2/detections.json) in both "
                         "runs; default: the detector (yolov5n ONNX) runs in both, as in a deployment")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the pipeline (the machine is shared)")
    ap.add_argument("--every", type=int, default=2, help="encoder.every, as bench_pipeline")
    ap.add_argument("--interval-s", type=float, default=5.0, help="adapt.interval_s")
    ap.add_argument("--min-new-tracklets", type=int, default=8, help="adapt.min_new_tracklets")
    ap.add_argument("--max-steps", type=int, default=5, help="adapt.max_steps")
    ap.add_argument("--budget-s", type=float, default=60.0, help="adapt.budget_s")
    ap.add_argument("--crops-per-tracklet", type=int, default=4, help="adapt.crops_per_tracklet")
    ap.add_argument("--mode", choices=["live"], default="live",
                    help="cams.yaml mode of both runs: live only (adapt.background is refused in batch mode, whose"
                         " open store write transaction the worker cannot write through; docs/adaptation.md)")
    ap.add_argument("--poll-s", type=float, default=1.0, help="adapt.poll_s")
    ap.add_argument("--bn-stats", choices=["source", "target", "camera"], default="source", help="adapt.bn_stats")
    ap.add_argument("--min-gain", type=float, default=0.0, help="adapt.min_gain")
    return ap.parse_args(argv)


def detections_file(path: Path) -> Path:
    for cand in (path / "pets2" / "detections.json", path / "detections.json"):
        if cand.is_file():
            return cand
    raise SystemExit(f"--detections-from: no detections.json in {path} or {path / 'pets2'}")


def reid_before_after(store_path: Path, cams_dir: Path, base_version: str) -> dict:
    """Rank-1 / mAP of the stored tracklets (their crops) under the base and the deployed model."""
    from tools.bench_adapt import gt_identities, reid_scores, tracklet_vectors

    from pipeline.adaptation.data import load_crop_sets
    from pipeline.store import IdentityStore
    from reid_models.adaptation.weights import model_from_weights

    with IdentityStore(store_path) as store:
        sets = load_crop_sets(store)
        deployed = store.deployed_version()
        base = model_from_weights(store.model_weights(base_version))
        after = model_from_weights(store.model_weights(deployed)) if deployed != base_version else None
    pids = gt_identities(sets, cams_dir)
    cams = [s.cam_id for s in sets]
    before = reid_scores(tracklet_vectors(base, sets), pids, cams)
    res = {"tracklets": len(sets), "tracklets_with_gt": sum(p is not None for p in pids), "base_version": base_version,
           "deployed_version": deployed, "before": before}
    res["after"] = reid_scores(tracklet_vectors(after, sets), pids, cams) if after is not None else dict(before)
    res["after_is_base"] = after is None
    return res


def versions(store_path: Path) -> list[dict]:
    from pipeline.store import IdentityStore

    with IdentityStore(store_path) as store:
        return [{"version": v.version, "parent": v.parent, "metrics": v.metrics} for v in store.model_versions()]


def markdown(res: dict) -> str:
    off, on = res["off"], res["on"]
    lines = ["# Live adaptation benchmark (2-camera PETS)", "",
             f"Command: `{res['command']}`  ", f"Adapt settings (on run): `{json.dumps(res['adapt_settings'])}`  ",
             f"Machine: {res['machine']}  ",
             f"Detections: {'replayed from ' + res['detections_replayed_from'] if res['detections_replayed_from'] else 'yolov5n ONNX run live in both runs'}", "",
             "| | adaptation off | adaptation on (background) |", "|---|---:|---:|"]
    for cam in off["fps_per_cam"]:
        lines.append(f"| fps {cam} | {off['fps_per_cam'][cam]:.2f} | {on['fps_per_cam'][cam]:.2f} "
                     f"({res['fps_ratio'][cam]:.0%}) |")
    lines.append(f"| global IDF1 | {off['global_idf1']:.1f} | {on['global_idf1']:.1f} |")
    r = res["reid"]
    lines.append(f"| rank-1 (cross-camera tracklets, %) | {r['before']['rank1']:.1f} | {r['after']['rank1']:.1f} |")
    lines.append(f"| mAP (%) | {r['before']['mAP']:.1f} | {r['after']['mAP']:.1f} |")
    lines += ["", f"Background rounds: {on['background_rounds']}; hot swaps: {len(on['swaps'])}", ""]
    for v in res["versions"]:
        m = v["metrics"]
        if m.get("created_by") == "adaptation":
            lines.append(f"- candidate {v['version'][:12]}: {m.get('reason')} (hold-out AUC "
                         f"{m.get('parent_holdout_auc', float('nan')):.4f} -> {m.get('holdout_auc', float('nan')):.4f}), "
                         f"{m.get('steps')} steps, train {m.get('train_s')} s, re-embedding {m.get('reembed_s')} s")
    for s in on["swaps"]:
        lines.append(f"- hot swap {s['from'][:12]} -> {s['to'][:12]}: {s['swap_s']:.3f} s (load {s['load_s']:.3f} s, "
                     f"{s['prototypes_refreshed']} prototypes {s['prototypes_s']:.3f} s)")
    lines += ["", f"Targets: {res['targets']}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from tools.bench_pipeline import build_split, make_config, run_variant

    from pipeline.adaptation.settings import AdaptSettings
    from pipeline.matching.config import MatcherConfig

    torch.set_num_threads(args.threads)
    t0 = time.time()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    cams_dir = build_split(out, None, 0.1)
    reuse = detections_file(args.detections_from) if args.detections_from is not None else None
    thr = MatcherConfig().threshold
    tracker = "yolo"
    cfg_off = make_config(cams_dir, out / "off", "default", thr, tracker, args.every).model_copy(
        update={"mode": args.mode})
    off, off_eval, cache = run_variant("off", cfg_off, cams_dir, out / "off", None, None, None, reuse)
    adapt = AdaptSettings(enabled=True, background=True, interval_s=args.interval_s,
                          crops_per_tracklet=args.crops_per_tracklet,
                          min_new_tracklets=args.min_new_tracklets, max_steps=args.max_steps, budget_s=args.budget_s,
                          poll_s=args.poll_s, threads=1, device="cpu", bn_stats=args.bn_stats,
                          min_gain=args.min_gain)
    cfg_on = make_config(cams_dir, out / "on", "default", thr, tracker, args.every).model_copy(
        update={"adapt": adapt, "mode": args.mode})
    on, on_eval, _ = run_variant("on", cfg_on, cams_dir, out / "on", cache if reuse else None, None)
    summ = on["adaptation"] or {}
    vers = versions(out / "on" / "identities.sqlite")
    base_version = next(v["version"] for v in vers if v["metrics"].get("source") == "pipeline encoder")
    reid = reid_before_after(out / "on" / "identities.sqlite", cams_dir, base_version)
    fps_off, fps_on = off["timing"]["fps_per_cam"], on["timing"]["fps_per_cam"]
    ratio = {c: round(fps_on[c] / fps_off[c], 3) for c in fps_off}
    res = {
        "command": "python -m tools.bench_adapt_live " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()} ({__import__('os').cpu_count()} cores)",
        "detections_replayed_from": str(reuse) if reuse else None, "mode": args.mode,
        "adapt_settings": {k: v for k, v in adapt.model_dump().items()
                           if k in ("interval_s", "min_new_tracklets", "crops_per_tracklet", "max_steps", "budget_s", "poll_s", "threads",
                                    "device", "nice", "bn_stats", "min_gain")},
        "off": {"fps_per_cam": fps_off, "wall_s": off["timing"].get("wall_s"),
                "global_idf1": round(off_eval["global"].get("IDF1", 0.0), 2), "global_ids": off.get("global_ids")},
        "on": {"fps_per_cam": fps_on, "wall_s": on["timing"].get("wall_s"),
               "global_idf1": round(on_eval["global"].get("IDF1", 0.0), 2), "global_ids": on.get("global_ids"),
               "background_rounds": summ.get("background_rounds"), "swaps": summ.get("swaps", []),
               "encoder_version_at_end": summ.get("encoder_version")},
        "fps_ratio": ratio,
        "versions": vers,
        "reid": reid,
        "total_bench_s": round(time.time() - t0, 1),
    }
    res["targets"] = {"fps_on_ge_80pct_of_off": all(r >= TARGET_FPS_RATIO for r in ratio.values()),
                      "at_least_one_round": bool(summ.get("background_rounds")),
                      "hot_swapped": bool(summ.get("swaps"))}
    (out / "results.json").write_text(json.dumps(res, indent=1, default=float) + "\n", encoding="utf-8")
    md = markdown(res)
    (out / "results.md").write_text(md, encoding="utf-8")
    print("\n" + md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
