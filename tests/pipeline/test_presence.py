"""Who is in view where, from events alone (pipeline/sinks/presence.py), on a hand-written event sequence."""

from __future__ import annotations

from pipeline.sinks.presence import Presence


def _ev(kind, gid, cam, t, **payload):
    return {"kind": kind, "global_id": gid, "cam_id": cam, "t": t, **payload}


def test_appear_handover_leave_merge_split_change_counts_and_identity_state():
    p = Presence()
    c = p.apply(_ev("appear", 1, "left", 1.0, track_id=5))
    assert c.counts == {"left": 1}
    assert c.identities[1].as_json() == {"global_id": 1, "present": True, "cameras": ["left"], "last_camera": "left",
                                         "last_seen": 1.0, "absorbed_into": None}
    c = p.apply(_ev("appear", 2, "left", 1.5, track_id=6))
    assert c.counts == {"left": 2}
    c = p.apply(_ev("appear", 1, "right", 2.0, track_id=9))  # identity 1 now on two cameras
    assert c.counts == {"right": 1} and c.identities[1].cameras == ["left", "right"]
    assert p.apply(_ev("handover", 1, "right", 2.0, track_id=9, from_cam="left")).counts == {}  # nothing new
    c = p.apply(_ev("leave", 1, "left", 3.0, track_id=5))
    assert c.counts == {"left": 1}
    assert (c.identities[1].cameras, c.identities[1].last_camera, c.identities[1].last_seen) == (["right"], "left", 3.0)
    # identity 2 (left, track 6) is merged into 1: the left camera still has one person in view, now identity 1
    c = p.apply(_ev("merge", 1, "left", 3.5, ids=[1, 2], into=1, **{"from": 2}, absorbed=2,
                    moved=[{"cam_id": "left", "track_id": 6}]))
    assert c.counts == {} and p.count("left") == 1 and p.count("right") == 1
    assert c.identities[1].cameras == ["left", "right"] and c.identities[1].last_seen == 3.0
    assert c.identities[2] is None  # absorbed and out of view: gone (its retained topic is cleared)
    # a split takes the left track away again, to a new identity 7
    c = p.apply(_ev("split", 7, "left", 4.0, ids=[1, 7], into=7, **{"from": 1}, moved=[{"cam_id": "left", "track_id": 6}]))
    assert c.identities[7].cameras == ["left"] and c.identities[1].cameras == ["right"]
    c = p.apply(_ev("leave", 7, "left", 5.0, track_id=6))
    assert c.counts == {"left": 0} and c.identities[7].present is False
    c = p.apply(_ev("leave", 1, "right", 6.0, track_id=9))
    assert c.counts == {"right": 0}
    assert c.identities[1].as_json() == {"global_id": 1, "present": False, "cameras": [], "last_camera": "right",
                                         "last_seen": 6.0, "absorbed_into": None}


def test_a_leave_without_its_appear_or_a_repeated_leave_never_goes_below_zero():
    p = Presence()
    assert p.apply(_ev("leave", 3, "cam", 1.0, track_id=1)).counts == {"cam": 0}
    p.apply(_ev("appear", 3, "cam", 2.0, track_id=2))
    p.apply(_ev("leave", 3, "cam", 3.0, track_id=2))
    assert p.apply(_ev("leave", 3, "cam", 3.0, track_id=2)).counts == {"cam": 0}


def test_identity_history_stays_bounded_over_a_long_stream():
    # 50 identities appear and leave one after another, a merge every 10: at most 8 last sightings and 8 merges
    # are kept, the most recent ones; an identity in view keeps working whatever was forgotten
    p = Presence(max_identities=8)
    for g in range(1, 51):
        p.apply(_ev("appear", g, "cam", float(g), track_id=g))
        p.apply(_ev("leave", g, "cam", g + 0.5, track_id=g))
        if g % 10 == 0:
            p.apply(_ev("merge", g, "cam", g + 0.7, ids=[g, g - 1], into=g, **{"from": g - 1}, absorbed=g - 1))
    assert len(p._last) == 8 and len(p._absorbed) == 5  # 5 merges, all within the cap
    assert set(p._last) == set(range(43, 51)) and p.identity(50).last_seen == 50.5
    assert p.identity(1).last_seen is None  # forgotten: the oldest
    for g in range(51, 61):
        p.apply(_ev("merge", g, "cam", g, ids=[g, g - 1], into=g, **{"from": g - 1}, absorbed=g - 1))
    assert len(p._absorbed) == 8 and p.identity(59).absorbed_into == 60 and p.identity(9).absorbed_into is None
    c = p.apply(_ev("appear", 3, "cam", 70.0, track_id=99))  # a forgotten identity comes back
    assert c.counts == {"cam": 1} and c.identities[3].last_seen == 70.0 and len(p._last) == 8
