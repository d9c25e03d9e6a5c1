#!/usr/bin/env python
"""Unsupervised adaptation benchmark on the 2-camera virtual split of PETS09-S2L1 (issue 5).

1. Builds the split (two-regions, blind gap 0.1, as tools/bench_pipeline.py) once, and runs the
   pipeline once (yolov5n ONNX, default re-id model, embeds every 2nd frame) with
   ``adapt.enabled`` so every final tracklet is stored with up to 16 crops. ``--reuse`` keeps a
   store from an earlier run.
2. Copies the store and runs ONE adaptation round on the copy (``pipeline.adaptation.worker``:
   presumed positives, co-occurrence negatives, modified batch-hard, RMSProp 1e-5 -> 1e-6, the
   hold-out guardrail). No labels are used for adaptation.
3. Measures with the gt only: gt identity of every stored tracklet by IoU >= 0.5 majority vote
   against its virtual camera's gt; the fraction of true positives among the presumed positives
   (the round's own, and over all tracklets for several alpha); cross-camera tracklet re-id
   rank-1 / mAP; global IDF1 (``evaluate_multicam``) of an offline re-matching of the stored
   tracklets (in end-time order, fresh CrossCameraMatcher) -- before (base model) and after
   (the fine-tuned candidate, whether or not the guardrail deployed it), both from the same crops.

Writes results.json, results.md and results.png under ``--out`` (default runs/bench_adapt)::

    .venv/bin/python tools/bench_adapt.py [--budget-s 150] [--max-steps 300] [--threads 1] [--reuse]

Seed 002's Table 2 on Market-1501 (issue 13: pre-train on CUHK03 / CUHK03 + PETS, adapt on Market crops without
labels, four rows in one JSON) is ``tools/bench_adapt_market.py``; docs/adaptation.md gives its command.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np


from pipeline.core.paths import REPO_ROOT, require_shared

CAMS = ("left", "right")


def build_split(out: Path, max_frames: int | None) -> Path:
    from pipeline.virtual_cameras import build_virtual_cameras

    cams_dir = out / (f"cams_{max_frames}" if max_frames else "cams")
    if not (cams_dir / "identities.json").is_file():
        seq = require_shared() / "data" / "MOT15" / "train" / "PETS09-S2L1"
        build_virtual_cameras(seq, cams_dir, layout="two-regions", gap=0.1,
                              frame_range=(1, max_frames) if max_frames else None)
    return cams_dir


def run_pipeline(cams_dir: Path, run_dir: Path, crops: int) -> dict:
    """The whole pipeline once, crops stored with every final tracklet; returns its summary."""
    from pipeline.camconfig import CamsConfig
    from pipeline.core.configio import validate
    from pipeline.runner.loop import PipelineRunner

    if run_dir.exists():
        shutil.rmtree(run_dir)
    cfg = validate(CamsConfig, {
        "mode": "batch", "run_key": "bench-adapt",
        "cameras": [{"id": c, "source": str(cams_dir / c / "video.mp4")} for c in CAMS],
        "detector": {"kind": "onnx", "weights": str(require_shared() / "weights" / "yolov5n.onnx"), "conf": 0.25},
        "encoder": {"checkpoint": "default", "every": 2},
        "store": {"path": str(run_dir / "identities.sqlite")},
        "outputs": {"dir": str(run_dir), "video": False, "timeline_png": False},
        "adapt": {"enabled": True, "crops_per_tracklet": crops},
    }, "<bench_adapt>")
    from trackers.config import load_tracker_config

    # the YOLO tracker config, as the demo and bench_pipeline (read here: the config below the entry point is typed)
    cfg = cfg.model_copy(update={"tracker": load_tracker_config("yolo")})
    from pipeline.evaluation.multicam import evaluate_multicam

    summary = PipelineRunner(cfg, out_dir=run_dir).run()
    online = evaluate_multicam(cams_dir, run_dir / "mot_global").global_.get("IDF1", 0.0)
    return {k: v for k, v in summary.items() if k != "timing"} | {
        "fps": summary["timing"].get("fps_per_cam"), "online_global_idf1": round(online, 2)}


def gt_identities(sets, cams_dir: Path, min_iou: float = 0.5) -> list[int | None]:
    """Majority gt id (IoU >= min_iou per frame, majority >= half the frames) of each crop set, else None."""
    from pipeline.evaluation.multicam import load_identity_map
    from pipeline.core.types import iou_matrix_tlbr, tlwh_to_tlbr

    id_maps = load_identity_map(cams_dir)
    gt = {}
    for cam in CAMS:
        rows = np.loadtxt(cams_dir / cam / "gt" / "gt.txt", delimiter=",", ndmin=2)
        gt[cam] = {int(f): rows[rows[:, 0] == f] for f in np.unique(rows[:, 0])}
    out: list[int | None] = []
    for s in sets:
        votes: dict[int, int] = {}
        for f, box in zip(s.all_frames, s.boxes_tlwh):
            g = gt[s.cam_id].get(int(f))
            if g is None:
                continue
            iou = iou_matrix_tlbr(tlwh_to_tlbr(box[None, :]), tlwh_to_tlbr(g[:, 2:6]))[0]
            j = int(np.argmax(iou))
            if iou[j] >= min_iou:
                pid = id_maps.get(s.cam_id, {}).get(int(g[j, 1]), int(g[j, 1]))
                votes[pid] = votes.get(pid, 0) + 1
        best = max(votes.items(), key=lambda kv: kv[1]) if votes else None
        out.append(best[0] if best and best[1] >= 0.5 * len(s.all_frames) else None)
    return out


def reid_scores(vectors: np.ndarray, pids: list[int | None], cams: list[str]) -> dict:
    """Cross-camera tracklet retrieval: every tracklet with a gt id queries the other camera's tracklets."""
    from reid_models.metrics import cmc_map

    keep = [i for i, p in enumerate(pids) if p is not None]
    v, p, c = vectors[keep], np.array([pids[i] for i in keep]), np.array([cams[i] for i in keep])
    r = cmc_map(v, p, c, v, p, c, ignore=c[:, None] == c[None, :])
    return {"rank1": round(r["rank1"], 2), "mAP": round(r["mAP"], 2), "queries": r["num_queries"]}


def matcher_configs(thresholds: list[float]) -> dict:
    """label -> MatcherConfig: "auto" = the pipeline's default (label-free calibrated threshold),
    then fixed thresholds (calibration off)."""
    from pipeline.matching.config import MatcherConfig

    out = {"auto": MatcherConfig()}
    out.update({f"{t:.2f}": MatcherConfig(threshold=t, auto_threshold=None) for t in thresholds})
    return out


def rematch_idf1(sets, vectors: np.ndarray, cams_dir: Path, work: Path, configs: dict) -> dict[str, float]:
    """Global IDF1 of an offline re-matching of the tracklets (end-time order) per matcher config."""
    from pipeline.evaluation.rematch import rematch_global_idf1

    from pipeline.core.types import TrackletEmbedding

    order = sorted(range(len(sets)), key=lambda i: (sets[i].end_time, sets[i].cam_id, sets[i].track_id))
    items = [TrackletEmbedding(sets[i].cam_id, sets[i].track_id, sets[i].start_time, sets[i].end_time, vectors[i])
             for i in order]
    frames_boxes = [(sets[i].all_frames, sets[i].boxes_tlwh) for i in order]
    return {label: rematch_global_idf1(items, frames_boxes, mcfg, cams_dir, work / f"matcher_{label}")
            for label, mcfg in configs.items()}


def tp_fraction_by_alpha(sets, vectors: np.ndarray, pids, alphas: list[float],
                         mining_distance: str = "cosine") -> dict[str, dict]:
    """Presumed positives mined over ALL tracklets (no hold-out) at each alpha, and their TP fraction."""
    from pipeline.core.types import TrackletEmbedding
    from reid_models.adaptation.mining import presumed_positives, true_positive_fraction
    from reid_models.rerank import k_reciprocal_distance

    items = [TrackletEmbedding(s.cam_id, s.track_id, s.start_time, s.end_time, vectors[i]) for i, s in enumerate(sets)]
    dist = k_reciprocal_distance(np.asarray(vectors)) if mining_distance == "k_reciprocal" else None
    out = {}
    for a in alphas:
        pairs = presumed_positives(items, alpha=a, distance=dist)
        out[f"{a:g}"] = {"pairs": len(pairs), "tp_fraction": round(true_positive_fraction(pairs, pids), 3)}
    return out


def tracklet_vectors(model, sets, device: str = "cpu") -> np.ndarray:
    from reid_models.adaptation.trainer import embed_sets, mean_vector, tensors_from_crops

    images = [tensors_from_crops(s.crops, model.input_size, model.pixel_mean, model.pixel_std) for s in sets]
    return np.stack([mean_vector(v) for v in embed_sets(model.to(device), images, device,
                                                        cams=[s.cam_id for s in sets])])


def evaluate(name: str, model, sets, pids, cams_dir: Path, work: Path, configs: dict) -> dict:
    vectors = tracklet_vectors(model, sets)
    idf1 = rematch_idf1(sets, vectors, cams_dir, work / name, configs)
    fixed = [v for k, v in idf1.items() if k != "auto"]
    return {"reid": reid_scores(vectors, pids, [s.cam_id for s in sets]), "idf1_by_matcher": idf1,
            "global_idf1": idf1["auto"], "best_global_idf1": max(fixed), "vectors": vectors}


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b, a = res["before"], res["after"]
    names = ["rank-1", "mAP", "global IDF1\n(default matcher)", "global IDF1\n(best fixed thr)"]
    vb = [b["reid"]["rank1"], b["reid"]["mAP"], b["global_idf1"], b["best_global_idf1"]]
    va = [a["reid"]["rank1"], a["reid"]["mAP"], a["global_idf1"], a["best_global_idf1"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(names))
    ax1.bar(x - 0.2, vb, 0.4, label="before (base model)")
    ax1.bar(x + 0.2, va, 0.4, label="after (fine-tuned candidate)")
    for xi, (p, q) in enumerate(zip(vb, va)):
        ax1.text(xi - 0.2, p + 1, f"{p:.1f}", ha="center", fontsize=7)
        ax1.text(xi + 0.2, q + 1, f"{q:.1f}", ha="center", fontsize=7)
    ax1.set(xticks=x, xticklabels=names, ylim=(0, 105), ylabel="%",
            title="Virtual 2-camera PETS09-S2L1: before / after adaptation")
    ax1.legend(fontsize=8, loc="lower right")
    losses = np.asarray(res["adaptation"]["losses"])
    if len(losses):
        ax2.plot(losses, lw=0.6, alpha=0.5, label="loss per step")
        w = max(1, len(losses) // 20)
        ax2.plot(np.convolve(losses, np.ones(w) / w, mode="valid"), lw=1.5, label=f"running mean ({w})")
    ax2.set(xlabel="step", ylabel="modified batch-hard (soft margin)", title="Fine-tuning loss")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(res: dict) -> str:
    b, a, ad = res["before"], res["after"], res["adaptation"]
    rows = [("cross-camera rank-1 (%)", b["reid"]["rank1"], a["reid"]["rank1"]),
            ("cross-camera mAP (%)", b["reid"]["mAP"], a["reid"]["mAP"]),
            ("global IDF1, pipeline's default matcher (auto threshold) (%)", b["global_idf1"], a["global_idf1"]),
            ("global IDF1, best fixed threshold of the grid (%)", b["best_global_idf1"], a["best_global_idf1"])]
    lines = ["# Unsupervised adaptation benchmark: 2-camera virtual PETS09-S2L1", "",
             f"Command: `{res['command']}`  ", f"Machine: {res['machine']}; torch threads {res['threads']}", "",
             f"Pipeline run: {res['pipeline']['tracklets_stored']} tracklet rows stored, {res['tracklets']} "
             f"tracklets with crops ({res['tracklets_with_gt']} matched to a gt identity, "
             f"{res['cross_camera_ids']} gt identities seen by both cameras); the run's own online global IDF1 "
             f"{res['pipeline'].get('online_global_idf1', float('nan')):.2f}", "",
             "| metric | before | after | change |", "|---|---:|---:|---:|"]
    lines += [f"| {n} | {x:.2f} | {y:.2f} | {y - x:+.2f} |" for n, x, y in rows]
    tp = res["tp_fraction_round"]
    mined = [p for p in ad["positives"] if p.get("kind", "presumed") == "presumed"]
    own = len(ad["positives"]) - len(mined)
    lines += ["", f"Positives of the round (`--positives {ad.get('positives_mode', 'presumed')}`, after the hold-out "
              f"split): {len(mined)} presumed pairs (alpha {ad['alpha']}), true-positive fraction **{tp:.3f}** "
              f"(paper: 0.83 on MARS); {own} tracklets paired with themselves", "",
              "Presumed positives over all tracklets by alpha (base model): ", "",
              "| alpha | pairs | TP fraction |", "|---:|---:|---:|"]
    lines += [f"| {k} | {v['pairs']} | {v['tp_fraction']:.3f} |" for k, v in res["tp_by_alpha"].items()]
    lines += ["", f"Round: {ad['steps']} steps in {ad['train_s']:.1f} s ({ad['stopped_by']}), "
              f"{ad['train_tracklets']} train / {ad['holdout_tracklets']} hold-out tracklets, "
              f"mean {ad['mean_negatives']:.1f} negatives per positive; hold-out continuity AUC "
              f"{ad['holdout_auc_base']:.4f} -> {ad['holdout_auc_candidate']:.4f}; guardrail: "
              f"**{'deployed' if ad['deployed'] else 'not deployed'}** ({ad['reason']}); "
              f"{ad['reembedded']} tracklets re-embedded.", "",
              "Global IDF1 by matcher (offline re-matching of the stored tracklets; auto = label-free"
              " calibrated threshold, the pipeline's default; numbers = fixed thresholds):", "",
              "| matcher | " + " | ".join(b["idf1_by_matcher"]) + " |", "|---|" + "---:|" * len(b["idf1_by_matcher"])]
    for name, r in (("before", b), ("after", a)):
        lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in r["idf1_by_matcher"].values()) + " |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "bench_adapt")
    ap.add_argument("--max-frames", type=int, default=None, help="source frames (default: all 795)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--budget-s", type=float, default=150.0)
    ap.add_argument("--max-steps", type=int, default=300)
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--positives", choices=["presumed", "tracklets", "both"], default="presumed")
    ap.add_argument("--min-gain", type=float, default=0.0, help="guardrail: hold-out AUC gain required to deploy")
    ap.add_argument("--mining-distance", choices=["cosine", "k_reciprocal"], default="cosine",
                    help="what ranks the presumed positives (adapt.mining_distance)")
    ap.add_argument("--bn-stats", choices=["source", "target", "camera"], default="source",
                    help="target: AdaBN on the round's training crops before mining and fine-tuning; camera: also"
                         " per-camera statistics (camera-based BN)")
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--final-lr", type=float, default=1e-6)
    ap.add_argument("--crops", type=int, default=16, help="crops stored per tracklet")
    ap.add_argument("--seed", type=int, default=0, help="seed of the hold-out split, negatives and batches")
    ap.add_argument("--reuse", action="store_true", help="keep the pipeline store of an earlier run")
    return ap.parse_args(argv)


def prepare_store(args: argparse.Namespace) -> tuple[Path, Path, dict]:
    """(cams dir, adaptation work dir holding a snapshot of the run's store, pipeline summary)."""
    import sqlite3

    cams_dir = build_split(args.out, args.max_frames)
    run_dir, store_path = args.out / "run", args.out / "run" / "identities.sqlite"
    summary_path = args.out / "pipeline_summary.json"
    if not (args.reuse and store_path.is_file() and summary_path.is_file()):
        summary_path.write_text(json.dumps(run_pipeline(cams_dir, run_dir, args.crops), indent=1, default=str))
    work = args.out / "adapt"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    with sqlite3.connect(store_path) as src, sqlite3.connect(work / "identities.sqlite") as dst:
        src.backup(dst)  # a consistent snapshot, WAL content included (a file copy may miss it)
    return cams_dir, work, json.loads(summary_path.read_text())


def round_tp_fraction(rep, sets, pids) -> float:
    """True-positive fraction of the round's own presumed positives (tracklet ids -> gt ids)."""
    from reid_models.adaptation.mining import PositivePair, true_positive_fraction

    index = {s.tracklet_id: i for i, s in enumerate(sets)}
    pairs = [PositivePair(index[p["tracklet_a"]], index[p["tracklet_b"]], p["distance"]) for p in rep.positives
             if p.get("kind", "presumed") == "presumed"]  # a tracklet with itself is true by construction
    return round(true_positive_fraction(pairs, pids), 3)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import copy
    import platform

    import torch

    from pipeline.adaptation.data import load_crop_sets
    from pipeline.adaptation.settings import AdaptSettings
    from pipeline.adaptation.worker import adapt_once, load_base_model
    from pipeline.store import IdentityStore

    torch.set_num_threads(args.threads)
    t0 = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    cams_dir, work, pipeline_summary = prepare_store(args)
    settings = AdaptSettings(budget_s=args.budget_s, max_steps=args.max_steps, threads=args.threads, device="auto",
                             alpha=args.alpha, positives=args.positives, bn_stats=args.bn_stats, min_gain=args.min_gain, mining_distance=args.mining_distance, lr=args.lr, final_lr=args.final_lr,
                             seed=args.seed)
    matchers = matcher_configs([0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5])
    with IdentityStore(work / "identities.sqlite") as store:
        sets = load_crop_sets(store)
        pids = gt_identities(sets, cams_dir)
        _, base = load_base_model(store)
        before = evaluate("before", base, sets, pids, cams_dir, work, matchers)
        rep = adapt_once(store, settings, progress=True)
    cand = copy.deepcopy(base)
    if rep.candidate_state is not None:
        cand.load_state_dict(rep.candidate_state)
        cand.camera_bn = rep.candidate_camera_bn
    after = evaluate("after", cand, sets, pids, cams_dir, work, matchers)
    seen = [{p for p, s in zip(pids, sets) if p is not None and s.cam_id == cam} for cam in CAMS]
    res = {
        "command": "python tools/bench_adapt.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()} ({__import__('os').cpu_count()} cores)", "threads": args.threads,
        "pipeline": pipeline_summary, "tracklets": len(sets), "tracklets_with_gt": sum(p is not None for p in pids),
        "cross_camera_ids": len(seen[0] & seen[1]), "fixed_thresholds": [k for k in matchers if k != "auto"],
        "tp_fraction_round": round_tp_fraction(rep, sets, pids),
        "tp_by_alpha": tp_fraction_by_alpha(sets, before["vectors"], pids, [0.1, 0.2, 0.3, 0.5], args.mining_distance),
        "before": {k: v for k, v in before.items() if k != "vectors"},
        "after": {k: v for k, v in after.items() if k != "vectors"},
        "adaptation": rep.to_json() | {"alpha": args.alpha, "positives_mode": args.positives, "bn_stats": args.bn_stats, "mining_distance": args.mining_distance, "lr": args.lr, "final_lr": args.final_lr},
        "total_bench_s": round(time.time() - t0, 1),
    }
    (args.out / "results.json").write_text(json.dumps(res, indent=1, default=float) + "\n", encoding="utf-8")
    md = markdown(res)
    (args.out / "results.md").write_text(md, encoding="utf-8")
    plot(res, args.out / "results.png")
    print("\n" + md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
