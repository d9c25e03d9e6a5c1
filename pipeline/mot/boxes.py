"""MOTChallenge text files: ground truth, detections and tracker results.

Every row is ``frame, id, x, y, w, h, conf, ...`` (comma- or whitespace-
separated, 1-based frames, tlwh pixels). What the trailing columns mean
depends on the file:

* MOT16/17/20 ``gt/gt.txt`` has 8-9 columns: ``conf`` is the "consider" flag
  (0 = ignore this row), then ``class`` and ``visibility``.
* MOT15 ``gt/gt.txt``, detection files and result files have 10 columns
  whose last three are world coordinates (or -1): there is no class and no
  visibility, so ``cls`` and ``vis`` are -1.

Rows are kept exactly as read (``conf == 0`` gt rows and distractor classes
included); the evaluator applies the official preprocessing. A malformed row
(fewer than 6 fields, a different field count than the first row, a
non-number, a non-integer frame/id, a frame < 1, a negative size, NaN/inf)
raises a one-line :class:`~pipeline.core.errors.DataError` naming file and line.
As in the official evaluator, one empty field after a trailing comma
(``...,-1,``) is ignored; a UTF-8 byte-order mark at the start is accepted.
``read_mot_file(..., max_frame=seqLength)`` also rejects rows beyond the
sequence's last frame, and :func:`check_unique_ids` rejects an id twice in
one frame.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

import numpy as np

from pipeline.core.errors import DataError
from pipeline.core.types import Detection, TrackOutput

Kind = Literal["gt", "det", "result"]
KINDS = ("gt", "det", "result")
MIN_FIELDS = 6


@dataclass
class MOTBoxes:
    """Columnar MOT rows, N of them.

    frame: (N,) int64 1-based; ids: (N,) int64 (-1 for detections);
    tlwh: (N, 4) float64 pixels; conf: (N,) float64 (score, or the gt
    "consider" flag); cls: (N,) int64, -1 when the file has no class column;
    vis: (N,) float64, -1 when absent.
    """

    frame: np.ndarray
    ids: np.ndarray
    tlwh: np.ndarray
    conf: np.ndarray
    cls: np.ndarray
    vis: np.ndarray

    def __len__(self) -> int:
        return int(len(self.frame))

    def select(self, mask: np.ndarray) -> "MOTBoxes":
        """Rows where ``mask`` (bool (N,) or an index array) selects them, as a new MOTBoxes."""
        return MOTBoxes(
            frame=self.frame[mask], ids=self.ids[mask], tlwh=self.tlwh[mask].reshape(-1, 4),
            conf=self.conf[mask], cls=self.cls[mask], vis=self.vis[mask],
        )

    @property
    def tlbr(self) -> np.ndarray:
        """(N, 4) float64 tlbr boxes."""
        out = self.tlwh.copy()
        out[:, 2:] += out[:, :2]
        return out

    @classmethod
    def empty(cls) -> "MOTBoxes":
        return cls(
            frame=np.zeros(0, np.int64), ids=np.zeros(0, np.int64), tlwh=np.zeros((0, 4)),
            conf=np.zeros(0), cls=np.zeros(0, np.int64), vis=np.zeros(0),
        )


def _split_rows(path: Path, text: str) -> tuple[list[list[str]], list[int]]:
    """Non-blank lines -> (fields per row, 1-based line numbers); short/uneven rows -> DataError."""
    rows: list[list[str]] = []
    lines: list[int] = []
    width = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        fields = s.split(",") if "," in s else s.split()
        if len(fields) > 1 and not fields[-1].strip():  # "...,-1," as TrackEval: drop one trailing empty field
            fields.pop()
        if len(fields) < MIN_FIELDS:
            raise DataError(path, f"short row: {len(fields)} fields, need at least {MIN_FIELDS} "
                                  "(frame,id,x,y,w,h[,conf,...])", lineno)
        if not rows:
            width = len(fields)
        elif len(fields) != width:
            raise DataError(path, f"row has {len(fields)} fields but line {lines[0]} has {width}", lineno)
        rows.append(fields)
        lines.append(lineno)
    return rows, lines


def _to_array(path: Path, rows: list[list[str]], lines: list[int]) -> np.ndarray:
    """Fields -> (N, C) float64; the first non-number or NaN/inf names its line."""
    try:
        arr = np.array(rows, dtype=np.float64)
    except ValueError:
        arr = None
    if arr is not None and np.isfinite(arr[:, : min(arr.shape[1], 7)]).all():
        return arr
    for fields, lineno in zip(rows, lines):
        for col, field in enumerate(fields[:7]):
            try:
                value = float(field)
            except ValueError:
                raise DataError(path, f"column {col + 1}: not a number: {field.strip()!r}", lineno) from None
            if not math.isfinite(value):
                raise DataError(path, f"column {col + 1}: not a finite number: {field.strip()!r}", lineno)
    # only trailing (world-coordinate) columns are bad: find the line with numpy per row
    for fields, lineno in zip(rows, lines):
        try:
            np.array(fields, dtype=np.float64)
        except ValueError:
            raise DataError(path, f"not a number in {','.join(fields)!r}", lineno) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _fast_parse(text: str) -> np.ndarray | None:
    """(N, C) float64 via numpy's C parser, or None when any row is odd (then parse carefully)."""
    first = next(line for line in text.splitlines() if line.strip())
    try:
        arr = np.loadtxt(io.StringIO(text), delimiter="," if "," in first else None, comments=None,
                         ndmin=2, dtype=np.float64)
    except ValueError:
        return None
    if arr.shape[1] < MIN_FIELDS or not np.isfinite(arr[:, :7]).all():
        return None
    return arr


def _check_values(path: Path, arr: np.ndarray, lines: list[int]) -> None:
    checks = (
        (arr[:, 0] != np.round(arr[:, 0]), "frame is not an integer"),
        (arr[:, 0] < 1, "frame numbers are 1-based (got < 1)"),
        (arr[:, 1] != np.round(arr[:, 1]), "id is not an integer"),
        (arr[:, 4] < 0, "negative width"),
        (arr[:, 5] < 0, "negative height"),
    )
    for bad, message in checks:
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(path, f"{message}: {arr[i, 0]:g},{arr[i, 1]:g},{arr[i, 2]:g},{arr[i, 3]:g},"
                                  f"{arr[i, 4]:g},{arr[i, 5]:g}", lines[i])


def _check_max_frame(path: Path, arr: np.ndarray, lines: list[int], max_frame: int) -> None:
    beyond = arr[:, 0] > max_frame
    if beyond.any():
        i = int(np.argmax(beyond))
        raise DataError(path, f"frame {arr[i, 0]:g} is beyond seqLength {max_frame} of the sequence "
                              f"({int(beyond.sum())} rows are; the official evaluator rejects them)", lines[i])


def read_mot_file(path: Path, kind: Kind, max_frame: int | None = None) -> MOTBoxes:
    """Read a MOTChallenge gt / det / result file into :class:`MOTBoxes` (file order kept).

    ``kind="gt"`` with 8-9 columns reads class (col 8) and visibility (col 9);
    otherwise ``cls``/``vis`` are -1. A file without a conf column gets conf 1.
    An empty file gives zero rows. ``max_frame`` (the sequence's seqLength):
    a row with a larger frame is a DataError naming its line.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"missing {kind} file")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a leading byte-order mark is dropped
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not a text file ({exc.reason} at byte {exc.start})") from None
    if not text.strip():
        return MOTBoxes.empty()
    arr = _fast_parse(text)
    if arr is None:  # something is wrong: the careful parser names the line (or accepts, e.g. mixed separators)
        rows, lines = _split_rows(path, text)
        arr = _to_array(path, rows, lines)
    else:
        lines = [i for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    _check_values(path, arr, lines)
    if max_frame is not None:
        _check_max_frame(path, arr, lines, int(max_frame))
    n, width = arr.shape
    has_cls = kind == "gt" and width in (8, 9)
    return MOTBoxes(
        frame=arr[:, 0].astype(np.int64),
        ids=arr[:, 1].astype(np.int64),
        tlwh=np.ascontiguousarray(arr[:, 2:6]),
        conf=arr[:, 6].copy() if width > 6 else np.ones(n),
        cls=arr[:, 7].astype(np.int64) if has_cls else np.full(n, -1, np.int64),
        vis=arr[:, 8].copy() if has_cls and width == 9 else np.full(n, -1.0),
    )


def duplicate_id_row(frame: np.ndarray, ids: np.ndarray) -> int | None:
    """Index of the first row (in the given order) whose (frame, id) pair occurred before, or None.

    Exact for any int64 ids, negative included (pairs are compared, not combined into one key).
    """
    if len(frame) < 2:
        return None
    order = np.lexsort((np.arange(len(frame)), ids, frame))  # by frame, id, then row order
    f, i = frame[order], ids[order]
    repeat = np.zeros(len(order), dtype=bool)
    repeat[1:] = (f[1:] == f[:-1]) & (i[1:] == i[:-1])
    return int(order[repeat].min()) if repeat.any() else None


def check_unique_ids(path: str | Path, boxes: MOTBoxes, what: str = "tracker") -> None:
    """DataError naming ``path`` and the frame when an id occurs twice in one frame (TrackEval rejects that)."""
    row = duplicate_id_row(boxes.frame, boxes.ids)
    if row is not None:
        raise DataError(path, f"frame {int(boxes.frame[row])}: {what} id {int(boxes.ids[row])} appears more "
                              "than once (the official evaluator rejects this)")


def write_mot_results(path: Path, outputs: Iterable[TrackOutput]) -> None:
    """Write tracker outputs as MOTChallenge rows ``frame,id,x,y,w,h,score,-1,-1,-1``.

    Rows are sorted by (frame, id); tlwh in pixels with 2 decimals; parent
    folders are created. The file is replaced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(outputs, key=lambda o: (int(o.frame), int(o.track_id)))
    with open(path, "w", encoding="utf-8") as fh:
        for o in rows:
            x, y, w, h = (float(v) for v in np.asarray(o.tlwh, dtype=np.float64).reshape(4))
            fh.write(f"{int(o.frame)},{int(o.track_id)},{x:.2f},{y:.2f},{w:.2f},{h:.2f},"
                     f"{float(o.score):.4f},-1,-1,-1\n")


def detections_by_frame(boxes: MOTBoxes, min_conf: float = -math.inf) -> dict[int, list[Detection]]:
    """Group rows with ``conf >= min_conf`` by frame -> {frame: [Detection]} (file order within a frame).

    Frames without detections are absent: iterate 1..seq_length and use
    ``.get(frame, [])``. class_id is 0 (person) for every detection.
    """
    out: dict[int, list[Detection]] = {}
    keep = np.nonzero(boxes.conf >= min_conf)[0]
    for i in keep:
        out.setdefault(int(boxes.frame[i]), []).append(
            Detection(tlwh=boxes.tlwh[i].copy(), score=float(boxes.conf[i]), class_id=0)
        )
    return out
