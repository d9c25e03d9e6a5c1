"""Exponential reconnect backoff with a cap and jitter."""

from __future__ import annotations

import random


class Backoff:
    """Delays ``initial * 2**k`` capped at ``maximum``, each scaled by 1 +- ``jitter`` (and never above
    ``maximum``: a jittered delay above it is reflected below it, so capped delays stay spread).

    ``next()`` returns the next delay in seconds; ``reset()`` starts again from
    ``initial`` (called once a stream delivers frames again). Jitter spreads the
    reconnects of many cameras that lost the same server at the same moment.
    """

    def __init__(self, initial: float, maximum: float, jitter: float = 0.2, seed: int | None = None) -> None:
        self.initial = float(initial)
        self.maximum = float(maximum)
        self.jitter = float(jitter)
        self._rng = random.Random(seed)
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """How many delays were handed out since the last reset."""
        return self._attempt

    def base_delay(self, attempt: int) -> float:
        """The delay before jitter for the 0-based ``attempt``."""
        return min(self.maximum, self.initial * (2.0 ** min(attempt, 60)))

    def next(self) -> float:
        base = self.base_delay(self._attempt)
        self._attempt += 1
        if self.jitter <= 0.0:
            return base
        delay = base * (1.0 + self._rng.uniform(-self.jitter, self.jitter))
        return delay if delay <= self.maximum else max(0.0, 2.0 * self.maximum - delay)  # reflected below the cap

    def reset(self) -> None:
        self._attempt = 0
