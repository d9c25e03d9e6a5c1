"""Short garbage-collector pauses in a long-running process that holds a large, long-lived heap.

CPython's cyclic collector runs a full (generation-2) collection now and then, and a full collection walks
every container object the process holds. The matcher holds many: the in-memory gallery, the pager's LRU
of identities read from the store (10^5 of them in ``tools/bench_scale.py``), the tracks' bookkeeping. At
10^5 identities a stream at 1,000 tracklets/s saw two full collections every 10 s, of 118-139 ms each, and not
one of them found garbage (docs/gallery.md): the pauses only stalled the queue, and the p99 latency with it.

:class:`GcFreezer` keeps the long-lived objects out of those walks. Every ``every_s`` seconds (``tick``) it
collects the young generations (cheap: only what was allocated since) and freezes what survives
(``gc.freeze``: moved to the permanent generation, which collections skip). Frozen objects are still freed by
reference counting as usual; only a reference cycle that becomes garbage after it was frozen would stay, so
every ``full_every_s`` seconds ``tick`` unfreezes everything and runs one full collection (one pause of the
old length per ``full_every_s``), then freezes again. ``close`` (or leaving the ``with`` block) unfreezes.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

__all__ = ["GcFreezer"]


class GcFreezer:
    """``tick()`` once per loop iteration; returns ``"young"`` or ``"full"`` when it collected and froze, else None.

    ``every_s``: seconds between young collections + freeze; ``full_every_s``: seconds between full
    collections (None: never; cycles that die after being frozen then stay until ``close``)."""

    def __init__(self, every_s: float = 1.0, full_every_s: float | None = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if every_s <= 0 or (full_every_s is not None and full_every_s < every_s):
            raise ValueError("GcFreezer: every_s must be > 0 and full_every_s >= every_s")
        self.every_s, self.full_every_s, self.clock = every_s, full_every_s, clock
        now = clock()
        self._last = now - every_s  # the first tick freezes what start-up loaded
        self._last_full = now
        self.counts = {"young": 0, "full": 0}

    def tick(self) -> str | None:
        now = self.clock()
        if now - self._last < self.every_s:
            return None
        self._last = now
        if self.full_every_s is not None and now - self._last_full >= self.full_every_s:
            self._last_full = now
            gc.unfreeze()
            gc.collect()
            kind = "full"
        else:
            gc.collect(1)
            kind = "young"
        gc.freeze()
        self.counts[kind] += 1
        return kind

    def close(self) -> None:
        """Back to the collector's normal behaviour: every frozen object is tracked again."""
        gc.unfreeze()

    def __enter__(self) -> GcFreezer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
