"""A detector that replays known detections, looked up by the image's pixels.

For benchmarks that cut one detector pass on full frames into virtual cameras
(:func:`pipeline.virtual_cameras.cut_detections`): the runner hands the detector
images only, so each camera image is recognised by a hash of its exact pixels
(:func:`image_key`, computed on the images exactly as the source reads them).
"""

from __future__ import annotations

import copy
import hashlib

import numpy as np

from pipeline.core.errors import DataError
from pipeline.core.types import Detection


def image_key(image: np.ndarray) -> str:
    """SHA-1 of all pixels plus the shape: equal only for identical images."""
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest() + str(image.shape)


class ReplayDetector:
    """``detect(images)`` -> the stored detections of each image (copies; the runner sets embeddings).

    by_key: image_key -> detections (tlwh in that image's pixels). An unknown image raises
    DataError (``where`` names the benchmark's frames): a benchmark must not silently detect nothing.
    """

    def __init__(self, by_key: dict[str, list[Detection]], where: str = "replayed detections") -> None:
        self.by_key = by_key
        self.where = where

    def detect(self, images_bgr: list[np.ndarray]) -> list[list[Detection]]:
        out = []
        for image in images_bgr:
            key = image_key(image)
            if key not in self.by_key:
                raise DataError(self.where, f"an image of shape {image.shape} has no stored detections")
            out.append(copy.deepcopy(self.by_key[key]))
        return out
