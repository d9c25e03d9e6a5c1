"""Error types whose message is one clear line for the user.

A leaf module (standard library only): ``trackers/`` and ``reid_models/`` may
raise these too. The CLI catches :class:`ReidPipelineError`, prints
``reid-pipeline: error: <message>`` and exits with status 2; anything else is
a bug and keeps its traceback.

Every type pickles (``__reduce__`` rebuilds it from its ``args`` and attributes,
not through ``__init__``), so an error raised in a worker process (the
evaluator's process pool, Ray actors) arrives in the parent as itself.
"""

from __future__ import annotations

from pathlib import Path


def _restore(cls: type, args: tuple, state: dict) -> "ReidPipelineError":
    """Unpickle an error of type ``cls`` without calling its ``__init__`` (whose signature may differ)."""
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class ReidPipelineError(Exception):
    """Base class: ``str(err)`` is the whole one-line message."""

    def __reduce__(self) -> tuple:
        return _restore, (type(self), self.args, dict(self.__dict__))


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
