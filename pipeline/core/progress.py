"""Progress bars that stay readable in a log file.

A tqdm bar redraws several times a second; in a terminal that is what people want, but a background job
(``nohup ... > train.log``) then writes every redraw into its log: megabytes of bar lines for one
training run, and ``tail`` shows a wall of them. :func:`progress` is tqdm with the refresh interval set by
where the bar goes: tqdm's own (0.1 s) on a terminal, ``LOG_INTERVAL_S`` (30 s) when the stream
is a file or a pipe, so the log holds a line every half minute with the rate and the ETA.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

__all__ = ["progress", "refresh_interval"]

#: seconds between redraws when the bar's stream is not a terminal
LOG_INTERVAL_S = 30.0


def refresh_interval(stream: TextIO | None = None, log_interval_s: float = LOG_INTERVAL_S) -> float:
    """tqdm's ``mininterval`` for ``stream`` (stderr by default): 0.1 on a terminal, ``log_interval_s`` otherwise."""
    stream = sys.stderr if stream is None else stream
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        tty = False
    return 0.1 if tty else float(log_interval_s)


def progress(iterable: Iterable | None = None, **kwargs: Any):
    """``tqdm(iterable, **kwargs)`` with ``mininterval`` from :func:`refresh_interval` unless given."""
    from tqdm import tqdm

    kwargs.setdefault("mininterval", refresh_interval(kwargs.get("file")))
    return tqdm(iterable, **kwargs)
