"""``reid-pipeline train``: train a re-id embedding network (or the LSTM aggregator) from a YAML config."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train a re-id model from configs/reid/<name>.yaml (checkpoints, resume, CUDA when present)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True, help="training config (reid_models.config.TrainConfig)")
    p.add_argument("--resume", default=None,
                   help="continue from a checkpoint (last.pt) of this run; 'auto': from <output dir>/last.pt when it "
                        "exists, else start (for restartable background jobs); refused when the config changed in "
                        "what defines the run (epochs, threads, device, output folder may change). Without it, an "
                        "output folder that already holds last.pt is refused")
    p.add_argument("--device", default=None, help="auto | cpu | cuda[:N] (overrides the config)")
    p.add_argument("--out", type=Path, default=None, help="output folder (overrides output_dir)")
    p.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    p.add_argument("--data", nargs="+", default=None,
                   help="override data.datasets (dataset folders), read with the format the config's datasets share "
                        "(their own format: or data.format; a one-line error when they differ)")


def data_override(cfg, folders: list[str], config: Path) -> list[dict]:
    """``data.datasets`` entries for ``train --data FOLDER...``: each folder read with the format every dataset of
    ``cfg`` (a TrainConfig) resolves to (an entry's ``format:``, else ``data.format``), so that ``--data`` swaps
    the folders, not their reader. ConfigError (one line naming ``config``) when the config's datasets use
    different formats, since which one a new folder has cannot be told."""
    from pipeline.core.errors import ConfigError

    formats = sorted({e.format for e in cfg.data.entries()})
    if len(formats) > 1:
        raise ConfigError(f"{config}: --data: the config's datasets are read with different formats "
                          f"({', '.join(formats)}), so the format of the --data folders is unknown: give one config "
                          "per format or edit data.datasets")
    return [{"path": f, "format": formats[0]} for f in folders]


def run(args: argparse.Namespace) -> int:
    """Run the command with owner-only outputs (``reid_models.run_report.private_umask``: 0600 / 0700)."""
    from reid_models.run_report import private_umask

    with private_umask():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from pipeline.core.configio import load_config, validate
    from reid_models.config import TrainConfig
    from reid_models.training import train_from_config

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
            data["data"]["datasets"] = data_override(cfg, list(args.data), args.config)
        cfg = validate(TrainConfig, data, f"{args.config} (with command-line overrides)")
    resume, restart = args.resume, False
    if resume == "auto" and cfg.task == "lstm":
        # the LSTM aggregator trains in minutes and keeps no optimiser state to resume from: a finished run
        # (metrics.json with every epoch) is done, anything else starts again
        import json

        metrics = Path(args.out or cfg.output_dir) / "metrics.json"
        done = metrics.is_file() and len(json.loads(metrics.read_text()).get("history", [])) >= cfg.epochs
        if done and (metrics.parent / "last.pt").is_file():
            print(f"done already: {metrics.parent / 'last.pt'} holds the last of {cfg.epochs} epochs")
            return 0
        resume, restart = None, True
    elif resume == "auto":
        last = Path(args.out or cfg.output_dir) / "last.pt"
        resume = last if last.is_file() else None
    elif resume is not None and not Path(resume).is_file():
        from pipeline.core.errors import ConfigError

        raise ConfigError(f"--resume {resume}: no such checkpoint")
    if resume is not None:
        import json

        from reid_models.checkpoint import read_checkpoint

        if int(read_checkpoint(Path(resume))["epoch"]) + 1 >= cfg.epochs:
            print(f"done already: {resume} holds the last of {cfg.epochs} epochs")
            return 0
        print(json.dumps({"resume": str(resume)}), flush=True)
    summary = train_from_config(cfg, resume=resume, out_dir=args.out, restart=restart)
    last = summary["history"][-1] if summary["history"] else {}
    print(f"done: {len(summary['history'])} epoch(s), last {last}, checkpoints in {summary['out_dir']}")
    return 0
