"""What a training run leaves beside its checkpoints after every epoch: ``metrics.json`` and ``curves.png``.

Written each epoch, not only at the end, so that a run of hours can be followed (and compared with
``tools/plot_training.py``) while it trains.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_run_report(out_dir: Path, summary: dict[str, Any]) -> None:
    """Write ``summary`` (with its per-epoch ``history``) as ``metrics.json`` and the curves as ``curves.png``."""
    from reid_models.plots import plot_training

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    plot_training({out_dir.name: list(summary.get("history", []))}, out_dir / "curves.png")
