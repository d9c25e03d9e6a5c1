"""Slim a training checkpoint into the shipped default encoder (reid_models/weights/default.pt).

Keeps the architecture, config and metrics; stores floating-point weights as fp16
(loaded back as fp32 by ``reid_models.checkpoint``); drops optimizer state and
training heads. Writes ``default.json`` beside it with the reproduce commands. ``--embedding pooled`` ships a
``mobilenetv2_fc`` run's fine-tuned trunk with its pooled 1280-d features as the embedding
(``mobilenetv2_pool``, FC head dropped; see ``reid_models.checkpoint.pooled_trunk_blob``).

Usage::

    .venv/bin/python tools/ship_default_model.py runs/reid/pets_default/last.pt \
        [--out reid_models/weights/default.pt] [--config configs/reid/pets_default.yaml] [--embedding pooled] \
        [--before CMD ...]

``--before`` (repeatable) lists the commands that must run before the training command, in order: for a
stepwise recipe, the ones that make the checkpoint the config's ``transfer.source`` starts from.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _trained_on(config: dict) -> str:
    """Which data a checkpoint was trained on, from its training config's data block."""
    parts = []
    for d in config.get("data", {}).get("datasets", []):
        if isinstance(d, str):
            parts.append(d)
        else:
            hold = f", {d['holdout_ids']} identities held out (seed {d.get('holdout_seed', 0)})" if d.get("holdout_ids") else ""
            parts.append(f"{d['path']} ({d.get('format') or 'index'}{hold})")
    return "; ".join(parts)


def _soup_command(soup: dict, out: Path) -> str:
    """The tools/average_models.py command that made a weight-averaged checkpoint (its ``extra["soup"]``)."""
    paths = " ".join(i["path"] for i in soup["ingredients"])
    weights = " ".join(f"{i['weight']:g}" for i in soup["ingredients"])
    return (f".venv/bin/python tools/average_models.py {paths} --weights {weights} --config {soup['bn_config']} "
            f"--bn-batches {soup['bn_batches']} --out {out}")


def main(argv: list[str] | None = None) -> int:
    import torch

    from reid_models.checkpoint import file_hash, pooled_trunk_blob, read_checkpoint

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--out", type=Path, default=Path("reid_models/weights/default.pt"))
    ap.add_argument("--config", default="configs/reid/market_cuhk03_default.yaml")
    ap.add_argument("--dataset-command", default=None,
                    help="command that wrote the training dataset, when it is a make-triplets folder")
    ap.add_argument("--before", action="append", default=[], metavar="CMD",
                    help="a command to run before the training command (repeatable, in order): e.g. the one that "
                         "makes the transfer source of a stepwise recipe")
    ap.add_argument("--embedding", choices=("trained", "pooled"), default="trained",
                    help="trained: the network's own output; pooled: a mobilenetv2_fc trunk's pooled 1280-d features")
    args = ap.parse_args(argv)
    blob = read_checkpoint(args.checkpoint)
    if args.embedding == "pooled":
        blob = pooled_trunk_blob(blob, str(args.checkpoint))
    blob["state_dict"] = {k: (v.half() if v.is_floating_point() else v) for k, v in blob["state_dict"].items()}
    blob["optimizer"] = None
    soup = (blob.get("extra") or {}).get("soup")  # a weight average of checkpoints (tools/average_models.py)
    blob["extra"] = {"history": blob.get("extra", {}).get("history", []), "shipped_from": str(args.checkpoint),
                     "embedding": blob.get("extra", {}).get("embedding", "the trained network's output")}
    if soup:
        blob["extra"]["soup"] = soup
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, args.out)
    info = {
        "file": args.out.name,
        "sha256_12": file_hash(args.out),
        "bytes": args.out.stat().st_size,
        "model_name": blob["model_name"],
        "model_kwargs": blob["model_kwargs"],
        "epoch": blob["epoch"],
        "embedding": blob["extra"]["embedding"],
        "dtype": "float16 weights (loaded as float32)",
        "trained_on": _trained_on(blob["config"]),
        "licence": ("trained on research data sets (Market-1501, CUHK03: research use only); "
                    "the weights are for research and evaluation"),
        "reproduce": [c for c in [
            args.dataset_command,
            *args.before,
            f"reid-pipeline train --config {args.config}",
            _soup_command(soup, args.checkpoint) if soup else None,
            f".venv/bin/python tools/ship_default_model.py {args.checkpoint} --out {args.out} --config {args.config}"
            + (" --embedding pooled" if args.embedding == "pooled" else ""),
            ".venv/bin/python tools/bench_reid.py",
        ] if c],
        "training_config": blob["config"],
    }
    if soup:
        info["soup"] = soup
    args.out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps({k: info[k] for k in ("file", "sha256_12", "bytes", "epoch")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
