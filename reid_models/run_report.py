"""What a training run leaves beside its checkpoints after every epoch: ``metrics.json`` and ``curves.png``.

Written each epoch, not only at the end, so that a run of hours can be followed (and compared with
``tools/plot_training.py``) while it trains.

Owner-only outputs: ``reid-pipeline run`` makes everything it creates private (umask 077: folders 0700, files 0600;
README, docs/pipeline.md). ``train`` (checkpoints, logs and metrics of a model fitted to person images: a network
can give back its training identities), ``make-triplets`` (person crops) and ``embed`` (appearance embeddings of
people, a biometric template) do the same through :func:`private_umask`. Folders and files that already exist
keep their modes: nothing is chmodded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def write_run_report(out_dir: Path, summary: dict[str, Any]) -> None:
    """Write ``summary`` (with its per-epoch ``history``) as ``metrics.json`` and the curves as ``curves.png``."""
    from reid_models.plots import plot_training

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    plot_training({out_dir.name: list(summary.get("history", []))}, out_dir / "curves.png")


#: the umask of the commands that write person data: no group or other permission on what they create
PRIVATE_UMASK = 0o077


@contextmanager
def private_umask() -> Iterator[None]:
    """Run the body with umask :data:`PRIVATE_UMASK` (whatever creates files in it, any library, creates them
    0600 / folders 0700), restoring the caller's umask afterwards, on errors too."""
    old = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(old)
