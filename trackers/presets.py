"""Named tracker presets shipped inside the package: ``trackers/presets/<name>.yaml``.

Each preset is a :class:`~trackers.config.TrackerConfig` tuned for one detector family
(docs/tracking.md "Configs"): ``yolo`` (YOLO detections, what ``reid-pipeline run`` uses by
default), ``default`` (MOT15 ``frcnn``-like scores; ``track`` / ``benchmark mot``'s default),
``acf`` (MOT15 ACF ``det.txt`` scores), ``motion_only`` and ``bytetrack_like`` (ablations).
They live in the package, not only in a checkout, so that a wheel install finds them
(Ultralytics and BoxMOT ship their tracker YAMLs the same way).

Wherever a tracker config is asked for (``cams.yaml``'s ``tracker:``, ``track --config``,
``benchmark mot --config``), a bare name such as ``yolo`` means the preset and anything else is a
YAML path. In ``cams.yaml`` the settings may also be a mapping: it overrides a preset
(``preset:``, default ``yolo``; ``preset: none`` starts from the schema's neutral field defaults),
see :func:`overriding`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from pipeline.core.errors import ConfigError

#: the preset a cams.yaml tracker mapping overrides when it names none (``run`` detects with YOLO)
DEFAULT_MAPPING_BASE = "yolo"

#: where the presets are (package data; see pyproject.toml)
PRESETS_DIR = Path(__file__).resolve().parent / "presets"


def preset_names() -> list[str]:
    """The shipped preset names, sorted (file stems of ``trackers/presets/*.yaml``)."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def is_preset_name(value: str | Path) -> bool:
    """True for a bare name (no folder, no ``.yaml``/``.yml`` suffix), i.e. a value meant as a preset."""
    text = str(value)
    return bool(text) and "/" not in text and "\\" not in text and not text.endswith((".yaml", ".yml"))


def is_known_preset(name: Any) -> bool:
    """True when ``name`` names a shipped preset (the one test every caller's "unknown preset" error rests on)."""
    return isinstance(name, str) and is_preset_name(name) and (PRESETS_DIR / f"{name}.yaml").is_file()


def preset_path(name: str) -> Path:
    """The YAML file of preset ``name``; ConfigError (one line, the known names) when there is none."""
    if not is_known_preset(name):
        raise ConfigError(f"tracker preset {name!r}: unknown (presets: {', '.join(preset_names())}; "
                          "or give a YAML file path)")
    return PRESETS_DIR / f"{name}.yaml"


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` written over it, section by section (nested mappings merged, other values replaced)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def overriding(settings: dict[str, Any]) -> dict[str, Any]:
    """A tracker mapping -> the full mapping it stands for: its ``preset`` (default :data:`DEFAULT_MAPPING_BASE`;
    ``none`` / null: the schema's neutral field defaults, i.e. the mapping as given) with the other keys written over
    it section by section, e.g. ``{lifecycle: {max_age: 90}}`` = the yolo preset with max_age 90. Unknown preset:
    ValueError (one line, the known names); the result is validated by the caller."""
    from pipeline.core.configio import load_yaml

    over = dict(settings)
    name = over.pop("preset", DEFAULT_MAPPING_BASE)
    if name is None or str(name).lower() == "none":
        return over
    if not is_known_preset(name):
        raise ValueError(f"preset: unknown tracker preset {name!r} (presets: {', '.join(preset_names())}, or none)")
    return _merged(load_yaml(preset_path(name)), over)


#: what ``--config auto`` compares a detection file's median score with (docs/tracking.md, "auto")
FRCNN_LIKE_MEDIAN = 0.9

#: ``--config auto`` maps a file whose scores are not probabilities from [0, this quantile of its own scores] to
#: [0, 1] (clipped): the detector's own decision boundary (0 for ACF's and DPM's SVM-like scores) stays 0, and the
#: scale comes from the file, not from one detector's units. Chosen on the 5 MOT15 train ACF files, motion only
#: (docs/tracking.md, "auto"): MOTA is flat (62.9-63.5) for quantiles 0.6-0.95, against 58.6 for ACF's fixed [0, 100].
NON_PROBABILITY_QUANTILE = 0.8

#: ``--config auto`` reads a file as non-probability scores when more than this share of them lies outside [0, 1]
#: (ACF and DPM files: most of them); a stray row or two (a -1 in an FRCNN file) does not switch the preset
NON_PROBABILITY_SHARE = 0.01


class PresetChoice(NamedTuple):
    """What ``--config auto`` picks for one detection file: the preset, why (in words), and the
    ``detection.score_range`` that replaces the preset's (None: the preset's own)."""

    name: str
    reason: str
    score_range: tuple[float, float] | None = None


def choose_preset(scores) -> PresetChoice:
    """The preset for a detection file from its scores alone.

    All scores equal (e.g. all 1, or the -1 of "no score"): they carry no confidence, so every box counts as
    confident: ``default`` with the score range mapping that value to 1. Scores outside [0, 1] (more than
    :data:`NON_PROBABILITY_SHARE` of them; fewer are stray rows, clipped) are not
    probabilities (MOT15's ACF ``det.txt``: about -1 to 140; MOT16/17's DPM: about -1 to 3): ``acf``, with the
    score range [0, q] where q is the file's :data:`NON_PROBABILITY_QUANTILE` quantile, so a detector's units do
    not matter. Probabilities with a median of at least ``FRCNN_LIKE_MEDIAN`` are FRCNN-like (MOT15
    ``frcnn.txt``: medians 0.96-0.99, cut at 0.5): ``default``. Other probabilities (YOLO-like: the PETS yolov5n
    sets' median is about 0.80; modern detectors spread their scores over (0, 1)): ``yolo``, whose thresholds
    are ByteTrack's. No scores: ``default``."""
    import numpy as np

    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size == 0:
        return PresetChoice("default", "no detections")
    lo, hi, med = float(s.min()), float(s.max()), float(np.median(s))
    if hi - lo < 1e-9:
        return PresetChoice("default", f"every score is {lo:g}: no confidence information, every box counts as "
                                       "confident", (lo - 1.0, lo))
    outside = float(np.mean((s < -0.01) | (s > 1.01)))
    if outside > NON_PROBABILITY_SHARE:
        top = float(np.quantile(s, NON_PROBABILITY_QUANTILE))
        if top <= 0.0:  # hardly any positive score: spread what there is instead
            return PresetChoice("acf", f"scores {lo:.2f}..{hi:.2f} are not in [0, 1] (ACF-like), mapped from "
                                       f"[{lo:.3g}, {hi:.3g}]", (lo, hi))
        return PresetChoice("acf", f"scores {lo:.2f}..{hi:.2f} are not in [0, 1] (ACF-like), mapped from "
                                   f"[0, {top:.3g}] (their {NON_PROBABILITY_QUANTILE:.0%} quantile)", (0.0, top))
    if med >= FRCNN_LIKE_MEDIAN:
        return PresetChoice("default", f"median score {med:.3f} >= {FRCNN_LIKE_MEDIAN} (FRCNN-like)")
    return PresetChoice("yolo", f"median score {med:.3f} < {FRCNN_LIKE_MEDIAN} (YOLO-like)")
