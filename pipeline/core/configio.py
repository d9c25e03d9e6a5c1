"""Load YAML configuration files and validate them once, at the entry point.

Config schemas are pydantic models declared next to the code they configure
(``trackers/config.py``, ``reid_models/config.py``, ``pipeline/camconfig.py``)
with ``extra="forbid"`` so unknown keys are rejected. This module turns YAML
syntax errors and validation errors into one-line :class:`ConfigError`
messages that name the file and the key path, e.g.::

    trackers/presets/default.yaml: association.max_iou_distance: Input should be a valid number
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.core.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config schemas: unknown keys are errors; frozen, so a config validated at the entry point
    is what every component below it sees (derive a changed one with ``model_copy(update=...)``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; raise ConfigError naming the file (and line) on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: malformed YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line: ``source: key.path: message`` for the first error (+ count of others)."""
    errors = exc.errors()
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"]) or "<root>"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{source}: {loc}: {msg}{more}"


def validate(model: type[M], data: dict[str, Any], source: str = "<config>") -> M:
    """Validate ``data`` against ``model``; raise ConfigError with the key path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_config(model: type[M], path: str | Path | None) -> M:
    """Load and validate a YAML file; ``None`` gives the model's defaults."""
    if path is None:
        return validate(model, {}, "<defaults>")
    return validate(model, load_yaml(path), str(path))
