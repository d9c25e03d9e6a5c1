"""Value types of the cross-camera matcher: one tracklet's match outcome, and the identity helpers
the matcher and its revision window share (no logic beyond copying and normalising)."""

from __future__ import annotations

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
    """An independent copy (the prototype array and the member / span lists are not shared)."""
    return GlobalIdentity(g.global_id, np.array(g.prototype, copy=True), list(g.members), g.last_seen, g.last_cam,
                          list(g.spans))


def _align_members(ident: GlobalIdentity) -> None:
    """Keep ``members[i]`` <-> ``spans[i]`` aligned (in place): an identity loaded without its members (a
    stored gallery, the pager) gets placeholder members, one per span."""
    if len(ident.members) != len(ident.spans):
        ident.members = [("", -1 - i) for i in range(len(ident.spans))]


def _unit(v: np.ndarray) -> np.ndarray:
    """(D,) float32 ``v`` / its norm (unchanged when 0). The norm is ``np.linalg.norm``'s for a 1-D
    float32 vector (``sqrt(v . v)`` in float32), without its Python-level dispatch."""
    v = np.asarray(v, dtype=np.float32).reshape(-1)
    n = float(np.sqrt(v.dot(v)))
    return v / n if n > 0 else v
