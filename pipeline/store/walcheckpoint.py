"""WAL checkpoints off the writer's thread: a background thread with its own connection.

By default SQLite checkpoints the write-ahead log inside the ``COMMIT`` that takes it past 1,000 pages. That
commit then copies the log into the database file and syncs it: 12-25 ms of I/O wait on the matcher's thread at
1,000 tracklets/s (every ~10th matcher call at 10^5 identities, ``tools/bench_scale.py``; docs/gallery.md).

The store's writer connection turns automatic checkpoints off (``PRAGMA wal_autocheckpoint=0``) and starts a
:class:`WalCheckpointer`. Its thread opens its own connection and runs ``PRAGMA wal_checkpoint(PASSIVE)`` every
``every_s`` seconds. A PASSIVE checkpoint never blocks the writer or readers: it copies what no reader still
needs, and the rest waits for the next round. The log therefore stays bounded as before; only the wait moved. SQLite
releases the GIL while it works, so the copy and sync overlap the matcher's next call. Durability is unchanged:
a commit is in the log before it returns, whoever copies it later. When the store closes, the thread stops first,
then SQLite checkpoints what is left as the last connection closes.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["WalCheckpointer"]


class WalCheckpointer:
    """A daemon thread running ``PRAGMA wal_checkpoint(PASSIVE)`` on ``path`` every ``every_s`` seconds.

    ``rounds``: checkpoints run; ``last``: (busy, frames in the log, frames checkpointed) of the latest one."""

    def __init__(self, path: str | Path, every_s: float = 1.0, busy_timeout_s: float = 5.0) -> None:
        if every_s <= 0:
            raise ValueError("WalCheckpointer: every_s must be > 0")
        self.path, self.every_s, self.busy_timeout_s = Path(path), every_s, busy_timeout_s
        self.rounds = 0
        self.last: tuple[int, int, int] | None = None
        self._stop = threading.Event()
        self._warned = False
        self._thread = threading.Thread(target=self._run, name=f"wal-checkpoint:{self.path.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:  # the writer keeps working; its log just is not copied back meanwhile
            log.warning("%s: WAL checkpoint thread could not open the store: %s", self.path, exc)
            return
        try:
            while not self._stop.wait(self.every_s):
                self.checkpoint(conn)
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """One PASSIVE checkpoint on ``conn`` (the thread's own connection); an error is logged once, then retried."""
        try:
            row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            if not self._warned:
                log.warning("%s: WAL checkpoint failed (retried every %.1f s): %s", self.path, self.every_s, exc)
                self._warned = True
            return
        self.last = (int(row[0]), int(row[1]), int(row[2]))
        self.rounds += 1

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread and wait for a checkpoint in progress to finish (idempotent)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
