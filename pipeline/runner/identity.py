"""Tracklets -> global identities: aggregate, match across cameras, store atomically, emit events.

Used by :mod:`pipeline.runner.loop` only. For every batch of tracklets (cumulative
partials and finals from all cameras, in one runner iteration):

1. tracklets without any embedding are skipped (counted);
2. the per-frame embeddings are aggregated into one (D,) vector;
3. a tracklet already stored under this run (resumed batch job) is bound to
   its stored global id, so a re-run reproduces the same ids and rows;
4. :meth:`CrossCameraMatcher.match_detailed` assigns global ids;
5. per tracklet, ONE store transaction writes tracklet, embedding, identity,
   assignment and events; then the JSON-lines events, the timeline and (for
   finals) the global-id MOT rows are written.

Events: ``appear`` the first time a (camera, track) gets an identity in this
session; ``handover`` (with ``from_cam``, ``transit_s``) when that identity was
last seen in another camera; ``leave`` when the track's final tracklet closes.

Revisions (``matching.revise``, :mod:`pipeline.matching.revise`): after each matcher call the
assigner applies the matcher's :class:`~pipeline.matching.revise.IdentityChange` list before
storing the new tracklets: the moved tracklets' assignments change (with the change's distance
and probability), the touched identities are recomputed from their members (an identity left
without members is deleted; it lives on as an alias), the change goes to the store's history
(``identity_changes``, ``identity_aliases``) and a ``merge`` / ``split`` event (ids involved,
tracklets moved, distances, probability) to the store and ``events.jsonl``. Each final
tracklet long enough to cut gives the link probability a same-person sample (the distance
between its two halves). :meth:`IdentityAssigner.rewrite_global_mot` brings ``mot_global/`` up to
the current assignments (at checkpoints and at the end of a run): incrementally, from the final
tracklets the open horizon still reaches (:mod:`pipeline.sinks.global_mot`), so its cost does not grow
with the run's length; the files are byte-identical to a full rewrite from the store.

Memory stays bounded over a live run of any length: a track leaves ``announced`` and ``open_tracks``
with its final tracklet, the one-box-per-(frame, id) bookkeeping keeps only frames an open track can
still reach (:meth:`IdentityAssigner.forget_written_before`), and the global-MOT rewrite keeps only the
tracklets of the open horizon.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from pipeline.matching.recluster import refresh_identities
from pipeline.runner.announce import RevisionAnnouncer

from pipeline.sinks import EventSink, MOTWriter, TimelineRecorder
from pipeline.sinks.global_mot import GlobalMotFile, LiveTracklet
from pipeline.core.types import GlobalIdentity, Tracklet, TrackletEmbedding

log = logging.getLogger(__name__)

OVERLAP_CHECK_EVERY_S = 30.0  # matcher clock between two looks for undeclared overlapping cameras


def _round(res) -> float | None:
    p = getattr(res, "probability", None)
    return None if p is None else round(float(p), 4)


@dataclass
class IdentityStats:
    tracklets_stored: int = 0
    finals: int = 0
    partials: int = 0
    skipped_no_embedding: int = 0
    new_identities: int = 0
    handovers: int = 0
    resumed: int = 0
    duplicate_rows_dropped: int = 0
    merges: int = 0
    splits: int = 0
    tracklets_moved: int = 0
    global_mot_rewrites: int = 0
    global_mot_reloads: int = 0  # rewrites of a camera that reloaded its tracklets from the store (past revised)
    global_ids: set[int] = field(default_factory=set)


class IdentityAssigner:
    """Owns the matcher <-> store <-> identity sinks hand-off for one run."""

    def __init__(
        self,
        store,
        matcher,
        aggregator,
        run_id: int,
        model_version: str,
        events: EventSink | None = None,
        timeline: TimelineRecorder | None = None,
        global_mot: dict[str, MOTWriter] | None = None,
        crops=None,
    ) -> None:
        self.store = store
        self.matcher = matcher
        self.aggregator = aggregator
        self.run_id = run_id
        self.model_version = model_version
        self.events = events
        self.timeline = timeline
        self.global_mot = global_mot or {}
        self.crops = crops  # pipeline.adaptation.crops.CropKeeper: crops stored with final tracklets
        self.announced: set[tuple[str, int]] = set()  # tracks whose 'appear' was emitted (ids: the matcher's map)
        self._written: dict[tuple[str, int], set[int]] = {}
        self.open_tracks: set[tuple[str, int]] = set()  # tracks seen as partials whose final has not come
        self.stats = IdentityStats()
        self._gmot: dict[str, GlobalMotFile] = {}  # incremental mot_global rewrite per camera (revision on)
        self._gmot_stale: set[str] = set()  # cameras whose frozen rows a revision changed: reload from the store
        self._gmot_pending: set[str] = set()  # cameras with a final tracklet or a revision since the last rewrite
        self._open_bound: dict[str, int] = {}  # per camera: every open track starts at or after this frame
        self._clock = float("-inf")  # the latest end time seen (the matcher's clock)
        cfg = getattr(matcher, "config", None)
        delay = cfg.revise.announce_after_s if cfg is not None and cfg.revise.enabled else 0.0
        self.announcer = RevisionAnnouncer(delay) if delay > 0 else None  # None: announce revisions when made
        self.overlaps: dict[tuple[str, str], object] = {}  # camera pairs that look overlapping (warned once each)
        self.overlap_messages: tuple[str, ...] = ()  # their warnings, replaced whole (the console thread reads it)
        self._overlaps_checked_at = float("-inf")

    def process(self, partials: list[Tracklet], finals: list[Tracklet]) -> None:
        """Assign, store and announce one iteration's tracklets (finals after partials)."""
        batch = [(t, False) for t in partials] + [(t, True) for t in finals]
        todo = []
        for tracklet, is_final in batch:
            if tracklet.embeddings.size == 0:
                self.stats.skipped_no_embedding += 1
                continue
            vector = np.asarray(self.aggregator.aggregate(tracklet.embeddings), dtype=np.float32)
            found = self.store.find_tracklet(
                self.run_id, tracklet.cam_id, tracklet.track_id, int(tracklet.frames[0])
            )
            key = (tracklet.cam_id, int(tracklet.track_id))
            if found is not None and found[1] is not None and key not in self.announced:
                self.matcher.bind(tracklet.cam_id, tracklet.track_id, found[1])  # resumed batch job
                self.stats.resumed += 1
            todo.append((tracklet, is_final, vector))
        if not todo:
            return
        self._clock = max([self._clock] + [t.end_time for t, _, _ in todo])
        items = [
            TrackletEmbedding(t.cam_id, int(t.track_id), t.start_time, t.end_time, v) for t, _, v in todo
        ]
        results = self.matcher.match_detailed(items)
        changes = self.matcher.pop_changes() if hasattr(self.matcher, "pop_changes") else []
        if changes:
            self._apply_changes(changes)
        if self.announcer is not None and self.announcer.pending:
            self._announce_revisions(self.announcer.due(self._clock, self.store.has_members))
        if self._clock >= self._overlaps_checked_at + OVERLAP_CHECK_EVERY_S:
            self.check_overlaps()
        for (tracklet, is_final, vector), res in zip(todo, results):
            self._commit(tracklet, is_final, vector, res)
            key = (tracklet.cam_id, int(tracklet.track_id))
            if is_final:
                self.open_tracks.discard(key)
                self.announced.discard(key)  # a track's final tracklet is its last: nothing more to announce
                self._same_track_sample(tracklet)
            else:
                self.open_tracks.add(key)

    def _same_track_sample(self, tracklet: Tracklet) -> None:
        """The cosine distance between the aggregated halves of a final tracklet (>= 4 embedded
        frames): a same-person sample for the matcher's link probability."""
        emb = np.asarray(tracklet.embeddings)
        if emb.ndim != 2 or len(emb) < 4 or not hasattr(self.matcher, "add_same_track_distances"):
            return
        half = len(emb) // 2
        a, b = (np.asarray(self.aggregator.aggregate(x), dtype=np.float64) for x in (emb[:half], emb[half:]))
        na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
        if na > 0 and nb > 0:
            self.matcher.add_same_track_distances([1.0 - float(a @ b) / (na * nb)])

    def check_overlaps(self) -> list:
        """Warn once per camera pair that looks overlapping although the config does not declare it
        (:mod:`pipeline.matching.overlap_check`); returns the pairs suspected now."""
        self._overlaps_checked_at = self._clock
        found = self.matcher.suspected_overlaps() if hasattr(self.matcher, "suspected_overlaps") else []
        for s in found:
            if s.cams not in self.overlaps:
                log.warning(s.message())
            self.overlaps[s.cams] = s
        if found:
            self.overlap_messages = tuple(o.message() for o in self.overlaps.values())
        return found

    def flush_announcements(self) -> None:
        """Announce every revision still waiting (``announce_after_s``): the end of a run."""
        if self.announcer is not None and self.announcer.pending:
            self._announce_revisions(self.announcer.flush(self._clock, self.store.has_members))

    def _announce_revisions(self, changes) -> None:
        """The ``merge`` / ``split`` events of revisions that waited (:mod:`pipeline.runner.announce`)."""
        if not changes:
            return
        with self.store.transaction():
            for ch in changes:
                tids = [tid for cam, track in ch.moved for tid in self.store.track_tracklet_ids(self.run_id, cam, track)]
                self._notify(ch, dict(ch.payload(), tracklet_ids=tids))

    def _notify(self, ch, payload: dict) -> None:
        """One revision's event: the store's events feed and the event sinks (events.jsonl, MQTT)."""
        self.store.add_event(ch.kind, ch.global_id, ch.cam_id, ch.t, payload)
        if self.events is not None:
            self.events.emit(ch.kind, ch.global_id, ch.cam_id, ch.t, **payload)

    def _apply_changes(self, changes) -> None:
        """Store and record the matcher's identity revisions (one transaction); announce them now, or hand them
        to the announcer (``announce_after_s``)."""
        touched: set[int] = set()
        with self.store.transaction():
            for ch in changes:
                tids = [tid for cam, track in ch.moved for tid in self.store.track_tracklet_ids(self.run_id, cam, track)]
                ident = self.matcher.identity(ch.into)
                if ident is not None:
                    self.store.new_identity(ident.prototype, ch.t, ch.cam_id, ch.into, self.model_version)
                for tid in tids:
                    self.store.assign(tid, ch.into, ch.distance, ch.probability)
                payload = dict(ch.payload(), tracklet_ids=tids)
                self.store.record_change(self.run_id, ch.kind, ch.global_id, ch.into, ch.source, ch.cam_id, ch.t,
                                         tids, ch.distance, ch.probability, payload)
                if self.announcer is None:
                    self._notify(ch, payload)
                touched.update((ch.into, ch.source))
                self.stats.tracklets_moved += len(ch.moved)
                if ch.kind == "merge":
                    self.stats.merges += 1
                else:
                    self.stats.splits += 1
                self._relabel_global_mot(ch.moved, ch.into)
            refresh_identities(self.store, sorted(touched), self.model_version)
            for gid in sorted(touched):
                ident = self.matcher.identity(gid)
                if ident is not None:  # the matcher's prototype (EMA), as record_tracklet writes it
                    self.store.set_prototype(gid, ident.prototype)
        if self.announcer is not None:
            self.announcer.add(changes, self._clock)

    def _revising(self) -> float | None:
        """The revision window in seconds when the matcher revises (``matching.revise``), else None."""
        cfg = getattr(self.matcher, "config", None)
        return cfg.revise.window_s if cfg is not None and cfg.revise.enabled else None

    def _relabel_global_mot(self, moved, into: int) -> None:
        """A revision moved the tracks ``moved`` ((cam_id, track_id) pairs) to ``into``: their kept rows follow;
        a camera whose frozen rows it reaches (or whose final tracklet was already frozen) reloads."""
        for cam, track in moved:
            f = self._gmot.get(cam)
            if f is None:  # no final tracklet of this camera yet: the moved tracks are open
                continue
            self._gmot_pending.add(cam)
            hit, frozen = f.relabel(track, into)
            if frozen or (not hit and (cam, int(track)) not in self.open_tracks):
                self._gmot_stale.add(cam)

    def mark_global_mot_stale(self) -> None:
        """The next rewrite reloads every camera from the store (a resumed run: the files were cut back to a
        checkpoint and nothing is kept in memory)."""
        for cam, w in self.global_mot.items():
            self._gmot.setdefault(cam, GlobalMotFile(w.path))
            self._gmot_stale.add(cam)
            self._gmot_pending.add(cam)

    def rewrite_global_mot(self, force: bool = True) -> list:
        """Bring ``mot_global/<cam>.txt`` up to the current assignments of this run's final tracklets (tracks
        still open are left out, their rows come with their final tracklet): one box per (camera, frame, id),
        rows sorted by frame then id; idempotent; byte-identical to
        :func:`~pipeline.matching.recluster.write_global_mot` over the store's final tracklets. Only with
        revision on (otherwise the streamed rows are already final). Incremental
        (:class:`~pipeline.sinks.global_mot.GlobalMotFile`): only the rows of the open horizon (the oldest
        open track, the revision window) are rewritten, from the final tracklets kept since; a camera whose
        frozen rows a revision reached reloads its tracklets from the store. ``force=False`` (checkpoints):
        only the cameras that got a final tracklet or a revision since their last rewrite. Returns the files
        written."""
        window_s = self._revising()
        if not self.global_mot or window_s is None:
            return []
        todo = [c for c in self._gmot if force or c in self._gmot_pending]
        if not todo:
            return []
        paths = []
        for cam in todo:
            f = self._gmot[cam]
            self._gmot_pending.discard(cam)
            if cam in self._gmot_stale:
                f.reset(self._stored_finals(cam))
                self.stats.global_mot_reloads += 1
            self.global_mot[cam].close()
            f.rewrite(self._freeze_bound(cam, f, window_s))
            self.global_mot[cam] = MOTWriter(f.path, append=True)
            self._rebuild_written(cam, f)
            self._gmot_stale.discard(cam)
            paths.append(f.path)
        self.stats.global_mot_rewrites += 1
        return paths

    def _freeze_bound(self, cam: str, f: GlobalMotFile, window_s: float) -> int | None:
        """Frames below this are final in ``cam``: every open track starts at or after it (the runner's
        bound, :meth:`forget_written_before`) and so does every tracklet a revision may still move (ended
        within ``window_s`` of the clock). None (freeze nothing) before the runner gave a bound."""
        bound = self._open_bound.get(cam)
        if bound is None:
            return None
        since = self._clock - window_s
        return min([bound] + [t.first_frame for t in f.live.values() if t.end_time >= since])

    def _stored_finals(self, cam: str) -> list[LiveTracklet]:
        """This run's final tracklets of ``cam`` as stored, with their current ids (what a full rewrite reads)."""
        return [LiveTracklet.from_arrays(t.tracklet_id, t.cam_id, t.track_id, t.start_time, t.end_time, t.frames,
                                         t.boxes_tlwh, t.global_id)
                for t in self.store.tracklets(run_id=self.run_id, cam_id=cam)
                if (t.cam_id, int(t.track_id)) not in self.open_tracks and t.global_id is not None
                and t.frames is not None and len(t.frames)]

    def _rebuild_written(self, cam: str, f: GlobalMotFile) -> None:
        """The one-box-per-(frame, id) bookkeeping of ``cam`` under the ids as rewritten (the frames open tracks
        can reach are all in the kept tracklets)."""
        for key in [k for k in self._written if k[0] == cam]:
            del self._written[key]
        for t in f.live.values():
            self._written.setdefault((cam, t.global_id), set()).update(t.frames.tolist())

    def forget_written_before(self, cam_id: str, frame: int) -> int:
        """Drop ``cam_id``'s one-box-per-(frame, id) bookkeeping for frames before ``frame`` (no final tracklet still
        to come reaches them: every open track starts at or after it); returns how many entries went. Without
        this a live run's bookkeeping grows by every frame of every final tracklet, for as long as it runs."""
        self._open_bound[cam_id] = int(frame)
        dropped = 0
        for key in [k for k in self._written if k[0] == cam_id]:
            kept = {f for f in self._written[key] if f >= frame}
            dropped += len(self._written[key]) - len(kept)
            if kept:
                self._written[key] = kept
            else:
                del self._written[key]
        return dropped

    def _commit(self, tracklet: Tracklet, is_final: bool, vector: np.ndarray, res) -> None:
        key = (tracklet.cam_id, int(tracklet.track_id))
        gid = int(res.global_id)
        first = key not in self.announced
        events: list[tuple[str, dict]] = []
        if first:
            appear = {"track_id": key[1], "frame": int(tracklet.frames[0]), "new": res.is_new}
            if res.distance is not None:  # the link's evidence: distance and calibrated probability
                appear.update(distance=round(float(res.distance), 6), probability=_round(res))
            events.append(("appear", appear))
            prev_cam, prev_end = self._previous_sighting(tracklet, gid, res)
            if prev_cam is not None and prev_cam != tracklet.cam_id:
                transit = tracklet.start_time - float(prev_end)
                handover = {"from_cam": prev_cam, "transit_s": round(transit, 3)}
                if res.distance is not None:
                    handover.update(distance=round(float(res.distance), 6), probability=_round(res))
                events.append(("handover", handover))
                self.stats.handovers += 1
            if res.is_new:
                self.stats.new_identities += 1
        identity = self.matcher.identity(gid) or GlobalIdentity(gid, vector)
        with self.store.transaction():
            tid = self.store.record_tracklet(
                self.run_id, tracklet, vector, self.model_version, identity, res.distance, events,
                probability=getattr(res, "probability", None),
            )
            if is_final:
                self.store.add_event("leave", gid, tracklet.cam_id, tracklet.end_time,
                                     {"track_id": key[1], "frame": int(tracklet.frames[-1])})
                if self.crops is not None:
                    self.store.add_crops(tid, *self.crops.take(*key), replace=True)  # the final track's sample
        self.announced.add(key)
        self.stats.tracklets_stored += 1
        self.stats.global_ids.add(gid)
        if is_final:
            self.stats.finals += 1
        else:
            self.stats.partials += 1
        self._announce(tracklet, gid, events, is_final)
        if is_final:
            self._keep_for_global_mot(tid, tracklet, gid)

    def _keep_for_global_mot(self, tid: int, tracklet: Tracklet, gid: int) -> None:
        """A final tracklet's rows for the next incremental rewrite (revision on)."""
        writer = self.global_mot.get(tracklet.cam_id)
        if writer is None or self._revising() is None:
            return
        f = self._gmot.setdefault(tracklet.cam_id, GlobalMotFile(writer.path))
        live = LiveTracklet.from_arrays(tid, tracklet.cam_id, tracklet.track_id, tracklet.start_time,
                                        tracklet.end_time, tracklet.frames, tracklet.boxes_tlwh, gid)
        if not f.add(live):  # it starts before rows already frozen (the runner's bound was wrong): reload
            self._gmot_stale.add(tracklet.cam_id)
        self._gmot_pending.add(tracklet.cam_id)

    def _previous_sighting(self, tracklet: Tracklet, gid: int, res) -> tuple[str | None, float | None]:
        """The identity's sighting just before this tracklet: from the match, or (resumed
        tracklets, which the matcher treats as continuations) from the identity's spans."""
        if res.previous_cam is not None or res.is_new:
            return res.previous_cam, res.previous_end
        ident = self.matcher.identity(gid)
        before = [sp for sp in getattr(ident, "spans", None) or [] if sp[2] < tracklet.start_time]
        if not before:
            return None, None
        cam, _, end = max(before, key=lambda sp: sp[2])
        return cam, end

    def _announce(self, tracklet: Tracklet, gid: int, events: list[tuple[str, dict]], is_final: bool) -> None:
        cam = tracklet.cam_id
        if self.events is not None:
            for kind, payload in events:
                self.events.emit(kind, gid, cam, tracklet.start_time, **payload)
            if is_final:
                self.events.emit("leave", gid, cam, tracklet.end_time, track_id=int(tracklet.track_id),
                                 frame=int(tracklet.frames[-1]))
        if self.timeline is not None:
            self.timeline.record(cam, tracklet.track_id, gid, tracklet.start_time, tracklet.end_time)
        writer = self.global_mot.get(cam)
        if is_final and writer is not None:
            # one box per (camera, frame, global id): when a track's later growth overlaps another
            # track given the same identity, the frames already written keep their first box
            taken = self._written.setdefault((cam, gid), set())
            rows = [(int(f), gid, box, 1.0) for f, box in zip(tracklet.frames, tracklet.boxes_tlwh)
                    if int(f) not in taken]
            taken.update(r[0] for r in rows)
            self.stats.duplicate_rows_dropped += len(tracklet.frames) - len(rows)
            writer.write_rows(rows)
