"""Where the development data lives, and the per-user cache folder.

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


def cache_root() -> Path:
    """The project's per-user cache folder (derived models: the encoder's ONNX export, the detector's
    dynamic-size and INT8 models): ``$REID_CACHE_DIR``, else ``$XDG_CACHE_HOME/reid-pipeline``, else
    ``~/.cache/reid-pipeline`` (an XDG value that is not an absolute path is ignored, as the spec says)."""
    env = os.environ.get("REID_CACHE_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "reid-pipeline"


def unsafe_owner_or_mode(st: os.stat_result) -> str | None:
    """Why a file or folder with this stat is not trusted (another user's, or writable by group/others), or None."""
    import stat

    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"owned by uid {st.st_uid}, not by you (uid {os.getuid()})"
    if st.st_mode & 0o022:
        return f"writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def private_folder(path: Path, what: str = "the cache folder") -> Path:
    """``path`` created 0700 when missing (its parents as usual); a folder that is another user's or writable by
    group/others, or that cannot be made, is a one-line ModelError naming it and ``what`` it is for (nothing in
    it is used: a model planted there would run as this user's)."""
    import stat

    from pipeline.core.errors import ModelError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        st = os.stat(path)
    except OSError as exc:
        raise ModelError(f"{path}: cannot create {what} ({exc.strerror or exc}); "
                         "set REID_CACHE_DIR to a folder of yours") from None
    why = unsafe_owner_or_mode(st) if stat.S_ISDIR(st.st_mode) else "not a folder"
    if why:
        raise ModelError(f"{path}: {what} is {why}: not used; make it private "
                         "(chmod 700) or set REID_CACHE_DIR to a folder of yours")
    return path
