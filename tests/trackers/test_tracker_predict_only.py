"""Tracker.predict_only (detection stride): ids kept, boxes moved by the Kalman velocity, nothing missed."""

from __future__ import annotations

import numpy as np

from pipeline.core.types import Detection
from trackers.config import TrackerConfig
from trackers.track import TrackState
from trackers.tracker import Tracker


def _cfg(coast: int = 0) -> TrackerConfig:
    return TrackerConfig.model_validate({
        "detection": {"high_thresh": 0.5, "low_thresh": 0.1, "new_track_thresh": 0.6},
        "kalman": {"representation": "xywh"},
        "lifecycle": {"n_init": 2, "max_age": 3, "max_age_reference_fps": None, "output_coasting_frames": coast},
    })


def _det(x: float, y: float = 100.0) -> Detection:
    return Detection(np.array([x, y, 40.0, 80.0]), 0.9)


def _moving_tracker() -> Tracker:
    """Two people, confirmed, moving +10 px/frame in x (left one) and +6 px/frame in y (right one)."""
    trk = Tracker(_cfg(), cam_id="c", frame_rate=10)
    trk.update([])  # no first-frame confirmation
    for k in range(4):
        trk.update([_det(100 + 10 * k), _det(400, 100 + 6 * k)])
    assert trk.active_track_ids() == [1, 2]
    return trk


def test_predict_only_keeps_ids_and_moves_boxes_by_the_kalman_velocity():
    trk = _moving_tracker()
    before = {t.track_id: t.mean.copy() for t in trk.tracks}
    out = trk.predict_only()
    assert [o.track_id for o in out] == [1, 2]
    assert all(o.embedding is None for o in out)
    for o in out:
        m = before[o.track_id]  # xywh state: centre (0, 1), size (2, 3), velocities (4..7)
        cx, cy, w, h = m[0] + m[4], m[1] + m[5], m[2] + m[6], m[3] + m[7]
        np.testing.assert_allclose(o.tlwh, [cx - w / 2, cy - h / 2, w, h], atol=1e-9)
    vel = {t.track_id: t.mean[4:6] for t in trk.tracks}
    assert 5.0 < vel[1][0] < 12.0 and abs(vel[1][1]) < 1.0  # the filter learnt the motion it saw
    assert 2.0 < vel[2][1] < 8.0 and abs(vel[2][0]) < 1.0
    # a second predicted frame moves on by the same (unchanged) velocity
    m1 = {t.track_id: t.mean.copy() for t in trk.tracks}
    out2 = trk.predict_only()
    for o in out2:
        m = m1[o.track_id]
        np.testing.assert_allclose(o.tlwh[:2] + o.tlwh[2:] / 2, m[:2] + m[4:6], atol=1e-9)
    assert all(t.state == TrackState.Confirmed for t in trk.tracks)
    assert trk.pop_removed() == []


def test_detected_frame_after_predicted_frames_rematches_the_same_ids():
    trk = _moving_tracker()  # at frame 5 the left box is at x=130 (k=3)
    trk.predict_only()
    trk.predict_only()  # frames 6, 7 predicted
    out = trk.update([_det(160), _det(400, 100 + 6 * 6)])  # frame 8: where they are now
    assert sorted(o.track_id for o in out) == [1, 2]
    assert trk.frame_id == 8
    # no track was missed by the predicted frames: a later plain frame still counts from this update
    assert all(t.time_since_update == 0 for t in trk.tracks)


def test_predict_only_never_deletes_and_the_next_update_counts_the_frames():
    trk = _moving_tracker()
    for _ in range(5):  # more predicted frames than max_age (3): still alive, not missed yet
        trk.predict_only()
    assert trk.active_track_ids() == [1, 2]
    trk.update([])  # the first detected frame finds nobody: missed 6 > max_age frames -> deleted
    assert trk.active_track_ids() == []
    assert sorted(trk.pop_removed()) == [1, 2]


def test_tentative_tracks_are_not_output_by_predict_only():
    trk = Tracker(_cfg(), cam_id="c", frame_rate=10)
    trk.update([])
    trk.update([_det(100)])  # tentative
    assert trk.predict_only() == []
    assert trk.tracks[0].state == TrackState.Tentative  # not killed by the predicted frame
    out = trk.update([_det(106)])  # second hit: confirmed
    assert [o.track_id for o in out] == [1]


def test_only_tracks_output_at_the_last_detection_are_carried():
    trk = _moving_tracker()
    trk.update([_det(140)])  # the right person is missed (coast 0): not output at this detection
    out = trk.predict_only()
    assert [o.track_id for o in out] == [1]
