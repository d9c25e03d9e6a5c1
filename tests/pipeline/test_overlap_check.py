"""Camera pairs that look overlapping although the config does not declare it (pipeline/matching/overlap_check.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom

from pipeline.core.types import Tracklet, TrackletEmbedding
from pipeline.matching.config import MatcherConfig, ReviseConfig
from pipeline.matching.matcher import CrossCameraMatcher
from pipeline.matching.overlap_check import OverlapMonitor
from pipeline.runner.identity import IdentityAssigner
from pipeline.store import IdentityStore


def test_monitor_flags_a_pair_far_more_often_close_than_one_camera_pairs() -> None:
    m = OverlapMonitor()
    for i in range(1, 101):  # same-camera pairs at 0.01 .. 1.00: the 5 % quantile is 0.01 + 0.05 * 99 * 0.01
        m.add("a", "a", i / 100)
    for k in range(40):  # a/b: 12 of 40 close (30 %)
        m.add("b", "a", 0.02 if k < 12 else 0.5)
    for k in range(40):  # a/c: 2 of 40 (5 %)
        m.add("a", "c", 0.02 if k < 2 else 0.5)
    for _ in range(20):  # b/c: all close, but only 20 pairs
        m.add("b", "c", 0.01)
    (s,) = m.suspects()
    assert s.cams == ("a", "b") and (s.pairs, s.close) == (40, 12)
    assert s.reference == pytest.approx(0.0595)
    assert s.p == pytest.approx(binom.sf(11, 40, 0.05)) and s.p < 1e-4
    assert "matching.overlapping_cameras: [[a, b]]" in s.message()
    # ten more b/c pairs, none close: 20 of 30 close -> flagged too
    for _ in range(10):
        m.add("c", "b", 0.5)
    assert [x.cams for x in m.suspects()] == [("a", "b"), ("b", "c")]


def test_monitor_needs_a_same_camera_reference() -> None:
    m = OverlapMonitor()
    for i in range(49):
        m.add("a", "a", 0.5)
    for _ in range(40):
        m.add("a", "b", 0.0)
    assert m.suspects() == []
    assert [s.cams for s in m.suspects(extra=[("b", "b", 0.5)])] == [("a", "b")]  # the 50th, not kept


def _scene(slots: int = 20, dim: int = 32, seed: int = 0):
    """Per 10-s slot three new people in each of c1, c2, c3 at the same time; c1 and c2 see the SAME three people
    (an overlapping view), c3 others. Yields (slot, [(cam, track, start, end, vector)])."""
    rng = np.random.default_rng(seed)
    for s in range(slots):
        shared = rng.normal(size=(3, dim))
        own = rng.normal(size=(3, dim))
        rows = []
        for cam, people in (("c1", shared), ("c2", shared + 0.02 * rng.normal(size=(3, dim))), ("c3", own)):
            for k, v in enumerate(people):
                rows.append((cam, s * 10 + k, 20.0 * s, 20.0 * s + 8.0, (v / np.linalg.norm(v)).astype(np.float32)))
        yield s, rows


def _config(overlapping=None) -> MatcherConfig:
    return MatcherConfig(revise=ReviseConfig(window_s=30.0), overlapping_cameras=overlapping or [])


def test_matcher_flags_an_undeclared_overlap_and_not_a_declared_one() -> None:
    for overlapping, expect in ((None, [("c1", "c2")]), ([["c1", "c2"]], [])):
        m = CrossCameraMatcher(_config(overlapping))
        for _, rows in _scene():
            m.match([TrackletEmbedding(c, t, a, b, v) for c, t, a, b, v in rows])
        found = m.suspected_overlaps()
        assert [s.cams for s in found] == expect
        seen = set(m.overlap_monitor.cross)  # the pairs it judged (settled ones; a declared pair is no cannot-link)
        assert len(m.overlap_monitor.same) >= 50 and seen == ({("c1", "c3"), ("c2", "c3")} | set(expect))
        if found:
            assert found[0].close / found[0].pairs > 0.3  # 3 of every 9 c1/c2 pairs are one person


def test_assigner_warns_once_and_reports_the_pair(tmp_path: Path, caplog, mean_aggregator) -> None:
    store = IdentityStore(tmp_path / "ids.sqlite")
    run_id = store.begin_run("r")
    a = IdentityAssigner(store, CrossCameraMatcher(_config()), mean_aggregator, run_id, "v1")
    with caplog.at_level(logging.WARNING, logger="pipeline.runner.identity"):
        for _, rows in _scene():
            finals = []
            for cam, track, start, end, v in rows:
                frames = np.arange(int(start) + 1, int(end) + 2)
                finals.append(Tracklet(cam, track, frames, frames - 1.0, np.tile([10.0, 20.0, 30.0, 60.0], (len(frames), 1)),
                                       np.tile(v, (len(frames), 1))))
            a.process([], finals)
        a.check_overlaps()
    warned = [r.getMessage() for r in caplog.records if "look overlapping" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("cameras c1 and c2 look overlapping")
    assert list(a.overlaps) == [("c1", "c2")]
    store.close()


def test_recluster_reports_the_pair_over_a_whole_run() -> None:
    from pipeline.matching.recluster import cannot_link_matrix, cosine_distances, suspected_overlaps

    items = [TrackletEmbedding(c, t, a, b, v) for _, rows in _scene() for c, t, a, b, v in rows]
    dist = cosine_distances(np.stack([it.vector for it in items]))
    for overlapping, expect in ((None, [("c1", "c2")]), ([["c1", "c2"]], [])):
        cannot = cannot_link_matrix(items, CrossCameraMatcher(_config(overlapping)))
        assert [s.cams for s in suspected_overlaps(items, dist, cannot)] == expect


def test_run_ends_with_the_overlap_warning_and_the_repair_command() -> None:
    """``reid-pipeline run``'s end-of-run warnings (stderr): a camera that went down, and a suspected overlap with the
    recluster command that repairs the run (the figures of the PETS overlap layout run without its overlap)."""
    from pipeline.commands.run import summary_warnings

    summary = {"store": "runs/x/identities.sqlite", "run_key": "k1",
               "cameras": {"col1": {"state": "ok", "frames": 795}, "col3": {"state": "down", "frames": 30, "delivered": 12}},
               "suspected_overlaps": [{"cams": ["col1", "col2"], "pairs": 68, "close": 20, "reference": 0.0684,
                                       "p": 7.58e-11}]}
    down, overlap = summary_warnings(summary)
    assert down == "camera col3 went down during the run (12 frames delivered, 30 captured); its results stop there"
    assert overlap.startswith("cameras col1 and col2 look overlapping: 20 of 68 tracklet pairs")
    assert "closer than 0.068" in overlap and "binomial p 7.6e-11" in overlap
    assert overlap.endswith("reid-pipeline recluster --store runs/x/identities.sqlite --run-key k1 "
                            "--overlapping col1,col2")
    assert summary_warnings({"store": "s", "run_key": "k"}) == []
