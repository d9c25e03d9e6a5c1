"""Error types whose message is one clear line for the user.

A leaf module (standard library only): ``trackers/`` and ``reid_models/`` may
raise these too. The CLI catches :class:`ReidPipelineError`, prints
``reid-pipeline: error: <message>`` and exits with status 2; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class ReidPipelineError(Exception):
    """Base class: ``str(err)`` is the whole one-line message."""


class ConfigError(ReidPipelineError):
    """A configuration file or value is wrong; the message names the key path."""


class DataError(ReidPipelineError):
    """An input data file is malformed; the message names the file and line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


class SourceError(ReidPipelineError):
    """A camera or video source cannot be opened or read."""


class ModelError(ReidPipelineError):
    """Model weights are missing, cannot be downloaded or do not fit."""
