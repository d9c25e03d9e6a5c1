"""Identities' member spans as numpy arrays, kept per identity instead of flattened from tuples every call.

The calibration's known-different pairs (:meth:`CrossCameraMatcher._known_different_pairs`) test every
tracklet of a call against every member span of up to ~1,000 recent identities. Flattening their
``(cam_id, start, end)`` tuples into arrays cost a Python loop over every span of every identity per call;
here each identity's arrays are built once and reused while its ``spans`` list is the same object (the
matcher and the pager replace an identity's span list when it changes, they never edit it in place).
"""

from __future__ import annotations

import numpy as np

from pipeline.core.types import GlobalIdentity
from pipeline.matching.cameras import CameraTables


class SpanArrays:
    """Per identity: (S,) camera rows (of ``tables``), (S,) start and (S,) end times of its spans, cached by
    the identity of its ``spans`` list; at most ``limit`` identities are kept (then the cache restarts)."""

    def __init__(self, tables: CameraTables, limit: int) -> None:
        self._tables = tables
        self._limit = int(limit)
        self._by_gid: dict[int, tuple[list, np.ndarray, np.ndarray, np.ndarray]] = {}

    def flat(self, identities: list[GlobalIdentity]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(R,) int64 span count per identity and the (K,) camera rows, starts, ends of all their spans,
        identity after identity, each identity's spans in their order (K = sum of the counts)."""
        if len(self._by_gid) > self._limit:
            self._by_gid.clear()
        cache = self._by_gid
        parts = []
        for g in identities:
            hit = cache.get(g.global_id)
            if hit is None or hit[0] is not g.spans:
                sp = g.spans
                hit = (sp, self._tables.rows([x[0] for x in sp]),
                       np.fromiter((x[1] for x in sp), dtype=np.float64, count=len(sp)),
                       np.fromiter((x[2] for x in sp), dtype=np.float64, count=len(sp)))
                cache[g.global_id] = hit
            parts.append(hit)
        counts = np.fromiter((len(p[1]) for p in parts), dtype=np.int64, count=len(parts))
        if not parts:
            return counts, np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
        return (counts, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]),
                np.concatenate([p[3] for p in parts]))
