"""Value types of the cross-camera matcher: one tracklet's match outcome, and the identity helpers
the matcher and its revision window share (copying, normalising, and the blocked tracklet x prototype
cosine distances; no matching logic)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.core.types import GlobalIdentity


@dataclass(frozen=True)
class MatchResult:
    """Outcome for one tracklet.

    distance: cosine distance to the matched prototype (None for a new identity; with revision:
    the average distance to the other members of its cluster); probability: the calibrated
    P(same person) at that distance (None before the calibration has samples of both kinds);
    previous_cam / previous_end: the identity's sighting just before this
    tracklet (None when new) — a different camera means a hand-over.
    """

    global_id: int
    is_new: bool
    distance: float | None
    previous_cam: str | None = None
    previous_end: float | None = None
    continuation: bool = False
    probability: float | None = None


def _copy_identity(g: GlobalIdentity) -> GlobalIdentity:
    """A copy whose member / span lists are its own and whose prototype array is shared, made read-only.

    The matcher never changes a prototype in place (every update assigns a new array), so the live
    identity and its settled copy (:mod:`pipeline.matching.window`) hold one array until the live one
    moves on: one (D,) float32 per identity instead of two (5 KiB at D=1280). Read-only makes a
    future in-place write fail loudly instead of changing both."""
    proto = np.asarray(g.prototype)
    proto.flags.writeable = False
    g.prototype = proto
    return GlobalIdentity(g.global_id, proto, list(g.members), g.last_seen, g.last_cam, list(g.spans))


def _align_members(ident: GlobalIdentity) -> None:
    """Keep ``members[i]`` <-> ``spans[i]`` aligned (in place): an identity loaded without its members (a
    stored gallery, the pager) gets placeholder members, one per span."""
    if len(ident.members) != len(ident.spans):
        ident.members = [("", -1 - i) for i in range(len(ident.spans))]


#: identities per block of :func:`prototype_distances`: a (512, D) float64 block is 5 MiB at D=1280
_DISTANCE_BLOCK = 512


def prototype_distances(vecs: np.ndarray, prototypes: Sequence[np.ndarray]) -> np.ndarray:
    """(N, M) float64 ``1 - vecs @ prototypes.T`` of (N, D) float64 unit ``vecs`` and M (D,) prototypes.

    The prototypes are converted to float64 a block of ``_DISTANCE_BLOCK`` at a time, so the transient
    is one block, not an (M, D) float64 copy of the whole gallery (31 MiB at 3,000 identities, taken and
    freed on every matcher call; glibc keeps such freed peaks, so resident memory grew with the
    gallery). Up to ``_DISTANCE_BLOCK`` identities this is exactly the one-product value; beyond,
    BLAS may sum a row in another order (differences ~1e-13)."""
    out = np.empty((vecs.shape[0], len(prototypes)))
    for s in range(0, len(prototypes), _DISTANCE_BLOCK):
        block = np.array(prototypes[s:s + _DISTANCE_BLOCK], dtype=np.float64)
        np.subtract(1.0, vecs @ block.T, out=out[:, s:s + _DISTANCE_BLOCK])
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    """(D,) float32 ``v`` / its norm (unchanged when 0). The norm is ``np.linalg.norm``'s for a 1-D
    float32 vector (``sqrt(v . v)`` in float32), without its Python-level dispatch."""
    v = np.asarray(v, dtype=np.float32).reshape(-1)
    n = float(np.sqrt(v.dot(v)))
    return v / n if n > 0 else v
