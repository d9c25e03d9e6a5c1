"""Named tracker presets shipped inside the package: ``trackers/presets/<name>.yaml``.

Each preset is a :class:`~trackers.config.TrackerConfig` tuned for one detector family
(docs/tracking.md "Configs"): ``yolo`` (YOLO detections, what ``reid-pipeline run`` uses by
default), ``default`` (MOT15 ``frcnn``-like scores; ``track`` / ``benchmark mot``'s default),
``acf`` (MOT15 ACF ``det.txt`` scores), ``motion_only`` and ``bytetrack_like`` (ablations).
They live in the package, not only in a checkout, so that a wheel install finds them
(Ultralytics and BoxMOT ship their tracker YAMLs the same way).

Wherever a tracker config is asked for (``cams.yaml``'s ``tracker:``, ``track --config``,
``benchmark mot --config``), a bare name such as ``yolo`` means the preset and anything else is a
YAML path.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.core.errors import ConfigError

#: where the presets are (package data; see pyproject.toml)
PRESETS_DIR = Path(__file__).resolve().parent / "presets"


def preset_names() -> list[str]:
    """The shipped preset names, sorted (file stems of ``trackers/presets/*.yaml``)."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def is_preset_name(value: str | Path) -> bool:
    """True for a bare name (no folder, no ``.yaml``/``.yml`` suffix), i.e. a value meant as a preset."""
    text = str(value)
    return bool(text) and "/" not in text and "\\" not in text and not text.endswith((".yaml", ".yml"))


def preset_path(name: str) -> Path:
    """The YAML file of preset ``name``; ConfigError (one line, the known names) when there is none."""
    path = PRESETS_DIR / f"{name}.yaml"
    if not is_preset_name(name) or not path.is_file():
        raise ConfigError(f"tracker preset {name!r}: unknown (presets: {', '.join(preset_names())}; "
                          "or give a YAML file path)")
    return path
