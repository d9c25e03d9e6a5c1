"""The incremental revision window (revise.incremental) re-solves only what a call can change, with the
whole re-solve's result; the vectorised constraint checks equal the per-pair rule."""

from __future__ import annotations

import math

import numpy as np

from pipeline.core.types import GlobalIdentity, TrackletEmbedding
from pipeline.matching.config import AutoThresholdConfig, MatcherConfig, ReviseConfig, TopologyConfig, TransitLink
from pipeline.matching.matcher import CrossCameraMatcher


def _stream(seed: int, people: int = 8, n: int = 90) -> list[list[TrackletEmbedding]]:
    """Batches of tracklets of ``people`` people (unit vectors in 16-d + noise) walking between 3 cameras;
    every third tracklet first arrives as a shorter partial, then as its final version."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, 16))
    t, batches, pending = 0.0, [], []
    for k in range(n):
        p = int(rng.integers(people))
        t += float(rng.uniform(0.5, 3.0))
        cam = f"c{rng.integers(3)}"
        vec = centres[p] + 0.35 * rng.normal(size=16)
        final = TrackletEmbedding(cam, k, t, t + float(rng.uniform(1, 6)), vec)
        items = [final]
        if k % 3 == 0:
            pending.append(final)
            items = [TrackletEmbedding(cam, k, t, t + 0.5, vec)]
        if len(pending) > 2:
            items.append(pending.pop(0))
        batches.append(items)
    return batches


def _config(incremental: bool, tolerance: float, auto: bool) -> MatcherConfig:
    topo = TopologyConfig(links=[TransitLink(a="c0", b="c1", min_s=0, max_s=8), TransitLink(a="c1", b="c2", min_s=0, max_s=8)],
                          non_adjacent="penalize", outside_window="penalize", penalty=0.05)
    return MatcherConfig(threshold=0.6, ttl_s=None, topology=topo,
                         auto_threshold=AutoThresholdConfig(min_negatives=10, warmup="threshold") if auto else None,
                         revise=ReviseConfig(window_s=25.0, max_tracklets=40, incremental=incremental,
                                             threshold_tolerance=tolerance))


def _run(cfg: MatcherConfig, batches) -> tuple[list, list, CrossCameraMatcher]:
    m = CrossCameraMatcher(cfg)
    out, changes = [], []
    for items in batches:
        out.append([(r.global_id, r.is_new, r.continuation, None if r.distance is None else round(r.distance, 9))
                    for r in m.match_detailed(items)])
        changes.append([(c.kind, c.into, c.source, c.moved) for c in m.pop_changes()])
    return out, changes, m


def test_incremental_window_equals_whole_re_solve_at_a_fixed_threshold() -> None:
    for seed in range(4):
        batches = _stream(seed)
        full = _run(_config(False, 0.0, auto=False), batches)
        inc = _run(_config(True, 0.0, auto=False), batches)
        assert inc[0] == full[0] and inc[1] == full[1]
        assert inc[2].tentative == full[2].tentative
        stats = inc[2].window_stats
        assert stats["whole"] == 1 and stats["resolved"] < stats["tentative"]  # only parts after the first call


def test_incremental_window_equals_whole_re_solve_with_calibration_and_zero_tolerance() -> None:
    """A calibrated threshold moves between calls: with threshold_tolerance 0 each move re-solves the whole
    window, and in between the parts are solved at the unchanged threshold: the same ids throughout."""
    for seed in range(3):
        batches = _stream(10 + seed)
        full = _run(_config(False, 0.0, auto=True), batches)
        inc = _run(_config(True, 0.0, auto=True), batches)
        assert inc[0] == full[0] and inc[1] == full[1]
        assert abs(inc[2].window_threshold - full[2].window_threshold) < 1e-12  # products by rows: last bits


def test_vectorised_constraints_equal_the_per_pair_rule() -> None:
    rng = np.random.default_rng(0)
    cams = [f"c{i}" for i in range(5)]
    for trial in range(200):
        topo = None if trial % 4 == 0 else TopologyConfig(
            links=[TransitLink(a="c0", b="c1", min_s=2, max_s=20), TransitLink(a="c1", b="c2", min_s=0, max_s=5, bidirectional=False)],
            non_adjacent=["forbid", "penalize"][trial % 2], outside_window=["forbid", "penalize"][(trial // 2) % 2], penalty=0.07)
        cfg = MatcherConfig(topology=topo, overlapping_cameras=[["c3", "c4"]] if trial % 3 else [],
                            reentry_threshold=0.2 if trial % 5 else None, reentry_max_gap_s=30.0 if trial % 7 else None,
                            time_slack_s=[0.0, 0.5][trial % 2])
        m = CrossCameraMatcher(cfg)
        ids = []
        for g in range(6):
            spans = []
            for _ in range(int(rng.integers(0, 5))):
                s = float(rng.integers(0, 40))
                spans.append((str(rng.choice(cams)), s, s + float(rng.integers(0, 6))))
            ids.append(GlobalIdentity(g + 1, np.ones(4, np.float32), [], 0.0, None, spans))
        items = []
        for k in range(4):
            s = float(rng.integers(0, 40))
            items.append(TrackletEmbedding(str(rng.choice(cams)), k, s, s + float(rng.integers(0, 6)), np.ones(4)))
        rows, cols = np.nonzero(rng.random((4, 6)) < 0.7)
        extra, thr = m.constraints(items, ids, rows, cols)
        for p, (r, c) in enumerate(zip(rows.tolist(), cols.tolist())):
            e0, t0 = m._constraint(items[r], ids[c])
            if math.isinf(e0):
                assert math.isinf(extra[p])
            else:
                assert (extra[p], thr[p]) == (e0, t0)
