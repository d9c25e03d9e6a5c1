"""Resume checkpoints of a batch run, committed atomically with the store's rows.

A batch run keeps ONE store transaction open between checkpoints: every tracklet, identity and
event written in that time joins it (the store's transactions are re-entrant). At a checkpoint
(every ``store.checkpoint_every_s`` seconds of processing, 0 = after every frame) the runner adds
the state it needs to continue to the same transaction and commits:

* per camera: the tracker, the tracklet builder, frames processed, the next source frame index,
  whether the camera is done, its last outputs (for the annotated video);
* the cross-camera matcher (gallery, calibration, track -> id map), the identity assigner's maps
  and counters, the timeline spans;
* the byte size of every text output (``mot/``, ``mot_global/``, ``events.jsonl``).

A ``kill -9`` therefore leaves the store exactly at the last checkpoint (SQLite rolls the open
transaction back on the next open). A re-run with the same run key loads the checkpoint, truncates
the text outputs to the recorded sizes, restores the state and reads each camera from its next
frame (earlier frames are skipped without decoding where the reader allows), so its
``mot_global``, events and store rows equal those of an uninterrupted run.

The state is pickled; it is read back with :class:`RestrictedUnpickler`, which resolves only
plain data classes of this project, numpy, filterpy and pydantic, so a tampered checkpoint
cannot run code. The checkpoint lives in the store's ``run_checkpoints`` table (schema 3; the store is created 0600) and is deleted when the run
completes.
"""

from __future__ import annotations

import enum
import io
import json
import logging
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.errors import DataError

log = logging.getLogger(__name__)

#: module prefixes whose classes a checkpoint may name (instances are made with ``cls.__new__``, no ``__init__``)
_CLASS_MODULES = ("pipeline.", "trackers.", "filterpy.", "numpy", "collections", "pydantic", "datetime", "builtins")


def _reduce_allowed() -> set:
    """The only callables a checkpoint may call (pickle's REDUCE): rebuilders of plain data."""
    import collections

    import numpy as np

    from pipeline.matching.hot_gallery import HotGallery  # the matcher's gallery: a dict rebuilt from its items

    core = getattr(np, "_core", None) or np.core
    return {core.multiarray._reconstruct, core.multiarray.scalar, core.numeric._frombuffer, np.dtype,
            collections.deque, collections.defaultdict, collections.OrderedDict, collections.Counter,
            set, frozenset, complex, slice, range, bytearray, HotGallery}


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickles plain data only.

    * globals: classes of :data:`_CLASS_MODULES` (never functions);
    * REDUCE (calling a global with arguments): only the rebuilders of :func:`_reduce_allowed`
      (numpy arrays and scalars, dtypes, containers) and enum member lookups, so no constructor
      with side effects runs;
    * INST / OBJ (protocol 0/1 calls of a class): refused; objects come from NEWOBJ (``cls.__new__``).
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file) -> None:
        super().__init__(file)
        self._allowed = _reduce_allowed()

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith(_CLASS_MODULES):
            obj = super().find_class(module, name)
            if isinstance(obj, type) or obj in self._allowed:
                return obj
        raise pickle.UnpicklingError(f"checkpoint names {module}.{name}, which is not plain data")

    def _load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        if func not in self._allowed and not (isinstance(func, type) and issubclass(func, enum.Enum)):
            raise pickle.UnpicklingError(f"checkpoint calls {func!r}, which does not rebuild plain data")
        self.stack[-1] = func(*args)

    def _refuse(self) -> None:
        raise pickle.UnpicklingError("checkpoint uses a protocol-0/1 object call")

    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.INST[0]] = _refuse
    dispatch[pickle.OBJ[0]] = _refuse


def loads_restricted(blob: bytes) -> Any:
    """``pickle.loads`` limited to plain data (see :class:`RestrictedUnpickler`)."""
    return RestrictedUnpickler(io.BytesIO(blob)).load()


@dataclass
class CameraResume:
    """What one camera needs to continue: processing state and where to read next."""

    tracker: Any
    builder: Any
    frames: int
    next_index: int
    done: bool
    last_outputs: list


@dataclass
class RunState:
    """Everything a resumed batch run restores (see the module docstring)."""

    cameras: dict[str, CameraResume]
    matcher: Any
    assigner: dict[str, Any]
    timeline: Any
    output_sizes: dict[str, int] = field(default_factory=dict)


def output_sizes(out_dir: Path, paths: list[Path]) -> dict[str, int]:
    """{path relative to out_dir: size in bytes} of the text outputs that exist."""
    return {str(p.relative_to(out_dir)): p.stat().st_size for p in paths if p.exists()}


def truncate_outputs(out_dir: Path, sizes: dict[str, int], paths: list[Path]) -> None:
    """Cut every text output back to its checkpointed size (a file not recorded is emptied)."""
    for p in paths:
        if not p.exists():
            continue
        size = sizes.get(str(p.relative_to(out_dir)), 0)
        if p.stat().st_size > size:
            with open(p, "r+b") as fh:
                fh.truncate(size)
                fh.flush()
                os.fsync(fh.fileno())


class Checkpointer:
    """Holds a batch run's store transaction open and commits it with a checkpoint.

    ``store``: pipeline.store.IdentityStore; ``every_s``: seconds between commits (0 = every call
    of :meth:`maybe_commit`).
    """

    def __init__(self, store, run_id: int, fingerprint: str, every_s: float) -> None:
        self.store = store
        self.run_id = run_id
        self.fingerprint = fingerprint
        self.every_s = float(every_s)
        self._tx = None
        self._last = time.monotonic()
        self.commits = 0

    def load(self) -> RunState | None:
        """The run's last checkpoint, or None (none, or made under another config)."""
        with self.store.transaction() as conn:
            row = conn.execute("SELECT fingerprint, state FROM run_checkpoints WHERE run_id = ?",
                               (self.run_id,)).fetchone()
        if row is None:
            return None
        if row[0] != self.fingerprint:
            log.warning("run %d: the resume checkpoint was made under another configuration; starting over",
                        self.run_id)
            return None
        try:
            state = loads_restricted(row[1])
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError) as exc:
            raise DataError(self.store.path, f"run {self.run_id}: unreadable resume checkpoint ({exc})") from None
        if not isinstance(state, RunState):
            raise DataError(self.store.path, f"run {self.run_id}: resume checkpoint is not a run state")
        return state

    def begin(self) -> None:
        """Open the transaction the next writes join."""
        if self._tx is None:
            self._tx = self.store.transaction()
            self._tx.__enter__()
            self._last = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_s

    def commit(self, state: RunState) -> None:
        """Write ``state`` into the open transaction, commit it and open the next one."""
        blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        frames = {cid: c.next_index for cid, c in state.cameras.items()}
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO run_checkpoints (run_id, fingerprint, created, frames_json, state)"
                " VALUES (?, ?, ?, ?, ?)",
                (self.run_id, self.fingerprint, time.time(), json.dumps(frames), blob),
            )
        self._close(None)
        self.commits += 1
        self.store.db.checkpoint_wal()  # between the transactions: lets SQLite rewind the -wal file
        self.begin()

    def end(self, drop: bool = True) -> None:
        """Commit what is open (a graceful stop keeps its writes); ``drop``: delete the run's checkpoint."""
        if drop:
            with self.store.transaction() as conn:
                conn.execute("DELETE FROM run_checkpoints WHERE run_id = ?", (self.run_id,))
        self._close(None)

    def abort(self, exc: BaseException) -> None:
        """Roll the open transaction back (the last checkpoint stays the resume point)."""
        self._close(exc)

    def _close(self, exc: BaseException | None) -> None:
        tx, self._tx = self._tx, None
        if tx is not None:
            if exc is None:
                tx.__exit__(None, None, None)
            else:
                try:
                    tx.__exit__(type(exc), exc, exc.__traceback__)
                except BaseException:  # the rollback re-raises the exception it was given
                    pass
