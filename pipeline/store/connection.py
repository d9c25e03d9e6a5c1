"""Open an SQLite file as the identity store: checks, pragmas, migrations, transactions.

* A path that exists but is not an SQLite 3 database (wrong header, a folder)
  gives a one-line :class:`~pipeline.core.errors.DataError` naming the file.
* WAL journal + ``synchronous=NORMAL``: a committed transaction survives the
  process being killed (kill -9); only a power loss may drop the last commits,
  and the file is never left corrupt.
* :class:`Database.transaction` is re-entrant: the outermost ``with`` issues
  ``BEGIN IMMEDIATE`` / ``COMMIT`` (``ROLLBACK`` on any exception), inner ones
  join it. One lock serialises threads sharing the object.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.core.errors import DataError
from pipeline.store.schema import migrate

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

    def __init__(self, path: str | Path, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        check_sqlite_file(self.path)
        if not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0
        try:
            self.conn = sqlite3.connect(
                str(self.path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            migrate(self.conn)
        except sqlite3.DatabaseError as exc:
            raise DataError(self.path, f"cannot open as identity store: {exc}") from None
        except ValueError as exc:  # schema newer than this program
            raise DataError(self.path, str(exc)) from None

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

    def query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        """Run a read query under the lock and return all rows."""
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check`` result: 'ok' when the file is sound."""
        return str(self.query("PRAGMA integrity_check")[0][0])

    def close(self) -> None:
        with self._lock:
            self.conn.close()
