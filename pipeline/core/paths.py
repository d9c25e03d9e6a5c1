"""Where the development data lives.

The real MOTChallenge data, videos and weights used for tests and benchmarks
live in a ``shared/`` folder beside the checkout (``../shared``). Set
``REID_SHARED=/path/to/shared`` to point elsewhere. Nothing here downloads.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path | None:
    """The shared data folder, or None when it cannot be found."""
    env = os.environ.get("REID_SHARED")
    if env:
        p = Path(env).expanduser()
        return p if p.is_dir() else None
    for cand in (REPO_ROOT.parent / "shared", REPO_ROOT / "shared", Path.cwd().parent / "shared"):
        if (cand / "data").is_dir():
            return cand
    return None


def require_shared() -> Path:
    """The shared folder or a one-line error saying how to provide it."""
    from pipeline.core.errors import ReidPipelineError

    p = shared_dir()
    if p is None:
        raise ReidPipelineError(
            "shared data folder not found: put it beside the checkout as ../shared "
            "or set REID_SHARED=/path/to/shared"
        )
    return p
