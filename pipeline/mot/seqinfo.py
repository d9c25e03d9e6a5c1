"""``seqinfo.ini`` of a MOTChallenge sequence.

Required keys (section ``[Sequence]``): ``name``, ``frameRate``, ``seqLength``,
``imWidth``, ``imHeight``; ``imDir`` (default ``img1``) and ``imExt`` (default
``.jpg``) are optional. A missing file, section or key, or a value that is not
a number, raises a one-line :class:`~pipeline.core.errors.DataError` naming the file
and the key. Keys are case-insensitive (``seqlength`` = ``seqLength``, as the
official evaluator reads them through configparser) and a UTF-8 byte-order
mark at the start of the file is accepted. ``imWidth``/``imHeight`` stay
required: ``make-triplets``, ``virtual_cameras`` and the tools use them.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import DataError

SECTION = "Sequence"


@dataclass(frozen=True)
class SeqInfo:
    """What ``seqinfo.ini`` says about one sequence (sizes in pixels, frames 1..seq_length)."""

    name: str
    seq_dir: Path
    frame_rate: float
    seq_length: int
    im_width: int
    im_height: int
    im_dir: str = "img1"
    im_ext: str = ".jpg"


def _number(path: Path, section: configparser.SectionProxy, key: str, kind: type) -> float | int:
    if key not in section:
        raise DataError(path, f"missing key '{key}' in [{SECTION}]")
    raw = section[key].strip()
    try:
        value = kind(float(raw)) if kind is float else int(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise DataError(path, f"key '{key}': expected {what}, got {raw!r}") from None
    if value <= 0:
        raise DataError(path, f"key '{key}': must be > 0, got {raw!r}")
    return value


def read_seqinfo(seq_dir: Path) -> SeqInfo:
    """Parse ``seq_dir/seqinfo.ini``; DataError naming the file (and key) when missing/malformed."""
    seq_dir = Path(seq_dir)
    path = seq_dir / "seqinfo.ini"
    if not path.is_file():
        raise DataError(path, "missing seqinfo.ini (not a MOTChallenge sequence folder)")
    parser = configparser.ConfigParser(interpolation=None)  # keys case-insensitive, as in TrackEval
    try:
        parser.read_string(path.read_text(encoding="utf-8-sig"), source=str(path))
    except (configparser.Error, UnicodeDecodeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(path, f"malformed ini: {msg}") from None
    if SECTION not in parser:
        raise DataError(path, f"missing section [{SECTION}]")
    sec = parser[SECTION]
    if "name" not in sec or not sec["name"].strip():
        raise DataError(path, f"missing key 'name' in [{SECTION}]")
    return SeqInfo(
        name=sec["name"].strip(),
        seq_dir=seq_dir,
        frame_rate=float(_number(path, sec, "frameRate", float)),
        seq_length=int(_number(path, sec, "seqLength", int)),
        im_width=int(_number(path, sec, "imWidth", int)),
        im_height=int(_number(path, sec, "imHeight", int)),
        im_dir=sec.get("imDir", "img1").strip() or "img1",
        im_ext=sec.get("imExt", ".jpg").strip() or ".jpg",
    )
