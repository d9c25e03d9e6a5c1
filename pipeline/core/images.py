"""One image-file reader for every path, whatever its bytes.

``cv2.imread`` takes a ``str`` and hands it to C as UTF-8: a file name that is not valid UTF-8 (common in zips
extracted from Windows: Python holds it with surrogate escapes) crashes the process with a segmentation fault
(``cv2.imread(os.fsdecode(b'/tmp/x\\xe9.jpg'))``). :func:`read_image` opens the file through Python, which
encodes the name back to its original bytes, and decodes the bytes with ``cv2.imdecode``.

A JPEG cut short (an interrupted copy or download) is refused, whatever the OpenCV version: ``cv2.imread`` returns
it grey below the cut with only libjpeg's "Premature end of JPEG file" on stderr, naming no file.
:func:`image_problem` says in a few words why a file gives None, for a one-line message that names it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


_JPEG_START, _JPEG_SCAN, _JPEG_END = b"\xff\xd8", b"\xff\xda", b"\xff\xd9"


def is_truncated_jpeg(data: bytes) -> bool:
    """Whether ``data`` is a JPEG (starts with the SOI marker) with no end-of-image marker (FF D9) after its last
    start-of-scan marker: a file cut short. (Scan data cannot hold FF D9; an EXIF thumbnail's end marker comes
    before the main image's scan, and bytes after the end marker are allowed.)"""
    return data[:2] == _JPEG_START and data.rfind(_JPEG_END) < data.rfind(_JPEG_SCAN) + 2


def read_image(path: str | Path, flags: int | None = None) -> np.ndarray | None:
    """The decoded image at ``path`` (BGR, ``cv2.IMREAD_COLOR`` unless ``flags`` says otherwise), or None when
    the file cannot be opened, is a truncated JPEG (:func:`is_truncated_jpeg`) or is not an image OpenCV decodes
    (as ``cv2.imread``; :func:`image_problem` says which). Any path works, names that are not valid UTF-8 included."""
    import cv2

    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    if not raw or is_truncated_jpeg(raw):
        return None
    return cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_COLOR if flags is None else flags)


def image_problem(path: str | Path) -> str:
    """A few words on why :func:`read_image` gives None for ``path``: "cannot read image: <OS error>", "empty file
    (0 bytes)", "truncated JPEG (no end-of-image marker: the file was cut short)" or "not an image OpenCV can
    decode"."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        return f"cannot read image: {exc.strerror or exc}"
    if not raw:
        return "empty file (0 bytes)"
    if is_truncated_jpeg(raw):
        return "truncated JPEG (no end-of-image marker: the file was cut short)"
    return "not an image OpenCV can decode"
