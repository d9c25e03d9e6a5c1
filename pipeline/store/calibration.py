"""The matcher's threshold calibration in the identity store (schema 4, table ``calibration``).

The label-free calibration (:class:`pipeline.matching.calibration.NegativeDistanceCalibrator`)
keeps the distances of tracklet/identity pairs known to be different people. They are only
meaningful for the encoder version that produced them, so a row holds, per ``scope`` (one
matcher per store: ``"matcher"``):

* ``model_version``: the encoder version that measured the distances;
* ``negatives``: (K,) float64 ``.npy`` blob, oldest first (K <= ``max_negatives``);
* ``threshold``: the threshold in force when saved (for people reading the store);
* ``fallback``: the warm-up threshold a model hot-swap kept (NULL: the configured one);
* ``updated``: wall-clock time of the save.

:func:`restore_calibration` (the runner, when it builds the matcher) continues from the row when
its version is the encoder's, and starts over (logged) when it is another version's.
:class:`CalibrationSaver` writes the row periodically and at the end of a run; in batch mode
the write joins the open checkpoint transaction (it commits with the run's rows).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from pipeline.matching.calibration import NegativeDistanceCalibrator
from pipeline.store.records import from_blob, to_blob

log = logging.getLogger(__name__)

#: the scope of the runner's one cross-camera matcher
MATCHER_SCOPE = "matcher"


@dataclass(frozen=True)
class CalibrationRow:
    """One stored calibration (see the module docstring); negatives: (K,) float64."""

    scope: str
    model_version: str
    negatives: np.ndarray
    threshold: float
    fallback: float | None
    updated: float


def save_calibration(store, calibrator: NegativeDistanceCalibrator, model_version: str,
                     scope: str = MATCHER_SCOPE) -> None:
    """Upsert ``scope``'s row from ``calibrator`` (measured by encoder ``model_version``).

    ``store``: a :class:`~pipeline.store.IdentityStore` in mode ``"write"``.
    """
    store._require_writer("save_calibration")
    with store.transaction() as c:
        c.execute(
            "INSERT INTO calibration (scope, model_version, negatives, threshold, fallback, updated)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(scope) DO UPDATE SET model_version=excluded.model_version,"
            " negatives=excluded.negatives, threshold=excluded.threshold, fallback=excluded.fallback,"
            " updated=excluded.updated",
            (scope, model_version, to_blob(calibrator.negatives), float(calibrator.threshold),
             calibrator.kept_fallback, time.time()),
        )


def load_calibration(store, scope: str = MATCHER_SCOPE) -> CalibrationRow | None:
    """``scope``'s stored calibration, or None (none saved yet)."""
    rows = store.db.query(
        "SELECT scope, model_version, negatives, threshold, fallback, updated FROM calibration WHERE scope = ?",
        (scope,))
    if not rows:
        return None
    s, v, blob, thr, fb, upd = rows[0]
    neg = from_blob(blob)
    return CalibrationRow(s, v, np.asarray(neg, dtype=np.float64).ravel(), float(thr),
                          None if fb is None else float(fb), float(upd))


def restore_calibration(store, calibrator: NegativeDistanceCalibrator | None, model_version: str,
                        scope: str = MATCHER_SCOPE) -> bool:
    """Continue ``calibrator`` from the store; True when it did.

    Nothing happens (False) without a calibrator (``auto_threshold: null``) or a stored row; a row
    measured by another encoder version is ignored (logged): its distances are on another scale, so
    the calibration starts over (and the next save replaces the row).
    """
    if calibrator is None:
        return False
    row = load_calibration(store, scope)
    if row is None:
        return False
    if row.model_version != model_version:
        log.info("calibration in %s was measured by model %s, the encoder is %s: starting it over",
                 store.path, row.model_version, model_version)
        return False
    calibrator.restore(row.negatives, row.fallback)
    log.info("calibration continued from %s: %d known-different distances, threshold %.3f (%s)",
             store.path, len(calibrator), calibrator.threshold,
             "calibrated" if calibrator.calibrated else "warm-up")
    return True


class CalibrationSaver:
    """Saves a matcher's calibration: at most every ``every_s`` seconds when it changed, and on demand.

    ``matcher``: a :class:`~pipeline.matching.matcher.CrossCameraMatcher` and ``model_version`` the
    encoder's version, both passed at each call (a resume replaces the matcher, a hot swap the version).
    """

    def __init__(self, store, every_s: float, scope: str = MATCHER_SCOPE) -> None:
        self.store = store
        self.every_s = float(every_s)
        self.scope = scope
        self._last = time.monotonic()
        self._saved: tuple | None = None
        self.saves = 0

    def maybe_save(self, matcher, model_version: str) -> bool:
        """Save when ``every_s`` passed since the last save and the calibration changed; True when saved."""
        if time.monotonic() - self._last < self.every_s:
            return False
        return self.save(matcher, model_version)

    def save(self, matcher, model_version: str) -> bool:
        """Save now when the calibration changed since the last save; True when saved."""
        cal = matcher.calibrator
        self._last = time.monotonic()
        if cal is None:
            return False
        key = (id(cal), cal.added, len(cal), cal.fallback, model_version)
        if key == self._saved:
            return False
        save_calibration(self.store, cal, model_version, self.scope)
        self._saved = key
        self.saves += 1
        return True
