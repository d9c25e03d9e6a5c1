"""The appearance rules of the first pass (appearance.fuse_lost_only, veto_thresh, occlusion_iou, dynamic_ema,
fusion=motion) on hand-computed cases."""

import numpy as np
import pytest

from pipeline.core.types import Detection
from trackers import costs
from trackers.config import TrackerConfig
from trackers.tracker import Tracker

E1 = np.array([1.0, 0.0], dtype=np.float32)
E2 = np.array([0.0, 1.0], dtype=np.float32)


def test_occluded_detections_by_iou_with_any_other_box():
    # A and B overlap by 5 x 10 = 50 of a 150 union: IoU 1/3; C touches nothing
    tlbr = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [100, 100, 110, 110]], dtype=np.float64)
    assert costs.occluded_detections(tlbr, 0.3).tolist() == [True, True, False]
    assert costs.occluded_detections(tlbr, 0.34).tolist() == [False, False, False]
    assert costs.occluded_detections(tlbr, 1.0).tolist() == [False, False, False]  # off
    assert costs.occluded_detections(tlbr[:1], 0.0).tolist() == [False]


def test_appearance_veto_only_where_appearance_is_known():
    cost = np.array([[0.2, 0.3], [0.5, 0.6]])
    app = np.array([[0.1, 0.5], [0.45, 0.2]])
    out = costs.appearance_veto(cost, app, 0.4, np.ones((2, 2), dtype=bool))
    assert out.tolist() == [[0.2, np.inf], [np.inf, 0.6]]
    out = costs.appearance_veto(cost, app, 0.4, np.array([[True, False], [True, True]]))
    assert out.tolist() == [[0.2, 0.3], [np.inf, 0.6]]
    assert cost.tolist() == [[0.2, 0.3], [0.5, 0.6]]  # input untouched


def test_dynamic_ema_alpha_deep_ocsort():
    assert costs.dynamic_ema_alpha(0.9, 1.0, 0.5) == pytest.approx(0.9)  # full trust: the configured alpha
    assert costs.dynamic_ema_alpha(0.9, 0.75, 0.5) == pytest.approx(0.95)  # 0.9 + 0.1 * (1 - 0.5)
    assert costs.dynamic_ema_alpha(0.9, 0.5, 0.5) == pytest.approx(1.0)  # at the threshold: keep the feature
    assert costs.dynamic_ema_alpha(0.9, 0.3, 0.5) == pytest.approx(1.0)  # below it too
    assert costs.dynamic_ema_alpha(0.9, 0.3, 1.0) == pytest.approx(0.9)


def test_fusion_motion_keeps_the_motion_cost():
    motion = np.array([[0.3, 0.7]])
    app = np.array([[0.0, 0.0]])
    assert costs.fuse_motion_appearance(motion, app, 0.5, 0.4, "motion").tolist() == [[0.3, 0.7]]
    assert costs.fuse_motion_appearance(motion, app, 0.5, 0.4, "min").tolist() == [[0.0, 0.7]]


def _tracker(**appearance) -> Tracker:
    cfg = TrackerConfig.model_validate({"lifecycle": {"output_box": "detection"}, "appearance": appearance})
    return Tracker(cfg, cam_id="c", frame_rate=30.0)


# Frame 1: one person at T (confirmed at once, feature E1). Frame 2: D1 exactly at T (IoU 1) looking like E2,
# and D2 shifted 2.5 px (IoU 150 / 250 = 0.6 with T and with D1) looking like E1. Both score 0.9.
# Motion costs (score-fused): D1 1 - 1.0 * 0.9 = 0.1, D2 1 - 0.6 * 0.9 = 0.46; cosine distances D1 1, D2 0.
T = np.array([0.0, 0.0, 10.0, 20.0])
D1 = Detection(T.copy(), 0.9, embedding=E2)
D2 = Detection(np.array([2.5, 0.0, 10.0, 20.0]), 0.9, embedding=E1)


def _matched_box(tracker: Tracker) -> list[float]:
    tracker.update([Detection(T.copy(), 0.9, embedding=E1)])
    out = tracker.update([D1, D2])
    assert len(out) == 1 and out[0].track_id == 1
    return out[0].tlwh.tolist()


def test_min_fusion_lets_a_similar_neighbour_win():
    # BoT-SORT: D2's raw IoU distance 0.4 <= proximity 0.5 and cosine 0 <= 0.4 -> cost min(0.46, 0) = 0 < 0.1
    assert _matched_box(_tracker()) == D2.tlwh.tolist()


def test_fuse_lost_only_keeps_motion_for_a_tracked_track():
    # T was matched last frame: its row keeps the motion costs 0.1 / 0.46 -> D1
    assert _matched_box(_tracker(fuse_lost_only=True)) == D1.tlwh.tolist()


def test_fuse_lost_only_fuses_for_a_lost_track():
    tr = _tracker(fuse_lost_only=True)
    tr.update([Detection(T.copy(), 0.9, embedding=E1)])
    tr.update([])  # missed once: lost at the next frame
    out = tr.update([D1, D2])
    assert [o.tlwh.tolist() for o in out if o.track_id == 1] == [D2.tlwh.tolist()]


def test_occluded_detections_give_no_appearance_evidence():
    # D1 and D2 overlap by IoU 0.6 > 0.5: both occluded -> appearance counts for neither -> motion picks D1
    assert _matched_box(_tracker(occlusion_iou=0.5)) == D1.tlwh.tolist()
    assert _matched_box(_tracker(occlusion_iou=0.7)) == D2.tlwh.tolist()  # 0.6 is not above 0.7: as min fusion


def test_veto_forbids_a_close_box_that_looks_different():
    # motion-only fusion, veto 0.5: D1's cosine distance 1 > 0.5 is forbidden, D2 (0.46) is taken
    assert _matched_box(_tracker(fusion="motion", veto_thresh=0.5)) == D2.tlwh.tolist()
    assert _matched_box(_tracker(fusion="motion")) == D1.tlwh.tolist()  # veto off (2.0): motion alone


def test_occluded_detection_does_not_update_the_feature():
    tr = _tracker(occlusion_iou=0.5)
    tr.update([Detection(T.copy(), 0.9, embedding=E1)])
    tr.update([D1, D2])  # T takes D1 (occluded, looks like E2): its feature stays E1
    assert np.allclose(tr.tracks[0].feature, E1)
    tr = _tracker()
    tr.update([Detection(T.copy(), 0.9, embedding=E1)])
    tr.update([Detection(T.copy(), 0.9, embedding=E2)])  # alone, not occluded: EMA 0.9 * E1 + 0.1 * E2
    assert np.allclose(tr.tracks[0].feature, np.array([0.9, 0.1]) / np.hypot(0.9, 0.1))


def test_dynamic_ema_keeps_the_feature_at_the_high_threshold():
    # score 0.6 = detection.high_thresh (schema default): alpha_t = 1, the feature stays E1
    for dynamic, expect in ((True, np.array([1.0, 0.0])), (False, np.array([0.9, 0.1]) / np.hypot(0.9, 0.1))):
        tr = _tracker(dynamic_ema=dynamic)
        tr.update([Detection(T.copy(), 0.9, embedding=E1)])
        tr.update([Detection(T.copy(), 0.6, embedding=E2)])
        assert np.allclose(tr.tracks[0].feature, expect, atol=1e-6)


def test_negative_distances_quantile_of_apart_pairs():
    from trackers.detections import NegativeDistances

    emb = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])  # pair distances: (0,1) 1.0, (0,2) 0.4, (1,2) 0.2
    apart = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], dtype=np.float64)
    neg = NegativeDistances(quantile=0.5, min_pairs=3)
    neg.observe(emb[:2], apart[:2])
    assert neg.threshold(0.9) == 0.9  # 1 pair < min_pairs: the configured threshold
    neg.observe(emb, apart)  # 3 more: [1.0, 1.0, 0.4, 0.2] -> median 0.7
    assert neg.threshold(0.9) == pytest.approx(0.7)
    assert neg.threshold(0.5) == 0.5  # never above the configured one
    overlapping = apart.copy()
    overlapping[2] = [5, 0, 15, 10]  # box 2 overlaps box 0: only the pairs (0,1) and (1,2) count
    neg = NegativeDistances(quantile=0.5, min_pairs=1)
    neg.observe(emb, overlapping)
    assert sorted(neg.samples) == pytest.approx([0.2, 1.0])


def test_thresh_from_negatives_drops_appearance_evidence_of_look_alikes():
    # frame 1: T with embedding t = (1, 0.1) / |.| and a far box F; their distance is the one negative sample
    # (quantile of one value = that value). Frame 2 (D1, D2 overlap: no new pair): D2 (E1) is at cosine
    # 1 - 1 / sqrt(1.01) = 0.005 from T. F = (0.6, 0.8): threshold 1 - 0.68 / sqrt(1.01) = 0.323 -> D2 keeps its
    # appearance evidence (as min fusion). F = t: threshold 0 -> D2 has none -> motion picks D1.
    t_emb = (np.array([1.0, 0.1]) / np.hypot(1.0, 0.1)).astype(np.float32)
    far = np.array([300.0, 0.0, 10.0, 20.0])
    for far_emb, expect in ((np.array([0.6, 0.8], dtype=np.float32), D2.tlwh), (t_emb, D1.tlwh)):
        cfg = TrackerConfig.model_validate({"lifecycle": {"output_box": "detection"}, "appearance": {
            "thresh_from_negatives": True, "negative_quantile": 0.5, "negative_min_pairs": 1}})
        tr = Tracker(cfg, cam_id="c", frame_rate=30.0)
        tr.update([Detection(T.copy(), 0.9, embedding=t_emb), Detection(far.copy(), 0.9, embedding=far_emb)])
        assert len(tr.negatives.samples) == 1
        out = tr.update([D1, D2])
        assert [o.tlwh.tolist() for o in out if o.track_id == 1] == [expect.tolist()]


def test_veto_quantile_from_negatives():
    # as above, fusion=motion and veto at the median (here: the only) negative distance. D1 (E2) is at cosine
    # 1 - 0.1 / sqrt(1.01) = 0.9005 from T. F = (0.6, 0.8): veto 0.323 forbids D1 -> D2 (motion cost 0.46).
    # F = (-0.1, 1) / |.|: veto 1 - 0 = 1.0 > 0.9005 -> nothing vetoed -> motion picks D1.
    t_emb = (np.array([1.0, 0.1]) / np.hypot(1.0, 0.1)).astype(np.float32)
    far = np.array([300.0, 0.0, 10.0, 20.0])
    f_apart = (np.array([-0.1, 1.0]) / np.hypot(0.1, 1.0)).astype(np.float32)
    for far_emb, expect in ((np.array([0.6, 0.8], dtype=np.float32), D2.tlwh), (f_apart, D1.tlwh)):
        cfg = TrackerConfig.model_validate({"lifecycle": {"output_box": "detection"}, "appearance": {
            "fusion": "motion", "veto_quantile": 0.5, "negative_min_pairs": 1}})
        tr = Tracker(cfg, cam_id="c", frame_rate=30.0)
        tr.update([Detection(T.copy(), 0.9, embedding=t_emb), Detection(far.copy(), 0.9, embedding=far_emb)])
        out = tr.update([D1, D2])
        assert [o.tlwh.tolist() for o in out if o.track_id == 1] == [expect.tolist()]
    neg = tr.negatives
    assert neg.threshold(2.0, 0.5) == pytest.approx(1.0) and neg.threshold(0.3, 0.5) == 0.3
