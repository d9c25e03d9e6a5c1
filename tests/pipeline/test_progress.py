"""pipeline.core.progress: bars redraw at tqdm's rate on a terminal and every 30 s into a file or pipe."""

from __future__ import annotations

import io
import os
import pty

from pipeline.core.progress import LOG_INTERVAL_S, progress, refresh_interval


def test_file_stream_gets_the_log_interval(tmp_path):
    with open(tmp_path / "train.log", "w") as fh:
        assert refresh_interval(fh) == LOG_INTERVAL_S == 30.0
        assert refresh_interval(fh, log_interval_s=5) == 5.0


def test_pipe_and_closed_stream_get_the_log_interval():
    r, w = os.pipe()
    with os.fdopen(w, "w") as wf, os.fdopen(r) as _rf:
        assert refresh_interval(wf) == 30.0
    closed = io.StringIO()
    closed.close()
    assert refresh_interval(closed) == 30.0


def test_terminal_gets_tqdm_rate():
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w") as tty:
            assert refresh_interval(tty) == 0.1
    finally:
        os.close(master)


def test_bar_into_a_file_writes_far_fewer_redraws(tmp_path):
    """200 steps into a file: the throttled bar writes its first and final states only (the 200 steps take
    well under 30 s); the same bar with ``mininterval=0`` writes one redraw per step."""
    log = tmp_path / "bar.log"
    with open(log, "w") as fh:
        for _ in progress(range(200), file=fh, desc="x", miniters=1):
            pass
    throttled = log.read_text().count("x:")
    with open(log, "w") as fh:
        for _ in progress(range(200), file=fh, desc="x", mininterval=0, miniters=1):
            pass
    every = log.read_text().count("x:")
    assert throttled <= 3
    assert every >= 200
