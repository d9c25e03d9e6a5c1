"""Revisable online identities (pipeline/matching/revise.py) on hand-made 2-D embeddings.

cosine distance = 1 - cos(angle difference): 14 deg -> 0.02970, 20 deg -> 0.06031, 28 deg -> 0.11705,
50 deg -> 0.35721. Fixed threshold 0.1 (no calibration), so every decision is computed by hand below.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from pipeline.commands.query import _format_identity
from pipeline.core.types import TrackletEmbedding
from pipeline.matching.confidence import LinkConfidence, fit_logistic, probability
from pipeline.matching.config import MatcherConfig, ReviseConfig
from pipeline.matching.matcher import CrossCameraMatcher
from pipeline.query import identity_report
from pipeline.runner.identity import IdentityAssigner
from pipeline.sinks import EventSink, MOTWriter
from pipeline.store import IdentityStore
from pipeline.store.schema import MIGRATIONS, SCHEMA_VERSION


def d(deg: float) -> float:
    return 1.0 - math.cos(math.radians(deg))


def vec(deg: float) -> np.ndarray:
    return np.array([math.cos(math.radians(deg)), math.sin(math.radians(deg))], dtype=np.float32)


def te(cam: str, track: int, start: float, end: float, deg: float) -> TrackletEmbedding:
    return TrackletEmbedding(cam, track, start, end, vec(deg))


def cfg(window_s: float = 100.0, **kw) -> MatcherConfig:
    kw.setdefault("revise", ReviseConfig(window_s=window_s, announce_after_s=0.0))  # events when decided
    return MatcherConfig(threshold=0.1, auto_threshold=None, **kw)


def test_early_merge_split_by_later_evidence() -> None:
    m = CrossCameraMatcher(cfg())
    assert m.match([te("c1", 1, 0, 10, 0)]) == [1]
    res = m.match_detailed([te("c2", 1, 20, 30, 20)])  # 0.060 <= 0.1: linked to 1, tentatively
    assert res[0].global_id == 1 and res[0].distance == pytest.approx(d(20))
    assert m.pop_changes() == []
    # c2/3 looks exactly like 1 (distance 0) but coexists with c2/1 in camera c2: they are two people.
    # Average linkage merges {c1/1, c2/3} first (0), then c2/1 cannot join them: it splits off 1.
    assert m.match([te("c2", 3, 25, 35, 0)]) == [1]
    (ch,) = m.pop_changes()
    assert (ch.kind, ch.source, ch.into, ch.global_id, ch.moved) == ("split", 1, 2, 1, (("c2", 1),))
    assert ch.distance is None  # nothing else in the new identity 2
    assert ch.distance_from == pytest.approx(d(20), abs=1e-6)  # mean of c2/1 -> c1/1 and c2/1 -> c2/3
    assert m.track_global_id("c2", 1) == 2 and m.track_global_id("c1", 1) == 1
    assert ch.payload()["ids"] == [1, 2] and ch.payload()["by"] == "revise"
    # it rewrites what was decided at 30 s; it was decided when c2/3 ended, at 35 s
    assert ch.t == 20.0 and ch.decided_t == 35.0 and ch.payload()["decided_t"] == 35.0


def test_dead_band_keeps_a_member_just_beyond_the_threshold_and_no_one_else() -> None:
    """Threshold 0.1; c1/1 and c2/1 are 26.5 deg apart (distance 0.1051). Both already in identity 1, the
    dead band (hysteresis 0.1: 0.01) counts 0.0951 and keeps them together, with the real distance
    reported; without it, or for a tracklet not yet in identity 1, 0.1051 > 0.1 keeps them apart."""
    from pipeline.matching.revise import solve_window

    items = [te("c1", 1, 0, 10, 0), te("c2", 1, 20, 30, 26.5)]
    for hysteresis, old, together in ((0.1, [1, 1], True), (0.0, [1, 1], False), (0.1, [1, None], False)):
        m = CrossCameraMatcher(cfg(revise=ReviseConfig(window_s=100, hysteresis=hysteresis)))
        sol, _ = solve_window(items, old, {}, m, 0.1)
        assert (sol.labels[0] == sol.labels[1]) is together, (hysteresis, old)
        if together:
            assert sol.link[1] == pytest.approx(d(26.5), abs=1e-6)  # the real distance, not 0.0951
    assert d(26.5) == pytest.approx(0.1051, abs=1e-4)


def test_two_identities_merged_by_later_evidence() -> None:
    m = CrossCameraMatcher(cfg())
    assert m.match([te("c1", 1, 0, 10, 0)]) == [1]
    assert m.match([te("c2", 1, 20, 30, 28)]) == [2]  # 0.117 > 0.1: another person, for now
    # c3/1 at 14 deg is 0.0297 from both: {c1/1, c3/1} (tie broken by index), then c2/1 joins at
    # average (0.117 + 0.0297) / 2 = 0.0734 <= 0.1: one person; the tie of old ids keeps the smaller, 1
    assert m.match([te("c3", 1, 40, 50, 14)]) == [1]
    (ch,) = m.pop_changes()
    assert (ch.kind, ch.into, ch.source, ch.global_id, ch.moved) == ("merge", 1, 2, 1, (("c2", 1),))
    assert ch.distance == pytest.approx((d(28) + d(14)) / 2, abs=1e-6)
    assert ch.distance_from is None and ch.decided_t == 50.0  # when c3/1's end brought the evidence
    assert m.identity(2) is None and m.track_global_id("c2", 1) == 1
    assert {g.global_id for g in m.gallery} == {1}


def test_settled_past_is_kept_and_constraints_hold() -> None:
    m = CrossCameraMatcher(cfg(window_s=5.0))
    assert m.match([te("c1", 1, 0, 10, 0)]) == [1]
    assert m.match([te("c2", 1, 100, 110, 50)]) == [2]  # c1/1 settles (ended 100 s before the clock)
    assert m.tentative == {("c2", 1): 2}
    assert m.match([te("c3", 1, 200, 210, 0)]) == [1]  # joins the settled identity 1 (distance 0)
    # c1/2 is also at distance 0 from 1, but it coexists with c3/1 (non-overlapping cameras, same time):
    # it may not join 1; the settled c1/1 is not re-decided; a new identity
    assert m.match([te("c1", 2, 205, 215, 0)]) == [3]
    assert m.pop_changes() == []
    assert m.track_global_id("c3", 1) == 1 and m.track_global_id("c1", 1) == 1


def test_two_settled_identities_never_merge() -> None:
    m = CrossCameraMatcher(cfg(window_s=5.0))
    assert m.match([te("c1", 1, 0, 10, 0), te("c2", 1, 0, 10, 0)]) == [1, 2]  # coexist: two people
    # both settle; a tracklet close to both joins one (tie: the lower node index) and never merges them
    assert m.match([te("c3", 1, 100, 110, 0)]) == [1]
    assert m.match([te("c3", 2, 120, 130, 0)]) == [1]
    assert m.pop_changes() == [] and {g.global_id for g in m.gallery} == {1, 2}


def test_late_tracklet_older_than_the_window_is_still_assigned() -> None:
    """A camera that went down long ago flushes its final tracklet late: it ended before the window,
    yet it gets an id in that call (it is solved once, then settled)."""
    m = CrossCameraMatcher(cfg(window_s=5.0))
    assert m.match([te("c1", 1, 0, 10, 0)]) == [1]
    assert m.match([te("c2", 1, 100, 110, 50)]) == [2]  # clock 110: c1/1 settles
    # c3/1 ended at 20 s, 90 s before the clock; 0 deg = identity 1 (settled), no constraint against it
    res = m.match_detailed([te("c3", 1, 15, 20, 0), te("c3", 1, 15, 20, 0)])
    assert [r.global_id for r in res] == [1, 1]
    assert m.track_global_id("c3", 1) == 1
    assert m.match([te("c2", 2, 120, 130, 50)]) == [2]  # next call: c3/1 is settled, nothing moves
    assert ("c3", 1) not in m.tentative and m.pop_changes() == []


def test_coexists_matrix_is_the_scalar_rule() -> None:
    m = CrossCameraMatcher(cfg(overlapping_cameras=[["a", "b"]], time_slack_s=1.0))
    items = [te("a", 1, 0, 10, 0), te("b", 1, 5, 12, 0), te("c", 1, 9.5, 20, 0), te("a", 2, 9, 30, 0),
             te("c", 2, 30, 40, 0)]
    mat = m.coexists_matrix(items)
    for i, a in enumerate(items):
        for j, b in enumerate(items):
            assert mat[i, j] == (i != j and m.coexists(a, b.cam_id, b.start_time, b.end_time)), (i, j)


def test_probability_is_monotone_in_distance() -> None:
    rng = np.random.default_rng(0)
    neg, pos = rng.normal(0.30, 0.05, 300), rng.normal(0.05, 0.02, 200)
    coef = fit_logistic(neg, pos)
    assert coef is not None and coef[1] < 0
    ps = [probability(coef, x) for x in np.linspace(0.0, 1.0, 101)]
    assert all(a > b for a, b in zip(ps, ps[1:]))
    assert probability(coef, 0.05) > 0.9 and probability(coef, 0.30) < 0.1
    assert fit_logistic(pos, neg) is None  # "positives" farther than negatives: no probability
    assert fit_logistic(neg[:5], pos) is None  # too few samples
    conf = LinkConfidence()
    assert conf.probability(0.1) is None
    conf.add_positive(pos)
    conf.update(neg, len(neg))
    assert conf.probability(0.05) == pytest.approx(probability(coef, 0.05))


def test_assigner_stores_history_aliases_events_and_rewrites_mot(tmp_path: Path, capsys, angle_tracklet,
                                                                  mean_aggregator) -> None:
    _tracklet = angle_tracklet
    out = tmp_path / "out"
    store = IdentityStore(tmp_path / "ids.sqlite")
    run_id = store.begin_run("r")
    events = EventSink(out / "events.jsonl")
    mot = {c: MOTWriter(out / "mot_global" / f"{c}.txt") for c in ("c1", "c2", "c3")}
    a = IdentityAssigner(store, CrossCameraMatcher(cfg()), mean_aggregator, run_id, "v1", events=events, global_mot=mot)
    a.process([], [_tracklet("c1", 1, 1, 11, 0)])      # frames 1..11 -> t 0..10
    a.process([], [_tracklet("c2", 1, 21, 31, 28)])    # another person for now: id 2
    a.process([], [_tracklet("c3", 1, 41, 51, 14)])    # evidence: 2 is 1
    assert a.stats.merges == 1 and a.stats.splits == 0
    tid2 = store.track_tracklet_ids(run_id, "c2", 1)[0]
    assert store.find_tracklet(run_id, "c2", 1, 21) == (tid2, 1)
    (change,) = store.identity_changes()
    assert (change["kind"], change["into"], change["from"], change["tracklets"]) == ("merge", 1, 2, [tid2])
    assert change["distance"] == pytest.approx((d(28) + d(14)) / 2, abs=1e-5)
    assert store.alias_of(2)["current_id"] == 1 and store.absorbed_ids(1) == [2]
    assert [r.global_id for r in store.identities()] == [1]  # 2 has no member left
    (ev,) = store.events(kind="merge")
    assert ev.global_id == 1 and ev.payload["ids"] == [1, 2] and ev.payload["tracklet_ids"] == [tid2]
    assert ev.t == 20.0 and ev.payload["decided_t"] == 50.0
    lines = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    assert [e for e in lines if e["kind"] == "merge"][0]["absorbed"] == 2
    # mot_global as streamed still has id 2 in c2; the rewrite puts the revised id everywhere
    assert {r.split(",")[1] for r in (out / "mot_global" / "c2.txt").read_text().splitlines()} == {"2"}
    a.rewrite_global_mot()
    first = {c: (out / "mot_global" / f"{c}.txt").read_text() for c in ("c1", "c2", "c3")}
    assert all({r.split(",")[1] for r in t.splitlines()} == {"1"} for t in first.values())
    assert len(first["c2"].splitlines()) == 11
    a.rewrite_global_mot()  # idempotent
    assert {c: (out / "mot_global" / f"{c}.txt").read_text() for c in first} == first
    # query --id: the absorbed id resolves to its identity, which lists what it absorbed
    report = identity_report(store, 2)
    assert report["global_id"] == 1 and report["resolved_from"]["id"] == 2 and report["absorbed"] == [2]
    text = _format_identity(report)
    assert text.splitlines()[0].startswith("identity 2 was merged into identity 1 (change 1,")
    assert "absorbed ids: 2" in text and "change 1 at 20.0s, decided at 50.0s (c2): merge: 2 absorbed into 1" in text
    conf = {t["track_id"]: t for t in report["tracklets"] if t["cam_id"] == "c2"}
    assert conf[1]["distance"] == pytest.approx((d(28) + d(14)) / 2, abs=1e-5)
    for w in mot.values():
        w.close()
    events.close()
    store.close()


def test_alias_chains_are_resolved_when_written(tmp_path: Path) -> None:
    with IdentityStore(tmp_path / "ids.sqlite") as store:
        store.record_change(None, "merge", 1, 1, 2, "c", 5.0, [])
        store.record_change(None, "merge", 7, 7, 1, "c", 9.0, [])
        assert store.alias_of(2)["current_id"] == 7 and store.alias_of(1)["current_id"] == 7
        assert store.absorbed_ids(7) == [1, 2]
        store.record_change(None, "split", 7, 8, 7, "c", 12.0, [])  # a split makes no alias
        assert store.alias_of(7) is None and store.alias_of(8) is None
        with pytest.raises(ValueError, match="expected 'merge' or 'split'"):
            store.record_change(None, "rename", 7, 8, 7, "c", 12.0, [])


def test_v4_store_migrates_to_v5(tmp_path: Path) -> None:
    db = tmp_path / "v4.sqlite"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for v in (1, 2, 3, 4):
        MIGRATIONS[v](conn)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (v,))
    conn.execute("INSERT INTO runs (run_key, started, status) VALUES ('old', 0, 'complete')")
    conn.execute("INSERT INTO cameras (cam_id) VALUES ('c')")
    conn.execute("INSERT INTO tracklets (run_id, cam_id, track_id, start_frame, end_frame, start_time, end_time,"
                 " n_frames, frames, timestamps, boxes_tlwh) VALUES (1, 'c', 1, 1, 2, 0, 1, 2, x'', x'', x'')")
    conn.execute("INSERT INTO identities VALUES (1, x'', NULL, 0, 1, 'c', 'c')")
    conn.execute("INSERT INTO assignments (tracklet_id, global_id, distance, assigned_at) VALUES (1, 1, 0.25, 0)")
    conn.close()
    with IdentityStore(db) as store:
        assert store.db.query("SELECT MAX(version) FROM schema_version")[0][0] == SCHEMA_VERSION >= 5  # v4 -> latest
        assert store.assignment_confidence([1]) == {1: (0.25, None)}  # old rows kept, no probability
        store.assign(1, 1, 0.2, 0.8)
        assert store.assignment_confidence([1]) == {1: (0.2, 0.8)}
        assert store.identity_changes() == [] and store.alias_of(1) is None


def test_model_swap_settles_the_window() -> None:
    m = CrossCameraMatcher(cfg())
    assert m.match([te("c1", 1, 0, 10, 0), te("c2", 1, 20, 30, 20)]) == [1, 1]
    assert m.tentative == {("c1", 1): 1, ("c2", 1): 1}
    m.reset_calibration()  # new weights: the tentative decisions become final
    assert m.tentative == {}
    # a later tracklet that would have split c2/1 off (see the first test) no longer moves anything
    assert m.match([te("c2", 3, 25, 35, 0)]) == [2]
    assert m.pop_changes() == [] and m.track_global_id("c2", 1) == 1


def test_a_track_that_leaves_an_identity_takes_back_its_first_id() -> None:
    """c2/1 starts as its own identity 2 (28 deg from c1/1: 0.117 > 0.1), grows to look like 1 (14 deg: 0.0297):
    2 is absorbed into 1; then it looks like 28 deg again and splits off 1. It takes back id 2 (free since it was
    absorbed), not a new id 3; a fresh group that never had an id still gets a new one."""
    m = CrossCameraMatcher(cfg())
    assert m.match([te("c1", 1, 0, 10, 0)]) == [1]
    assert m.match([te("c2", 1, 20, 30, 28)]) == [2]
    assert m.match([te("c2", 1, 20, 40, 14)]) == [1]
    (merge,) = m.pop_changes()
    assert (merge.kind, merge.source, merge.into) == ("merge", 2, 1) and m.identity(2) is None
    assert m.match([te("c2", 1, 20, 50, 28)]) == [2]
    (split,) = m.pop_changes()
    assert (split.kind, split.source, split.into, split.moved) == ("split", 1, 2, (("c2", 1),))
    assert m.identity(2) is not None and m.next_id == 3
    assert m.match([te("c3", 1, 60, 70, 90)]) == [3]  # a new person: a new id
