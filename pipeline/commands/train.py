"""``reid-pipeline train``: train a re-id embedding network (or the LSTM aggregator) from a YAML config."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train a re-id model from configs/reid/<name>.yaml (checkpoints, resume, CUDA when present)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True, help="training config (reid_models.config.TrainConfig)")
    p.add_argument("--resume", type=Path, default=None, help="continue from a checkpoint (last.pt) of this run")
    p.add_argument("--device", default=None, help="auto | cpu | cuda[:N] (overrides the config)")
    p.add_argument("--out", type=Path, default=None, help="output folder (overrides output_dir)")
    p.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    p.add_argument("--data", nargs="+", default=None, help="override data.datasets (dataset folders)")


def run(args: argparse.Namespace) -> int:
    from pipeline.configio import load_config, validate
    from reid_models.config import TrainConfig
    from reid_models.engine import train_from_config

    cfg = load_config(TrainConfig, args.config)
    overrides = {}
    if args.device:
        overrides["device"] = args.device
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if overrides or args.data:
        data = cfg.model_dump()
        data.update(overrides)
        if args.data:
            data["data"]["datasets"] = list(args.data)
        cfg = validate(TrainConfig, data, f"{args.config} (with command-line overrides)")
    summary = train_from_config(cfg, resume=args.resume, out_dir=args.out)
    last = summary["history"][-1] if summary["history"] else {}
    print(f"done: {len(summary['history'])} epoch(s), last {last}, checkpoints in {summary['out_dir']}")
    return 0
