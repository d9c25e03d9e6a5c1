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
    is what every component below it sees (derive a changed one with ``model_copy(update=...)``); no float
    may be nan or +-inf (``time_offset_s: .nan`` would only fail later, deep in the run)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class _DuplicateKeyError(yaml.YAMLError):
    """A mapping with the same key twice: YAML would silently keep the last one."""

    def __init__(self, key: object, line: int, first_line: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line, self.first_line = key, line, first_line


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (merge keys ``<<`` aside: keys
    written next to a merge override the merged ones, as YAML intends)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it itself
                continue
            line = key_node.start_mark.line + 1
            if first is not None:
                raise _DuplicateKeyError(key, line, first)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; raise ConfigError naming the file (and line) on any problem, a key given twice
    in one mapping included (plain YAML keeps the last one silently)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKeyError as exc:
        raise ConfigError(f"{path}:{exc.line}: duplicate key {exc.key!r} (first at line {exc.first_line});"
                          " remove one of them") from None
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
