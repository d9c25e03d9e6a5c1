"""SQLite schema of the identity store, its version table and the migrations hook.

``MIGRATIONS`` maps a schema version to the function that brings a database
from the previous version to it. A new database runs all of them in order; an
existing one runs only those above its recorded version. A database written by
a newer program (version above :data:`SCHEMA_VERSION`) is refused.

Arrays are stored as ``.npy`` blobs (``numpy.save`` bytes: dtype and shape
travel with the data, see :func:`pipeline.store.records.to_blob`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

_V1 = """
CREATE TABLE IF NOT EXISTS cameras (
    cam_id      TEXT PRIMARY KEY,
    first_seen  REAL,
    meta_json   TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS runs (
    run_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    run_key     TEXT NOT NULL UNIQUE,
    config_json TEXT NOT NULL DEFAULT '{}',
    started     REAL NOT NULL,
    resumed     INTEGER NOT NULL DEFAULT 0,
    finished    REAL
);
CREATE TABLE IF NOT EXISTS tracklets (
    tracklet_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id           INTEGER NOT NULL REFERENCES runs(run_id),
    cam_id           TEXT NOT NULL REFERENCES cameras(cam_id),
    track_id         INTEGER NOT NULL,
    start_frame      INTEGER NOT NULL,
    end_frame        INTEGER NOT NULL,
    start_time       REAL NOT NULL,
    end_time         REAL NOT NULL,
    n_frames         INTEGER NOT NULL,
    frames           BLOB NOT NULL,
    timestamps       BLOB NOT NULL,
    boxes_tlwh       BLOB NOT NULL,
    frame_embeddings BLOB,
    embedding_frames BLOB,
    UNIQUE (run_id, cam_id, track_id, start_frame)
);
CREATE INDEX IF NOT EXISTS tracklets_time ON tracklets (start_time, end_time);
CREATE INDEX IF NOT EXISTS tracklets_cam ON tracklets (cam_id, start_time);
CREATE TABLE IF NOT EXISTS model_versions (
    version      TEXT PRIMARY KEY,
    parent       TEXT,
    created      REAL NOT NULL,
    weights      BLOB,
    weights_path TEXT,
    metrics_json TEXT NOT NULL DEFAULT '{}',
    deployed     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS embeddings (
    tracklet_id   INTEGER NOT NULL REFERENCES tracklets(tracklet_id),
    model_version TEXT NOT NULL,
    dim           INTEGER NOT NULL,
    vector        BLOB NOT NULL,
    PRIMARY KEY (tracklet_id, model_version)
);
CREATE INDEX IF NOT EXISTS embeddings_version ON embeddings (model_version);
CREATE TABLE IF NOT EXISTS identities (
    global_id     INTEGER PRIMARY KEY,
    prototype     BLOB NOT NULL,
    model_version TEXT,
    first_seen    REAL NOT NULL,
    last_seen     REAL NOT NULL,
    first_cam     TEXT NOT NULL,
    last_cam      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS identities_last_seen ON identities (last_seen);
CREATE TABLE IF NOT EXISTS assignments (
    tracklet_id INTEGER PRIMARY KEY REFERENCES tracklets(tracklet_id),
    global_id   INTEGER NOT NULL REFERENCES identities(global_id),
    distance    REAL,
    assigned_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS assignments_gid ON assignments (global_id);
CREATE TABLE IF NOT EXISTS events (
    event_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    global_id    INTEGER NOT NULL,
    cam_id       TEXT NOT NULL,
    t            REAL NOT NULL,
    payload_json TEXT NOT NULL DEFAULT '{}',
    UNIQUE (kind, global_id, cam_id, t)
);
CREATE INDEX IF NOT EXISTS events_gid ON events (global_id, t);
CREATE TABLE IF NOT EXISTS crops (
    tracklet_id INTEGER NOT NULL REFERENCES tracklets(tracklet_id),
    frame       INTEGER NOT NULL,
    jpeg        BLOB NOT NULL,
    PRIMARY KEY (tracklet_id, frame)
);
"""


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated DDL statement by statement (``executescript`` would COMMIT first)."""
    for stmt in script.split(";"):
        if stmt.strip():
            conn.execute(stmt)


def _migrate_to_1(conn: sqlite3.Connection) -> None:
    _run_script(conn, _V1)


#: how a run ended (``runs.status``); NULL only for runs recorded before schema 2 without an end
RUN_STATUSES = ("running", "complete", "frame_limit", "interrupted", "failed", "aborted")


def _migrate_to_2(conn: sqlite3.Connection) -> None:
    """runs.status: 'running' while a run goes, then how it ended (see :data:`RUN_STATUSES`)."""
    conn.execute("ALTER TABLE runs ADD COLUMN status TEXT")
    conn.execute("UPDATE runs SET status = 'complete' WHERE finished IS NOT NULL")


def _migrate_to_3(conn: sqlite3.Connection) -> None:
    """run_checkpoints: a batch run's resume state, committed with its rows (pipeline/runner/checkpoint.py)."""
    conn.execute("""CREATE TABLE IF NOT EXISTS run_checkpoints (
        run_id      INTEGER PRIMARY KEY REFERENCES runs(run_id),
        fingerprint TEXT NOT NULL,
        created     REAL NOT NULL,
        frames_json TEXT NOT NULL,
        state       BLOB NOT NULL
    )""")


def _migrate_to_4(conn: sqlite3.Connection) -> None:
    """calibration: the matcher's label-free threshold calibration, per scope, for the encoder version
    that measured it (pipeline/store/calibration.py): a restarted run continues it."""
    conn.execute("""CREATE TABLE IF NOT EXISTS calibration (
        scope         TEXT PRIMARY KEY,
        model_version TEXT NOT NULL,
        negatives     BLOB NOT NULL,
        threshold     REAL NOT NULL,
        fallback      REAL,
        updated       REAL NOT NULL
    )""")


def _migrate_to_5(conn: sqlite3.Connection) -> None:
    """Revisable identities (pipeline/matching/revise.py, pipeline/store/changes.py):
    ``assignments.probability`` (the link's calibrated P(same person), beside its ``distance``);
    ``identity_changes``: every merge / split, with the tracklets it moved and its evidence;
    ``identity_aliases``: absorbed id -> the identity that absorbed it (kept current through chains)."""
    conn.execute("ALTER TABLE assignments ADD COLUMN probability REAL")
    conn.execute("""CREATE TABLE IF NOT EXISTS identity_changes (
        change_id      INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id         INTEGER REFERENCES runs(run_id),
        kind           TEXT NOT NULL,
        global_id      INTEGER NOT NULL,
        into_id        INTEGER NOT NULL,
        from_id        INTEGER NOT NULL,
        cam_id         TEXT NOT NULL,
        t              REAL NOT NULL,
        tracklets_json TEXT NOT NULL,
        distance       REAL,
        probability    REAL,
        payload_json   TEXT NOT NULL DEFAULT '{}',
        created        REAL NOT NULL
    )""")
    conn.execute("CREATE INDEX IF NOT EXISTS identity_changes_into ON identity_changes (into_id)")
    conn.execute("CREATE INDEX IF NOT EXISTS identity_changes_from ON identity_changes (from_id)")
    conn.execute("""CREATE TABLE IF NOT EXISTS identity_aliases (
        absorbed_id INTEGER PRIMARY KEY,
        current_id  INTEGER NOT NULL,
        change_id   INTEGER REFERENCES identity_changes(change_id),
        t           REAL NOT NULL
    )""")
    conn.execute("CREATE INDEX IF NOT EXISTS identity_aliases_current ON identity_aliases (current_id)")


def _migrate_to_6(conn: sqlite3.Connection) -> None:
    """runs.record_json: what determines a run's results, its result settings and input fingerprints
    (pipeline/runner/run_record.py); NULL for runs recorded before schema 6."""
    conn.execute("ALTER TABLE runs ADD COLUMN record_json TEXT")


#: schema version -> migration bringing the previous version to it (runs inside the caller's transaction)
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_to_1, 2: _migrate_to_2, 3: _migrate_to_3,
                                                                 4: _migrate_to_4, 5: _migrate_to_5, 6: _migrate_to_6}
SCHEMA_VERSION: int = max(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    """The recorded schema version, 0 for an empty database."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(conn: sqlite3.Connection) -> tuple[int, int]:
    """Apply pending migrations in one transaction; returns (old, new) version.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Raises
    ValueError when the database is newer than this program.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        old = current_version(conn)
        if old > SCHEMA_VERSION:
            raise ValueError(f"store schema version {old} is newer than this program's {SCHEMA_VERSION}")
        for version in sorted(v for v in MIGRATIONS if v > old):
            MIGRATIONS[version](conn)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return old, max(old, SCHEMA_VERSION)
