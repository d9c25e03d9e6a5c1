"""Identity store: atomic commits survive kill -9, idempotent re-runs, reload, bad files."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import DataError
from pipeline.store import SCHEMA_VERSION, IdentityStore
from pipeline.core.types import GlobalIdentity, Tracklet

REPO = Path(__file__).resolve().parents[2]


def _tracklet(cam: str, track: int, start_frame: int, n: int = 5, fps: float = 10.0, dim: int = 8) -> Tracklet:
    frames = np.arange(start_frame, start_frame + n, dtype=np.int64)
    rng = np.random.default_rng(track * 1000 + start_frame)
    return Tracklet(
        cam_id=cam, track_id=track, frames=frames, timestamps=(frames - 1) / fps,
        boxes_tlwh=rng.uniform(0, 100, (n, 4)), embeddings=rng.normal(size=(n, dim)).astype(np.float32),
    )


def _unit(dim: int, k: int) -> np.ndarray:
    v = np.zeros(dim, np.float32)
    v[k % dim] = 1.0
    return v


def _write_run(store: IdentityStore, run_key: str, n: int) -> list[int]:
    run = store.begin_run(run_key, '{"demo": 1}')
    ids = []
    for i in range(n):
        t = _tracklet("cam%d" % (i % 2), i, 1 + 10 * i)
        gid = 1 + i % 3
        ids.append(store.record_tracklet(run, t, _unit(8, gid), "v0", GlobalIdentity(gid, _unit(8, gid)),
                                         0.1, [("appear", {"i": i})]))
    return ids


def test_roundtrip_arrays_and_history(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path / "s.db")
    run = store.begin_run("r1")
    t = _tracklet("a", 7, 3, n=4)
    tid = store.record_tracklet(run, t, _unit(8, 2), "v0", GlobalIdentity(5, _unit(8, 2)), 0.2, [("appear", {})])
    (st,) = store.tracklets(with_frame_embeddings=True)
    assert st.tracklet_id == tid and st.global_id == 5 and (st.cam_id, st.track_id) == ("a", 7)
    np.testing.assert_array_equal(st.frames, [3, 4, 5, 6])
    np.testing.assert_array_equal(st.boxes_tlwh, t.boxes_tlwh)
    np.testing.assert_array_equal(st.frame_embeddings, t.embeddings)
    np.testing.assert_array_equal(st.embeddings["v0"], _unit(8, 2))
    (sight,) = store.identity_history(5)
    assert (sight.cam_id, sight.start_frame, sight.end_frame) == ("a", 3, 6)
    assert sight.start_time == pytest.approx(0.2) and sight.end_time == pytest.approx(0.5)
    (row,) = store.identities()
    assert (row.first_seen, row.last_seen, row.first_cam, row.last_cam, row.n_tracklets) == (
        pytest.approx(0.2), pytest.approx(0.5), "a", "a", 1)
    assert [e.kind for e in store.events(5)] == ["appear"]
    store.close()


def test_rerun_same_run_key_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with IdentityStore(path) as store:
        first = _write_run(store, "batch-1", 6)
        counts = store.counts()
    with IdentityStore(path) as store:
        second = _write_run(store, "batch-1", 6)  # the same job again: resumes, no new rows
        assert second == first
        assert store.counts() == counts
        assert counts["tracklets"] == 6 and counts["identities"] == 3 and counts["events"] == 6
        assert store.runs()[0]["resumed"] == 1
        # a different run key is a new run and adds rows
        _write_run(store, "batch-2", 2)
        assert store.counts()["tracklets"] == 8 and len(store.runs()) == 2
        assert store.find_tracklet(1, "cam1", 1, 11) == (first[1], 2)
        assert store.find_tracklet(1, "cam1", 1, 12) is None


def test_reload_gallery_continues_global_ids(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with IdentityStore(path) as store:
        _write_run(store, "r", 5)  # identities 1, 2, 3
        assert store.next_global_id() == 4
    with IdentityStore(path) as store:
        gallery = store.load_gallery()
        assert sorted(g.global_id for g in gallery) == [1, 2, 3]
        g1 = next(g for g in gallery if g.global_id == 1)
        np.testing.assert_array_equal(g1.prototype, _unit(8, 1))
        # identity 1 got tracklets 0 (cam0, frames 1-5) and 3 (cam1, frames 31-35)
        assert g1.members == [("cam0", 0), ("cam1", 3)]
        assert g1.spans == [("cam0", 0.0, pytest.approx(0.4)), ("cam1", pytest.approx(3.0), pytest.approx(3.4))]
        assert g1.last_cam == "cam1" and g1.last_seen == pytest.approx(3.4)
        assert store.next_global_id() == 4
        assert store.new_identity(_unit(8, 4), 9.0, "cam0") == 4
        assert [g.global_id for g in store.load_gallery(limit=2)] == [4, 2]  # most recently seen first
        assert [g.global_id for g in store.load_gallery(since=3.0)] == [4, 2, 1]  # id 3 last seen at 2.4


def test_not_sqlite_file_is_one_line_data_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.db"
    bad.write_text("this is not a database\n" * 10)
    with pytest.raises(DataError) as err:
        IdentityStore(bad)
    msg = str(err.value)
    assert str(bad) in msg and "not an SQLite database" in msg and "\n" not in msg
    with pytest.raises(DataError, match="is a folder"):
        IdentityStore(tmp_path)
    newer = tmp_path / "newer.db"
    IdentityStore(newer).close()
    conn = sqlite3.connect(newer)
    conn.execute("INSERT INTO schema_version (version) VALUES (99)")
    conn.commit()
    conn.close()
    with pytest.raises(DataError, match=f"schema version 99 is newer than this program's {SCHEMA_VERSION}"):
        IdentityStore(newer)


def test_model_versions_and_per_version_embeddings(tmp_path: Path) -> None:
    with IdentityStore(tmp_path / "s.db") as store:
        ids = _write_run(store, "r", 3)
        store.add_model_version("v0", b"weights-0", {"rank1": 0.5})
        store.add_model_version("v1", "/models/v1.pt", {"rank1": 0.6}, parent="v0", deployed=True)
        assert store.deployed_version() == "v1"
        store.set_deployed("v0")  # rollback
        assert store.deployed_version() == "v0"
        assert store.model_weights("v0") == b"weights-0" and store.model_weights("v1") == "/models/v1.pt"
        assert [(m.version, m.parent, m.metrics["rank1"]) for m in store.model_versions()] == [
            ("v0", None, 0.5), ("v1", "v0", 0.6)]
        assert store.tracklets_missing_version("v1") == ids
        store.put_embedding(ids[0], "v1", _unit(8, 5))
        assert store.tracklets_missing_version("v1") == ids[1:]
        (st,) = store.tracklets(tracklet_ids=[ids[0]])
        assert sorted(st.embeddings) == ["v0", "v1"]
        tids, vecs = store.aggregated_embeddings("v1")
        assert tids.tolist() == [ids[0]] and vecs.shape == (1, 8)


_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from pipeline.store import SCHEMA_VERSION, IdentityStore
    from pipeline.core.types import GlobalIdentity, Tracklet
    store = IdentityStore(sys.argv[1])
    run = store.begin_run("live")
    i = 0
    while True:
        n = 50
        frames = np.arange(1 + 100 * i, 1 + 100 * i + n)
        t = Tracklet("cam%d" % (i % 3), i, frames, frames / 10.0, np.full((n, 4), float(i)),
                     np.full((n, 128), 0.1, np.float32))
        gid = store.next_global_id()
        tid = store.record_tracklet(run, t, np.full(128, 0.1, np.float32), "v0",
                                    GlobalIdentity(gid, np.full(128, 0.1, np.float32)), 0.0, [("appear", {})])
        print(tid, gid, flush=True)
        i += 1
    """
)


def test_kill_9_mid_run_keeps_every_committed_tracklet(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, env=env,
                            cwd=str(REPO), text=True)
    committed = []
    try:
        for line in proc.stdout:
            committed.append(tuple(int(x) for x in line.split()))
            if len(committed) >= 60:
                break
    finally:
        proc.send_signal(signal.SIGKILL)  # mid-run: the writer is inside its next transactions
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and len(committed) == 60
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with IdentityStore(path) as store:
        assert store.integrity_check() == "ok"
        stored = {(s.tracklet_id, s.global_id) for s in store.tracklets(with_arrays=False)}
        assert set(committed) <= stored
        n = store.counts()
        # every stored tracklet is complete: its embedding, identity, assignment and event came with it
        assert n["tracklets"] == n["embeddings"] == n["assignments"] == n["identities"] == n["events"]
        assert store.next_global_id() == n["identities"] + 1


def test_cumulative_partial_is_superseded_in_place(tmp_path: Path) -> None:
    with IdentityStore(tmp_path / "s.db") as store:
        run = store.begin_run("r")
        full = _tracklet("a", 1, 10, n=8)
        partial = Tracklet("a", 1, full.frames[:3], full.timestamps[:3], full.boxes_tlwh[:3], full.embeddings[:3])
        tid = store.record_tracklet(run, partial, _unit(8, 0), "v0", GlobalIdentity(1, _unit(8, 0)), 0.0,
                                    [("appear", {})])
        assert store.record_tracklet(run, full, _unit(8, 1), "v0", GlobalIdentity(1, _unit(8, 1)), 0.0,
                                     [("appear", {})]) == tid
        assert store.add_tracklet(run, partial, _unit(8, 2), "v0") == tid  # shorter again: no change
        (st,) = store.tracklets()
        assert st.end_frame == 17 and len(st.frames) == 8
        np.testing.assert_array_equal(st.embeddings["v0"], _unit(8, 1))
        n = store.counts()
        assert (n["tracklets"], n["assignments"], n["events"], n["identities"]) == (1, 1, 1, 1)
        assert store.identities()[0].last_seen == pytest.approx(full.end_time)
