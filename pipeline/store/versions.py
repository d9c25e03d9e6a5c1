"""Model versions, per-version embeddings and crops: what online adaptation needs from the store.

A model version is a name (e.g. a checkpoint hash), its weights (bytes in the
database or a path), metrics JSON, its parent version and a ``deployed`` flag
(at most one version is deployed; rollback = ``set_deployed(parent)``). Every
tracklet can carry one aggregated embedding per version; re-embedding the
gallery for a new version is ``put_embedding`` for each tracklet listed by
``tracklets_missing_version``. Crops (JPEG) let a worker re-embed and train.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.core.errors import ReidPipelineError
from pipeline.store.records import ModelVersion, to_blob

if TYPE_CHECKING:
    from pipeline.store.connection import Database


class VersionsMixin:
    db: Database
    path: Path

    def add_model_version(
        self,
        version: str,
        weights: bytes | str | Path | None = None,
        metrics: dict | None = None,
        parent: str | None = None,
        deployed: bool = False,
    ) -> None:
        """Register a model version (bytes are stored in the db, a str/Path as a path); idempotent.

        Re-adding an existing version updates its metrics (and weights when given).
        """
        blob = weights if isinstance(weights, bytes) else None
        wpath = str(weights) if isinstance(weights, (str, Path)) else None
        with self.db.transaction() as c:
            c.execute(
                "INSERT INTO model_versions (version, parent, created, weights, weights_path, metrics_json)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(version) DO UPDATE SET"
                " metrics_json=excluded.metrics_json,"
                " weights=COALESCE(excluded.weights, weights), weights_path=COALESCE(excluded.weights_path, weights_path)",
                (version, parent, time.time(), blob, wpath, json.dumps(metrics or {}, default=float)),
            )
            if deployed:
                self.set_deployed(version)

    def set_deployed(self, version: str) -> None:
        """Mark ``version`` as the one deployed version (atomically unmarks the others)."""
        with self.db.transaction() as c:
            if c.execute("SELECT 1 FROM model_versions WHERE version = ?", (version,)).fetchone() is None:
                raise ReidPipelineError(f"{self.path}: no model version {version!r} to deploy")
            c.execute("UPDATE model_versions SET deployed = (version = ?)", (version,))

    def deployed_version(self) -> str | None:
        rows = self.db.query("SELECT version FROM model_versions WHERE deployed = 1")
        return rows[0][0] if rows else None

    def model_versions(self) -> list[ModelVersion]:
        """All versions, oldest first."""
        rows = self.db.query(
            "SELECT version, parent, created, weights_path, metrics_json, deployed, weights IS NOT NULL"
            " FROM model_versions ORDER BY created, version"
        )
        return [ModelVersion(v, p, float(c), wp, json.loads(m), bool(d), bool(hb)) for v, p, c, wp, m, d, hb in rows]

    def model_weights(self, version: str) -> bytes | str | None:
        """The stored weights bytes, else the weights path, else None."""
        rows = self.db.query("SELECT weights, weights_path FROM model_versions WHERE version = ?", (version,))
        if not rows:
            raise ReidPipelineError(f"{self.path}: no model version {version!r}")
        return rows[0][0] if rows[0][0] is not None else rows[0][1]

    def put_embedding(self, tracklet_id: int, version: str, vector: np.ndarray) -> None:
        """Set (or replace) a tracklet's aggregated (D,) float32 embedding for ``version``."""
        vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self.db.transaction() as c:
            c.execute(
                "INSERT INTO embeddings (tracklet_id, model_version, dim, vector) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(tracklet_id, model_version) DO UPDATE SET dim=excluded.dim, vector=excluded.vector",
                (int(tracklet_id), version, len(vec), to_blob(vec)),
            )

    def tracklets_missing_version(self, version: str) -> list[int]:
        """Ids of tracklets that have no embedding for ``version`` yet."""
        rows = self.db.query(
            "SELECT tracklet_id FROM tracklets WHERE tracklet_id NOT IN"
            " (SELECT tracklet_id FROM embeddings WHERE model_version = ?) ORDER BY tracklet_id",
            (version,),
        )
        return [int(r[0]) for r in rows]

    def add_crops(self, tracklet_id: int, frames: list[int], crops_bgr: list[np.ndarray], quality: int = 90,
                  replace: bool = False) -> None:
        """Store person crops (BGR uint8) of a tracklet as JPEG, keyed by frame; idempotent. ``replace``: these are
        the tracklet's crops, any stored before go (a run re-run after ``--max-frames`` ends a track later and
        samples other frames of it: without this a tracklet kept both samples)."""
        import cv2

        rows = []
        for frame, crop in zip(frames, crops_bgr):
            ok, buf = cv2.imencode(".jpg", crop, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
            if ok:
                rows.append((int(tracklet_id), int(frame), buf.tobytes()))
        with self.db.transaction() as c:
            if replace:
                c.execute("DELETE FROM crops WHERE tracklet_id = ?", (int(tracklet_id),))
            c.executemany("INSERT OR IGNORE INTO crops (tracklet_id, frame, jpeg) VALUES (?, ?, ?)", rows)

    def crops(self, tracklet_id: int) -> list[tuple[int, np.ndarray]]:
        """[(frame, BGR uint8 crop)] of a tracklet, by frame."""
        import cv2

        rows = self.db.query("SELECT frame, jpeg FROM crops WHERE tracklet_id = ? ORDER BY frame", (int(tracklet_id),))
        return [(int(f), cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR)) for f, j in rows]

    def crop_counts(self) -> dict[int, int]:
        """tracklet_id -> number of stored crops, for tracklets that have any."""
        rows = self.db.query("SELECT tracklet_id, COUNT(*) FROM crops GROUP BY tracklet_id ORDER BY tracklet_id")
        return {int(t): int(n) for t, n in rows}
