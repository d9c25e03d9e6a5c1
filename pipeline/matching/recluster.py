"""Batch mode: a final global re-clustering of all of a run's tracklets under space-time constraints.

Online, a tracklet's identity is decided once, when it finishes, against the gallery of that
moment. At the end of a batch run every tracklet is known, so the whole run can be clustered
at once (:func:`recluster_run`):

1. the run's stored final tracklets with an embedding of one model version (the deployed one
   when every tracklet has it, else the version most of them have; a tracklet without it
   stays a cluster of its own);
2. cosine distances ``1 - cos`` between their L2-normalised aggregated embeddings, (N, N);
3. **cannot-link** pairs, from :meth:`CrossCameraMatcher.coexists` (the matcher's own rule, not a
   copy): two tracklets of one camera that overlap in time, or of two cameras whose views do not
   overlap (``overlapping_cameras``) at the same time, are two people;
4. **constrained average-linkage agglomeration** (:func:`agglomerate`): repeatedly merge the two
   clusters with the smallest mean pairwise distance, refusing any merge that would put a
   cannot-link pair in one cluster or (with a topology or ``reentry_max_gap_s``) break a hand-over
   between consecutive sightings (:meth:`CrossCameraMatcher.transit_penalty` infinite); stop when
   the smallest admissible distance exceeds the threshold. Exact by construction: no cluster ever
   holds a cannot-link pair (scipy's linkage on a matrix with "infinite" cannot-link entries can
   still merge through them under average linkage, so it is not used);
5. the threshold: ``threshold`` when given (``--threshold``, ``recluster.threshold``), else, when
   the matcher calibrates (``auto_threshold``), the ``false_match_rate`` quantile of the cannot-link
   pairs' distances of this run (the matcher's label-free rule, :class:`NegativeDistanceCalibrator`,
   on tracklet pairs instead of tracklet-prototype pairs), else ``MatcherConfig.threshold``. The
   calibrated rate depends on the gallery size (``reference_identities``,
   :func:`~pipeline.matching.calibration.gallery_rate`); here the gallery is the clustering's own
   result, so the threshold is its fixed point: first at as many identities as tracklets (the
   strictest), then at the number of clusters that gave, until the threshold stops changing (each
   round can only loosen it and merge more, so it ends; at most :data:`MAX_THRESHOLD_ROUNDS`).
   Deterministic from embeddings and times, so still idempotent.

Ids: clusters, in order of their first tracklet, keep the old global id that most of their
tracklets had (ties: the smaller id), when no earlier cluster took it; otherwise the id its first
tracklet appeared with before a merge moved it, when that id is free (as the online revision: a track
that leaves an identity takes back its first id), else the store allocates a new id. So a run whose clustering does not change keeps every id, and re-running the
re-clustering changes nothing (idempotent: clustering reads only embeddings and times, never the
current ids). Identities left without any tracklet (in any run) are deleted; prototypes, first/
last seen and cameras of the touched identities are recomputed from their members (prototype =
normalised mean of the members' embeddings of the chosen version).

Events: one ``merge`` per identity absorbed into another (payload: ``ids`` [into, absorbed],
``into``, ``absorbed``, ``tracklets`` moved, ``threshold``), at the camera and start time of the
first moved tracklet; one ``split`` per old identity whose tracklets now belong to several
(``ids``: old first, then the others; ``tracklet_ids``: the tracklets that left it). Aliases of absorbed
ids follow the tracklets their merges moved (:meth:`~pipeline.store.IdentityStore.repair_aliases`). In the store and appended to ``events.jsonl``.
``mot_global/<cam>.txt`` is rewritten from the stored tracklets' frames and boxes (one box per
(camera, frame, global id), the earlier-starting tracklet's box first), rows sorted by frame then id.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.core.types import TrackletEmbedding, unit_mean
from pipeline.matching.calibration import NegativeDistanceCalibrator
from pipeline.matching.clustering import agglomerate, assign_ids, cannot_link_matrix, cosine_distances, handover_check
from pipeline.matching.config import MatcherConfig

log = logging.getLogger(__name__)

__all__ = ["ReclusterResult", "suspected_overlaps", "agglomerate", "cannot_link_matrix", "choose_threshold", "cluster_at_calibrated_threshold",
           "cosine_distances", "recluster_run", "refresh_identities", "write_global_mot"]


@dataclass
class ReclusterResult:
    """What one re-clustering did.

    labels: tracklet_id -> global id after; before: tracklet_id -> global id before;
    merges / splits: the events' payloads; removed: identities deleted (no tracklet left);
    threshold_source: "given", "calibrated" (cannot-link quantile) or "fixed" (MatcherConfig.threshold).
    """

    run_id: int
    model_version: str
    threshold: float
    threshold_source: str
    cannot_link_pairs: int
    labels: dict[int, int] = field(default_factory=dict)
    before: dict[int, int] = field(default_factory=dict)
    merges: list[dict] = field(default_factory=list)
    splits: list[dict] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    unembedded: int = 0
    mot_files: list[str] = field(default_factory=list)
    suspected_overlaps: list = field(default_factory=list)  # SuspectedOverlap: camera pairs that look overlapping

    @property
    def changed(self) -> int:
        """Tracklets whose global id changed."""
        return sum(1 for t, g in self.labels.items() if self.before.get(t) != g)

    def summary(self) -> dict:
        return {"run_id": self.run_id, "model_version": self.model_version, "threshold": round(self.threshold, 6),
                "threshold_source": self.threshold_source, "tracklets": len(self.labels),
                "identities_before": len(set(self.before.values())), "identities_after": len(set(self.labels.values())),
                "changed_tracklets": self.changed, "merges": len(self.merges), "splits": len(self.splits),
                "removed_identities": self.removed, "cannot_link_pairs": self.cannot_link_pairs,
                "unembedded_tracklets": self.unembedded, "mot_files": self.mot_files,
                "suspected_overlaps": [o.to_json() for o in self.suspected_overlaps]}


def suspected_overlaps(items: list[TrackletEmbedding], dist: np.ndarray, cannot: np.ndarray) -> list:
    """Camera pairs whose tracklets seen at once look like the same people (:mod:`pipeline.matching.overlap_check`)
    over a whole run: ``cannot`` (N, N) the coexistence pairs (one camera, or two not declared overlapping),
    ``dist`` their cosine distances."""
    from pipeline.matching.overlap_check import OverlapMonitor

    monitor = OverlapMonitor(keep_same=None, keep_per_pair=None)
    for i, j in zip(*np.nonzero(np.triu(cannot, 1))):
        monitor.add(items[i].cam_id, items[j].cam_id, float(dist[i, j]))
    return monitor.suspects()


# ---------------------------------------------------------------------------------------- threshold
#: rounds of the calibrated threshold's fixed point (threshold -> clusters -> gallery size -> threshold)
MAX_THRESHOLD_ROUNDS = 8


def _pair_calibrator(dist: np.ndarray, cannot: np.ndarray, config: MatcherConfig) -> NegativeDistanceCalibrator:
    """The matcher's label-free calibration fed with the (N, N) cannot-link pairs' distances."""
    cal = NegativeDistanceCalibrator(config.auto_threshold.model_copy(update={"warmup": "threshold"}),
                                     config.threshold)
    iu = np.triu_indices(len(dist), k=1)
    cal.add(dist[iu][cannot[iu]])
    return cal


def choose_threshold(dist: np.ndarray, cannot: np.ndarray, config: MatcherConfig,
                     threshold: float | None = None, identities: int | None = None) -> tuple[float, str]:
    """(threshold, source): ``threshold`` ("given"); else with ``config.auto_threshold`` the matcher's
    calibration rule on the cannot-link pairs' distances at the rate for a gallery of ``identities``
    (None: the unscaled ``false_match_rate``) ("calibrated"; "fixed" = its fallback when there are fewer
    than ``min_negatives`` pairs); else ``config.threshold`` ("fixed")."""
    if threshold is not None:
        return float(threshold), "given"
    if config.auto_threshold is None:
        return float(config.threshold), "fixed"
    cal = _pair_calibrator(dist, cannot, config)
    return float(cal.threshold_for(identities)), "calibrated" if cal.calibrated else "fixed"


def cluster_at_calibrated_threshold(dist: np.ndarray, cannot: np.ndarray, blocked: np.ndarray, check,
                                    config: MatcherConfig, has: np.ndarray,
                                    threshold: float | None = None) -> tuple[list[list[int]], float, str]:
    """(clusters, threshold, source) of :func:`agglomerate` on (N, N) ``dist`` with ``blocked`` pairs, the
    threshold from :func:`choose_threshold` on the embedded tracklets (``has``, (N,) bool) and their
    cannot-link pairs. A calibrated threshold is taken at its fixed point over the gallery size (module
    doc, step 5): first for N identities, then for the number of clusters the last threshold gave."""
    sub = np.ix_(has, has)
    if threshold is not None or config.auto_threshold is None:
        thr, source = choose_threshold(dist[sub], cannot[sub], config, threshold)
        return agglomerate(dist, blocked, thr, check), thr, source
    cal = _pair_calibrator(dist[sub], cannot[sub], config)
    thr = float(cal.threshold_for(len(dist)))
    clusters = agglomerate(dist, blocked, thr, check)
    if not cal.calibrated:  # the fallback does not depend on the gallery size
        return clusters, thr, "fixed"
    for _ in range(MAX_THRESHOLD_ROUNDS):
        nxt = float(cal.threshold_for(len(clusters)))
        if nxt == thr:
            break
        thr, clusters = nxt, agglomerate(dist, blocked, nxt, check)
    return clusters, thr, "calibrated"


# ---------------------------------------------------------------------------------------- store
def _pick_version(store, tracklets) -> str | None:
    counts = Counter(v for t in tracklets for v in t.embeddings)
    if not counts:
        return None
    deployed = store.deployed_version() if hasattr(store, "deployed_version") else None
    if deployed is not None and counts.get(deployed) == len(tracklets):
        return deployed
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def recluster_run(store, run_id: int, config: MatcherConfig, threshold: float | None = None,
                  out_dir: Path | None = None) -> ReclusterResult:
    """Re-cluster run ``run_id``'s stored tracklets and rewrite its global ids (see the module doc).

    ``store``: an :class:`~pipeline.store.IdentityStore` opened for writing; ``out_dir``: the run's
    outputs folder (``mot_global/`` is rewritten and ``events.jsonl`` appended when present there, or
    created in a folder that has no ``mot_global/`` yet: a fresh ``--out``);
    None = the store only. The store changes in one transaction.
    """
    from pipeline.matching.matcher import CrossCameraMatcher

    # a folder that is not a run's outputs folder yet (a fresh --out): events.jsonl is created there
    fresh_out = out_dir is not None and not (Path(out_dir) / "mot_global").exists()
    tracklets = store.tracklets(run_id=run_id)
    tracklets.sort(key=lambda t: (t.start_time, t.cam_id, t.track_id, t.tracklet_id))
    version = _pick_version(store, tracklets) or ""
    matcher = CrossCameraMatcher(config)
    dim = next((len(t.embeddings[version]) for t in tracklets if version in t.embeddings), 0)
    items = [TrackletEmbedding(t.cam_id, t.track_id, t.start_time, t.end_time,
                               np.asarray(t.embeddings.get(version, np.zeros(dim)), np.float32)) for t in tracklets]
    has = np.array([version in t.embeddings for t in tracklets], dtype=bool)
    dist = cosine_distances(np.stack([it.vector for it in items])) if items else np.zeros((0, 0))
    cannot = cannot_link_matrix(items, matcher)
    blocked = cannot | ~has[:, None] | ~has[None, :]  # a tracklet without the version stays alone
    np.fill_diagonal(blocked, False)
    clusters, thr, source = cluster_at_calibrated_threshold(dist, cannot, blocked, handover_check(items, matcher),
                                                            config, has, threshold)
    old = [t.global_id for t in tracklets]
    picks = assign_ids(clusters, old)
    res = ReclusterResult(run_id, version, thr, source, int(np.triu(cannot, 1).sum()),
                          before={t.tracklet_id: g for t, g in zip(tracklets, old) if g is not None},
                          unembedded=int((~has).sum()),
                          suspected_overlaps=suspected_overlaps(items, dist, cannot & has[:, None] & has[None, :]))
    with store.transaction():
        labels: dict[int, int] = {}
        back = _first_ids_back(store, tracklets, clusters, picks)
        for k, (members, pick) in enumerate(zip(clusters, picks)):
            if pick is None:
                first = tracklets[members[0]]
                proto = unit_mean(np.stack([items[i].vector for i in members]))
                pick = store.new_identity(proto, first.start_time, first.cam_id, back.get(k), version or None)
            for i in members:
                labels[tracklets[i].tracklet_id] = pick
                if old[i] != pick:
                    store.assign(tracklets[i].tracklet_id, pick, None)
        res.labels = labels
        res.merges, res.splits = _merge_split_events(tracklets, clusters, old, labels, thr)
        touched = sorted({g for g in old if g is not None} | set(labels.values()))
        res.removed = refresh_identities(store, touched, version)
        for ev in res.merges + res.splits:
            store.add_event(ev["kind"], ev["global_id"], ev["cam_id"], ev["t"], ev["payload"])
            if hasattr(store, "record_change"):  # the revision history and aliases (schema 5)
                pl = ev["payload"]
                if ev["kind"] == "merge":
                    into, src = pl["into"], pl["absorbed"]
                else:
                    into, src = next((g for g in pl["into"] if g != pl["from"]), pl["from"]), pl["from"]
                store.record_change(run_id, ev["kind"], ev["global_id"], into, src, ev["cam_id"], ev["t"],
                                    pl.get("tracklet_ids", []), payload=pl)
        if hasattr(store, "repair_aliases"):  # aliases follow the tracklets their merges moved
            store.repair_aliases(touched)
    if out_dir is not None:
        out_dir = Path(out_dir)
        res.mot_files = [str(p) for p in write_global_mot(tracklets, labels, out_dir / "mot_global")]
        events_path = out_dir / "events.jsonl"
        if (events_path.is_file() or fresh_out) and (res.merges or res.splits):
            from pipeline.sinks.events import EventSink

            sink = EventSink(events_path, append=True)
            try:
                for ev in res.merges + res.splits:
                    sink.emit(ev["kind"], ev["global_id"], ev["cam_id"], ev["t"], **ev["payload"])
            finally:
                sink.close()
    return res


def _first_ids_back(store, tracklets, clusters, picks) -> dict[int, int]:
    """cluster index -> a freed id for a cluster that needs a new one: the id its first tracklet appeared
    with before a merge moved it (the online revision's rule: a track that leaves an identity takes back its
    first id), when no cluster keeps that id and the store has no identity of that id."""
    if not hasattr(store, "first_ids"):
        return {}
    need = [k for k, p in enumerate(picks) if p is None]
    first = store.first_ids([tracklets[i].tracklet_id for k in need for i in clusters[k]]) if need else {}
    taken = {p for p in picks if p is not None}
    out: dict[int, int] = {}
    for k in need:
        for i in clusters[k]:
            gid = first.get(tracklets[i].tracklet_id)
            if gid is None or gid in taken:
                continue
            if store.db.query("SELECT 1 FROM identities WHERE global_id=?", (gid,)) or store.has_members(gid):
                continue
            out[k] = gid
            taken.add(gid)
            break
    return out


def _merge_split_events(tracklets, clusters, old, labels, thr) -> tuple[list[dict], list[dict]]:
    """merge: per (new id, absorbed old id), at the first moved tracklet (a cluster under a fresh id
    absorbs the old ids other than the one it split from); split: per old id
    now spread over several ids, at its first tracklet. Sorted by (time, camera, id)."""
    merges, splits = [], []
    for members in clusters:
        new = labels[tracklets[members[0]].tracklet_id]
        votes = Counter(old[i] for i in members if old[i] is not None)
        # a fresh id (its main old id was taken by an earlier cluster) is a split off that id, not a merge
        source = new if new in votes or not votes else sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        moved: dict[int, list] = {}
        for i in members:
            if old[i] is not None and old[i] not in (new, source):
                moved.setdefault(old[i], []).append(tracklets[i])
        for gid in sorted(moved):
            first = moved[gid][0]
            merges.append({"kind": "merge", "global_id": new, "cam_id": first.cam_id, "t": first.start_time,
                           "payload": {"ids": [new, gid], "into": new, "absorbed": gid,
                                       "tracklets": len(moved[gid]), "threshold": round(thr, 6),
                                       "tracklet_ids": [t.tracklet_id for t in moved[gid]], "by": "recluster"}})
    by_old: dict[int, list] = {}
    for i, t in enumerate(tracklets):
        if old[i] is not None:
            by_old.setdefault(old[i], []).append(t)
    for gid in sorted(by_old):
        new_ids = sorted({labels[t.tracklet_id] for t in by_old[gid]})
        if len(new_ids) > 1:
            first = by_old[gid][0]
            others = [g for g in new_ids if g != gid]
            left = [t.tracklet_id for t in by_old[gid] if labels[t.tracklet_id] != gid]
            splits.append({"kind": "split", "global_id": gid, "cam_id": first.cam_id, "t": first.start_time,
                           "payload": {"ids": [gid] + others, "from": gid, "into": new_ids,
                                       "tracklets": len(left), "tracklet_ids": left, "by": "recluster"}})
    key = lambda e: (e["t"], e["cam_id"], e["global_id"], e["kind"])  # noqa: E731
    return sorted(merges, key=key), sorted(splits, key=key)


def refresh_identities(store, gids: list[int], version: str) -> list[int]:
    """Recompute prototype and first/last seen of ``gids`` from all their members; delete those
    without a member. Returns the deleted ids."""
    removed = []
    for gid in gids:
        members = store.tracklets(global_id=gid, model_version=version or None, with_arrays=False)
        if not members:
            with store.transaction() as c:
                c.execute("DELETE FROM identities WHERE global_id = ?", (gid,))
            removed.append(gid)
            continue
        vecs = [m.embeddings[version] for m in members if version in m.embeddings]
        first = min(members, key=lambda m: (m.start_time, m.cam_id))
        last = max(members, key=lambda m: (m.end_time, m.cam_id))
        sets = "first_seen=?, first_cam=?, last_seen=?, last_cam=?"
        params: list = [first.start_time, first.cam_id, last.end_time, last.cam_id]
        if vecs:
            from pipeline.store.records import to_blob

            sets += ", prototype=?, model_version=?"
            params += [to_blob(unit_mean(np.stack(vecs))), version]
        with store.transaction() as c:
            c.execute(f"UPDATE identities SET {sets} WHERE global_id = ?", (*params, gid))
    return removed


def write_global_mot(tracklets, labels: dict[int, int], mot_dir: Path) -> list[Path]:
    """Rewrite ``mot_dir/<cam>.txt`` for every camera of ``tracklets`` (StoredTracklet with arrays)
    with global ids ``labels[tracklet_id]``: one box per (camera, frame, id), the earlier-starting
    tracklet's first; rows sorted by (frame, id). Each file is replaced atomically. Returns the paths."""
    from pipeline.sinks.mot import format_mot_row

    mot_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[tuple[int, int], np.ndarray]] = {}
    for t in sorted(tracklets, key=lambda t: (t.start_time, t.cam_id, t.track_id, t.tracklet_id)):
        gid = labels.get(t.tracklet_id)
        cam_rows = rows.setdefault(t.cam_id, {})
        if gid is None or t.frames is None:
            continue
        for f, box in zip(t.frames, t.boxes_tlwh):
            cam_rows.setdefault((int(f), gid), box)
    paths = []
    for cam in sorted(rows):
        path = mot_dir / f"{cam}.txt"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(format_mot_row(f, g, rows[cam][(f, g)], 1.0) for f, g in sorted(rows[cam]))
        os.replace(tmp, path)
        paths.append(path)
    return paths


def recluster_after_run(cfg, store, run_id: int, out_dir: Path, events=None) -> dict | None:
    """The runner's hook at the end of a complete run: with ``mode: batch`` and ``recluster.enabled``,
    :func:`recluster_run` with the run's matcher config and ``recluster.threshold``; returns the
    summary (with ``seconds``), else None. ``events``: one more event sink (``emit``, e.g. MQTT) that
    gets the merge/split events too."""
    import time

    settings = getattr(cfg, "recluster", None)
    if cfg.mode != "batch" or settings is None or not settings.enabled:
        return None
    t0 = time.perf_counter()
    res = recluster_run(store, run_id, cfg.matcher_config(), threshold=settings.threshold, out_dir=out_dir)
    for ev in (res.merges + res.splits) if events is not None else []:
        events.emit(ev["kind"], ev["global_id"], ev["cam_id"], ev["t"], **ev["payload"])
    summary = {**res.summary(), "seconds": round(time.perf_counter() - t0, 3)}
    log.info("re-clustered run %d: identities %d -> %d (%d merges, %d splits) at threshold %.4f (%s)", run_id,
             summary["identities_before"], summary["identities_after"], summary["merges"], summary["splits"],
             res.threshold, res.threshold_source)
    return summary
