"""Training curves of one or more `reid-pipeline train` runs in one PNG (loss, learning rate, validation).

Each run is an output folder of `train` (its ``metrics.json``, or, for a run still training under an older
version that wrote it only at the end, the history kept in its ``last.pt``). Every run also writes its own
``curves.png`` each epoch; this tool puts runs side by side, e.g. a candidate against the run it varies.

Usage::

    .venv/bin/python tools/plot_training.py runs/reid/market_cuhk03_256_ft runs/reid/market_cuhk03_256_keephead \
        --out runs/curves_256.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def run_history(run_dir: Path) -> list[dict[str, Any]]:
    """The per-epoch history of the run in ``run_dir``; DataError naming the folder when it has none."""
    from pipeline.core.errors import DataError

    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        try:
            return list(json.loads(metrics.read_text())["history"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(metrics, f"not a training metrics file ({exc.__class__.__name__})") from None
    last = run_dir / "last.pt"
    if last.is_file():
        from reid_models.checkpoint import read_checkpoint

        return list((read_checkpoint(last).get("extra") or {}).get("history", []))
    raise DataError(run_dir, "no metrics.json or last.pt: not a `reid-pipeline train` output folder")


def main(argv: list[str] | None = None) -> int:
    from pipeline.core.errors import ReidPipelineError
    from reid_models.plots import plot_training

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", type=Path, nargs="+", help="`train` output folders")
    ap.add_argument("--names", nargs="+", default=None, help="one legend name per run (default: the folder names)")
    ap.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = ap.parse_args(argv)
    if args.names is not None and len(args.names) != len(args.runs):
        print(f"error: --names: {len(args.names)} names for {len(args.runs)} runs", file=sys.stderr)
        return 2
    try:
        names = args.names or [r.name for r in args.runs]
        runs = {name: run_history(r) for name, r in zip(names, args.runs)}
    except ReidPipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    plot_training(runs, args.out)
    for name, hist in runs.items():
        last = hist[-1] if hist else {}
        print(f"{name}: {len(hist)} epoch(s), last loss {last.get('loss', float('nan')):.3f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
