"""Identities' member spans flattened into numpy arrays indexed by the camera tables' rows.

The calibration's known-different pairs (:meth:`CrossCameraMatcher._known_different_pairs`) and the
assignment's constraints (:meth:`CrossCameraMatcher.constraints`) test tracklets against every member span
of up to ~1,000 identities per call. The spans are flattened with C-level primitives (one list
comprehension, ``zip``, ``map``) and their cameras looked up in :class:`~pipeline.matching.cameras.CameraTables`
(built once per camera) instead of a per-call sorted camera tuple and its tables.
"""

from __future__ import annotations

from operator import attrgetter

import numpy as np

from pipeline.core.types import GlobalIdentity
from pipeline.matching.cameras import CameraTables

_SPANS = attrgetter("spans")


def flat_spans(identities: list[GlobalIdentity],
               tables: CameraTables) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(R,) int64 span count per identity and the (K,) int64 camera rows (of ``tables``; new cameras are
    added), (K,) float64 starts and (K,) float64 ends of all their spans, identity after identity, each
    identity's spans in their order (K = sum of the counts)."""
    counts = np.fromiter(map(len, map(_SPANS, identities)), dtype=np.int64, count=len(identities))
    spans = [sp for g in identities for sp in g.spans]
    if not spans:
        return counts, np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    cams, starts, ends = zip(*spans)
    return (counts, tables.rows(cams), np.array(starts, dtype=np.float64), np.array(ends, dtype=np.float64))
