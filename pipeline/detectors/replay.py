"""Detectors that replay known detections, looked up by the image's pixels.

:class:`CachingDetector` wraps a real detector and remembers its outputs per image (a benchmark's
later runs over the same camera images replay them; the cache can be saved and re-loaded).
:class:`ReplayDetector` only replays, for benchmarks that cut one detector pass on full frames into
virtual cameras (:func:`pipeline.virtual_cameras.cut_detections`): the runner hands the detector
images only, so each camera image is recognised by a hash of its exact pixels (:func:`image_key`,
computed on the images exactly as the source reads them).
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

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


class CachingDetector:
    """Wraps a detector; replays stored outputs for images seen before (keyed by a pixel hash); the cache
    can be saved and loaded (JSON) so a later run re-uses one detector pass."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.cache: dict[str, list] = {}

    @staticmethod
    def _key(img) -> str:
        """Every 4th pixel in both directions, plus the shape (fast; the benchmark's camera images differ there)."""
        return hashlib.sha1(img[::4, ::4].tobytes()).hexdigest() + str(img.shape)

    def detect(self, images):
        keys = [self._key(im) for im in images]
        todo = [i for i, k in enumerate(keys) if k not in self.cache]
        if todo:
            for i, dets in zip(todo, self.inner.detect([images[i] for i in todo])):
                self.cache[keys[i]] = dets
        return [copy.deepcopy(self.cache[k]) for k in keys]

    def save(self, path: Path) -> None:
        """The cache as JSON: key -> [[x, y, w, h, score, class_id], ...] (floats round-trip exactly)."""
        data = {k: [[*map(float, d.tlwh), float(d.score), int(d.class_id)] for d in dets]
                for k, dets in self.cache.items()}
        path.write_text(json.dumps(data), encoding="utf-8")

    def load(self, path: Path) -> int:
        """Entries of a saved cache (images seen by an earlier run); returns how many."""
        data = json.loads(path.read_text(encoding="utf-8"))
        for k, rows in data.items():
            self.cache[k] = [Detection(tlwh=np.array(r[:4], dtype=np.float64), score=r[4], class_id=r[5])
                             for r in rows]
        return len(data)
