"""One image-file reader for every path, whatever its bytes.

``cv2.imread`` takes a ``str`` and hands it to C as UTF-8: a file name that is not valid UTF-8 (common in zips
extracted from Windows: Python holds it with surrogate escapes) crashes the process with a segmentation fault
(``cv2.imread(os.fsdecode(b'/tmp/x\\xe9.jpg'))``). :func:`read_image` opens the file through Python, which
encodes the name back to its original bytes, and decodes the bytes with ``cv2.imdecode``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_image(path: str | Path, flags: int | None = None) -> np.ndarray | None:
    """The decoded image at ``path`` (BGR, ``cv2.IMREAD_COLOR`` unless ``flags`` says otherwise), or None when
    the file cannot be opened or is not an image OpenCV decodes (as ``cv2.imread``). Any path works, names that
    are not valid UTF-8 included."""
    import cv2

    try:
        with open(path, "rb") as fh:
            data = np.frombuffer(fh.read(), dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR if flags is None else flags)
