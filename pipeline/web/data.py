"""What the console's pages and JSON API read from the identity store (read-only, plain dicts).

Thin SQL over :class:`~pipeline.store.IdentityStore` (opened with ``mode="read"``) beside the store's
own queries (:mod:`pipeline.query` gives an identity's report). Thumbnails are the ``crops`` rows of a
tracklet (one small JPEG per final tracklet from :class:`pipeline.runner.thumbnails.ThumbnailKeeper`, or the
adaptation crops when ``adapt`` is on). Merges and splits are ``events`` rows of kind ``merge``/``split``.
"""

from __future__ import annotations

import json
from collections import defaultdict

from pipeline.store import IdentityStore

MERGE_KINDS = ("merge", "split")


def gallery(store: IdentityStore) -> list[dict]:
    """One dict per identity, most recently seen first: global_id, first_seen, last_seen, cameras, tracklets."""
    cams: dict[int, set[str]] = defaultdict(set)
    for gid, cam in store.db.query("SELECT DISTINCT a.global_id, t.cam_id FROM assignments a"
                                   " JOIN tracklets t USING (tracklet_id)"):
        cams[int(gid)].add(cam)
    rows = sorted(store.identities(), key=lambda r: (-r.last_seen, r.global_id))
    return [{"global_id": r.global_id, "first_seen": r.first_seen, "last_seen": r.last_seen,
             "cameras": sorted(cams.get(r.global_id, ())), "tracklets": r.n_tracklets} for r in rows
            if r.n_tracklets > 0]


def cameras(store: IdentityStore) -> list[dict]:
    """Cameras known to the store: cam_id, tracklets, identities seen there, last time seen."""
    rows = store.db.query(
        "SELECT c.cam_id, COUNT(t.tracklet_id), COUNT(DISTINCT a.global_id), MAX(t.end_time) FROM cameras c"
        " LEFT JOIN tracklets t USING (cam_id) LEFT JOIN assignments a USING (tracklet_id)"
        " GROUP BY c.cam_id ORDER BY c.cam_id")
    return [{"cam_id": c, "tracklets": int(n), "identities": int(k), "last_seen": None if t is None else float(t)}
            for c, n, k, t in rows]


def route(sightings: list[dict]) -> list[dict]:
    """Hand-overs between cameras in time order: from_cam, to_cam, left (s), arrived (s), transit_s.

    sightings: an identity's tracklets (cam_id, start_time, end_time) sorted by start time; a move is
    counted where the camera changes, from the latest end seen so far in the previous camera."""
    out: list[dict] = []
    prev_cam, prev_end = None, None
    for s in sightings:
        if prev_cam is not None and s["cam_id"] != prev_cam:
            out.append({"from_cam": prev_cam, "to_cam": s["cam_id"], "left": prev_end, "arrived": s["start_time"],
                        "transit_s": round(s["start_time"] - prev_end, 3)})
            prev_end = s["end_time"]
        else:
            prev_end = s["end_time"] if prev_end is None else max(prev_end, s["end_time"])
        prev_cam = s["cam_id"]
    return out


def _mentions(payload: dict, gid: int) -> bool:
    for v in payload.values():
        if isinstance(v, bool):
            continue
        if isinstance(v, int) and v == gid:
            return True
        if isinstance(v, list) and gid in [x for x in v if isinstance(x, int) and not isinstance(x, bool)]:
            return True
    return False


def merges_splits(store: IdentityStore, gid: int) -> list[dict]:
    """``merge``/``split`` events of this identity or naming it in their payload, in time order."""
    rows = store.db.query(
        f"SELECT event_id, kind, global_id, cam_id, t, payload_json FROM events WHERE kind IN"
        f" ({','.join('?' * len(MERGE_KINDS))}) ORDER BY t, event_id", MERGE_KINDS)
    out = []
    for eid, kind, g, cam, t, payload in rows:
        data = json.loads(payload or "{}")
        if int(g) == gid or _mentions(data, gid):
            out.append({"event_id": int(eid), "kind": kind, "global_id": int(g), "cam_id": cam, "t": float(t),
                        "payload": data})
    return out


def identity_detail(store: IdentityStore, gid: int) -> dict | None:
    """Everything the identity page shows; None when the store has no tracklet of ``gid``."""
    rows = store.db.query(
        "SELECT t.tracklet_id, t.cam_id, t.track_id, t.run_id, t.start_time, t.end_time, t.start_frame, t.end_frame,"
        " t.n_frames, a.distance, (SELECT COUNT(*) FROM crops c WHERE c.tracklet_id = t.tracklet_id)"
        " FROM assignments a JOIN tracklets t USING (tracklet_id) WHERE a.global_id = ?"
        " ORDER BY t.start_time, t.tracklet_id", (int(gid),))
    if not rows:
        return None
    tracklets = [
        {"tracklet_id": int(tid), "cam_id": cam, "track_id": int(tr), "run_id": int(run), "start_time": float(s),
         "end_time": float(e), "frames": [int(sf), int(ef)], "n_frames": int(n),
         "distance": None if d is None else round(float(d), 4), "thumbnails": int(nc)}
        for tid, cam, tr, run, s, e, sf, ef, n, d, nc in rows]
    # the calibrated link probability stored with each assignment (schema 5; None before, or for a new identity)
    probs = store.assignment_confidence([t["tracklet_id"] for t in tracklets])
    for t in tracklets:
        prob = probs.get(t["tracklet_id"], (None, None))[1]
        t["confidence"] = None if prob is None else round(float(prob), 4)
    per_cam: dict[str, float] = defaultdict(float)
    for t in tracklets:
        per_cam[t["cam_id"]] += t["end_time"] - t["start_time"]
    return {
        "global_id": int(gid),
        "first_seen": min(t["start_time"] for t in tracklets),
        "last_seen": max(t["end_time"] for t in tracklets),
        "cameras": sorted(per_cam),
        "seconds_per_camera": {c: round(v, 2) for c, v in sorted(per_cam.items())},
        "route": route(tracklets),
        "tracklets": tracklets,
        "merges_splits": merges_splits(store, gid),
        "absorbed_ids": store.absorbed_ids(gid),
    }


def tracklet_thumbnail(store: IdentityStore, tracklet_id: int) -> bytes | None:
    """The middle stored crop (JPEG bytes) of a tracklet, None when it has none."""
    rows = store.db.query("SELECT jpeg FROM crops WHERE tracklet_id = ? ORDER BY frame", (int(tracklet_id),))
    return None if not rows else bytes(rows[len(rows) // 2][0])


def identity_thumbnail(store: IdentityStore, gid: int) -> bytes | None:
    """The thumbnail of the identity's longest tracklet that has one (JPEG bytes), None when none has."""
    rows = store.db.query(
        "SELECT t.tracklet_id FROM assignments a JOIN tracklets t USING (tracklet_id) WHERE a.global_id = ?"
        " AND EXISTS (SELECT 1 FROM crops c WHERE c.tracklet_id = t.tracklet_id)"
        " ORDER BY t.n_frames DESC, t.tracklet_id LIMIT 1", (int(gid),))
    return None if not rows else tracklet_thumbnail(store, int(rows[0][0]))


def events_after(store: IdentityStore, after_id: int = 0, limit: int = 100) -> list[dict]:
    """Events with event_id > ``after_id``, oldest first (at most ``limit``; with after_id 0: the latest ones)."""
    if after_id <= 0:
        rows = store.db.query("SELECT * FROM (SELECT event_id, kind, global_id, cam_id, t, payload_json FROM events"
                              " ORDER BY event_id DESC LIMIT ?) ORDER BY event_id", (int(limit),))
    else:
        rows = store.db.query("SELECT event_id, kind, global_id, cam_id, t, payload_json FROM events"
                              " WHERE event_id > ? ORDER BY event_id LIMIT ?", (int(after_id), int(limit)))
    return [{"event_id": int(i), "kind": k, "global_id": int(g), "cam_id": c, "t": float(t),
             "payload": json.loads(p or "{}")} for i, k, g, c, t, p in rows]
