"""One writer per identity store (issue 11 item 4), file modes (item 2), run status schema.

Real processes: a holder subprocess opens the store for writing and keeps writing
tracklets; a second writer (``reid-pipeline run`` on the same store, or an
IdentityStore in this process) is refused with one line naming the store and the
holder's pid; ``reid-pipeline query`` reads meanwhile; after ``kill -9`` of the
holder the next writer gets the store (the kernel released the lock) and the file
passes ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.core.errors import DataError, ReidPipelineError
from pipeline.core.types import GlobalIdentity, Tracklet
from pipeline.store import IdentityConflictError, IdentityStore, StoreLockedError
from pipeline.store.schema import MIGRATIONS, SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[2]

# opens the store for writing, then writes one tracklet + identity per loop and prints "tid gid"
_HOLDER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from pipeline.store import IdentityStore
    from pipeline.core.types import GlobalIdentity, Tracklet
    store = IdentityStore(sys.argv[1])
    run = store.begin_run("holder")
    i = 0
    while True:
        frames = np.arange(1 + 100 * i, 21 + 100 * i)
        t = Tracklet("cam%d" % (i % 2), i, frames, frames / 10.0, np.full((20, 4), float(i)),
                     np.full((20, 8), 0.5, np.float32))
        gid = store.next_global_id()
        tid = store.record_tracklet(run, t, np.full(8, 0.5, np.float32), "v0",
                                    GlobalIdentity(gid, np.full(8, 0.5, np.float32)), 0.0, [("appear", {})])
        print(tid, gid, flush=True)
        i += 1
        if i >= int(sys.argv[2]):
            sys.stdin.read()  # hold the store open until the test closes stdin or kills us
    """
)


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO))


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path, list[tuple[int, int]]]]:
    """A writer process holding ``ids.sqlite`` after committing 5 tracklets (identities 1..5)."""
    path = tmp_path / "ids.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path), "5"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=_env(), cwd=str(REPO), text=True)
    committed = []
    try:
        for line in proc.stdout:
            committed.append(tuple(int(x) for x in line.split()))
            if len(committed) == 5:
                break
        assert committed == [(i, i) for i in range(1, 6)]
        yield proc, path, committed
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def _tracklet(cam: str, track: int, f0: int, n: int = 5) -> Tracklet:
    frames = np.arange(f0, f0 + n, dtype=np.int64)
    return Tracklet(cam, track, frames, frames / 10.0, np.ones((n, 4)), np.ones((n, 4), np.float32))


def test_second_writer_is_refused_in_one_line_and_reader_works(holder, tmp_path: Path, pets_dir: Path,
                                                               shared: Path) -> None:
    proc, path, _ = holder
    # the same store in this process, opened for writing: refused, naming the store and the holder's pid
    with pytest.raises(StoreLockedError) as err:
        IdentityStore(path)
    msg = str(err.value)
    assert isinstance(err.value, ReidPipelineError) and "\n" not in msg
    assert msg.startswith(f"{path}: ") and f"pid {proc.pid} " in msg
    # a second `reid-pipeline run` on that store: exit 2, exactly one line, nothing written by it
    cfg = tmp_path / "second.yaml"
    cfg.write_text(yaml.safe_dump({
        "mode": "batch", "run_key": "second",
        "cameras": [{"id": "pets", "source": str(pets_dir / "img1")}],
        "detector": {"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx")},
        "store": {"path": str(path)}, "outputs": {"dir": str(tmp_path / "out")},
    }), encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "pipeline", "run", str(cfg), "--no-progress"], env=_env(),
                         cwd=str(REPO), capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"reid-pipeline: error: {path}: ") and f"pid {proc.pid} " in lines[0]
    assert res.stdout == ""
    # readers work while the holder writes: `reid-pipeline query` and a read-only store
    q = subprocess.run([sys.executable, "-m", "pipeline", "query", "--store", str(path), "--list"], env=_env(),
                       cwd=str(REPO), capture_output=True, text=True, timeout=300)
    assert q.returncode == 0, q.stderr
    assert f"{path}: 5 identities, 5 tracklets" in q.stdout
    with IdentityStore(path, mode="read") as reader:
        assert [r.global_id for r in reader.identities()] == [1, 2, 3, 4, 5]
        assert [(r["run_key"], r["status"]) for r in reader.runs()] == [("holder", "running")]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.db.conn.execute("DELETE FROM events")
    assert proc.poll() is None  # the holder was never disturbed
    with sqlite3.connect(path) as c:
        assert c.execute("SELECT run_key FROM runs").fetchall() == [("holder",)]


def test_kill_9_releases_the_lock_and_the_next_writer_continues(holder) -> None:
    proc, path, committed = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with IdentityStore(path) as store:  # no stale lock: the kernel released it with the process
        assert store.integrity_check() == "ok"
        assert {(s.tracklet_id, s.global_id) for s in store.tracklets(with_arrays=False)} == set(committed)
        assert (Path(str(path) + ".lock")).read_text().startswith(f'{{"pid": {os.getpid()}, ')
        run = store.begin_run("after")
        # the killed run never ended: the next run marks it aborted (finished unknown)
        assert [(r["run_key"], r["status"], r["finished"]) for r in store.runs()] == [
            ("holder", "aborted", None), ("after", "running", None)]
        assert store.new_identity(np.ones(8, np.float32), 1.0, "cam0") == 6
        store.end_run(run, "complete")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    # a clean close empties the lock file and frees the lock for the next writer
    assert Path(str(path) + ".lock").read_text() == ""
    IdentityStore(path).close()


def test_writer_lock_is_released_on_close_and_refused_while_open(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    first = IdentityStore(path)
    with pytest.raises(StoreLockedError, match=f"pid {os.getpid()} on "):
        IdentityStore(path)
    shared = IdentityStore(path, mode="shared")  # a helper of the holder (adaptation): no lock
    shared.add_model_version("v1", b"w", deployed=True)
    with pytest.raises(RuntimeError, match="mode 'write'"):
        shared.begin_run("nope")
    shared.close()
    first.close()
    with IdentityStore(path) as again:
        assert again.deployed_version() == "v1"
    with pytest.raises(DataError, match="no such identity store"):
        IdentityStore(tmp_path / "missing.db", mode="read")
    assert not (tmp_path / "missing.db").exists()


def test_explicit_id_created_by_another_writer_is_a_conflict_not_a_merge(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with IdentityStore(path) as store:
        run = store.begin_run("r")
        store.record_tracklet(run, _tracklet("a", 1, 1), np.ones(4, np.float32), "v0",
                              GlobalIdentity(1, np.ones(4, np.float32)))
        # another writer (bypassing the lock) creates identity 2 behind this store's back
        other = sqlite3.connect(path)
        other.execute("INSERT INTO identities VALUES (2, x'00', NULL, 5.0, 5.0, 'b', 'b')")
        other.commit()
        other.close()
        # the matcher of this store also numbered its next new person 2: refused, not merged
        with pytest.raises(IdentityConflictError, match=r"s\.db: identity 2 was created by another writer"):
            store.record_tracklet(run, _tracklet("a", 2, 20), np.ones(4, np.float32), "v0",
                                  GlobalIdentity(2, np.ones(4, np.float32)))
        assert store.counts()["tracklets"] == 1  # the whole tracklet transaction was rolled back
        # ids this store knew at open or created itself are updated as before
        store.record_tracklet(run, _tracklet("a", 1, 1, n=8), np.ones(4, np.float32), "v0",
                              GlobalIdentity(1, np.ones(4, np.float32)))
        # a store-allocated id is max + 1 inside the insert's transaction: 3, never 2
        assert store.new_identity(np.ones(4, np.float32), 9.0, "a") == 3
    with IdentityStore(path) as reopened:  # identity 2 existed at open: a later run may extend it
        run = reopened.begin_run("r2")
        reopened.record_tracklet(run, _tracklet("b", 7, 50), np.ones(4, np.float32), "v0",
                                 GlobalIdentity(2, np.ones(4, np.float32)))
        assert [r.n_tracklets for r in reopened.identities()] == [1, 1, 0]


def test_store_wal_shm_and_lock_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask: files would be 0644
    try:
        path = tmp_path / "ids.sqlite"
        with IdentityStore(path) as store:
            run = store.begin_run("r")
            store.record_tracklet(run, _tracklet("a", 1, 1), np.ones(4, np.float32), "v0",
                                  GlobalIdentity(1, np.ones(4, np.float32)))
            files = [path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.lock")]
            modes = {p.name: oct(stat.S_IMODE(os.stat(p).st_mode)) for p in files}
        assert modes == {p.name: "0o600" for p in files}
        assert oct(stat.S_IMODE(os.stat(path).st_mode)) == "0o600"
    finally:
        os.umask(old)


def test_schema_1_store_gets_run_status(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    MIGRATIONS[1](conn)
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.execute("INSERT INTO runs (run_key, started, finished) VALUES ('done', 1.0, 2.0), ('cut', 3.0, NULL)")
    conn.close()
    with IdentityStore(path, mode="read") as ro:  # read-only: no migration, status inferred
        assert [r["status"] for r in ro.runs()] == ["complete", None]
    with IdentityStore(path) as store:
        assert [(r["run_key"], r["status"]) for r in store.runs()] == [("done", "complete"), ("cut", None)]
        assert store.db.query("SELECT MAX(version) FROM schema_version")[0][0] == SCHEMA_VERSION
        with pytest.raises(ValueError, match="run status 'bogus'"):
            store.end_run(1, "bogus")
