"""Per camera pair tables of the matcher's space-time rules, kept for every camera seen so far.

The matcher's vectorised constraints (:meth:`CrossCameraMatcher.constraints`, :meth:`coexists_spans`) look
up, per (camera a, camera b) pair, whether one person can be in both at once and the topology's transit
link. They used to build these tables per call for the tuple of cameras in the call (a Python double loop:
with 64 cameras every call saw another subset, so every call rebuilt a 64 x 64 table). Here they are built
once per new camera for all cameras seen, and a call's cameras index into them: the same values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.matching.config import TransitLink


class CameraTables:
    """(C, C) tables over the C cameras seen so far (rows / columns in first-seen order):

    * ``views``: bool, one person cannot be in cameras a and b at once (same camera, or views not declared
      overlapping);
    * ``free``: bool, the views of a and b overlap (no transit rule between them);
    * ``linked``: bool, the topology has a link a -> b; ``lo`` / ``hi``: float64, its transit window in s.

    overlap: the matcher's set of frozenset({a, b}) overlapping camera pairs; links: (a, b) -> link."""

    def __init__(self, overlap: set[frozenset], links: dict[tuple[str, str], TransitLink]) -> None:
        self._overlap = overlap
        self._links = links
        self.index: dict[str, int] = {}
        self.cams: list[str] = []
        self.views = np.zeros((0, 0), dtype=bool)
        self.free = np.zeros((0, 0), dtype=bool)
        self.linked = np.zeros((0, 0), dtype=bool)
        self.lo = np.zeros((0, 0))
        self.hi = np.zeros((0, 0))

    def rows(self, cams: Sequence[str]) -> np.ndarray:
        """(len(cams),) int64: each camera's row in the tables (cameras not seen before are added)."""
        index = self.index
        new = [c for c in dict.fromkeys(cams) if c not in index]
        if new:
            self._grow(new)
        return np.fromiter(map(index.__getitem__, cams), dtype=np.int64, count=len(cams))

    def _grow(self, new: list[str]) -> None:
        """Add cameras ``new`` and rebuild the tables over all cameras (once per new camera)."""
        for c in new:
            self.index[c] = len(self.cams)
            self.cams.append(c)
        n = len(self.cams)
        views, free, linked = np.zeros((n, n), bool), np.zeros((n, n), bool), np.zeros((n, n), bool)
        lo, hi = np.zeros((n, n)), np.zeros((n, n))
        for a, ca in enumerate(self.cams):
            for b, cb in enumerate(self.cams):
                over = frozenset((ca, cb)) in self._overlap
                views[a, b] = a == b or not over
                free[a, b] = over
                link = self._links.get((ca, cb))
                if link is not None:
                    linked[a, b], lo[a, b], hi[a, b] = True, link.min_s, link.max_s
        self.views, self.free, self.linked, self.lo, self.hi = views, free, linked, lo, hi
