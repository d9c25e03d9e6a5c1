"""Camera pairs that look overlapping although the config does not say so.

Two tracklets seen at the same time in two cameras are known to be different people (a cannot-link pair)
unless the cameras' views overlap (``matching.overlapping_cameras``). When an overlapping pair is not declared,
everyone in the shared view becomes a "known different" pair with themselves: they can never be linked and
their small distances drag the calibrated threshold down for every camera (measured on the PETS overlap layout:
global IDF1 63.3 with the pair declared, 47.8 without; docs/pipeline.md).

:class:`OverlapMonitor` tells such a pair from the data the matcher already has. Pairs of tracklets that
coexist in *one* camera are different people whatever the config says, so their distances are a clean
reference: the ``REFERENCE_QUANTILE`` (5 %) quantile of them is a distance that few pairs of different people
go below. For each camera pair, the coexisting tracklet pairs closer than it are counted; a pair is suspected
when at least ``MIN_PAIRS`` pairs were seen, at least ``MIN_FRACTION`` of them are that close, and a binomial
test against the reference rate (scipy) gives p < ``MAX_P``. On the PETS layouts (the only data this was
looked at on): the undeclared overlapping pair 20 of 68 (29 %, p 8e-11), every other pair 0-13 % (p >= 0.03).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

__all__ = ["OverlapMonitor", "SuspectedOverlap"]

REFERENCE_QUANTILE = 0.05
MIN_SAME_CAMERA = 50
MIN_PAIRS = 30
MIN_FRACTION = 0.2
MAX_P = 1e-4
KEEP_SAME = 2000
KEEP_PER_PAIR = 500


def _pair_key(cam_a: str, cam_b: str) -> tuple[str, str]:
    return (cam_a, cam_b) if cam_a < cam_b else (cam_b, cam_a)


@dataclass(frozen=True)
class SuspectedOverlap:
    """cams: the two camera ids (sorted); pairs: coexisting tracklet pairs seen; close: how many of them were
    closer than ``reference`` (the same-camera quantile); p: the binomial test's p-value."""

    cams: tuple[str, str]
    pairs: int
    close: int
    reference: float
    p: float

    def message(self) -> str:
        a, b = self.cams
        return (f"cameras {a} and {b} look overlapping: {self.close} of {self.pairs} tracklet pairs seen in both at "
                f"the same time are closer than {self.reference:.3f} (a distance only 5 % of the pairs seen at once "
                f"in one camera go below; binomial p {self.p:.1e}). If their views overlap, declare it "
                f"(matching.overlapping_cameras: [[{a}, {b}]]): otherwise nobody is linked between them while "
                "in view of both, and the calibrated threshold falls for every camera")

    def repair_hint(self, store, run_key: str) -> str:
        """The command that re-clusters a finished run with this pair declared (``reid-pipeline recluster``)."""
        a, b = self.cams
        return (f"to repair this run's identities: reid-pipeline recluster --store {store} --run-key {run_key}"
                f" --overlapping {a},{b}")

    def to_json(self) -> dict:
        """The run / re-clustering summary's entry (``from_json`` reads it back)."""
        return {"cams": list(self.cams), "pairs": self.pairs, "close": self.close,
                "reference": round(self.reference, 4), "p": self.p}

    @classmethod
    def from_json(cls, data: dict) -> "SuspectedOverlap":
        a, b = data["cams"]
        return cls((a, b), int(data["pairs"]), int(data["close"]), float(data["reference"]), float(data["p"]))


@dataclass
class OverlapMonitor:
    """Distances of coexisting (cannot-link) tracklet pairs: same-camera (the reference) and per camera pair.
    Bounded (a live run): the last ``keep_same`` same-camera and ``keep_per_pair`` per camera pair; None keeps
    all (a finished run's re-clustering)."""

    keep_same: int | None = KEEP_SAME
    keep_per_pair: int | None = KEEP_PER_PAIR
    same: deque = field(init=False)
    cross: dict[tuple[str, str], deque] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.same = deque(maxlen=self.keep_same)

    def add(self, cam_a: str, cam_b: str, distance: float) -> None:
        """One coexisting pair of tracklets, in cameras ``cam_a`` and ``cam_b``, at cosine ``distance``."""
        if cam_a == cam_b:
            self.same.append(float(distance))
            return
        self.cross.setdefault(_pair_key(cam_a, cam_b), deque(maxlen=self.keep_per_pair)).append(float(distance))

    def suspects(self, extra: Iterable[tuple[str, str, float]] = ()) -> list[SuspectedOverlap]:
        """The camera pairs that look overlapping (module docstring), counting ``extra`` (cam_a, cam_b,
        distance) pairs too (e.g. the revision window's pairs not settled yet); sorted by camera ids."""
        same = list(self.same)
        cross = {k: list(v) for k, v in self.cross.items()}
        for a, b, d in extra:
            if a == b:
                same.append(float(d))
            else:
                cross.setdefault(_pair_key(a, b), []).append(float(d))
        if len(same) < MIN_SAME_CAMERA:
            return []
        from scipy.stats import binom

        ref = float(np.quantile(np.asarray(same, dtype=np.float64), REFERENCE_QUANTILE))
        out = []
        for key, ds in sorted(cross.items()):
            n = len(ds)
            if n < MIN_PAIRS:
                continue
            close = int((np.asarray(ds) < ref).sum())
            p = float(binom.sf(close - 1, n, REFERENCE_QUANTILE))
            if close >= MIN_FRACTION * n and p < MAX_P:
                out.append(SuspectedOverlap(key, n, close, ref, p))
        return out
