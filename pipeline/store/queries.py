"""Read side of the identity store: gallery, tracklets, identity history, events, summaries."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from pipeline.store.records import Event, IdentityRow, Sighting, StoredTracklet, from_blob
from pipeline.core.types import GlobalIdentity

if TYPE_CHECKING:
    from pipeline.store.connection import Database

_TRACKLET_COLS = (
    "t.tracklet_id, t.run_id, t.cam_id, t.track_id, t.start_time, t.end_time, t.start_frame, t.end_frame,"
    " a.global_id"
)


#: SQL condition on ``identities``: the prototype is of model version ``?`` (NULL: not recorded, accepted)
VERSION_MATCH = "(model_version IS NULL OR model_version = ?)"


def gallery_model_version(store, encoder_version: str, adapting: bool = False) -> str:
    """The model version the matcher's gallery must be of: the encoder's, or, for a run that adapts
    (``adapt.enabled``: it swaps the store's deployed version in at start, before matching anything),
    the deployed version when it has stored weights."""
    if adapting:
        deployed = store.deployed_version()
        if deployed and deployed != encoder_version and store.model_weights(deployed) is not None:
            return deployed
    return encoder_version


def left_out_identities(store, model_version: str) -> str | None:
    """One line naming the identities the gallery of ``model_version`` leaves out (their prototypes are
    of another model version), or None when there are none."""
    others = {v: n for v, n in store.identity_versions().items() if v is not None and v != model_version}
    if not others:
        return None
    total = sum(store.identity_versions().values())
    versions = ", ".join(f"{v} ({n})" for v, n in sorted(others.items()))
    return (f"{store.path}: {sum(others.values())} of {total} identities left out of the matcher's gallery: their"
            f" prototypes are of model version {versions}, not {model_version} (the encoder's); embeddings of two"
            " models are not comparable, so new tracklets are not linked to them. No command re-embeds a store"
            " with another model: to link to them run with the encoder they were made with (encoder.checkpoint),"
            " else use a new store.path")


class QueriesMixin:
    db: Database

    def load_gallery(
        self, since: float | None = None, limit: int | None = None, max_spans: int = 16,
        model_version: str | None = None,
    ) -> list[GlobalIdentity]:
        """Identities (most recently seen first), with their last ``max_spans`` member spans.

        since: only identities with last_seen >= since; limit: at most that many.
        model_version: only identities whose prototype is of that model version (or of no recorded
        version: stores written before versions were kept); prototypes of another model live in another
        embedding space, so their distances to this model's embeddings mean nothing
        (:meth:`identity_versions` counts the others).
        GlobalIdentity.spans: [(cam_id, start_time, end_time)] oldest first;
        members: [(cam_id, track_id)] for the same tracklets.
        """
        conds, params = [], []
        if since is not None:
            conds.append("last_seen >= ?")
            params.append(since)
        if model_version is not None:
            conds.append(VERSION_MATCH)
            params.append(model_version)
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        lim = f" LIMIT {int(limit)}" if limit is not None else ""
        rows = self.db.query(
            f"SELECT global_id, prototype, last_seen, last_cam FROM identities {where}"
            f" ORDER BY last_seen DESC, global_id DESC{lim}",
            params,
        )
        gallery = {
            int(g): GlobalIdentity(int(g), from_blob(p), [], float(ls), lc, []) for g, p, ls, lc in rows
        }
        if not gallery:
            return []
        span_rows = self.db.query(
            "SELECT global_id, cam_id, track_id, start_time, end_time FROM ("
            " SELECT a.global_id, t.cam_id, t.track_id, t.start_time, t.end_time, ROW_NUMBER() OVER"
            " (PARTITION BY a.global_id ORDER BY t.end_time DESC) AS rn"
            " FROM assignments a JOIN tracklets t USING (tracklet_id)) WHERE rn <= ?"
            " ORDER BY global_id, end_time",
            (max_spans,),
        )
        for gid, cam, track, start, end in span_rows:
            ident = gallery.get(int(gid))
            if ident is not None:
                ident.members.append((cam, int(track)))
                ident.spans.append((cam, float(start), float(end)))
        return list(gallery.values())

    def tracklets(
        self,
        cam_id: str | None = None,
        run_id: int | None = None,
        global_id: int | None = None,
        model_version: str | None = None,
        t0: float | None = None,
        t1: float | None = None,
        tracklet_ids: list[int] | None = None,
        with_arrays: bool = True,
        with_frame_embeddings: bool = False,
    ) -> list[StoredTracklet]:
        """Stored tracklets ordered by start time, filtered by any of the arguments.

        model_version: load only that version's embedding (tracklets lacking it
        are still returned, with an empty ``embeddings`` dict); None loads all
        versions. t0/t1: tracklets whose span intersects [t0, t1].
        """
        conds, params = [], []
        for col, val in (("t.cam_id", cam_id), ("t.run_id", run_id), ("a.global_id", global_id)):
            if val is not None:
                conds.append(f"{col} = ?")
                params.append(val)
        if t0 is not None:
            conds.append("t.end_time >= ?")
            params.append(t0)
        if t1 is not None:
            conds.append("t.start_time <= ?")
            params.append(t1)
        if tracklet_ids is not None:
            conds.append(f"t.tracklet_id IN ({','.join('?' * len(tracklet_ids))})")
            params.extend(int(i) for i in tracklet_ids)
        extra = ", t.frames, t.timestamps, t.boxes_tlwh" if with_arrays else ""
        extra += ", t.frame_embeddings, t.embedding_frames" if with_frame_embeddings else ""
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        rows = self.db.query(
            f"SELECT {_TRACKLET_COLS}{extra} FROM tracklets t LEFT JOIN assignments a USING (tracklet_id)"
            f" {where} ORDER BY t.start_time, t.tracklet_id",
            params,
        )
        out = [self._tracklet_from_row(r, with_arrays, with_frame_embeddings) for r in rows]
        self._attach_embeddings(out, model_version)
        return out

    @staticmethod
    def _tracklet_from_row(r: tuple, with_arrays: bool, with_frame_embeddings: bool) -> StoredTracklet:
        st = StoredTracklet(
            tracklet_id=int(r[0]), run_id=int(r[1]), cam_id=r[2], track_id=int(r[3]),
            start_time=float(r[4]), end_time=float(r[5]), start_frame=int(r[6]), end_frame=int(r[7]),
            global_id=None if r[8] is None else int(r[8]),
        )
        k = 9
        if with_arrays:
            st.frames, st.timestamps, st.boxes_tlwh = (from_blob(b) for b in r[k:k + 3])
            k += 3
        if with_frame_embeddings:
            st.frame_embeddings, st.embedding_frames = from_blob(r[k]), from_blob(r[k + 1])
        return st

    def _attach_embeddings(self, items: list[StoredTracklet], model_version: str | None) -> None:
        if not items:
            return
        by_id = {s.tracklet_id: s for s in items}
        sql = "SELECT tracklet_id, model_version, vector FROM embeddings"
        params: list = []
        if model_version is not None:
            sql += " WHERE model_version = ?"
            params.append(model_version)
        if len(by_id) < 500:
            sql += (" AND" if params else " WHERE") + f" tracklet_id IN ({','.join('?' * len(by_id))})"
            params.extend(by_id)
        for tid, ver, blob in self.db.query(sql, params):
            s = by_id.get(int(tid))
            if s is not None:
                s.embeddings[ver] = from_blob(blob)

    def identity_history(self, global_id: int) -> list[Sighting]:
        """Where and when an identity was seen: its tracklets in time order."""
        rows = self.db.query(
            "SELECT a.global_id, t.cam_id, t.tracklet_id, t.track_id, t.start_time, t.end_time,"
            " t.start_frame, t.end_frame, t.run_id FROM assignments a JOIN tracklets t USING (tracklet_id)"
            " WHERE a.global_id = ? ORDER BY t.start_time, t.tracklet_id",
            (int(global_id),),
        )
        return [
            Sighting(int(g), c, int(tid), int(tr), float(s), float(e), int(sf), int(ef), int(run))
            for g, c, tid, tr, s, e, sf, ef, run in rows
        ]

    def identity_versions(self) -> dict[str | None, int]:
        """model version -> number of identities whose prototype is of it (None: not recorded)."""
        return {v: int(n) for v, n in
                self.db.query("SELECT model_version, COUNT(*) FROM identities GROUP BY model_version")}

    def identities(self) -> list[IdentityRow]:
        """All identities with their tracklet counts, by global id."""
        rows = self.db.query(
            "SELECT i.global_id, i.first_seen, i.last_seen, i.first_cam, i.last_cam,"
            " (SELECT COUNT(*) FROM assignments a WHERE a.global_id = i.global_id), i.model_version"
            " FROM identities i ORDER BY i.global_id"
        )
        return [IdentityRow(int(g), float(f), float(lt), fc, lc, int(n), mv) for g, f, lt, fc, lc, n, mv in rows]

    def events(self, global_id: int | None = None, kind: str | None = None) -> list[Event]:
        """Events in time order, optionally for one identity and/or kind."""
        conds, params = [], []
        if global_id is not None:
            conds.append("global_id = ?")
            params.append(int(global_id))
        if kind is not None:
            conds.append("kind = ?")
            params.append(kind)
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        rows = self.db.query(
            f"SELECT event_id, kind, global_id, cam_id, t, payload_json FROM events {where} ORDER BY t, event_id",
            params,
        )
        return [Event(int(i), k, int(g), c, float(t), json.loads(p)) for i, k, g, c, t, p in rows]

    def cameras(self) -> list[str]:
        return [r[0] for r in self.db.query("SELECT cam_id FROM cameras ORDER BY cam_id")]

    def runs(self) -> list[dict]:
        """[{run_id, run_key, started, finished, resumed, status}] by run_id.

        status: 'running', 'complete', 'frame_limit', 'interrupted', 'failed' or
        'aborted' (see :mod:`pipeline.store.identity_store`); None for a run of a
        schema-1 store opened read-only (no status column) that never finished.
        """
        cols = {r[1] for r in self.db.query("PRAGMA table_info(runs)")}
        status = "status" if "status" in cols else "CASE WHEN finished IS NULL THEN NULL ELSE 'complete' END"
        rows = self.db.query(f"SELECT run_id, run_key, started, finished, resumed, {status} FROM runs ORDER BY run_id")
        return [dict(zip(("run_id", "run_key", "started", "finished", "resumed", "status"), r)) for r in rows]

    def run_by_key(self, run_key: str) -> dict | None:
        """{run_id, run_key, status, config_json, record_json} of the run ``run_key``, None when there is none
        (``record_json`` is None for a run recorded before schema 6)."""
        cols = {r[1] for r in self.db.query("PRAGMA table_info(runs)")}
        record = "record_json" if "record_json" in cols else "NULL"
        status = "status" if "status" in cols else "CASE WHEN finished IS NULL THEN NULL ELSE 'complete' END"
        rows = self.db.query(f"SELECT run_id, run_key, {status}, config_json, {record} FROM runs WHERE run_key = ?",
                             (run_key,))
        if not rows:
            return None
        return dict(zip(("run_id", "run_key", "status", "config_json", "record_json"), rows[0]))

    def counts(self) -> dict[str, int]:
        """Row count per table (for summaries and tests)."""
        tables = ("cameras", "runs", "tracklets", "embeddings", "identities", "assignments", "events",
                  "model_versions", "crops")
        return {t: int(self.db.query(f"SELECT COUNT(*) FROM {t}")[0][0]) for t in tables}

    def embedding_versions(self) -> list[str]:
        """Model versions that have at least one stored tracklet embedding."""
        return [r[0] for r in self.db.query("SELECT DISTINCT model_version FROM embeddings ORDER BY model_version")]

    def aggregated_embeddings(self, model_version: str) -> tuple[np.ndarray, np.ndarray]:
        """(tracklet_ids (N,) int64, vectors (N, D) float32) of one model version."""
        rows = self.db.query(
            "SELECT tracklet_id, vector FROM embeddings WHERE model_version = ? ORDER BY tracklet_id",
            (model_version,),
        )
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        return ids, np.stack([from_blob(r[1]) for r in rows]).astype(np.float32)
