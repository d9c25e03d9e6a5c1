"""The store writer's WAL checkpoints run in a background thread (pipeline/store/walcheckpoint.py), not in its
commits: the writer connection has automatic checkpoints off, the thread copies the log back, and close()
stops it and leaves a whole database."""

from __future__ import annotations

import os
import time

from pipeline.store.connection import Database

ROW = os.urandom(40_000)  # incompressible 40 KB: 10 pages of 4 KB each


def _write(db: Database, rows: int, per_txn: int = 10) -> None:
    with db.transaction() as c:
        c.execute("CREATE TABLE IF NOT EXISTS scratch (x BLOB)")
    for _ in range(rows // per_txn):
        with db.transaction() as c:
            c.executemany("INSERT INTO scratch (x) VALUES (?)", [(ROW,)] * per_txn)


def _wal(db: Database) -> int:
    p = db.path.with_name(db.path.name + "-wal")
    return p.stat().st_size if p.exists() else 0


def _wait_rounds(db: Database, n: int, timeout: float = 20.0) -> None:
    start, deadline = db.checkpointer.rounds, time.monotonic() + timeout
    while db.checkpointer.rounds < start + n:
        assert time.monotonic() < deadline, "the checkpoint thread did not run"
        time.sleep(0.05)


def test_commits_no_longer_checkpoint(tmp_path):
    db = Database(tmp_path / "s.sqlite")
    try:
        assert db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        db.checkpointer.stop()  # only the commits now: SQLite's default would checkpoint every 1,000 pages (~4 MB)
        _write(db, 200)  # ~8 MB
        assert _wal(db) > 6_000_000
    finally:
        db.close()


def test_thread_copies_the_log_back_and_close_leaves_a_whole_store(tmp_path):
    db = Database(tmp_path / "s.sqlite")
    try:
        assert db.checkpointer.alive
        _write(db, 200)
        _wait_rounds(db, 2)  # a whole round after the last commit
        busy, frames, done = db.checkpointer.last
        assert busy == 0 and frames > 0 and done == frames  # every frame of the log is in the database file
        size = _wal(db)
        _write(db, 200)  # the log is reused from its start once copied back: it does not grow past one round's writes
        _wait_rounds(db, 2)
        assert _wal(db) <= size * 1.1
    finally:
        db.close()
    assert not db.checkpointer.alive
    assert _wal(db) == 0  # the last connection's close checkpointed and removed the log
    ro = Database(tmp_path / "s.sqlite", mode="read")
    try:
        assert ro.query("SELECT COUNT(*) FROM scratch")[0][0] == 400
        assert ro.integrity_check() == "ok"
    finally:
        ro.close()
