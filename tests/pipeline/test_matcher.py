"""Cross-camera matcher on hand-made 2-D embeddings: cosine distance = 1 - cos(angle difference).

Reference distances: 10 deg -> 0.015, 20 deg -> 0.060, 25 deg -> 0.094, 30 deg -> 0.134, 40 deg -> 0.234, 50 deg -> 0.357, 90 deg -> 1.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.configio import validate
from pipeline.core.errors import ConfigError
from pipeline.matching.matcher import CrossCameraMatcher, MatcherConfig
from pipeline.matching.config import AutoThresholdConfig, ReviseConfig, TopologyConfig, TransitLink
from pipeline.store import IdentityStore
from pipeline.core.types import GlobalIdentity, Tracklet, TrackletEmbedding


def OneShot(**kw) -> MatcherConfig:
    """The one-shot matcher (decisions final: revise off) these tests describe, with the fixed warm-up
    threshold (until calibrated, ``threshold`` is in force); revision: test_revise.py."""
    kw.setdefault("auto_threshold", AutoThresholdConfig(warmup="threshold"))
    return MatcherConfig(revise=ReviseConfig(enabled=False), **kw)


def vec(deg: float) -> np.ndarray:
    return np.array([math.cos(math.radians(deg)), math.sin(math.radians(deg))], dtype=np.float32)


def te(cam: str, track: int, start: float, end: float, deg: float) -> TrackletEmbedding:
    return TrackletEmbedding(cam, track, start, end, vec(deg))


def ident(gid: int, deg: float, spans: list[tuple[str, float, float]]) -> GlobalIdentity:
    return GlobalIdentity(gid, vec(deg), [(c, i) for i, (c, _, _) in enumerate(spans)],
                          max(e for _, _, e in spans), spans[-1][0], list(spans))


def test_new_identities_then_cross_camera_matches() -> None:
    m = CrossCameraMatcher(OneShot(threshold=0.3))
    assert m.match([te("c1", 1, 0, 10, 0), te("c1", 2, 0, 10, 90)]) == [1, 2]
    res = m.match_detailed([te("c2", 7, 20, 30, 85), te("c2", 8, 20, 30, 10), te("c2", 9, 21, 30, 200)])
    assert [r.global_id for r in res] == [2, 1, 3]
    assert [r.is_new for r in res] == [False, False, True]
    assert res[0].previous_cam == "c1" and res[0].previous_end == 10
    assert res[0].distance == pytest.approx(1 - math.cos(math.radians(5)), abs=1e-6)
    # prototype of identity 1 = EMA(0.8) of 0 deg and 10 deg, renormalised
    expect = 0.8 * vec(0) + 0.2 * vec(10)
    np.testing.assert_allclose(m.identity(1).prototype, expect / np.linalg.norm(expect), atol=1e-6)
    assert m.identity(1).spans == [("c1", 0, 10), ("c2", 20, 30)]


def test_hungarian_is_optimal_and_one_identity_per_batch() -> None:
    gallery = [ident(1, 0, [("c1", 0, 10)]), ident(2, 40, [("c1", 0, 10)])]
    m = CrossCameraMatcher(OneShot(threshold=0.3), gallery, next_id=3)
    # X (15 deg) is closer to 1 (0.034) than to 2 (0.094); Y (-10 deg) fits only 1 (0.015; to 2: 0.357)
    assert m.match([te("c2", 1, 20, 30, 15), te("c2", 2, 20, 30, -10)]) == [2, 1]
    m = CrossCameraMatcher(OneShot(threshold=0.3), [ident(1, 0, [("c1", 0, 10)])], next_id=2)
    # both fit identity 1 only: the closer one takes it, the other opens identity 2
    assert m.match([te("c2", 1, 20, 30, 20), te("c2", 2, 20, 30, 5)]) == [2, 1]


def test_no_identity_in_two_non_overlapping_cameras_at_once() -> None:
    gallery = [ident(1, 0, [("c1", 0, 10)])]
    m = CrossCameraMatcher(OneShot(threshold=0.3), [g for g in gallery], next_id=2)
    assert m.match([te("c2", 1, 5, 15, 0)]) == [2]  # same look, but c1 and c2 at the same time
    m = CrossCameraMatcher(OneShot(threshold=0.3, overlapping_cameras=[["c1", "c2"]]),
                           [ident(1, 0, [("c1", 0, 10)])], next_id=2)
    assert m.match([te("c2", 1, 5, 15, 0)]) == [1]  # declared overlapping views
    # the slack tolerates a short overlap (tracker end lag): 0.5 s shared < 1 s slack
    m = CrossCameraMatcher(OneShot(threshold=0.3, time_slack_s=1.0), [ident(1, 0, [("c1", 0, 10)])], 2)
    assert m.match([te("c2", 1, 9.5, 15, 0)]) == [1]


def test_never_two_overlapping_tracklets_of_one_identity_in_one_camera() -> None:
    m = CrossCameraMatcher(OneShot(threshold=0.3, overlapping_cameras=[["c1", "c2"]]),
                           [ident(1, 0, [("c1", 0, 10)])], next_id=2)
    assert m.match([te("c1", 9, 5, 8, 0)]) == [2]
    assert m.match([te("c1", 10, 11, 20, 0)]) == [1]  # after it: a re-entry is allowed


def test_topology_transit_windows_forbid() -> None:
    topo = TopologyConfig(links=[TransitLink(a="c1", b="c2", min_s=5, max_s=20)])
    cfg = OneShot(threshold=0.3, topology=topo)

    def one(item: TrackletEmbedding) -> int:
        return CrossCameraMatcher(cfg, [ident(1, 0, [("c1", 0, 10)])], next_id=2).match([item])[0]

    assert one(te("c2", 1, 12, 20, 0)) == 2  # 2 s: faster than min_s
    assert one(te("c2", 1, 15, 20, 0)) == 1  # 5 s: inside [5, 20]
    assert one(te("c2", 1, 30, 40, 0)) == 1  # 20 s
    assert one(te("c2", 1, 31, 40, 0)) == 2  # 21 s: too late
    assert one(te("c3", 1, 20, 30, 0)) == 2  # c1 -> c3 not adjacent
    # bidirectional: an item in c2 BEFORE the c1 sighting hands over c2 -> c1
    assert one(te("c2", 1, -20, -8, 0)) == 1  # 8 s before
    assert one(te("c2", 1, -20, -2, 0)) == 2  # 2 s before


def test_topology_penalize_adds_penalty() -> None:
    topo = TopologyConfig(links=[TransitLink(a="c1", b="c2", min_s=5, max_s=20)], non_adjacent="penalize",
                          outside_window="penalize", penalty=0.2)
    cfg = OneShot(threshold=0.3, topology=topo)

    def res(item: TrackletEmbedding):
        return CrossCameraMatcher(cfg, [ident(1, 0, [("c1", 0, 10)])], next_id=2).match_detailed([item])[0]

    r = res(te("c3", 1, 20, 30, 10))  # 0.015 + 0.2 <= 0.3
    assert r.global_id == 1 and r.distance == pytest.approx(1 - math.cos(math.radians(10)) + 0.2, abs=1e-6)
    assert res(te("c3", 1, 20, 30, 30)).global_id == 2  # 0.134 + 0.2 > 0.3
    assert res(te("c2", 1, 11, 20, 30)).global_id == 2  # 1 s transit, penalised
    assert res(te("c2", 1, 16, 20, 30)).global_id == 1  # 6 s transit, no penalty


def test_reentry_threshold_and_gap() -> None:
    cfg = OneShot(threshold=0.3, reentry_threshold=0.1, reentry_max_gap_s=30)

    def one(item: TrackletEmbedding) -> int:
        return CrossCameraMatcher(cfg, [ident(1, 0, [("c1", 0, 10)])], next_id=2).match([item])[0]

    assert one(te("c1", 5, 20, 30, 25)) == 1  # re-entry at 0.094 <= 0.1
    assert one(te("c1", 5, 20, 30, 40)) == 2  # ...0.234 > reentry threshold 0.1
    assert one(te("c1", 5, 20, 30, 20)) == 1  # 0.060 <= 0.1
    assert one(te("c2", 5, 20, 30, 40)) == 1  # another camera: 0.234 <= 0.3
    assert one(te("c1", 5, 41, 50, 0)) == 2  # 31 s after leaving: beyond reentry_max_gap_s


def test_gallery_ageing_ttl_and_max_size() -> None:
    m = CrossCameraMatcher(OneShot(threshold=0.3, ttl_s=100), [ident(1, 0, [("c1", 0, 10)])], next_id=2)
    assert m.match([te("c2", 1, 111, 120, 0)]) == [2]  # identity 1 last seen at 10 < 120 - 100
    assert [g.global_id for g in m.gallery] == [2]
    m = CrossCameraMatcher(OneShot(threshold=0.3, max_gallery=2, ttl_s=None))
    assert m.match([te("c1", i, i, i + 0.5, 100 * i) for i in range(4)]) == [1, 2, 3, 4]
    assert sorted(g.global_id for g in m.gallery) == [3, 4]
    assert m.match([te("c2", 9, 10, 11, 0)]) == [5]  # identity 1 was evicted; ids are never reused


def test_cumulative_partial_keeps_its_identity() -> None:
    m = CrossCameraMatcher(OneShot(threshold=0.3))
    assert m.match([te("c1", 5, 0, 10, 0)]) == [1]
    r = m.match_detailed([te("c1", 5, 0, 30, 60)])[0]  # final version of the same track, other look
    assert (r.global_id, r.continuation) == (1, True)
    assert m.identity(1).spans == [("c1", 0, 30)] and m.identity(1).members == [("c1", 5)]


def test_restart_from_store_continues_ids(tmp_path: Path) -> None:
    with IdentityStore(tmp_path / "s.db") as store:
        run = store.begin_run("day-1")
        m = CrossCameraMatcher(OneShot(threshold=0.3), store.load_gallery(), store.next_global_id())
        for deg, cam, tr in ((0, "c1", 1), (90, "c1", 2)):
            item = te(cam, tr, 0, 10, deg)
            (res,) = m.match_detailed([item])
            t = Tracklet(cam, tr, np.arange(1, 11), np.linspace(0, 10, 10), np.zeros((10, 4)), np.zeros((10, 2)))
            store.record_tracklet(run, t, item.vector, "v0", m.identity(res.global_id), res.distance)
    with IdentityStore(tmp_path / "s.db") as store:
        m = CrossCameraMatcher(OneShot(threshold=0.3), store.load_gallery(), store.next_global_id())
        assert m.next_id == 3
        # c2 at 5..8 overlaps the c1 sightings reloaded from the store: forbidden; later it matches
        assert m.match([te("c2", 1, 5, 8, 88), te("c2", 2, 20, 30, 2)]) == [3, 1]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="matching: topology.links.0: Value error, max_s"):
        validate(MatcherConfig, {"topology": {"links": [{"a": "x", "b": "y", "min_s": 5, "max_s": 1}]}},
                 "matching")
    with pytest.raises(ConfigError, match="unknown key"):
        validate(MatcherConfig, {"treshold": 0.2}, "matching")


def test_partial_and_final_of_one_track_in_one_batch_share_the_identity() -> None:
    m = CrossCameraMatcher(OneShot(threshold=0.3), [ident(1, 0, [("c1", 0, 10)])], next_id=2)
    res = m.match_detailed([te("c2", 4, 20, 25, 90), te("c2", 4, 20, 40, 95)])
    assert [(r.global_id, r.is_new, r.continuation) for r in res] == [(2, True, False), (2, False, True)]
    assert m.identity(2).spans == [("c2", 20, 40)]


def test_same_track_id_in_a_later_run_is_a_new_member() -> None:
    # track ids restart with each run: ("c1", 5) of a previous run is another tracklet
    m = CrossCameraMatcher(OneShot(threshold=0.3), [ident(1, 0, [("c1", 0, 10)])], next_id=2)
    m.identity(1).members = [("c1", 5)]
    assert m.match([te("c1", 5, 100, 110, 5)]) == [1]
    assert m.identity(1).spans == [("c1", 0, 10), ("c1", 100, 110)]
    assert m.identity(1).members == [("c1", 5), ("c1", 5)]


# ---------------------------------------------------------------- label-free threshold calibration


def test_calibrator_quantile_fallback_bounds_and_reset() -> None:
    from pipeline.matching.calibration import NegativeDistanceCalibrator
    from pipeline.matching.config import AutoThresholdConfig

    cal = NegativeDistanceCalibrator(AutoThresholdConfig(false_match_rate=0.25, min_negatives=4, warmup="threshold"), fallback=0.35)
    cal.add(np.array([0.4, 0.8, np.nan]))  # NaN ignored
    assert len(cal) == 2 and not cal.calibrated and cal.threshold == 0.35
    cal.add(np.array([[0.2], [1.0]]))
    # sorted [0.2, 0.4, 0.8, 1.0]: quantile 0.25 at position 0.75 -> 0.2 + 0.75 * 0.2 = 0.35
    assert cal.calibrated and cal.threshold == pytest.approx(0.35)
    cal.add(np.array([0.1]))  # [0.1, 0.2, 0.4, 0.8, 1.0]: position 1.0 -> 0.2
    assert cal.threshold == pytest.approx(0.2)
    clipped = NegativeDistanceCalibrator(
        AutoThresholdConfig(false_match_rate=0.25, min_negatives=1, min_threshold=0.3), fallback=0.35)
    clipped.add(np.array([0.1, 0.2]))
    assert clipped.threshold == pytest.approx(0.3)
    cal.reset()  # the calibrated 0.2 stays in force until re-sampled
    assert len(cal) == 0 and not cal.calibrated and cal.threshold == pytest.approx(0.2)
    cal.reset(keep_threshold=False)  # back to the configured value
    assert cal.threshold == 0.35
    window = NegativeDistanceCalibrator(AutoThresholdConfig(min_negatives=1, max_negatives=10), fallback=0.35)
    window.add(np.arange(25) / 100.0)
    assert len(window) == 10  # only the most recent samples are kept


def test_calibration_rate_shrinks_with_the_gallery_above_reference_identities() -> None:
    from pipeline.matching.calibration import NegativeDistanceCalibrator, gallery_rate

    assert gallery_rate(AutoThresholdConfig(), 500) == pytest.approx(0.002)  # 0.02 * 50 / 500
    assert gallery_rate(AutoThresholdConfig(), 50) == gallery_rate(AutoThresholdConfig(), None) == 0.02
    assert gallery_rate(AutoThresholdConfig(reference_identities=None), 10_000) == 0.02
    cfg = AutoThresholdConfig(false_match_rate=0.2, reference_identities=5, min_negatives=1)
    cal = NegativeDistanceCalibrator(cfg, fallback=0.35)
    cal.add(np.arange(101) / 100.0)  # 0.00 .. 1.00: the p-quantile is p itself
    assert cal.threshold_for(None) == pytest.approx(0.2) and cal.threshold_for(5) == pytest.approx(0.2)
    assert cal.threshold_for(10) == pytest.approx(0.1) and cal.threshold_for(40) == pytest.approx(0.025)
    assert cal.threshold == pytest.approx(0.025)  # the size of the last call stays in force
    cal.add(np.array([0.0] * 99))  # new samples (200, half of them 0): the cached 0.025 is not reused
    assert cal.threshold_for(40) == 0.0


def test_matcher_threshold_follows_its_gallery_size() -> None:
    auto = {"false_match_rate": 0.25, "reference_identities": 2, "min_negatives": 2, "warmup": "threshold"}
    m = CrossCameraMatcher(validate(MatcherConfig, {"threshold": 0.9, "auto_threshold": auto,
                                                    "revise": {"enabled": False}}, "<test>"))
    # as in the test below: three identities, three known-different distances (0.5, 1.0, 0.134)
    assert [m.match([t])[0] for t in (te("A", 1, 0, 10, 0), te("A", 2, 0, 10, 60), te("B", 1, 5, 8, 90))] == [1, 2, 3]
    neg = m.calibrator.negatives
    assert m.gallery_size() == 3 and len(neg) == 3
    assert m.threshold == pytest.approx(float(np.quantile(neg, 0.25 * 2 / 3)))
    assert m.threshold < float(np.quantile(neg, 0.25))


def test_threshold_calibrated_on_known_different_pairs() -> None:
    auto = {"false_match_rate": 0.25, "min_negatives": 2, "warmup": "threshold"}
    m = CrossCameraMatcher(validate(MatcherConfig, {"threshold": 0.9, "auto_threshold": auto,
                                                    "revise": {"enabled": False}}, "<test>"))
    assert m.match([te("A", 1, 0, 10, 0)]) == [1]
    # same camera, same time as identity 1: known different, distance 1 - cos 60 = 0.5
    assert m.match([te("A", 2, 0, 10, 60)]) == [2]
    assert m.calibration == {"threshold": 0.9, "calibrated": False, "negatives": 1}
    # camera B (not overlapping A) while 1 and 2 are in A: 1 - cos 90 = 1.0 and 1 - cos 30 = 0.134
    assert m.match([te("B", 1, 5, 8, 90)]) == [3]
    d = sorted([0.5, 1.0, 1 - math.cos(math.radians(30))])
    expect = d[0] + 0.5 * (d[1] - d[0])  # quantile 0.25 of three samples: position 0.5
    assert m.calibration["calibrated"] and m.threshold == pytest.approx(expect)  # 0.317
    # later, -50 deg in B: nearest is identity 1 at 1 - cos 50 = 0.357 > 0.317 -> a new identity,
    # where the fixed threshold 0.9 would have merged it into identity 1
    assert m.match([te("B", 2, 20, 30, -50)]) == [4]
    fixed = CrossCameraMatcher(OneShot(threshold=0.9, auto_threshold=None))
    assert [fixed.match([t])[0] for t in (te("A", 1, 0, 10, 0), te("A", 2, 0, 10, 60), te("B", 1, 5, 8, 90),
                                           te("B", 2, 20, 30, -50))] == [1, 2, 3, 1]
    assert fixed.calibration == {"threshold": 0.9, "calibrated": False, "negatives": 0}
    m.reset_calibration()
    assert m.threshold == pytest.approx(expect) and m.calibration["negatives"] == 0
    m.reset_calibration(keep_threshold=False)
    assert m.threshold == 0.9


def test_overlapping_views_give_no_negatives() -> None:
    cfg = OneShot(threshold=0.3, overlapping_cameras=[["A", "B"]])
    m = CrossCameraMatcher(cfg)
    m.match([te("A", 1, 0, 10, 0)])
    # B overlaps A's view: being seen in both at once proves nothing
    assert len(m.known_different_distances([te("B", 1, 5, 8, 90)], m.gallery)) == 0
    assert len(m.known_different_distances([te("A", 2, 5, 8, 90)], m.gallery)) == 1


def test_auto_threshold_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="auto_threshold.false_match_rate"):
        validate(MatcherConfig, {"auto_threshold": {"false_match_rate": 0.7}}, "<test>")
    with pytest.raises(ConfigError, match="max_threshold"):
        validate(MatcherConfig, {"auto_threshold": {"min_threshold": 0.5, "max_threshold": 0.2}}, "<test>")


def test_no_link_warmup_until_calibrated() -> None:
    auto = {"false_match_rate": 0.01, "min_negatives": 2, "warmup": "no-link"}
    m = CrossCameraMatcher(validate(MatcherConfig, {"threshold": 0.9, "auto_threshold": auto}, "<test>"))
    assert m.threshold == 0.0
    assert m.match([te("A", 1, 0, 10, 0)]) == [1]
    # 10 deg from identity 1 (distance 0.015), later, in camera B: the fixed 0.9 would link it
    assert m.match([te("B", 1, 20, 30, 10)]) == [2]
    # a continuation of a track keeps its identity during the warm-up
    assert m.match_detailed([te("B", 1, 20, 40, 10)])[0].global_id == 2
    # camera C while identity 2 is in B: two known-different pairs, 1 - cos 80 and 1 - cos 170
    assert m.match([te("C", 1, 25, 35, 90), te("C", 2, 25, 35, 180)]) == [3, 4]
    d = sorted([1 - math.cos(math.radians(80)), 1 - math.cos(math.radians(170))])
    assert m.calibration["negatives"] == 2 and m.calibration["calibrated"]
    assert m.threshold == pytest.approx(d[0] + 0.01 * (d[1] - d[0]))  # 0.838: C1 (1.0 from identity 1) stayed new
    # calibrated: linking resumes (3 deg is nearest to identity 1)
    assert m.match([te("A", 2, 50, 60, 3)]) == [1]


@pytest.mark.parametrize("revise", [False, True])
def test_matching_runs_with_one_blas_thread_and_restores_it(revise: bool) -> None:
    """match_detailed limits BLAS to one thread for the call (small products; a second thread is only waited
    for on a busy CPU: docs/gallery.md), in the one-shot and the revision paths, and restores the setting."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):  # as on a 2-core machine, whatever this one has
        outside = blas_threads()
        cfg = MatcherConfig(revise=ReviseConfig(enabled=revise), auto_threshold=AutoThresholdConfig(warmup="threshold"))
        m = CrossCameraMatcher(cfg)
        seen: list[set[int]] = []
        real = m._camera_tables  # every path looks up its camera tables (constraints, calibration samples)

        def spy():
            seen.append(blas_threads())
            return real()

        m._camera_tables = spy
        m.match([te("c1", 1, 0, 10, 0), te("c1", 2, 0, 10, 90)])
        m.match([te("c2", 3, 20, 30, 5), te("c2", 4, 20, 30, 85)])
        assert outside == {2} and seen and all(s == {1} for s in seen)
        assert blas_threads() == {2}
