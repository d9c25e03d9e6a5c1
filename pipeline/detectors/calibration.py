"""Calibration frames for INT8 quantisation that are not frames of the evaluation clip.

The only full frames in ../shared are PETS09-S2L1, the clip the detector is evaluated on (MOT17 train
there is gt only). Calibration instead uses mosaics of real pedestrian crops from Market-1501
``bounding_box_train`` (other cameras, other people, another site): rows of crops at person heights
PETS-like scenes have (48-192 px in a 768x576 frame), filling the whole frame, so the activation ranges
come from real pedestrians and real backgrounds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core.errors import DataError


def market_mosaic(crops: list[np.ndarray], rng: np.random.Generator, width: int = 768, height: int = 576,
                  min_h: int = 48, max_h: int = 192) -> np.ndarray:
    """One (height, width, 3) BGR uint8 frame tiled with ``crops`` (BGR, any size): row by row, each row a
    random height in [min_h, max_h], crops scaled to it (aspect kept) and placed left to right."""
    import cv2

    frame = np.zeros((height, width, 3), np.uint8)
    y = 0
    while y < height:
        row_h = int(rng.integers(min_h, max_h + 1))
        x = 0
        while x < width:
            crop = crops[int(rng.integers(len(crops)))]
            w = max(1, int(round(crop.shape[1] * row_h / crop.shape[0])))
            tile = cv2.resize(crop, (w, row_h), interpolation=cv2.INTER_LINEAR)
            h_fit, w_fit = min(row_h, height - y), min(w, width - x)
            frame[y:y + h_fit, x:x + w_fit] = tile[:h_fit, :w_fit]
            x += w
        y += row_h
    return frame


def write_market_mosaics(market_dir: Path, out_dir: Path, count: int, seed: int = 0,
                         width: int = 768, height: int = 576) -> list[Path]:
    """Write ``count`` mosaics (``market_mosaic``) of crops from ``market_dir`` (JPEGs) as out_dir/mosaic_NNNN.jpg."""
    import cv2
    from pipeline.core.images import read_image

    files = sorted(Path(market_dir).glob("*.jpg"))
    if not files:
        raise DataError(market_dir, "no .jpg crops (expected Market-1501 bounding_box_train)")
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(count):
        picks = rng.choice(len(files), size=min(len(files), 200), replace=False)
        crops = [c for c in (read_image(files[j]) for j in picks) if c is not None]
        path = out_dir / f"mosaic_{i:04d}.jpg"
        cv2.imwrite(str(path), market_mosaic(crops, rng, width, height), [cv2.IMWRITE_JPEG_QUALITY, 95])
        written.append(path)
    return written
