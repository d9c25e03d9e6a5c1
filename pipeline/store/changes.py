"""History of identity revisions in the store (schema 5): ``identity_changes`` and ``identity_aliases``.

Every merge or split the matcher's window re-solve (or the batch re-clustering) makes is a row of
``identity_changes``: kind, the event's id, ``into`` / ``from`` ids, camera and time of the first
moved tracklet, the moved tracklet ids (JSON), the evidence (average cosine distance, calibrated
probability) and the full event payload. A merge also records ``absorbed -> current`` in
``identity_aliases``; aliases that pointed at the absorbed id are moved to the new one, so every
alias names an identity that still exists (chains are resolved when written, not when read). A split
(online or by ``recluster``) repairs the aliases to the identity it split (:meth:`ChangesMixin.repair_aliases`):
an alias follows the tracklets its merge moved, or is dropped when the absorbed id holds tracklets again.
"""

from __future__ import annotations

import json
import time


class ChangesMixin:
    """Revision history; mixed into :class:`~pipeline.store.IdentityStore` (writes need mode 'write')."""

    def track_tracklet_ids(self, run_id: int, cam_id: str, track_id: int) -> list[int]:
        """Stored tracklet ids of track (cam_id, track_id) of run ``run_id`` (a track's rows), by start."""
        rows = self.db.query("SELECT tracklet_id FROM tracklets WHERE run_id=? AND cam_id=? AND track_id=?"
                             " ORDER BY start_frame", (run_id, cam_id, int(track_id)))
        return [int(r[0]) for r in rows]

    def has_members(self, global_id: int) -> bool:
        """Whether any tracklet is assigned to identity ``global_id`` now."""
        return bool(self.db.query("SELECT 1 FROM assignments WHERE global_id=? LIMIT 1", (int(global_id),)))

    def record_change(self, run_id: int | None, kind: str, global_id: int, into_id: int, from_id: int, cam_id: str,
                      t: float, tracklet_ids: list[int], distance: float | None = None,
                      probability: float | None = None, payload: dict | None = None) -> int:
        """Append a merge / split to the history (a merge also aliases ``from_id`` -> ``into_id``);
        returns the change_id."""
        if kind not in ("merge", "split"):
            raise ValueError(f"identity change kind {kind!r}: expected 'merge' or 'split'")
        with self.db.transaction() as c:
            cur = c.execute(
                "INSERT INTO identity_changes (run_id, kind, global_id, into_id, from_id, cam_id, t, tracklets_json,"
                " distance, probability, payload_json, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, kind, int(global_id), int(into_id), int(from_id), cam_id, float(t),
                 json.dumps([int(i) for i in tracklet_ids]), distance, probability,
                 json.dumps(payload or {}, default=str), time.time()))
            change_id = int(cur.lastrowid)
            if kind == "merge":
                c.execute("UPDATE identity_aliases SET current_id = ? WHERE current_id = ?", (int(into_id), int(from_id)))
                c.execute("INSERT INTO identity_aliases (absorbed_id, current_id, change_id, t) VALUES (?, ?, ?, ?)"
                          " ON CONFLICT(absorbed_id) DO UPDATE SET current_id=excluded.current_id,"
                          " change_id=excluded.change_id, t=excluded.t", (int(from_id), int(into_id), change_id, t))
            c.execute("DELETE FROM identity_aliases WHERE absorbed_id = ?", (int(into_id),))  # into exists again
            if kind == "split":  # tracklets left from_id: aliases to it may now name the wrong identity
                self.repair_aliases([int(from_id)])
            return change_id

    def repair_aliases(self, current_ids: list[int] | None = None) -> dict[str, int]:
        """Keep ``identity_aliases`` true after tracklets moved (a split, a re-clustering): an alias
        ``absorbed -> current`` stands for the tracklets its merge moved (the change's ``tracklets_json``).
        When ``absorbed`` holds tracklets again, the alias is dropped; when most of those tracklets now
        belong to another identity, the alias is re-pointed there; when none is assigned any more, it is
        dropped. ``current_ids``: only aliases to those identities (None: all). An alias whose merge recorded
        no tracklets (an old store) is left alone. Returns {"repointed": n, "dropped": n}."""
        if not self._has_table("identity_aliases"):
            return {"repointed": 0, "dropped": 0}
        sql = ("SELECT a.absorbed_id, a.current_id, c.tracklets_json FROM identity_aliases a"
               " LEFT JOIN identity_changes c ON c.change_id = a.change_id")
        params: list = []
        if current_ids is not None:
            ids = sorted({int(g) for g in current_ids})
            if not ids:
                return {"repointed": 0, "dropped": 0}
            sql += f" WHERE a.current_id IN ({','.join('?' * len(ids))})"
            params = ids
        out = {"repointed": 0, "dropped": 0}
        with self.db.transaction() as c:
            for absorbed, current, tjson in c.execute(sql, params).fetchall():
                tids = [int(t) for t in json.loads(tjson or "[]")]
                if c.execute("SELECT 1 FROM assignments WHERE global_id=? LIMIT 1", (int(absorbed),)).fetchone():
                    holder = int(absorbed)  # the absorbed id exists again
                elif not tids:
                    continue
                else:
                    rows = c.execute("SELECT global_id, COUNT(*) FROM assignments WHERE tracklet_id IN"
                                     f" ({','.join('?' * len(tids))}) GROUP BY global_id", tids).fetchall()
                    votes = {int(g): int(n) for g, n in rows}
                    if not votes:
                        holder = None
                    elif votes.get(int(current), 0) == max(votes.values()):
                        continue  # still true
                    else:
                        holder = min(votes, key=lambda g: (-votes[g], g))
                if holder is None or holder == int(absorbed):
                    c.execute("DELETE FROM identity_aliases WHERE absorbed_id=?", (int(absorbed),))
                    out["dropped"] += 1
                else:
                    c.execute("UPDATE identity_aliases SET current_id=? WHERE absorbed_id=?", (holder, int(absorbed)))
                    out["repointed"] += 1
        return out

    def first_ids(self, tracklet_ids: list[int]) -> dict[int, int]:
        """tracklet_id -> the id it had before its first recorded merge moved it (the identity it appeared
        with), for those of ``tracklet_ids`` that a merge moved."""
        if not tracklet_ids or not self._has_table("identity_changes"):
            return {}
        want = {int(t) for t in tracklet_ids}
        out: dict[int, int] = {}
        for from_id, tjson in self.db.query("SELECT from_id, tracklets_json FROM identity_changes WHERE kind='merge'"
                                            " ORDER BY change_id"):
            for t in json.loads(tjson or "[]"):
                if int(t) in want and int(t) not in out:
                    out[int(t)] = int(from_id)
        return out

    def _has_table(self, name: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)))

    def alias_of(self, global_id: int) -> dict | None:
        """{absorbed_id, current_id, change_id, t} when ``global_id`` was absorbed by another identity, else None."""
        if not self._has_table("identity_aliases"):
            return None
        rows = self.db.query("SELECT absorbed_id, current_id, change_id, t FROM identity_aliases WHERE absorbed_id=?",
                             (int(global_id),))
        return dict(zip(("absorbed_id", "current_id", "change_id", "t"), rows[0])) if rows else None

    def absorbed_ids(self, global_id: int) -> list[int]:
        """Ids absorbed (directly or through a chain) into ``global_id``, ascending."""
        if not self._has_table("identity_aliases"):
            return []
        rows = self.db.query("SELECT absorbed_id FROM identity_aliases WHERE current_id=? ORDER BY absorbed_id",
                             (int(global_id),))
        return [int(r[0]) for r in rows]

    def identity_changes(self, global_id: int | None = None) -> list[dict]:
        """Merge / split rows (all, or those whose into or from id is ``global_id``), in time order."""
        if not self._has_table("identity_changes"):
            return []
        where, params = "", []
        if global_id is not None:
            where, params = "WHERE into_id = ? OR from_id = ?", [int(global_id), int(global_id)]
        rows = self.db.query(
            "SELECT change_id, run_id, kind, global_id, into_id, from_id, cam_id, t, tracklets_json, distance,"
            f" probability, payload_json FROM identity_changes {where} ORDER BY t, change_id", params)
        keys = ("change_id", "run_id", "kind", "global_id", "into", "from", "cam_id", "t", "tracklets", "distance",
                "probability", "payload")
        out = []
        for r in rows:
            d = dict(zip(keys, r))
            d["tracklets"], d["payload"] = json.loads(d["tracklets"]), json.loads(d["payload"])
            out.append(d)
        return out

    def assignment_confidence(self, tracklet_ids: list[int]) -> dict[int, tuple[float | None, float | None]]:
        """tracklet_id -> (distance, probability) of its assignment (probability None on a pre-5 store)."""
        if not tracklet_ids:
            return {}
        cols = {r[1] for r in self.db.query("PRAGMA table_info(assignments)")}
        prob = "probability" if "probability" in cols else "NULL"
        rows = self.db.query(f"SELECT tracklet_id, distance, {prob} FROM assignments WHERE tracklet_id IN"
                             f" ({','.join('?' * len(tracklet_ids))})", [int(i) for i in tracklet_ids])
        return {int(t): (d, p) for t, d, p in rows}
