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

from pipeline.camconfig import CamsConfig, is_remote_uri
from pipeline.core.errors import ConfigError

log = logging.getLogger(__name__)

#: demo.options keys -> build_virtual_cameras keyword arguments
_OPTION_KEYS = {"layout": "layout", "gap": "gap", "cams": "n", "fmt": "fmt", "min_visible": "min_visible",
                "frames": "frame_range"}


def missing_sources(cfg: CamsConfig) -> list[str]:
    return [c.source for c in cfg.cameras
            if not is_remote_uri(c.source) and not c.source.isdigit() and not Path(c.source).exists()]


def prepare_demo(cfg: CamsConfig, progress: bool = True) -> bool:
    """Build the virtual cameras of ``cfg.demo`` if a camera file is missing or the demo folder holds a build
    that did not finish (no ``identities.json``: Ctrl-C or a kill during the build); True when built."""
    from pipeline.virtual_cameras import build_virtual_cameras, is_complete

    missing = missing_sources(cfg)
    incomplete = cfg.demo is not None and not missing and not is_complete(Path(cfg.demo.out))
    if not missing and not incomplete:
        return False
    if cfg.demo is None:
        raise ConfigError(f"cameras: no such file or folder: {missing[0]}")
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
        raise ConfigError(f"demo: built {cfg.demo.out} but camera source {still[0]} is still missing")
    return True
