"""Questions to the identity store: where and when was an identity seen, who looks like this probe.

Pure functions over an :class:`~pipeline.store.IdentityStore`; the CLI
(``reid-pipeline query``) only formats their dict results. Image-to-video
search (seed 004's use case) ranks stored tracklets by the cosine distance
between a probe embedding and each tracklet's aggregated embedding of the
same model version, and ranks identities by their best tracklet.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from pipeline.core.errors import ReidPipelineError
from pipeline.store import IdentityStore


def _merge_ranges(spans: list[tuple[float, float]], join_gap_s: float) -> list[list[float]]:
    """Union of [start, end] spans, joining those closer than ``join_gap_s``; sorted."""
    out: list[list[float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1] + join_gap_s:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def identity_report(store: IdentityStore, global_id: int, join_gap_s: float = 1.0) -> dict:
    """Where and when ``global_id`` was seen: per camera time ranges, and its tracklets in time order
    (each with its link's distance and calibrated probability).

    An id that was absorbed by a merge resolves to the identity that absorbed it (``resolved_from``:
    the asked id and the change); ``absorbed``: the ids this identity absorbed; ``changes``: the
    merges and splits it took part in (schema 5; empty on older stores)."""
    asked = int(global_id)
    alias = store.alias_of(asked)
    if alias is not None and not store.identity_history(asked):
        global_id = int(alias["current_id"])
    sightings = store.identity_history(global_id)
    if not sightings:
        known = [r.global_id for r in store.identities()]
        hint = f"known ids {known[0]}..{known[-1]}" if known else "the store has no identities"
        raise ReidPipelineError(f"{store.path}: no identity {global_id} ({hint})")
    per_cam: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for s in sightings:
        per_cam[s.cam_id].append((s.start_time, s.end_time))
    route = []
    for s in sightings:
        if not route or route[-1] != s.cam_id:
            route.append(s.cam_id)
    conf = store.assignment_confidence([s.tracklet_id for s in sightings])
    return {
        "global_id": int(global_id),
        "resolved_from": None if asked == int(global_id) else {"id": asked, **alias},
        "absorbed": store.absorbed_ids(global_id),
        "changes": store.identity_changes(global_id),
        "first_seen": min(s.start_time for s in sightings),
        "last_seen": max(s.end_time for s in sightings),
        "route": route,
        "cameras": {cam: _merge_ranges(sp, join_gap_s) for cam, sp in sorted(per_cam.items())},
        "tracklets": [
            {"tracklet_id": s.tracklet_id, "cam_id": s.cam_id, "track_id": s.track_id, "run_id": s.run_id,
             "start_time": s.start_time, "end_time": s.end_time, "frames": [s.start_frame, s.end_frame],
             "distance": conf.get(s.tracklet_id, (None, None))[0],
             "probability": conf.get(s.tracklet_id, (None, None))[1]}
            for s in sightings
        ],
    }


def store_summary(store: IdentityStore) -> dict:
    """Counts, cameras, runs, model versions and one line per identity."""
    idents = store.identities()
    cams_of: dict[int, set[str]] = defaultdict(set)
    for gid, cam in store.db.query("SELECT DISTINCT a.global_id, t.cam_id FROM assignments a JOIN tracklets t"
                                   " USING (tracklet_id)"):
        cams_of[int(gid)].add(cam)
    return {
        "store": str(store.path),
        "counts": store.counts(),
        "cameras": store.cameras(),
        "runs": store.runs(),
        "deployed_version": store.deployed_version(),
        "model_versions": [m.version for m in store.model_versions()],
        "identities": [
            {"global_id": r.global_id, "first_seen": r.first_seen, "last_seen": r.last_seen,
             "tracklets": r.n_tracklets, "cameras": sorted(cams_of.get(r.global_id, ())), "last_cam": r.last_cam}
            for r in idents
        ],
    }


def rank_tracklets(
    store: IdentityStore, probe: np.ndarray, model_version: str, top: int = 10, cam_id: str | None = None
) -> dict:
    """Rank stored tracklets against a probe (D,) embedding of ``model_version``.

    Returns {"model_version", "tracklets": [...top by ascending cosine distance],
    "identities": [...best tracklet per identity, ascending]}. ``cam_id``: only that camera's tracklets
    (ReidPipelineError listing the store's cameras when it has none of that camera).
    """
    if top < 1:
        raise ReidPipelineError(f"top must be a positive number of results, got {top}")
    items = [t for t in store.tracklets(cam_id=cam_id, model_version=model_version, with_arrays=False)
             if model_version in t.embeddings]
    if not items and cam_id is not None and not store.tracklets(cam_id=cam_id, with_arrays=False):
        cams = sorted({t.cam_id for t in store.tracklets(with_arrays=False)})
        raise ReidPipelineError(f"{store.path}: camera {cam_id!r} has no tracklets"
                                f" (cameras with tracklets: {', '.join(cams) or 'none'})")
    if not items:
        versions = store.embedding_versions()
        raise ReidPipelineError(
            f"{store.path}: no tracklet embeddings for model version {model_version!r}"
            f" (stored: {', '.join(versions) or 'none'}); use the checkpoint the run used or --model-version"
        )
    gallery = np.stack([t.embeddings[model_version] for t in items]).astype(np.float64)
    probe = np.asarray(probe, dtype=np.float64).reshape(-1)
    if gallery.shape[1] != probe.shape[0]:
        raise ReidPipelineError(
            f"probe embedding has {probe.shape[0]} dims, stored version {model_version!r} has {gallery.shape[1]}")
    probe = probe / max(np.linalg.norm(probe), 1e-12)
    gallery /= np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
    dist = 1.0 - gallery @ probe
    order = np.argsort(dist, kind="stable")
    ranked = [
        {"rank": k + 1, "distance": float(dist[i]), "tracklet_id": items[i].tracklet_id, "cam_id": items[i].cam_id,
         "track_id": items[i].track_id, "global_id": items[i].global_id, "start_time": items[i].start_time,
         "end_time": items[i].end_time, "frames": [items[i].start_frame, items[i].end_frame]}
        for k, i in enumerate(order)
    ]
    best: dict[int, dict] = {}
    for r in ranked:
        if r["global_id"] is not None and r["global_id"] not in best:
            best[r["global_id"]] = r
    identities = [{"rank": k + 1, "global_id": g, "distance": r["distance"], "best_tracklet": r["tracklet_id"],
                   "cam_id": r["cam_id"]} for k, (g, r) in enumerate(best.items())]
    return {"model_version": model_version, "tracklets": ranked[:top], "identities": identities[:top]}
