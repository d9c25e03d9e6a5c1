"""A track as a small state machine (deep_sort): Tentative -> Confirmed -> Deleted."""

from __future__ import annotations

import enum
from collections import deque

import numpy as np


class TrackState(enum.Enum):
    """Tentative until ``n_init`` consecutive hits; Deleted when missed too long."""

    Tentative = 1
    Confirmed = 2
    Deleted = 3


def l2_normalise(v: np.ndarray) -> np.ndarray:
    """(..., D) -> (..., D) float32 unit vectors (zero vectors stay zero)."""
    v = np.asarray(v, dtype=np.float32)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


class Track:
    """One single-camera track. The Kalman state is (mean (8,), cov (8, 8)).

    Book-keeping follows deep_sort: ``hits`` (total matches), ``age`` (frames since
    birth), ``time_since_update`` (frames since the last match). Observations
    (measurements, filter representation) are kept by frame for OC-SORT's ORU
    and momentum; appearance is an EMA or a bounded gallery of L2-normalised
    embeddings.
    """

    def __init__(
        self,
        track_id: int,
        mean: np.ndarray,
        cov: np.ndarray,
        measurement: np.ndarray,
        frame: int,
        score: float,
        n_init: int,
        max_age: int,
        embedding: np.ndarray | None = None,
        gallery_budget: int = 1,
        confirmed: bool = False,
    ) -> None:
        self.track_id = track_id
        self.mean = mean
        self.cov = cov
        self.n_init = n_init
        self.max_age = max_age
        self.score = float(score)
        self.hits = 1
        self.age = 1
        self.time_since_update = 0
        self.start_frame = frame
        self.state = TrackState.Confirmed if confirmed else TrackState.Tentative
        self.ever_confirmed = confirmed
        self.last_measurement = np.asarray(measurement, dtype=np.float64)
        self.last_frame = frame
        self.observations: deque[tuple[int, np.ndarray]] = deque([(frame, self.last_measurement)], maxlen=16)
        self.saved_state: tuple[np.ndarray, np.ndarray] = (mean.copy(), cov.copy())
        self.last_det_tlwh: np.ndarray | None = None
        self.last_embedding: np.ndarray | None = None
        self.feature: np.ndarray | None = None
        self.gallery: deque[np.ndarray] = deque(maxlen=gallery_budget)
        if embedding is not None:
            self.add_embedding(embedding, alpha=0.0)

    # --- state -------------------------------------------------------------------
    def is_tentative(self) -> bool:
        return self.state == TrackState.Tentative

    def is_confirmed(self) -> bool:
        return self.state == TrackState.Confirmed

    def is_deleted(self) -> bool:
        return self.state == TrackState.Deleted

    def mark_missed(self) -> None:
        """Called once per frame without a match (after ``time_since_update`` was advanced)."""
        if self.state == TrackState.Tentative or self.time_since_update > self.max_age:
            self.state = TrackState.Deleted

    def record_hit(self, mean: np.ndarray, cov: np.ndarray, measurement: np.ndarray, frame: int, score: float) -> None:
        """Book-keep a successful update with the corrected state."""
        self.mean, self.cov = mean, cov
        self.saved_state = (mean.copy(), cov.copy())
        self.last_measurement = np.asarray(measurement, dtype=np.float64)
        self.last_frame = frame
        self.observations.append((frame, self.last_measurement))
        self.score = float(score)
        self.hits += 1
        self.time_since_update = 0
        if self.state == TrackState.Tentative and self.hits >= self.n_init:
            self.state = TrackState.Confirmed
            self.ever_confirmed = True

    # --- appearance ----------------------------------------------------------------
    def add_embedding(self, embedding: np.ndarray, alpha: float) -> None:
        """Fold a (D,) embedding into the EMA feature and the gallery."""
        e = l2_normalise(embedding)
        self.last_embedding = e
        self.gallery.append(e)
        if self.feature is None or alpha == 0.0:
            self.feature = e
        else:
            self.feature = l2_normalise(alpha * self.feature + (1.0 - alpha) * e)

    def observation_before(self, frame: int, delta_t: int) -> np.ndarray | None:
        """The observation nearest to ``frame - delta_t`` (at or after it), else the oldest one."""
        if len(self.observations) < 2:
            return None
        for f, z in self.observations:
            if f >= frame - delta_t:
                return z
        return self.observations[0][1]
