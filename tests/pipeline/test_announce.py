"""Revision announcements that wait until the evidence has held (pipeline/runner/announce.py,
``matching.revise.announce_after_s``): hand-made changes, then the real matcher and assigner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.matching.config import MatcherConfig, ReviseConfig
from pipeline.matching.matcher import CrossCameraMatcher
from pipeline.matching.revise import IdentityChange
from pipeline.runner.announce import RevisionAnnouncer
from pipeline.runner.identity import IdentityAssigner
from pipeline.sinks import EventSink
from pipeline.store import IdentityStore


def change(src: int, dst: int, moved: list[tuple[str, int, float]], decided: float, kind: str = "split",
           distance: float | None = 0.05) -> IdentityChange:
    return IdentityChange(kind, dst if kind == "merge" else src, dst, src, tuple((c, k) for c, k, _ in moved),
                          moved[0][0], moved[0][2], distance, 0.2, 0.9, decided, tuple(t for _, _, t in moved))


def always(_gid: int) -> bool:
    return True


def test_a_move_undone_within_the_delay_is_never_announced() -> None:
    a = RevisionAnnouncer(30.0)
    a.add([change(3, 16, [("right", 6, 5.0)], decided=60.0)], clock=60.0)
    assert a.due(80.0, always) == []  # held 20 s < 30 s
    a.add([change(16, 3, [("right", 6, 5.0)], decided=82.0, kind="merge")], clock=82.0)  # back to 3
    assert a.pending == {} and a.withdrawn == 1
    assert a.due(500.0, always) == [] and a.flush(500.0, always) == [] and a.announced_changes == 0


def test_a_move_that_holds_is_announced_once_with_both_clocks() -> None:
    a = RevisionAnnouncer(30.0)
    a.add([change(3, 16, [("right", 6, 5.0)], decided=60.0)], clock=60.0)
    assert a.due(89.9, always) == []
    (ch,) = a.due(90.0, always)
    assert (ch.kind, ch.source, ch.into, ch.global_id, ch.moved) == ("split", 3, 16, 3, (("right", 6),))
    assert ch.t == 5.0 and ch.decided_t == 60.0 and ch.announced_t == 90.0
    assert ch.payload()["announced_t"] == 90.0 and ch.payload()["decided_t"] == 60.0
    assert ch.distance == 0.05 and ch.probability == 0.9  # the evidence of the re-solve that made it
    assert a.pending == {} and a.due(200.0, always) == [] and a.announced_changes == 1


def test_a_chain_within_the_delay_is_one_net_move_and_the_clock_restarts() -> None:
    a = RevisionAnnouncer(30.0)
    a.add([change(3, 16, [("right", 6, 5.0)], decided=60.0)], clock=60.0)
    a.add([change(16, 20, [("right", 6, 5.0)], decided=75.0, distance=0.04)], clock=75.0)
    assert a.due(100.0, always) == []  # 25 s since the last move
    (ch,) = a.due(105.0, always)
    assert (ch.source, ch.into, ch.decided_t, ch.distance) == (3, 20, 75.0, 0.04)


def test_kind_follows_whether_the_old_id_kept_members_and_moves_are_grouped() -> None:
    a = RevisionAnnouncer(10.0)
    a.add([change(4, 3, [("c2", 7, 30.0), ("c1", 2, 12.0)], decided=40.0, kind="merge")], clock=40.0)
    a.add([change(5, 9, [("c3", 1, 50.0)], decided=41.0)], clock=41.0)
    alive = {3: True, 4: False, 5: True, 9: True}.__getitem__
    merge, split = a.due(60.0, alive)  # sorted by start time
    assert (merge.kind, merge.global_id, merge.into, merge.source) == ("merge", 3, 3, 4)
    assert merge.moved == (("c1", 2), ("c2", 7)) and merge.moved_t == (12.0, 30.0)
    assert merge.t == 12.0 and merge.cam_id == "c1" and merge.payload()["absorbed"] == 4
    assert (split.kind, split.global_id, split.source, split.into) == ("split", 5, 5, 9)


def test_flush_announces_what_still_waits() -> None:
    a = RevisionAnnouncer(300.0)
    a.add([change(1, 2, [("c2", 1, 20.0)], decided=35.0)], clock=35.0)
    assert a.due(40.0, always) == []
    (ch,) = a.flush(40.0, always)
    assert (ch.source, ch.into, ch.announced_t) == (1, 2, 40.0) and a.pending == {}


def test_config_refuses_a_negative_delay() -> None:
    with pytest.raises(ValueError):
        ReviseConfig(announce_after_s=-1.0)


# ---------------------------------------------------------------- the real matcher and assigner
def _flip_flop(tmp_path: Path, delay: float, _tracklet, aggregator) -> tuple[list[dict], list, list, dict]:
    """Track c2/1 looks like c1/1 (14 deg: 0.0297 <= 0.1), then not (28 deg: 0.117 > 0.1), then like it again:
    the re-solve moves it out of identity 1 and back. Returns (events.jsonl lines, the store's change history,
    its assignments, the run's announcer counts)."""
    store = IdentityStore(tmp_path / f"ids_{delay:g}.sqlite")
    run_id = store.begin_run("r")
    events = EventSink(tmp_path / f"events_{delay:g}.jsonl")
    config = MatcherConfig(threshold=0.1, auto_threshold=None,
                           revise=ReviseConfig(window_s=100.0, announce_after_s=delay))
    a = IdentityAssigner(store, CrossCameraMatcher(config), aggregator, run_id, "v1", events=events)
    a.process([], [_tracklet("c1", 1, 1, 11, 0)])                       # t 0..10: identity 1
    a.process([_tracklet("c2", 1, 21, 31, 14)], [])                     # t 20..30: linked to 1
    a.process([_tracklet("c2", 1, 21, 41, 28)], [])                     # ..40: no longer like 1: split off
    a.process([], [_tracklet("c2", 1, 21, 51, 14)])                     # ..50: like 1 again: back
    a.flush_announcements()
    events.close()
    lines = [json.loads(x) for x in events.path.read_text().splitlines()]
    assigned = sorted((t.cam_id, int(t.track_id), t.global_id) for t in store.tracklets(run_id=run_id))
    history = [(c["kind"], c["from"], c["into"]) for c in store.identity_changes()]
    counts = {} if a.announcer is None else {"withdrawn": a.announcer.withdrawn,
                                             "announced": a.announcer.announced_changes}
    store_events = [e.kind for e in store.events() if e.kind in ("merge", "split")]
    store.close()
    return lines, history, assigned, dict(counts, store_events=store_events)


def test_assigner_withholds_a_flip_flop_but_the_store_follows_every_re_solve(tmp_path: Path, angle_tracklet,
                                                                            mean_aggregator) -> None:
    now, history_now, assigned_now, counts_now = _flip_flop(tmp_path, 0.0, angle_tracklet, mean_aggregator)
    later, history_later, assigned_later, counts_later = _flip_flop(tmp_path, 60.0, angle_tracklet, mean_aggregator)
    revisions = lambda lines: [(e["kind"], e["from"], e["into"]) for e in lines if e["kind"] in ("merge", "split")]  # noqa: E731
    # announced at once: c2/1 split off identity 1 (into a new id) and merged back into 1
    (split, merge) = revisions(now)
    assert split[0] == "split" and split[1] == 1 and merge == ("merge", split[2], 1)
    assert counts_now["store_events"] == ["split", "merge"]
    # waiting 60 s: nothing to announce (it came back within 20 s), the same decisions in the store
    assert revisions(later) == [] and counts_later == {"withdrawn": 1, "announced": 0, "store_events": []}
    assert history_later == history_now == [("split", 1, split[2]), ("merge", split[2], 1)]
    assert assigned_later == assigned_now and {g for _, _, g in assigned_now} == {1}
    # every other event is the same
    others = lambda lines: [(e["kind"], e["global_id"], e["cam_id"]) for e in lines if e["kind"] not in ("merge", "split")]  # noqa: E731
    assert others(later) == others(now)


def test_a_track_back_on_its_first_id_is_never_announced_and_its_id_lives_again(tmp_path: Path, angle_tracklet,
                                                                                 mean_aggregator) -> None:
    """c2/1 appears as identity 2, is absorbed into 1, then splits off and takes id 2 back (window.py): with the
    delay no revision event at all; the store's history has both changes and id 2 is an identity again."""
    store = IdentityStore(tmp_path / "ids.sqlite")
    run_id = store.begin_run("r")
    events = EventSink(tmp_path / "events.jsonl")
    config = MatcherConfig(threshold=0.1, auto_threshold=None, revise=ReviseConfig(window_s=100.0))  # default delay
    a = IdentityAssigner(store, CrossCameraMatcher(config), mean_aggregator, run_id, "v1", events=events)
    _tracklet = angle_tracklet
    a.process([], [_tracklet("c1", 1, 1, 11, 0)])
    a.process([_tracklet("c2", 1, 21, 31, 28)], [])   # identity 2
    a.process([_tracklet("c2", 1, 21, 41, 14)], [])   # absorbed into 1
    assert store.alias_of(2)["current_id"] == 1
    a.process([], [_tracklet("c2", 1, 21, 51, 28)])   # splits off 1 and takes 2 back
    a.flush_announcements()
    events.close()
    kinds = [json.loads(x)["kind"] for x in events.path.read_text().splitlines()]
    assert "merge" not in kinds and "split" not in kinds
    assert a.announcer.withdrawn == 1 and a.announcer.announced_changes == 0
    assert [(c["kind"], c["from"], c["into"]) for c in store.identity_changes()] == [("merge", 2, 1), ("split", 1, 2)]
    assert store.alias_of(2) is None and sorted(r.global_id for r in store.identities()) == [1, 2]
    assert sorted((t.cam_id, t.global_id) for t in store.tracklets(run_id=run_id)) == [("c1", 1), ("c2", 2)]
    store.close()
