"""Open an SQLite file as the identity store: checks, pragmas, migrations, transactions.

* A path that exists but is not an SQLite 3 database (wrong header, a folder)
  gives a one-line :class:`~pipeline.core.errors.DataError` naming the file.
* WAL journal + ``synchronous=NORMAL``: a committed transaction survives the
  process being killed (kill -9); only a power loss may drop the last commits,
  and the file is never left corrupt. The writer (``"write"``) checkpoints the
  log from a background thread (:mod:`pipeline.store.walcheckpoint`), not
  inside its commits.
* :class:`Database.transaction` is re-entrant: the outermost ``with`` issues
  ``BEGIN IMMEDIATE`` / ``COMMIT`` (``ROLLBACK`` on any exception), inner ones
  join it. One lock serialises threads sharing the object.
* Modes: ``"write"`` takes the store's writer lock (:mod:`pipeline.store.lock`)
  before anything else, creates a missing file with mode 0600 (SQLite gives the
  ``-wal``/``-shm`` files the main file's mode) and migrates; ``"shared"`` writes
  an existing store without the lock (helpers of the lock holder, model versions
  only) and migrates; both refuse, in one line, a file they cannot open for writing.
  ``"read"`` opens an existing store read-only (SQLite ``mode=ro``, plus
  ``immutable=1`` in a folder that cannot be written: WAL needs its -shm file
  there): no lock, no migration, any write fails.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pipeline.core.errors import DataError
from pipeline.store.lock import StoreLock
from pipeline.store.schema import SCHEMA_VERSION, migrate
from pipeline.store.walcheckpoint import WalCheckpointer

Mode = Literal["write", "shared", "read"]

SQLITE_HEADER = b"SQLite format 3\x00"


def check_sqlite_file(path: Path) -> None:
    """Raise DataError when ``path`` exists and is not an SQLite 3 database."""
    if path.is_dir():
        raise DataError(path, "is a folder, expected an SQLite identity store file")
    if path.exists() and path.stat().st_size > 0:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
        if head != SQLITE_HEADER:
            raise DataError(path, "not an SQLite database (identity store expected)")


class Database:
    """An SQLite connection in autocommit mode with explicit, re-entrant transactions."""

    def __init__(self, path: str | Path, busy_timeout_s: float = 30.0, mode: Mode = "write") -> None:
        self.path = Path(path)
        self.mode = mode
        check_sqlite_file(self.path)
        if mode != "write" and not self.path.is_file():
            raise DataError(self.path, "no such identity store")
        if not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0
        self.writer_lock = StoreLock(self.path) if mode == "write" else None
        self.checkpointer: WalCheckpointer | None = None
        try:
            self.conn = self._connect(busy_timeout_s)
        except BaseException:
            if self.writer_lock is not None:
                self.writer_lock.release()
            raise
        if mode == "write":  # checkpoints leave the commits (pipeline/store/walcheckpoint.py)
            self.conn.execute("PRAGMA wal_autocheckpoint=0")
            self.checkpointer = WalCheckpointer(self.path)
            weakref.finalize(self, self.checkpointer.stop, 0.0)  # a store dropped without close(): the thread ends too

    def _connect(self, busy_timeout_s: float) -> sqlite3.Connection:
        if self.mode == "write" and not self.path.exists():
            try:  # 0600 before SQLite opens it: the -wal and -shm files inherit the mode
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
            except FileExistsError:
                pass
        target, uri = str(self.path), False
        if self.mode == "read":
            target, uri = self._read_only_uri(), True
        elif self.path.exists():
            _check_writable(self.path)
        conn = None
        try:
            conn = sqlite3.connect(target, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False,
                                   uri=uri)
            if self.mode == "read":
                conn.execute("PRAGMA foreign_keys=ON")
                _check_readable_version(conn)
            else:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
                migrate(conn)
            return conn
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            raise DataError(self.path, f"cannot open as identity store: {exc}") from None
        except ValueError as exc:  # schema newer than this program, or no schema at all (read)
            if conn is not None:
                conn.close()
            raise DataError(self.path, str(exc)) from None

    def _read_only_uri(self) -> str:
        """SQLite URI of a read-only open: ``mode=ro``; in a folder this process cannot write (a read-only
        mount, an archive) also ``immutable=1``, since a WAL store opened ``mode=ro`` still creates its -shm
        file beside it. DataError when such a folder holds a non-empty -wal file (commits the main file does
        not have yet, which ``immutable=1`` would not read)."""
        uri = self.path.resolve().as_uri() + "?mode=ro"
        folder = self.path.resolve().parent
        if os.access(folder, os.W_OK):
            return uri
        wal = folder / (self.path.name + "-wal")
        if wal.is_file() and wal.stat().st_size > 0:
            raise DataError(self.path, f"the folder is read-only and {wal.name} holds commits not yet in the file:"
                                       " copy the store with its -wal file to a writable folder to read it")
        return uri + "&immutable=1"

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``with db.transaction() as conn:`` — all or nothing; nested calls join the outer one."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self.conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self.conn
            except BaseException:
                self._depth -= 1
                if outer:
                    self.conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self.conn.execute("COMMIT")

    def checkpoint_wal(self) -> None:
        """One PASSIVE WAL checkpoint on the writer's connection, between transactions (no-op inside one).

        SQLite rewinds the log only when a write transaction begins after a checkpoint copied all of it. A writer
        that opens its next transaction right after each commit (a batch run's checkpointer) never leaves the
        background :class:`WalCheckpointer` that moment, and the ``-wal`` file grew without bound (1.2 GB an hour
        of two cameras; s44 probe_store). Calling this between the commit and the next ``BEGIN`` gives SQLite
        that moment."""
        with self._lock:
            if self._depth == 0 and self.conn is not None:
                try:
                    self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:  # busy or read-only: the background checkpointer tries again
                    pass

    def query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        """Run a read query under the lock and return all rows."""
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check`` result: 'ok' when the file is sound."""
        return str(self.query("PRAGMA integrity_check")[0][0])

    def close(self) -> None:
        """Stop the checkpoint thread, close the connection (SQLite checkpoints what is left), then release the
        writer lock (idempotent)."""
        if self.checkpointer is not None:
            self.checkpointer.stop()
        with self._lock:
            self.conn.close()
            if self.writer_lock is not None:
                self.writer_lock.release()


def _check_writable(path: Path) -> None:
    """DataError naming ``path`` when this process cannot open it for writing (a read-only or immutable file,
    a read-only file system): SQLite would open it read-only and fail at the first write."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CLOEXEC))
    except OSError as exc:
        raise DataError(path, f"cannot write the identity store ({exc.strerror or exc}); commands that only"
                              " read it (query) work on a read-only file") from None


def _check_readable_version(conn: sqlite3.Connection) -> None:
    """Read mode: the schema must exist and not be newer than this program (ValueError otherwise)."""
    has = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'").fetchone()
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone() if has else None
    version = int(row[0]) if row and row[0] is not None else 0
    if version == 0:
        raise ValueError("not an identity store (no schema); write to it with `reid-pipeline run` first")
    if version > SCHEMA_VERSION:
        raise ValueError(f"store schema version {version} is newer than this program's {SCHEMA_VERSION}")
