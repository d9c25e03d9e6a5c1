"""Track lifecycle frame by frame on hand-made detections (exact expected ids)."""

from __future__ import annotations

import numpy as np

from pipeline.core.types import Detection
from trackers.config import TrackerConfig
from trackers.track import TrackState
from trackers.tracker import Tracker


def _cfg(**life) -> TrackerConfig:
    data = {
        "detection": {"high_thresh": 0.6, "low_thresh": 0.1, "new_track_thresh": 0.7},
        "lifecycle": {"n_init": 2, "max_age": 3, "max_age_reference_fps": None, **life},
    }
    return TrackerConfig.model_validate(data)


def _det(x: float, y: float = 100.0, score: float = 0.9, w: float = 40.0, h: float = 80.0) -> Detection:
    return Detection(np.array([x, y, w, h]), score)


def _ids(outputs) -> list[int]:
    return [o.track_id for o in outputs]


def test_tentative_confirmed_deleted_and_ids_not_reused():
    trk = Tracker(_cfg(), cam_id="c1", frame_rate=10)
    assert _ids(trk.update([])) == []  # frame 1 empty, so no first-frame confirmation
    assert _ids(trk.update([_det(100)])) == []  # frame 2: tentative, not output
    assert trk.tracks[0].state == TrackState.Tentative and trk.active_track_ids() == []
    out = trk.update([_det(102)])  # frame 3: second hit -> confirmed (n_init=2)
    assert _ids(out) == [1] and out[0].frame == 3 and out[0].cam_id == "c1"
    assert trk.active_track_ids() == [1]
    for _ in range(3):  # frames 4-6: missed 1..3 times (max_age=3) -> coasting, not output
        assert _ids(trk.update([])) == []
        assert trk.active_track_ids() == [1]
    assert trk.pop_removed() == []
    trk.update([])  # frame 7: missed 4 > max_age -> deleted
    assert trk.active_track_ids() == []
    assert trk.pop_removed() == [1]
    assert trk.pop_removed() == []
    trk.update([_det(104)])
    out = trk.update([_det(104)])
    assert _ids(out) == [2]  # a new track, a new id


def test_tentative_track_dies_on_first_miss_and_is_not_reported_removed():
    trk = Tracker(_cfg())
    trk.update([])
    trk.update([_det(100)])
    trk.update([])
    assert trk.tracks == [] and trk.pop_removed() == []
    trk.update([_det(100)])
    assert _ids(trk.update([_det(100)])) == [2]


def test_first_frame_tracks_are_confirmed_at_once():
    trk = Tracker(_cfg())
    assert _ids(trk.update([_det(100), _det(300)])) == [1, 2]
    trk2 = Tracker(_cfg(confirm_on_first_frame=False))
    assert _ids(trk2.update([_det(100), _det(300)])) == []
    assert _ids(trk2.update([_det(100), _det(300)])) == [1, 2]


def test_separate_instances_have_separate_id_spaces():
    a, b = Tracker(_cfg(), cam_id="a"), Tracker(_cfg(), cam_id="b")
    seq = [[_det(100)], [_det(102), _det(400)], [_det(104), _det(402)]]
    outs_a = [_ids(a.update(d)) for d in seq]
    outs_b = [_ids(b.update(d)) for d in seq]
    assert outs_a == outs_b == [[1], [1], [1, 2]]


def test_low_score_second_pass_keeps_the_track():
    trk = Tracker(_cfg())
    trk.update([_det(100)])
    trk.update([_det(102)])
    out = trk.update([_det(104, score=0.3)])  # below high_thresh: only the second pass sees it
    assert _ids(out) == [1]
    # a low-score detection alone never starts a track
    trk2 = Tracker(_cfg())
    trk2.update([_det(100, score=0.3)])
    assert trk2.tracks == []
    # below low_thresh: dropped, the track coasts
    assert _ids(trk.update([_det(106, score=0.05)])) == []


def test_coasting_output_option():
    trk = Tracker(_cfg(output_coasting_frames=2))
    trk.update([_det(100)])
    trk.update([_det(110)])
    out = trk.update([])
    assert _ids(out) == [1] and out[0].tlwh[0] > 110  # predicted forward
    assert _ids(trk.update([])) == [1]
    assert _ids(trk.update([])) == []


def test_embedding_is_passed_through():
    trk = Tracker(_cfg())
    e = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    out = trk.update([Detection(np.array([100.0, 100, 40, 80]), 0.9, embedding=e)])
    np.testing.assert_array_equal(out[0].embedding, e)
    assert trk.tracks[0].feature is not None


def test_appearance_resolves_crossing():
    """Two people swap places in one frame; IoU alone is ambiguous, appearance decides."""
    cfg = _cfg()
    ea = np.array([1.0, 0.0], dtype=np.float32)
    eb = np.array([0.0, 1.0], dtype=np.float32)
    trk = Tracker(cfg)
    trk.update([Detection(np.array([100.0, 100, 40, 80]), 0.9, embedding=ea),
                Detection(np.array([110.0, 100, 40, 80]), 0.9, embedding=eb)])
    out = trk.update([Detection(np.array([110.0, 100, 40, 80]), 0.9, embedding=ea),
                      Detection(np.array([100.0, 100, 40, 80]), 0.9, embedding=eb)])
    by_x = {o.track_id: o.tlwh[0] for o in out}
    assert by_x[1] > by_x[2]  # id 1 (appearance a) followed its appearance to the right


def _refound_state(oru: bool) -> tuple[Tracker, np.ndarray, np.ndarray]:
    """Walks 5 px/frame for 10 frames, hidden 4 frames while standing still, re-found at frame 15."""
    cfg = TrackerConfig.model_validate({"association": {"oru": oru}, "lifecycle": {"max_age_reference_fps": None}})
    trk = Tracker(cfg)
    for k in range(10):
        trk.update([_det(100.0 + 5 * k)])
    saved = trk.tracks[0].saved_state
    for _ in range(4):
        trk.update([])
    out = trk.update([_det(150.0)])
    assert _ids(out) == [1]
    return trk, saved, trk.tracks[0].mean


def test_oru_replays_a_virtual_trajectory():
    """OC-SORT ORU: from the state at the last observation, alternate predict and update with
    observations interpolated on the line from the last observation (x=145) to the new one (x=150)."""
    trk, (mean, cov), got = _refound_state(True)
    kf = trk.kf
    z0 = kf.measurement_from_tlwh(np.array([145.0, 100, 40, 80]))
    z1 = kf.measurement_from_tlwh(np.array([150.0, 100, 40, 80]))
    for i in range(1, 5):
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, z0 + (z1 - z0) * i / 5)
    mean, cov = kf.update(*kf.predict(mean, cov), z1)
    np.testing.assert_allclose(got, mean, rtol=1e-9, atol=1e-9)
    _, _, plain = _refound_state(False)
    # the plain filter coasted 5 frames at 5 px/frame and is pulled back by one big innovation;
    # the replay ends nearer the observation and with a velocity nearer the true 1 px/frame
    assert abs(got[0] - z1[0]) < abs(plain[0] - z1[0])
    assert abs(got[4] - 1.0) < abs(plain[4] - 1.0)
