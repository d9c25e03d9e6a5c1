"""Prepare a demo config's inputs: build the virtual cameras when their files are missing.

A cams.yaml with a ``demo:`` block (see ``configs/demo_pets.yaml``) names a
MOTChallenge sequence in the shared data folder and a folder for the virtual
cameras; ``reid-pipeline run`` calls :func:`prepare_demo` first, so the demo
works from a fresh clone with ``../shared`` beside it. A folder whose build was
interrupted (no ``identities.json``, see :mod:`pipeline.virtual_cameras`) is
rebuilt, with one log line saying so.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.camconfig import CamsConfig
from pipeline.core.errors import ConfigError, SourceError

log = logging.getLogger(__name__)

#: demo.options keys -> build_virtual_cameras keyword arguments
_OPTION_KEYS = {"layout": "layout", "gap": "gap", "cams": "n", "fmt": "fmt", "min_visible": "min_visible",
                "frames": "frame_range"}


def missing_sources(cfg: CamsConfig) -> list[tuple[int, str]]:
    """(index in ``cameras``, source) of each camera whose file or folder does not exist. Streams and webcams
    (an index, or ``/dev/videoN``: a camera unplugged at start is retried like a stream) are never missing."""
    from pipeline.sources.options import uri_kind

    out = []
    for i, c in enumerate(cfg.cameras):
        try:
            kind, target = uri_kind(c.source)
        except SourceError:  # a malformed URL: reported by the camera's own check, not as a missing file
            continue
        if kind == "path" and not Path(target).exists():
            out.append((i, c.source))
    return out


def prepare_demo(cfg: CamsConfig, progress: bool = True) -> bool:
    """Build the virtual cameras of ``cfg.demo`` if a camera file is missing or the demo folder holds a build
    that did not finish (no ``identities.json``: Ctrl-C or a kill during the build); True when built."""
    from pipeline.virtual_cameras import build_virtual_cameras, is_complete

    missing = missing_sources(cfg)
    incomplete = cfg.demo is not None and not missing and not is_complete(Path(cfg.demo.out))
    if not missing and not incomplete:
        return False
    if cfg.demo is None:
        i, source = missing[0]
        raise ConfigError(f"cameras.{i}.source: no such file or folder: {source}")
    from pipeline.core.paths import require_shared

    seq = Path(cfg.demo.sequence)
    if not seq.is_absolute():
        seq = require_shared() / seq
    kwargs = {}
    for key, value in cfg.demo.options.items():
        if key not in _OPTION_KEYS:
            raise ConfigError(f"demo.options.{key}: unknown key; valid: {', '.join(_OPTION_KEYS)}")
        kwargs[_OPTION_KEYS[key]] = tuple(value) if key == "frames" else value
    if incomplete:
        log.warning("the demo's virtual cameras in %s are incomplete (no identities.json: an interrupted build);"
                    " rebuilding them from %s", cfg.demo.out, seq)
    else:
        log.warning("building the demo's virtual cameras from %s into %s", seq, cfg.demo.out)
    build_virtual_cameras(seq, Path(cfg.demo.out), progress=progress, **kwargs)
    still = missing_sources(cfg)
    if still:
        i, source = still[0]
        raise ConfigError(f"demo: built {cfg.demo.out} but cameras.{i}.source {source} is still missing")
    return True
