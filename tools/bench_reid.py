"""Re-id benchmark on PETS09-S2L1 (issue 3 targets): default model vs raw ImageNet MobileNetV2.

Split (stated in the output): ``reid-pipeline make-triplets PETS09-S2L1 --stride 2 --min-vis 0 --split 0.5,0.0,0.5
--seed 0`` -> 19 identities, identity-disjoint: 9 train (used to train the default model) and 10 test;
every 2nd frame; crops >= 50 px high. All figures are on the 10 test identities only.

Targets: default beats the ImageNet baseline by >= 10 points of rank-1 AND of mAP, and reaches
TPR >= 0.90 at FPR <= 0.10 on the balanced pairs of pairs_test.csv. Also: tracklet-to-tracklet
rank-1 with mean pooling vs the LSTM aggregator, and embedding throughput (crops/s, batch 64)
of every backbone with PyTorch and ONNX (onnxruntime) on this machine.

Usage::

    .venv/bin/python tools/bench_reid.py [--dataset runs/reid_data/pets] [--lstm runs/reid/pets_lstm/best.pt]
        [--out runs/bench_reid] [--threads 2] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.paths import require_shared  # noqa: E402

TARGET_POINTS = 10.0
TARGET_TPR, TARGET_FPR = 0.90, 0.10


def ensure_dataset(path: Path) -> None:
    if (path / "index.csv").is_file():
        return
    from pipeline.cli import main

    pets = require_shared() / "data" / "MOT15" / "train" / "PETS09-S2L1"
    rc = main(["make-triplets", str(pets), "--out", str(path), "--stride", "2", "--min-vis", "0", "--split", "0.5,0.0,0.5", "--seed", "0"])
    if rc != 0:
        raise SystemExit(rc)


def evaluate_models(dataset: Path, lstm: Path | None, ten_crop: bool) -> dict:
    from pipeline.commands.eval_reid import build_aggregators, load_encoder
    from reid_models.evaluate import EvalConfig, evaluate_dataset, summary_line

    out = {}
    runs = [("imagenet", "imagenet", False), ("default", "default", False)]
    if ten_crop:
        runs.append(("default_10crop", "default", True))
    for name, spec, tc in runs:
        enc = load_encoder(spec, "auto")
        aggs = build_aggregators(lstm if spec == "default" else None)
        t0 = time.perf_counter()
        m = evaluate_dataset(dataset, enc.embed_crops, EvalConfig(ten_crop=tc), aggs, progress=False)
        m["model"] = {"spec": spec, "version": enc.version, "dim": enc.dim, "ten_crop": tc}
        m["eval_seconds"] = time.perf_counter() - t0
        print(f"{name:>15}: {summary_line(m)}", flush=True)
        out[name] = m
    return out


def _crops(dataset: Path, n: int = 64) -> list[np.ndarray]:
    import cv2

    from reid_models.datasets import load_index

    items = load_index(dataset)[:n]
    return [cv2.imread(str(it.path)) for it in items]


def throughput(dataset: Path, reps: int = 2) -> list[dict]:
    """crops/s of AppearanceEncoder.embed_crops on one batch of 64 real crops, per backbone and backend."""
    from reid_models.backbones import available_models, build_model
    from reid_models.encoder import AppearanceEncoder
    from reid_models.export import export_onnx

    crops = _crops(dataset)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in available_models():
            model = build_model(name, pretrained=None).eval()
            onnx = export_onnx(model, Path(tmp) / f"{name}.onnx")
            for backend in ("torch", "onnx"):
                interp = "linear" if name == "mobilenetv2_imagenet" else "area"
                enc = AppearanceEncoder(model, name, "cpu", backend, 64, onnx if backend == "onnx" else None, interp)
                enc.embed_crops(crops)  # warm-up
                times = []
                for _ in range(reps):
                    t0 = time.perf_counter()
                    enc.embed_crops(crops)
                    times.append(time.perf_counter() - t0)
                best = min(times)
                rows.append({"model": name, "backend": backend, "input_hw": list(model.input_size),
                             "dim": model.embedding_dim, "batch": len(crops), "crops_per_s": len(crops) / best,
                             "ms_per_batch": 1000 * best})
                print(f"throughput {name:>22} {backend:>5}: {len(crops) / best:8.1f} crops/s", flush=True)
    return rows


def verdict(res: dict) -> dict:
    base, dflt = res["imagenet"], res["default"]
    d_r1 = dflt["retrieval"]["rank1"] - base["retrieval"]["rank1"]
    d_map = dflt["retrieval"]["mAP"] - base["retrieval"]["mAP"]
    roc = dflt["roc"]
    return {
        "rank1_gain_points": d_r1, "mAP_gain_points": d_map,
        "tpr_at_fpr_0.1": roc["tpr_at_fpr"], "fpr_at_that": roc["fpr_at_that"], "threshold": roc["threshold_at_fpr"],
        "rank1_target_met": d_r1 >= TARGET_POINTS, "mAP_target_met": d_map >= TARGET_POINTS,
        "roc_target_met": roc["tpr_at_fpr"] >= TARGET_TPR,
    }


def table(res: dict, v: dict, thr: list[dict]) -> str:
    lines = ["| model | rank-1 | rank-5 | mAP | TPR@FPR<=0.1 | AUC | EER | triplet acc | tracklet r1 mean | tracklet r1 lstm |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in res.items():
        r, roc, t = m["retrieval"], m["roc"], m["tracklets"]
        lstm = f"{t['lstm']['rank1']:.1f}" if "lstm" in t and t["lstm"].get("num_queries") else "-"
        lines.append(f"| {name} | {r['rank1']:.1f} | {r['rank5']:.1f} | {r['mAP']:.1f} | {roc['tpr_at_fpr']:.3f} "
                     f"| {roc['auc']:.3f} | {roc['eer']:.3f} | {m.get('triplet_accuracy', float('nan')):.3f} "
                     f"| {t['mean'].get('rank1', float('nan')):.1f} | {lstm} |")
    lines.append("")
    lines.append(f"default - imagenet: rank-1 {v['rank1_gain_points']:+.1f} points "
                 f"({'met' if v['rank1_target_met'] else 'MISSED'}), mAP {v['mAP_gain_points']:+.1f} points "
                 f"({'met' if v['mAP_target_met'] else 'MISSED'}); TPR {v['tpr_at_fpr_0.1']:.3f} at FPR "
                 f"{v['fpr_at_that']:.3f} (th {v['threshold']:.3f}) ({'met' if v['roc_target_met'] else 'MISSED'})")
    if thr:
        lines += ["", "| backbone | backend | input HxW | dim | crops/s (batch 64) |", "|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['backend']} | {r['input_hw'][0]}x{r['input_hw'][1]} | {r['dim']} "
                  f"| {r['crops_per_s']:.1f} |" for r in thr]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", type=Path, default=Path("runs/reid_data/pets"))
    ap.add_argument("--lstm", type=Path, default=Path("runs/reid/pets_lstm/best.pt"))
    ap.add_argument("--out", type=Path, default=Path("runs/bench_reid"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-ten-crop", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args(argv)
    import torch

    from reid_models.plots import plot_cmc, plot_roc

    torch.set_num_threads(args.threads)
    ensure_dataset(args.dataset)
    lstm = args.lstm if args.lstm and args.lstm.is_file() else None
    res = evaluate_models(args.dataset, lstm, not args.no_ten_crop)
    v = verdict(res)
    thr = [] if args.skip_throughput else throughput(args.dataset)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = json.loads((args.dataset / "summary.json").read_text())
    doc = {"dataset": str(args.dataset), "split": summary["splits"], "dataset_config": summary["config"],
           "lstm_checkpoint": str(lstm) if lstm else None, "verdict": v, "results": res, "throughput": thr,
           "machine": {"cpu_threads": args.threads, "platform": platform.platform(), "torch": torch.__version__}}
    (args.out / "results.json").write_text(json.dumps(doc, indent=1))
    text = table(res, v, thr)
    (args.out / "table.md").write_text(text + "\n")
    plot_roc({k: m["roc"] for k, m in res.items()}, args.out / "roc.png", TARGET_FPR)
    plot_cmc({k: m["retrieval"] for k, m in res.items()}, args.out / "cmc.png")
    print(text)
    print(f"wrote {args.out}/results.json, table.md, roc.png, cmc.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
