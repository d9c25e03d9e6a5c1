"""IdentityStore: runs, cameras, tracklets, identities, assignments and events in SQLite.

Atomicity: :meth:`IdentityStore.record_tracklet` writes one finished
tracklet, its embedding, its identity's new prototype, its assignment and its
events in ONE transaction, so a kill -9 loses at most the tracklets that were
still open and never leaves half a tracklet. Idempotence: a tracklet is
unique on (run, camera, track id, first frame) (a longer cumulative partial
supersedes the shorter one in place), runs on their ``run_key``,
events on (kind, global id, camera, time); writes use INSERT OR IGNORE or
upserts, so re-running a batch job under the same run key resumes without
duplicating rows (the runner asks :meth:`find_tracklet` before matching).

One writer: ``IdentityStore(path)`` (mode ``"write"``) holds the store's
writer lock (:mod:`pipeline.store.lock`) while open, so a second run on the
same store is refused with a one-line :class:`~pipeline.store.lock.StoreLockedError`; only this
mode begins runs and creates identities. ``mode="shared"`` (the run's
adaptation worker, ``reid-pipeline adapt``) writes model versions, embeddings
and crops beside it; ``mode="read"`` only reads (``reid-pipeline query``).

Global ids: a store-allocated id (``new_identity(global_id=None)``) is
max + 1 read and inserted in the same ``BEGIN IMMEDIATE`` transaction, so two
writers can never get the same one. An id chosen by the caller (the matcher
numbers new identities itself) that another writer created since this store
was opened raises :class:`IdentityConflictError` instead of silently merging
two people (belt and braces: the lock already keeps a second writer out).

Runs: ``runs.status`` is 'running' from :meth:`IdentityStore.begin_run` until
:meth:`IdentityStore.end_run` records how it ended ('complete',
'frame_limit', 'interrupted', 'failed') and when (``finished``); a run still
'running' when the next run begins was killed without an end: 'aborted'.

Model versions, per-version embeddings and crops (for online adaptation) live
in :class:`~pipeline.store.versions.VersionsMixin`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from pipeline.core.errors import ReidPipelineError
from pipeline.store.changes import ChangesMixin
from pipeline.store.connection import Database, Mode
from pipeline.store.queries import QueriesMixin
from pipeline.store.records import TrackletRecord, to_blob
from pipeline.store.versions import VersionsMixin
from pipeline.core.types import GlobalIdentity, Tracklet


#: run statuses :meth:`IdentityStore.end_run` accepts
END_STATUSES = ("complete", "frame_limit", "interrupted", "failed")


class IdentityConflictError(ReidPipelineError):
    """Another writer created an identity with the id this store was about to create."""


class IdentityStore(QueriesMixin, VersionsMixin, ChangesMixin):
    """The persistent identity store (SQLite, WAL).

    mode ``"write"`` (default): the one writer (lock held until :meth:`close`);
    ``path`` is created (0600) when missing. ``"shared"``: an existing store,
    model versions / embeddings / crops only. ``"read"``: an existing store, read-only.
    """

    def __init__(self, path: str | Path, mode: Mode = "write") -> None:
        self.db = Database(path, mode=mode)
        self.path = self.db.path
        self.mode = mode
        # ids that existed at open, or that this object created: the only ones it may write to
        self._own_ids: set[int] = set()
        if mode == "write":
            self._own_ids = {int(r[0]) for r in self.db.query("SELECT global_id FROM identities")}

    def _require_writer(self, what: str) -> None:
        if self.mode != "write":
            raise RuntimeError(f"{self.path}: {what} needs the store opened in mode 'write' (it is {self.mode!r})")

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> IdentityStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self):
        """Group several writes into one atomic transaction (re-entrant)."""
        return self.db.transaction()

    def integrity_check(self) -> str:
        return self.db.integrity_check()

    # ------------------------------------------------------------------ runs, cameras
    def begin_run(self, run_key: str, config_json: str = "{}", record_json: str | None = None) -> int:
        """Start (or resume, when ``run_key`` exists) a run with status 'running'; returns its run_id.

        ``record_json``: what determines the run's results (:mod:`pipeline.runner.run_record`), kept from the
        first begin; a resumed run made before records existed gets it now.
        Runs still 'running' belong to a process that died without :meth:`end_run`
        (this one holds the writer lock): they become 'aborted' (``finished`` stays NULL).
        """
        self._require_writer("begin_run")
        with self.db.transaction() as c:
            c.execute("UPDATE runs SET status = 'aborted' WHERE status = 'running'")
            cur = c.execute(
                "INSERT OR IGNORE INTO runs (run_key, config_json, started, status, record_json)"
                " VALUES (?, ?, ?, 'running', ?)",
                (run_key, config_json, time.time(), record_json),
            )
            if cur.rowcount == 0:
                c.execute("UPDATE runs SET resumed = resumed + 1, finished = NULL, status = 'running',"
                          " record_json = COALESCE(record_json, ?) WHERE run_key = ?", (record_json, run_key))
            return int(c.execute("SELECT run_id FROM runs WHERE run_key = ?", (run_key,)).fetchone()[0])

    def end_run(self, run_id: int, status: str) -> None:
        """Record how and when a run ended: ``status`` in :data:`END_STATUSES`, ``finished`` = now."""
        if status not in END_STATUSES:
            raise ValueError(f"run status {status!r}: expected one of {', '.join(END_STATUSES)}")
        with self.db.transaction() as c:
            c.execute("UPDATE runs SET finished = ?, status = ? WHERE run_id = ?", (time.time(), status, run_id))

    def finish_run(self, run_id: int) -> None:
        """A run that processed all of its input: ``end_run(run_id, "complete")``."""
        self.end_run(run_id, "complete")

    def ensure_camera(self, cam_id: str, meta: dict | None = None, t: float | None = None) -> None:
        """Register a camera once (later calls keep the first record)."""
        with self.db.transaction() as c:
            c.execute(
                "INSERT OR IGNORE INTO cameras (cam_id, first_seen, meta_json) VALUES (?, ?, ?)",
                (cam_id, t, json.dumps(meta or {})),
            )

    # ------------------------------------------------------------------ tracklets
    def add_tracklet(
        self, run_id: int, tracklet: Tracklet, embedding: np.ndarray | None, model_version: str
    ) -> int:
        """Store a tracklet (+ its aggregated (D,) embedding for ``model_version``); idempotent.

        The key is (run, cam, track id, first frame). A cumulative partial
        tracklet (see :mod:`pipeline.tracklets`) is superseded in place by a
        longer version of the same key (arrays and embedding replaced); a
        shorter or equal one changes nothing. Returns the tracklet_id.
        """
        if len(tracklet) == 0:
            raise ValueError(f"empty tracklet {tracklet.cam_id}/{tracklet.track_id}")
        frames = np.asarray(tracklet.frames, dtype=np.int64)
        key = (run_id, tracklet.cam_id, int(tracklet.track_id), int(frames[0]))
        with self.db.transaction() as c:
            self.ensure_camera(tracklet.cam_id, t=tracklet.start_time)
            old = c.execute(
                "SELECT tracklet_id, n_frames FROM tracklets WHERE run_id=? AND cam_id=? AND track_id=?"
                " AND start_frame=?", key).fetchone()
            if old is not None and old[1] >= len(frames):
                return int(old[0])
            values = self._tracklet_values(tracklet, frames)
            if old is None:
                cur = c.execute(
                    "INSERT INTO tracklets (run_id, cam_id, track_id, start_frame, end_frame, start_time, end_time,"
                    " n_frames, frames, timestamps, boxes_tlwh, frame_embeddings, embedding_frames)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", key + values)
                tid = int(cur.lastrowid)
            else:
                tid = int(old[0])
                c.execute(
                    "UPDATE tracklets SET end_frame=?, start_time=?, end_time=?, n_frames=?, frames=?, timestamps=?,"
                    " boxes_tlwh=?, frame_embeddings=?, embedding_frames=? WHERE tracklet_id=?", values + (tid,))
            if embedding is not None:
                self.put_embedding(tid, model_version, embedding)
            return tid

    @staticmethod
    def _tracklet_values(tracklet: Tracklet, frames: np.ndarray) -> tuple:
        """(end_frame, start_time, end_time, n_frames, frames, timestamps, boxes, frame embs, emb frames)."""
        emb = tracklet.embeddings
        has_emb = emb is not None and np.asarray(emb).size > 0
        ef = tracklet.embedding_frames
        return (
            int(frames[-1]), tracklet.start_time, tracklet.end_time, len(frames), to_blob(frames),
            to_blob(np.asarray(tracklet.timestamps, dtype=np.float64)),
            to_blob(np.asarray(tracklet.boxes_tlwh, dtype=np.float64).reshape(-1, 4)),
            to_blob(np.asarray(emb, dtype=np.float32)) if has_emb else None,
            to_blob(np.asarray(ef, dtype=np.int64)) if ef is not None else None,
        )

    def find_tracklet(self, run_id: int, cam_id: str, track_id: int, start_frame: int) -> tuple[int, int | None] | None:
        """(tracklet_id, global_id or None) when that tracklet is already stored, else None."""
        rows = self.db.query(
            "SELECT t.tracklet_id, a.global_id FROM tracklets t LEFT JOIN assignments a USING (tracklet_id)"
            " WHERE t.run_id=? AND t.cam_id=? AND t.track_id=? AND t.start_frame=?",
            (run_id, cam_id, int(track_id), int(start_frame)),
        )
        if not rows:
            return None
        return int(rows[0][0]), (None if rows[0][1] is None else int(rows[0][1]))

    def assign(self, tracklet_id: int, global_id: int, distance: float | None = None,
               probability: float | None = None) -> None:
        """Assign a tracklet to an identity (re-assigning replaces the previous one), with the link's
        cosine distance and calibrated probability (None: a new identity, or not known)."""
        with self.db.transaction() as c:
            c.execute(
                "INSERT INTO assignments (tracklet_id, global_id, distance, probability, assigned_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(tracklet_id) DO UPDATE SET global_id=excluded.global_id,"
                " distance=excluded.distance, probability=excluded.probability, assigned_at=excluded.assigned_at",
                (tracklet_id, global_id, distance, probability, time.time()),
            )

    # ------------------------------------------------------------------ identities
    def next_global_id(self) -> int:
        """max(global id) + 1 (1 for an empty store): a restart continues the numbering.

        Only a hint outside a transaction; :meth:`new_identity` without an id
        reads and inserts it inside one.
        """
        row = self.db.query("SELECT MAX(global_id) FROM identities")[0]
        return 1 if row[0] is None else int(row[0]) + 1

    def new_identity(
        self, prototype: np.ndarray, t: float, cam_id: str,
        global_id: int | None = None, model_version: str | None = None,
    ) -> int:
        """Create an identity (id = ``global_id`` or max+1) seen at ``t`` in ``cam_id``; returns its id.

        Without ``global_id`` the id is max + 1 read and inserted in one BEGIN
        IMMEDIATE transaction (never one another writer has). With an explicit
        id that already exists, this updates it instead (idempotent), unless
        another writer created that id after this store was opened:
        :class:`IdentityConflictError` (two people must not share an id).
        """
        self._require_writer("new_identity")
        with self.db.transaction() as c:
            gid = self.next_global_id() if global_id is None else int(global_id)
            cur = c.execute(
                "INSERT INTO identities (global_id, prototype, model_version, first_seen, last_seen, first_cam,"
                " last_cam) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(global_id) DO NOTHING",
                (gid, to_blob(np.asarray(prototype, np.float32)), model_version, t, t, cam_id, cam_id),
            )
            if cur.rowcount == 0 and gid not in self._own_ids:
                raise IdentityConflictError(
                    f"{self.path}: identity {gid} was created by another writer while this one had the store open;"
                    " refusing to merge two people under one id (run one writer per store)")
            self._own_ids.add(gid)
            self.update_identity(gid, prototype, t, cam_id)
            return gid

    def update_identity(self, global_id: int, prototype: np.ndarray, t: float, cam_id: str) -> None:
        """New prototype; last_seen/last_cam move forward only (first_seen/first_cam move back only)."""
        with self.db.transaction() as c:
            cur = c.execute(
                "UPDATE identities SET prototype=?,"
                " last_cam=CASE WHEN ? >= last_seen THEN ? ELSE last_cam END, last_seen=MAX(last_seen, ?),"
                " first_cam=CASE WHEN ? < first_seen THEN ? ELSE first_cam END, first_seen=MIN(first_seen, ?)"
                " WHERE global_id=?",
                (to_blob(np.asarray(prototype, np.float32)), t, cam_id, t, t, cam_id, t, int(global_id)),
            )
            if cur.rowcount == 0:
                raise KeyError(f"no identity {global_id} in {self.path}")

    def set_prototype(self, global_id: int, prototype: np.ndarray) -> None:
        """Replace an identity's prototype (nothing else); a missing identity is left alone."""
        self.set_prototypes({int(global_id): prototype})

    def set_prototypes(self, prototypes: dict[int, np.ndarray], model_version: str | None = None) -> None:
        """Replace the prototypes of many identities (global id -> (D,) vector; nothing else), in one
        transaction; missing identities are left alone. ``model_version``: the prototypes are in that
        model's space (a hot swap's re-computed prototypes): the identities are tagged with it too."""
        if model_version is None:
            rows = [(to_blob(np.asarray(v, np.float32)), int(g)) for g, v in prototypes.items()]
            sql = "UPDATE identities SET prototype=? WHERE global_id=?"
        else:
            rows = [(to_blob(np.asarray(v, np.float32)), model_version, int(g)) for g, v in prototypes.items()]
            sql = "UPDATE identities SET prototype=?, model_version=? WHERE global_id=?"
        with self.db.transaction() as c:
            c.executemany(sql, rows)

    def add_event(self, kind: str, global_id: int, cam_id: str, t: float, payload: dict | None = None) -> None:
        """Append an event; the same (kind, id, camera, time) twice is stored once."""
        with self.db.transaction() as c:
            c.execute(
                "INSERT OR IGNORE INTO events (kind, global_id, cam_id, t, payload_json) VALUES (?, ?, ?, ?, ?)",
                (kind, int(global_id), cam_id, float(t), json.dumps(payload or {}, default=str)),
            )

    def record_tracklets(self, run_id: int, records: Sequence[TrackletRecord]) -> list[int]:
        """:meth:`record_tracklet` for each of ``records`` in order, in one transaction and one
        ``executemany`` per statement (~9 statements a tracklet otherwise): the same rows. Returns the
        tracklet_ids. A batch holding a tracklet already stored (a longer version supersedes it) or the same
        tracklet twice is recorded one by one."""
        if not records:
            return []
        with self.db.transaction() as c:
            keys = [(run_id, r.tracklet.cam_id, int(r.tracklet.track_id),
                     int(np.asarray(r.tracklet.frames)[0]) if len(r.tracklet) else 0) for r in records]
            if (len(set(keys)) < len(keys) or any(len(r.tracklet) == 0 for r in records)
                    or self._any_tracklet_stored(c, keys)):
                return [self.record_tracklet(run_id, r.tracklet, r.embedding, r.model_version, r.identity,
                                             r.distance, r.events, r.probability) for r in records]
            self._require_writer("new_identity")
            fresh = sorted({int(r.identity.global_id) for r in records} - self._own_ids)
            if fresh and c.execute(f"SELECT 1 FROM identities WHERE global_id IN ({','.join('?' * len(fresh))})",
                                   fresh).fetchone():
                gid = next(g for g in fresh if c.execute("SELECT 1 FROM identities WHERE global_id=?", (g,)).fetchone())
                raise IdentityConflictError(
                    f"{self.path}: identity {gid} was created by another writer while this one had the store open;"
                    " refusing to merge two people under one id (run one writer per store)")
            c.executemany("INSERT OR IGNORE INTO cameras (cam_id, first_seen, meta_json) VALUES (?, ?, ?)",
                          [(r.tracklet.cam_id, r.tracklet.start_time, "{}") for r in records])
            c.executemany(
                "INSERT INTO tracklets (run_id, cam_id, track_id, start_frame, end_frame, start_time, end_time,"
                " n_frames, frames, timestamps, boxes_tlwh, frame_embeddings, embedding_frames)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [k + self._tracklet_values(r.tracklet, np.asarray(r.tracklet.frames, dtype=np.int64))
                 for k, r in zip(keys, records)])
            last = int(c.execute("SELECT last_insert_rowid()").fetchone()[0])
            tids = list(range(last - len(records) + 1, last + 1))  # one writer: AUTOINCREMENT ids in order
            vec = [np.asarray(r.embedding, dtype=np.float32).reshape(-1) if r.embedding is not None else None
                   for r in records]
            c.executemany(
                "INSERT INTO embeddings (tracklet_id, model_version, dim, vector) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(tracklet_id, model_version) DO UPDATE SET dim=excluded.dim, vector=excluded.vector",
                [(t, r.model_version, len(v), to_blob(v)) for t, r, v in zip(tids, records, vec) if v is not None])
            protos = [to_blob(np.asarray(r.identity.prototype, np.float32)) for r in records]
            c.executemany(
                "INSERT INTO identities (global_id, prototype, model_version, first_seen, last_seen, first_cam,"
                " last_cam) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(global_id) DO NOTHING",
                [(int(r.identity.global_id), b, r.model_version, r.tracklet.start_time, r.tracklet.start_time,
                  r.tracklet.cam_id, r.tracklet.cam_id) for r, b in zip(records, protos)])
            self._own_ids.update(int(r.identity.global_id) for r in records)
            # one UPDATE per record (its prototype BLOB written once): record_tracklet applies the start, then
            # the end time; that is last_seen / last_cam from the later of the two (ties: the later record
            # wins) and first_seen / first_cam from the earlier (ties: the earlier record keeps it), the same rows
            c.executemany(
                "UPDATE identities SET prototype=?,"
                " last_cam=CASE WHEN ? >= last_seen THEN ? ELSE last_cam END, last_seen=MAX(last_seen, ?),"
                " first_cam=CASE WHEN ? < first_seen THEN ? ELSE first_cam END, first_seen=MIN(first_seen, ?)"
                " WHERE global_id=?",
                [(b, hi, r.tracklet.cam_id, hi, lo, r.tracklet.cam_id, lo, int(r.identity.global_id))
                 for r, b in zip(records, protos)
                 for lo, hi in ((min(r.tracklet.start_time, r.tracklet.end_time),
                                 max(r.tracklet.start_time, r.tracklet.end_time)),)])
            now = time.time()
            c.executemany(
                "INSERT INTO assignments (tracklet_id, global_id, distance, probability, assigned_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(tracklet_id) DO UPDATE SET global_id=excluded.global_id,"
                " distance=excluded.distance, probability=excluded.probability, assigned_at=excluded.assigned_at",
                [(t, int(r.identity.global_id), r.distance, r.probability, now) for t, r in zip(tids, records)])
            c.executemany(
                "INSERT OR IGNORE INTO events (kind, global_id, cam_id, t, payload_json) VALUES (?, ?, ?, ?, ?)",
                [(kind, int(r.identity.global_id), r.tracklet.cam_id, float(r.tracklet.start_time),
                  json.dumps(dict(payload, tracklet_id=t), default=str))
                 for t, r in zip(tids, records) for kind, payload in r.events])
            return tids

    @staticmethod
    def _any_tracklet_stored(c, keys: list[tuple]) -> bool:
        """Whether any (run_id, cam_id, track_id, start_frame) of ``keys`` is in ``tracklets``: one query per
        200 keys instead of one per key. The keys are a VALUES table joined to ``tracklets`` (CROSS JOIN keeps
        that order: each key is one search of the table's UNIQUE index; a row-value ``IN (VALUES ...)`` would
        scan the table)."""
        for s in range(0, len(keys), 200):
            part = keys[s:s + 200]
            rows = ",".join(["(?, ?, ?, ?)"] * len(part))
            if c.execute(f"SELECT 1 FROM (VALUES {rows}) AS k CROSS JOIN tracklets t ON t.run_id = k.column1"
                         " AND t.cam_id = k.column2 AND t.track_id = k.column3 AND t.start_frame = k.column4 LIMIT 1",
                         [v for k in part for v in k]).fetchone():
                return True
        return False

    def record_tracklet(
        self,
        run_id: int,
        tracklet: Tracklet,
        embedding: np.ndarray,
        model_version: str,
        identity: GlobalIdentity,
        distance: float | None = None,
        events: Iterable[tuple[str, dict]] = (),
        probability: float | None = None,
    ) -> int:
        """Atomically store a finished tracklet, its identity (prototype, times) and assignment.

        ``events``: (kind, payload) pairs stored for this identity at the
        tracklet's camera and start time (e.g. ("appear", {}), ("handover",
        {"from_cam": "a"})). Returns the tracklet_id.
        """
        with self.db.transaction():
            tid = self.add_tracklet(run_id, tracklet, embedding, model_version)
            gid = identity.global_id
            self.new_identity(identity.prototype, tracklet.start_time, tracklet.cam_id, gid, model_version)
            self.update_identity(gid, identity.prototype, tracklet.end_time, tracklet.cam_id)
            self.assign(tid, gid, distance, probability)
            for kind, payload in events:
                self.add_event(kind, gid, tracklet.cam_id, tracklet.start_time, dict(payload, tracklet_id=tid))
            return tid
