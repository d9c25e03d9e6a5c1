"""Columnar view of one frame's detections, as the tracker consumes them."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from pipeline.core.types import Detection, iou_matrix_tlbr, tlwh_to_tlbr
from trackers.config import DetectionConfig


@dataclass
class DetectionBatch:
    """M detections of one frame.

    tlwh / tlbr: (M, 4) float64; scores: (M,) float64 normalised to [0, 1];
    embeddings: (M, D) float32 L2-normalised or None; index: (M,) int64 rows of the
    caller's detection list (to hand back the matched detection's embedding).
    """

    tlwh: np.ndarray
    tlbr: np.ndarray
    scores: np.ndarray
    embeddings: np.ndarray | None
    index: np.ndarray
    occluded: np.ndarray | None = None
    """(M,) bool: the detection overlaps another one of its frame (appearance.occlusion_iou); None = none is."""

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, mask_or_idx: np.ndarray) -> "DetectionBatch":
        emb = None if self.embeddings is None else self.embeddings[mask_or_idx]
        occ = None if self.occluded is None else self.occluded[mask_or_idx]
        return DetectionBatch(self.tlwh[mask_or_idx], self.tlbr[mask_or_idx], self.scores[mask_or_idx], emb,
                              self.index[mask_or_idx], occ)

    def has_appearance(self) -> np.ndarray:
        """(M,) bool: an embedding that may be used (present and not occluded)."""
        if self.embeddings is None:
            return np.zeros(len(self), dtype=bool)
        return np.ones(len(self), dtype=bool) if self.occluded is None else ~self.occluded

    @classmethod
    def from_detections(cls, detections: list[Detection], cfg: DetectionConfig, use_embeddings: bool) -> "DetectionBatch":
        """Normalise scores to [0, 1] via ``cfg.score_range`` and drop boxes below ``cfg.min_box_area``
        or with non-positive size. Embeddings are used only when every detection has one."""
        m = len(detections)
        tlwh = np.array([d.tlwh for d in detections], dtype=np.float64).reshape(m, 4)
        raw = np.array([d.score for d in detections], dtype=np.float64).reshape(m)
        lo, hi = cfg.score_range
        scores = np.clip((raw - lo) / (hi - lo), 0.0, 1.0)
        emb = None
        if use_embeddings and m and all(d.embedding is not None for d in detections):
            emb = np.stack([np.asarray(d.embedding, dtype=np.float32).reshape(-1) for d in detections])
            emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        keep = (tlwh[:, 2] > 0) & (tlwh[:, 3] > 0) & (tlwh[:, 2] * tlwh[:, 3] >= cfg.min_box_area)
        batch = cls(tlwh, tlwh_to_tlbr(tlwh), scores, emb, np.arange(m, dtype=np.int64))
        return batch if keep.all() else batch.select(keep)


@dataclass(frozen=True)
class Thresholds:
    """The score thresholds in use for one frame (normalised scores)."""

    high: float
    low: float
    new_track: float


class ScoreFloor:
    """Running estimate of the detector's score floor (the lowest normalised score it emits) and the thresholds
    mapped to it: ``t -> floor + (t - ref) * (1 - floor) / (1 - ref)`` for ``t >= ref`` (ref =
    ``cfg.reference_floor``). With ``relative_to_floor`` off, or before ``floor_min_samples`` detections were
    seen, the configured thresholds are returned unchanged."""

    #: detections seen that scored at least the new-track threshold in force (class default: score floors
    #: pickled in older resume checkpoints have no such attribute)
    n_startable = 0

    def __init__(self, cfg: DetectionConfig) -> None:
        self.cfg = cfg
        self.n_seen = 0
        self.n_startable = 0
        self.floor = np.inf

    def observe(self, scores: np.ndarray) -> None:
        """scores: (M,) normalised scores of one frame."""
        if len(scores):
            self.n_seen += len(scores)
            self.floor = min(self.floor, float(np.min(scores)))
            self.n_startable += int(np.count_nonzero(scores >= self.thresholds().new_track))

    def start_share(self) -> float:
        """The share of the detections seen so far that could start a track (1.0 before any)."""
        return self.n_startable / self.n_seen if self.n_seen else 1.0

    def _map(self, t: float) -> float:
        ref, f = self.cfg.reference_floor, self.floor
        return f + (t - ref) * (1.0 - f) / (1.0 - ref)

    def thresholds(self) -> Thresholds:
        c = self.cfg
        if not c.relative_to_floor or self.n_seen < c.floor_min_samples:
            return Thresholds(c.high_thresh, c.low_thresh, c.new_track_thresh)
        return Thresholds(self._map(c.high_thresh), self._map(c.low_thresh), self._map(c.new_track_thresh))


class NegativeDistances:
    """Running sample of cosine distances between *different* people, to set the appearance threshold from the
    embedding in use instead of a fixed number.

    Two detections of one frame that do not overlap are two people, so their cosine distance is a negative
    sample (free, unlabelled, from the stream itself). The threshold in use is the ``quantile`` of the last
    ``window`` such distances (e.g. 0.05: only 5 % of different-people pairs look that alike), never above the
    configured one; before ``min_pairs`` samples the configured threshold is used. Embeddings whose distances
    are compressed (a model whose different people lie at 0.1-0.2) then get a threshold below 0.1, one that
    separates people well keeps the configured value.
    """

    def __init__(self, quantile: float, min_pairs: int, window: int = 5000) -> None:
        self.quantile = float(quantile)
        self.min_pairs = int(min_pairs)
        self.samples: deque[float] = deque(maxlen=window)

    def observe(self, embeddings: np.ndarray, tlbr: np.ndarray) -> None:
        """(M, D) L2-normalised embeddings and (M, 4) tlbr boxes of one frame's usable detections."""
        m = len(embeddings)
        if m < 2:
            return
        dist = 1.0 - np.asarray(embeddings, dtype=np.float64) @ np.asarray(embeddings, dtype=np.float64).T
        iu = np.triu_indices(m, k=1)
        apart = iou_matrix_tlbr(tlbr, tlbr)[iu] == 0.0
        self.samples.extend(dist[iu][apart].tolist())

    def threshold(self, configured: float, quantile: float | None = None) -> float:
        """The threshold to use now: min(configured, ``quantile`` (default: the instance's) of the negatives) once
        enough pairs, else ``configured``."""
        if len(self.samples) < self.min_pairs:
            return configured
        q = self.quantile if quantile is None else quantile
        return min(configured, float(np.quantile(np.fromiter(self.samples, dtype=np.float64), q)))
