"""Append-mode MOTChallenge result writer (one file per camera).

Rows: ``frame,id,x,y,w,h,score,-1,-1,-1`` with tlwh pixels and 1-based frames,
the format ``pipeline.mot.read_mot_file(path, "result")`` reads.
Lines are flushed after every call so a killed run keeps what it wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np


def format_tlwh(tlwh: np.ndarray) -> str:
    """The box part of a row: ``x,y,w,h`` (tlwh pixels, 2 decimals)."""
    x, y, w, h = (float(v) for v in np.asarray(tlwh, dtype=np.float64).reshape(4))
    return f"{x:.2f},{y:.2f},{w:.2f},{h:.2f}"


def mot_line(frame: int, ident: int, box: str, score: float) -> str:
    """One row from a box already formatted by :func:`format_tlwh` (what :func:`format_mot_row` writes)."""
    return f"{int(frame)},{int(ident)},{box},{float(score):.4f},-1,-1,-1\n"


def format_mot_row(frame: int, ident: int, tlwh: np.ndarray, score: float) -> str:
    return mot_line(frame, ident, format_tlwh(tlwh), score)


class MOTWriter:
    """Writes MOTChallenge rows to ``path`` (truncated on open unless ``append``)."""

    def __init__(self, path: Path, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a" if append else "w", encoding="utf-8")
        self.rows = 0

    def write_rows(self, rows: Iterable[tuple[int, int, np.ndarray, float]]) -> None:
        """rows: (frame 1-based, id, tlwh (4,), score)."""
        lines = [format_mot_row(f, i, b, s) for f, i, b, s in rows]
        if lines:
            self._fh.writelines(lines)
            self._fh.flush()
            self.rows += len(lines)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()
