"""Learning curve of a re-id training recipe: test figures vs number of training identities and seed.

Why: issue 3's verification target (TPR >= 0.90 at FPR <= 0.10) is measured on PETS09-S2L1's 10 test
identities with a model trained on the other 9. This benchmark retrains the recipe of ``--config``
(by default the shipped default's) on nested seeded subsets of the training identities
(``data.max_identities`` / ``data.subset_seed``) and with several seeds, so the figures show how
they move with the amount of identity diversity, and how far one training seed is from another.

Every run keeps the recipe and the batch size (P x K) of the config: with fewer identities than
P, P becomes the number of identities and K grows so that P x K stays the same. Run ``(n, seed)``
draws its identity subset and its training randomness from the same ``seed``; with n = all
identities only the training randomness changes. Each run is evaluated like ``tools/bench_reid.py``
(same test split, same protocol, ``--embedding pooled`` for ``mobilenetv2_fc`` recipes, as shipped),
next to the raw ImageNet MobileNetV2 baseline.

Usage::

    .venv/bin/python tools/bench_reid_curve.py [--config configs/reid/pets_default_pooled.yaml]
        [--ids 3 5 7 9] [--seeds 0 1 2] [--jobs 2] [--out runs/bench_reid_curve] [--eval-dataset runs/reid_data/pets]

With ``--ids 9`` only, it compares a recipe over seeds (``configs/reid/experiments/``, docs/reid_data_eval.md).

Runs whose ``last.pt`` under ``--out`` holds the last epoch are reused, interrupted ones resumed
(delete the folder to retrain).
Writes ``results.json``, ``table.md`` and ``curve.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


from pipeline.core.paths import require_shared
from pipeline.evaluation.pets_reid_set import PETS_SPLIT_ARGS, TARGET_FPR, ensure_pets_set

TARGET_TPR = 0.90  # issue 17's PETS row (tools/bench_reid.py TARGETS['pets_tpr'])

METRICS = (("rank1", "rank-1 (%)"), ("mAP", "mAP (%)"), ("tpr", f"TPR at FPR <= {TARGET_FPR:g}"))


def run_config(base: dict, n_ids: int, n_total: int, seed: int, out_dir: Path) -> dict:
    """The base config (a TrainConfig dict) for ``n_ids`` identities and ``seed``, writing to ``out_dir``."""
    cfg = json.loads(json.dumps(base))
    p, k = cfg["sampler"]["p"], cfg["sampler"]["k"]
    if n_ids < p:
        cfg["sampler"]["p"], cfg["sampler"]["k"] = n_ids, max(2, round(p * k / n_ids))
    cfg["data"]["max_identities"] = n_ids if n_ids < n_total else None
    cfg["data"]["subset_seed"] = seed
    cfg["seed"] = seed
    cfg["name"] = f"{base['name']}_ids{n_ids}_seed{seed}"
    cfg["output_dir"] = str(out_dir)
    return cfg


def train(cfg: dict, cfg_path: Path, log_path: Path) -> Path:
    """Train (a subprocess of ``reid-pipeline train``) unless a complete ``last.pt`` exists (an
    incomplete one, from an interrupted run, is resumed); returns it."""
    import yaml

    from reid_models.checkpoint import read_checkpoint

    last = Path(cfg["output_dir"]) / "last.pt"
    resume: list[str] = []
    if last.is_file():  # written every epoch: complete, or an interrupted run to resume
        if int(read_checkpoint(last).get("epoch", -1)) + 1 >= int(cfg["epochs"]):
            return last
        resume = ["--resume", str(last)]
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    with log_path.open("a" if resume else "w") as log:
        rc = subprocess.call([sys.executable, "-m", "pipeline.cli", "train", "--config", str(cfg_path), *resume],
                             stdout=log, stderr=subprocess.STDOUT)
    if rc != 0 or not last.is_file():
        raise SystemExit(f"training {cfg_path} failed (exit {rc}); see {log_path}")
    return last


def evaluate(checkpoint: Path | None, dataset: Path) -> dict:
    """rank-1 / mAP / TPR@FPR of a checkpoint's shipped embedding (pooled trunk for mobilenetv2_fc);
    None = the raw ImageNet MobileNetV2 baseline."""
    from reid_models.checkpoint import model_from_blob, pooled_trunk_blob, read_checkpoint, state_hash
    from reid_models.encoder import AppearanceEncoder
    from reid_models.evaluate import EvalConfig, evaluate_dataset

    if checkpoint is None:
        enc = AppearanceEncoder.imagenet_baseline(device="cpu")
    else:
        blob = read_checkpoint(checkpoint)
        if blob["model_name"] == "mobilenetv2_fc":
            blob = pooled_trunk_blob(blob, str(checkpoint))
        model = model_from_blob(blob, str(checkpoint))
        enc = AppearanceEncoder(model, state_hash(model.state_dict()), "cpu")
    m = evaluate_dataset(dataset, enc.embed_crops, EvalConfig(), progress=False)
    return {"rank1": m["retrieval"]["rank1"], "mAP": m["retrieval"]["mAP"], "tpr": m["roc"]["tpr_at_fpr"],
            "fpr": m["roc"]["fpr_at_that"], "auc": m["roc"]["auc"]}


def table(rows: list[dict], baseline: dict) -> str:
    lines = ["| train ids | seed | rank-1 | mAP | TPR@FPR<=0.1 | AUC |", "|---|---|---|---|---|---|",
             f"| ImageNet (no training) | - | {baseline['rank1']:.1f} | {baseline['mAP']:.1f} | {baseline['tpr']:.3f} "
             f"| {baseline['auc']:.3f} |"]
    for r in rows:
        lines.append(f"| {r['ids']} | {r['seed']} | {r['rank1']:.1f} | {r['mAP']:.1f} | {r['tpr']:.3f} | {r['auc']:.3f} |")
    lines += ["", "| train ids | runs | rank-1 mean (min-max) | mAP mean (min-max) | TPR mean (min-max) |", "|---|---|---|---|---|"]
    for n in sorted({r["ids"] for r in rows}):
        sel = [r for r in rows if r["ids"] == n]
        cells = []
        for key, _ in METRICS:
            v = np.array([r[key] for r in sel])
            fmt = ".3f" if key == "tpr" else ".1f"
            cells.append(f"{v.mean():{fmt}} ({v.min():{fmt}}-{v.max():{fmt}})")
        lines.append(f"| {n} | {len(sel)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], baseline: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    ns = sorted({r["ids"] for r in rows})
    for ax, (key, label) in zip(axes, METRICS):
        for r in rows:
            ax.scatter(r["ids"], r[key], color="tab:blue", alpha=0.6, s=18)
        ax.plot(ns, [np.mean([r[key] for r in rows if r["ids"] == n]) for n in ns], color="tab:blue", label="recipe, mean over seeds")
        ax.axhline(baseline[key], color="gray", ls="--", label="ImageNet MobileNetV2")
        if key == "tpr":
            ax.axhline(TARGET_TPR, color="tab:red", ls=":", label=f"target {TARGET_TPR:g}")
        ax.set_xlabel("training identities")
        ax.set_ylabel(label)
        ax.set_xticks(ns)
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=Path("configs/reid/pets_default_pooled.yaml"))
    ap.add_argument("--ids", type=int, nargs="+", default=[3, 5, 7, 9])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=2, help="trainings run in parallel (each uses the config's threads)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for the evaluations")
    ap.add_argument("--out", type=Path, default=Path("runs/bench_reid_curve"))
    ap.add_argument("--eval-dataset", type=Path, default=Path("runs/reid_data/pets"),
                    help="make-triplets folder whose test split is scored (the tools/bench_reid.py split)")
    args = ap.parse_args(argv)
    import torch
    from tqdm import tqdm

    from pipeline.core.configio import load_config
    from reid_models.config import TrainConfig
    from reid_models.train_data import build_image_data

    torch.set_num_threads(args.threads)
    base = load_config(TrainConfig, args.config)
    dataset = args.eval_dataset
    ensure_pets_set(dataset, require_shared(), PETS_SPLIT_ARGS)
    n_total = build_image_data(base.data.model_copy(update={"part_swap_ids": 0}), []).num_classes
    runs = [(n, s) for n in sorted(set(args.ids)) for s in sorted(set(args.seeds)) if n <= n_total]
    base_d = base.model_dump(mode="json")
    todo = {}
    for n, s in runs:
        d = args.out / "runs" / f"ids{n}_seed{s}"
        todo[(n, s)] = (run_config(base_d, n, n_total, s, d), d / "config.yaml", d / "train.log")
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {key: pool.submit(train, *job) for key, job in todo.items()}
        ckpts = {key: f.result() for key, f in tqdm(futures.items(), desc="train", unit="run")}
    baseline = evaluate(None, dataset)
    rows = []
    for (n, s), ck in tqdm(ckpts.items(), desc="evaluate", unit="run"):
        rows.append({"ids": n, "seed": s, "checkpoint": str(ck), **evaluate(ck, dataset)})
        print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {"config": str(args.config), "dataset": str(dataset), "identities_available": n_total,
           "baseline_imagenet": baseline, "runs": rows}
    (args.out / "results.json").write_text(json.dumps(doc, indent=1))
    text = table(rows, baseline)
    (args.out / "table.md").write_text(text + "\n")
    plot(rows, baseline, args.out / "curve.png")
    print(text)
    print(f"wrote {args.out}/results.json, table.md, curve.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
