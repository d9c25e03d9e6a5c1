"""Batched store writes (IdentityStore.record_tracklets) and the pager's identity LRU (PrototypeTable)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.types import GlobalIdentity, Tracklet
from pipeline.store import IdentityConflictError, IdentityStore
from pipeline.store.prototypes import PrototypeTable
from pipeline.store.records import TrackletRecord


def _tracklet(cam: str, track: int, start_frame: int, n: int, t0: float) -> Tracklet:
    frames = np.arange(start_frame, start_frame + n, dtype=np.int64)
    rng = np.random.default_rng(track)
    return Tracklet(cam_id=cam, track_id=track, frames=frames, timestamps=t0 + np.arange(n) / 10.0,
                    boxes_tlwh=rng.uniform(0, 100, (n, 4)), embeddings=rng.normal(size=(n, 4)).astype(np.float32))


def _records() -> list[TrackletRecord]:
    """Two identities seen twice each (one of them twice at the same end time in two cameras: last_cam ties),
    a new identity with an event, in one batch."""
    out = []
    spec = [("a", 1, 1, 5, 0.0, 7), ("b", 2, 1, 5, 0.0, 7), ("a", 3, 20, 3, 5.0, 8), ("c", 4, 1, 9, 0.2, 8),
            ("b", 5, 40, 4, 9.0, 9)]
    for cam, track, sf, n, t0, gid in spec:
        proto = np.zeros(4, np.float32)
        proto[track % 4] = 1.0
        out.append(TrackletRecord(_tracklet(cam, track, sf, n, t0), proto * 0.5, "v0", GlobalIdentity(gid, proto),
                                  0.1 * track, [("appear", {"k": track})] if gid == 9 else [], 0.5))
    return out


def _dump(path: Path) -> dict[str, list]:
    con = sqlite3.connect(path)
    cols = {"tracklets": "*", "embeddings": "*", "identities": "*", "events": "kind, global_id, cam_id, t, payload_json",
            "assignments": "tracklet_id, global_id, distance, probability", "cameras": "*"}
    out = {t: con.execute(f"SELECT {c} FROM {t} ORDER BY 1, 2").fetchall() for t, c in cols.items()}
    con.close()
    return out


def test_record_tracklets_writes_the_rows_of_one_by_one_recording(tmp_path: Path) -> None:
    recs = _records()
    with IdentityStore(tmp_path / "one.db") as one, IdentityStore(tmp_path / "batch.db") as batch:
        r1, r2 = one.begin_run("r"), batch.begin_run("r")
        ids1 = [one.record_tracklet(r1, r.tracklet, r.embedding, r.model_version, r.identity, r.distance, r.events,
                                    r.probability) for r in recs]
        ids2 = batch.record_tracklets(r2, recs)
    assert ids1 == ids2 == [1, 2, 3, 4, 5]
    a, b = _dump(tmp_path / "one.db"), _dump(tmp_path / "batch.db")
    assert a == b
    ident = {row[0]: row for row in a["identities"]}
    assert len(ident) == 3 and ident[8][-1] == "a"  # identity 8: its latest sighting (end 5.2 s) was in camera a


def test_record_tracklets_supersedes_like_record_tracklet(tmp_path: Path) -> None:
    recs = _records()
    longer = TrackletRecord(_tracklet("a", 1, 1, 8, 0.0), recs[0].embedding, "v0", recs[0].identity)
    with IdentityStore(tmp_path / "one.db") as one, IdentityStore(tmp_path / "batch.db") as batch:
        r1, r2 = one.begin_run("r"), batch.begin_run("r")
        for r in recs[:2] + [longer]:
            one.record_tracklet(r1, r.tracklet, r.embedding, r.model_version, r.identity, r.distance, r.events,
                                r.probability)
        batch.record_tracklets(r2, recs[:2])
        assert batch.record_tracklets(r2, [longer]) == [1]  # already stored: superseded in place
    assert _dump(tmp_path / "one.db") == _dump(tmp_path / "batch.db")


def test_record_tracklets_refuses_another_writers_identity(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with IdentityStore(path) as store:
        run = store.begin_run("r")
        con = sqlite3.connect(path)  # another writer creates identity 7 behind this store's back
        con.execute("INSERT INTO identities (global_id, prototype, first_seen, last_seen, first_cam, last_cam) VALUES (7, x'', 0, 0, 'q', 'q')")
        con.commit()
        con.close()
        with pytest.raises(IdentityConflictError, match="identity 7"):
            store.record_tracklets(run, _records())
        assert store.db.query("SELECT COUNT(*) FROM tracklets")[0][0] == 0  # all or nothing


def test_pager_keeps_paged_out_identities_and_evicts_least_recently_used(tmp_path: Path) -> None:
    with IdentityStore(tmp_path / "s.db") as store:
        store.record_tracklets(store.begin_run("r"), _records())
        pager = PrototypeTable(store, cache_size=2)
        (i7,) = pager.load([7], max_spans=16)
        assert [sp[0] for sp in i7.spans] == ["a", "b"] and pager.identity_reads == 1
        # the matcher pages 7 out with a span the store does not have yet: paging it in returns what it kept
        i7.spans.append(("z", 1.0, 2.0))
        i7.members.append(("z", 99))
        pager.keep([i7], max_spans=16)
        (again,) = pager.load([7], max_spans=2)
        assert again.spans == [("b", 0.0, 0.4), ("z", 1.0, 2.0)] and again.members[-1] == ("z", 99)
        assert (pager.identity_hits, pager.identity_reads) == (1, 1)
        # handed over: the next load of 7 (the matcher did not give it back) reads the store again
        assert [sp[0] for sp in pager.load([7], 16)[0].spans] == ["a", "b"] and pager.identity_reads == 2
        i7, i8, i9 = pager.load([7, 8, 9], 16)
        pager.keep([i7], 16)
        pager.keep([i8, i9], 16)  # a third identity: 7, given back least recently, leaves the LRU
        reads = pager.identity_reads
        assert [g.global_id for g in pager.load([7, 9], 16)] == [7, 9]
        assert (pager.identity_reads, pager.identity_hits) == (reads + 1, 2)  # 7 from SQLite, 9 from the LRU


def test_stored_tracklet_lookup_finds_any_key_across_its_chunks(tmp_path: Path) -> None:
    """The batch's "already stored?" check (one query per 200 keys) finds a stored tracklet wherever it is among
    450 keys, and only an exact (run, camera, track, start frame) match counts."""
    with IdentityStore(tmp_path / "s.db") as store:
        run = store.begin_run("r")
        store.record_tracklets(run, _records())  # tracklets ("a", 1, start 1), ("b", 2, 1), ("a", 3, 20), ...
        fresh = [(run, "z", k, k) for k in range(450)]
        with store.db.transaction() as c:
            assert not IdentityStore._any_tracklet_stored(c, fresh)
            for at in (0, 199, 200, 449):
                keys = list(fresh)
                keys[at] = (run, "a", 3, 20)
                assert IdentityStore._any_tracklet_stored(c, keys)
                keys[at] = (run, "a", 3, 21)  # another start frame: another tracklet
                assert not IdentityStore._any_tracklet_stored(c, keys)
                keys[at] = (run + 1, "a", 3, 20)  # another run
                assert not IdentityStore._any_tracklet_stored(c, keys)


def test_batched_identity_times_match_one_by_one_on_random_batches(tmp_path: Path) -> None:
    """first/last seen and cameras of identities that several records of one batch touch, in any time order
    (record_tracklets writes one UPDATE per record, record_tracklet two: the start, then the end)."""
    rng = np.random.default_rng(3)
    for trial in range(6):
        recs = []
        for track in range(1, 25):
            n = int(rng.integers(1, 6))
            t0 = float(rng.integers(0, 20)) / 2  # coarse times: ties between records
            gid = int(rng.integers(100, 106))
            proto = rng.normal(size=4).astype(np.float32)
            recs.append(TrackletRecord(_tracklet(str(rng.choice(["a", "b", "c"])), track, 1 + 10 * track, n, t0),
                                       proto, "v0", GlobalIdentity(gid, proto), 0.1, [], 0.5))
        one_path, batch_path = tmp_path / f"one{trial}.db", tmp_path / f"batch{trial}.db"
        with IdentityStore(one_path) as one, IdentityStore(batch_path) as batch:
            r1, r2 = one.begin_run("r"), batch.begin_run("r")
            for r in recs:
                one.record_tracklet(r1, r.tracklet, r.embedding, r.model_version, r.identity, r.distance, r.events,
                                    r.probability)
            batch.record_tracklets(r2, recs)
        assert _dump(one_path)["identities"] == _dump(batch_path)["identities"]
