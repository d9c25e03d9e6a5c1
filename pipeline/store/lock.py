"""One writer per identity store: an OS advisory lock on ``<store>.lock``.

A process that opens the store for writing (``IdentityStore(path)``, mode
``"write"``) holds an exclusive ``fcntl.flock`` on the file ``<store>.lock``
for as long as the store is open. A second writer is refused at once with a
one-line :class:`StoreLockedError` naming the store and the owner's pid, host
and start time (written into the lock file by the owner).

The kernel drops the lock when the owner's file descriptor is closed, which
happens when the process ends for any reason (``kill -9`` included), so a
stale lock needs no recovery: the next writer simply gets it. The lock file
itself stays (deleting it would race with a writer that just opened it); its
content only matters while it is locked.

The descriptor is close-on-exec (spawned children and subprocesses never get
it) and is closed in ``os.fork()`` children too (``os.register_at_fork``), so a
forked helper that outlives its parent cannot keep the store locked.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import weakref
from pathlib import Path

from pipeline.core.errors import ReidPipelineError


class StoreLockedError(ReidPipelineError):
    """Another process holds the store open for writing."""


_HELD: weakref.WeakSet[StoreLock] = weakref.WeakSet()


def lock_path(store_path: Path) -> Path:
    """``ids.sqlite`` -> ``ids.sqlite.lock`` (beside the store)."""
    return store_path.with_name(store_path.name + ".lock")


def _owner_text(path: Path) -> str:
    """'pid P on HOST since T' from the lock file, or 'pid unknown' when it is unreadable."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
        return f"pid {int(info['pid'])} on {info['host']} since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown"


class StoreLock:
    """The exclusive writer lock of one store; ``release()`` (or process death) frees it."""

    def __init__(self, store_path: Path) -> None:
        self.store_path = Path(store_path)
        self.path = lock_path(self.store_path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLockedError(
                f"{self.store_path}: identity store is already open for writing by {_owner_text(self.path)}"
                f" (lock {self.path.name}); one process writes a store at a time: stop that run or use"
                " another store.path (reading, e.g. `reid-pipeline query`, works meanwhile)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        _HELD.add(self)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Empty the lock file and unlock it (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _HELD.discard(self)
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the only descriptor releases the flock

    def _forget_in_child(self) -> None:
        """In a fork child: drop the inherited descriptor without unlocking the parent's lock."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


def _after_fork_in_child() -> None:
    for lock in list(_HELD):
        lock._forget_in_child()
    _HELD.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
