"""Score-floor-relative thresholds (detection.relative_to_floor) on hand-made detections, exact values."""

from __future__ import annotations

import numpy as np
import pytest

from pydantic import ValidationError
from pipeline.core.types import Detection
from trackers.config import DetectionConfig, TrackerConfig
from trackers.detections import ScoreFloor, Thresholds
from trackers.tracker import Tracker

REL = {"high_thresh": 0.5, "low_thresh": 0.1, "new_track_thresh": 0.6, "relative_to_floor": True,
       "reference_floor": 0.1, "floor_min_samples": 4}


def test_thresholds_map_from_reference_floor_to_observed_floor():
    sf = ScoreFloor(DetectionConfig(**REL))
    sf.observe(np.array([0.9, 0.5, 0.7]))
    assert sf.thresholds() == Thresholds(0.5, 0.1, 0.6)     # 3 < floor_min_samples: as configured
    sf.observe(np.array([0.8]))                             # 4 seen, floor 0.5: t -> 0.5 + (t - 0.1) * 0.5 / 0.9
    th = sf.thresholds()
    assert (th.high, th.low, th.new_track) == pytest.approx((0.5 + 0.4 * 0.5 / 0.9, 0.5, 0.5 + 0.5 * 0.5 / 0.9))
    sf.observe(np.array([]))                                # empty frames change nothing
    sf.observe(np.array([0.1, 0.95]))                       # floor back at the reference: thresholds as given
    assert sf.thresholds() == pytest.approx(Thresholds(0.5, 0.1, 0.6))


def test_off_by_default_and_low_thresh_below_reference_rejected():
    sf = ScoreFloor(DetectionConfig(high_thresh=0.5, low_thresh=0.1, new_track_thresh=0.6))
    sf.observe(np.full(100, 0.5))
    assert sf.thresholds() == Thresholds(0.5, 0.1, 0.6)
    with pytest.raises(ValidationError, match="reference_floor"):
        TrackerConfig.model_validate({"detection": {**REL, "low_thresh": 0.05}})


def _det(x: float, score: float) -> Detection:
    return Detection(np.array([x, 100.0, 40.0, 80.0]), score)


def test_tracker_starts_tracks_only_above_the_mapped_threshold():
    """A detector cut at 0.5: after the warm-up a lone 0.65 detection is below the mapped new-track threshold
    (0.5 + 0.5 * 0.5 / 0.9 = 0.778) and starts nothing; with fixed thresholds (0.6) it starts a track."""
    frames = [[_det(0, 0.9), _det(200, 0.5)], [_det(2, 0.9), _det(202, 0.5)], [], [_det(400, 0.65)],
              [_det(401, 0.65)]]
    ids = {}
    for rel in (True, False):
        cfg = TrackerConfig.model_validate({"detection": {**REL, "relative_to_floor": rel},
                                            "lifecycle": {"n_init": 2, "max_age_reference_fps": None}})
        trk = Tracker(cfg)
        out = [sorted(o.track_id for o in trk.update(f)) for f in frames]
        ids[rel] = out
    # frame 1: the 0.9 box starts track 1 (confirmed in the first frame), the 0.5 box is below new_track 0.6;
    # from frame 2 (4 boxes seen, floor 0.5) the relative thresholds are high 0.722 / new 0.778
    assert ids[False] == [[1], [1], [], [], [2]]      # fixed: the 0.65 box starts track 2, confirmed at its 2nd hit
    assert ids[True] == [[1], [1], [], [], []]        # relative: floor 0.5 after frame 2, the 0.65 box is too weak
