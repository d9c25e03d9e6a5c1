"""Turn one camera's per-frame track outputs into tracklets.

A :class:`TrackletBuilder` accumulates the :class:`~pipeline.core.types.TrackOutput`
rows of each track id (with the frame's timestamp and, when the encoder ran on
that frame, the per-frame embedding). It hands back :class:`Tracklet` objects:

* **final** tracklets from :meth:`TrackletBuilder.finish` (the tracker's
  ``pop_removed()`` ids) and :meth:`TrackletBuilder.flush_all` (end of run /
  shutdown); tracks shorter than ``min_length`` frames are dropped unless a
  partial tracklet of them was already emitted (its identity then needs its
  final update);
* **partial** tracklets from :meth:`TrackletBuilder.add` for long-running
  tracks, every ``partial_every_s`` seconds of track time, so that an identity
  appears before the person leaves. A partial tracklet is *cumulative*: it
  covers the track from its first frame to now, and the final tracklet of the
  same ``(cam_id, track_id)`` supersedes it.

Memory stays bounded on long tracks: at most ``max_embeddings`` per-frame
embeddings are kept per track (uniformly decimated; ``embedding_frames`` says
which frames they belong to).

Occluded frames (``min_visibility`` > 0, ``tracklets.min_visibility`` in cams.yaml): each embedded box's
visible fraction is estimated from the other outputs of its frame
(:func:`~pipeline.core.types.estimate_visibility`: covered by the boxes whose bottom edge is lower in the
image, i.e. nearer a camera that looks down on the ground); a tracklet's embeddings of boxes less visible
than ``min_visibility`` are left out of it when at least one of its embeddings is that visible (a person
partly hidden behind another gives a crop that shows both). Off (0) by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.core.types import TrackOutput, Tracklet, estimate_visibility


@dataclass
class _OpenTrack:
    """Rows of one open track; boxes are tlwh pixels."""

    frames: list[int] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    boxes_tlwh: list[np.ndarray] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)
    embedding_frames: list[int] = field(default_factory=list)
    visibility: list[float] = field(default_factory=list)  # per kept embedding, estimated visible fraction
    emb_stride: int = 1  # keep every emb_stride-th offered embedding (grows when decimating)
    emb_offered: int = 0
    last_partial_t: float | None = None
    partial_emitted: bool = False


class TrackletBuilder:
    """Per-camera accumulator of track outputs (one instance per camera).

    Args:
        cam_id: camera id stamped on every tracklet.
        min_length: final tracklets with fewer frames are dropped (noise tracks).
        partial_every_s: emit a cumulative partial tracklet of a still-open track
            once it has lasted this long, and again every this many seconds;
            ``None`` disables partial tracklets.
        max_embeddings: cap on stored per-frame embeddings per track (>= 2).
        min_visibility: leave out the embeddings of boxes less visible than this
            (module docstring); 0 keeps every embedding.
    """

    def __init__(
        self,
        cam_id: str,
        min_length: int = 5,
        partial_every_s: float | None = 10.0,
        max_embeddings: int = 64,
        min_visibility: float = 0.0,
    ) -> None:
        if max_embeddings < 2:
            raise ValueError("max_embeddings must be >= 2")
        if not 0.0 <= min_visibility <= 1.0:
            raise ValueError("min_visibility must be in [0, 1]")
        self.min_visibility = float(min_visibility)
        self.cam_id = cam_id
        self.min_length = int(min_length)
        self.partial_every_s = partial_every_s
        self.max_embeddings = int(max_embeddings)
        self._open: dict[int, _OpenTrack] = {}

    # ------------------------------------------------------------------ input
    def add(self, outputs: list[TrackOutput], timestamps: float | list[float]) -> list[Tracklet]:
        """Record one frame's outputs; return partial tracklets that became due.

        ``timestamps`` is the frame's time in seconds (one float for all rows)
        or one float per output row.
        """
        if isinstance(timestamps, (int, float)):
            times = [float(timestamps)] * len(outputs)
        else:
            times = [float(t) for t in timestamps]
            if len(times) != len(outputs):
                raise ValueError("one timestamp per output row expected")
        if self.min_visibility > 0 and any(o.embedding is not None for o in outputs):
            vis = estimate_visibility(np.array([o.frame for o in outputs]),
                                      np.array([np.asarray(o.tlwh, np.float64).reshape(4) for o in outputs]))
        else:
            vis = np.ones(len(outputs))
        due: list[Tracklet] = []
        for out, t, v in zip(outputs, times, vis):
            track = self._open.setdefault(out.track_id, _OpenTrack())
            if track.frames and out.frame <= track.frames[-1]:
                continue  # the same frame offered twice: keep the first
            track.frames.append(int(out.frame))
            track.timestamps.append(t)
            track.boxes_tlwh.append(np.asarray(out.tlwh, dtype=np.float64).reshape(4))
            if out.embedding is not None:
                self._offer_embedding(track, out.frame, out.embedding, float(v))
            if self._partial_due(track, t):
                track.last_partial_t = t
                track.partial_emitted = True
                due.append(self._make(out.track_id, track))
        return due

    def _offer_embedding(self, track: _OpenTrack, frame: int, emb: np.ndarray, visibility: float = 1.0) -> None:
        track.emb_offered += 1
        if (track.emb_offered - 1) % track.emb_stride:
            return
        track.embeddings.append(np.asarray(emb, dtype=np.float32).reshape(-1))
        track.embedding_frames.append(int(frame))
        track.visibility.append(visibility)
        if len(track.embeddings) > self.max_embeddings:
            # keep every other row: uniform coverage, half the memory
            track.embeddings = track.embeddings[::2]
            track.embedding_frames = track.embedding_frames[::2]
            track.visibility = track.visibility[::2]
            track.emb_stride *= 2

    def _partial_due(self, track: _OpenTrack, t: float) -> bool:
        if self.partial_every_s is None or len(track.frames) < self.min_length:
            return False
        since = track.timestamps[0] if track.last_partial_t is None else track.last_partial_t
        return t - since >= self.partial_every_s

    # ----------------------------------------------------------------- output
    def finish(self, track_ids: list[int]) -> list[Tracklet]:
        """Close the given tracks (tracker's ``pop_removed()``); return kept tracklets."""
        done: list[Tracklet] = []
        for tid in track_ids:
            track = self._open.pop(tid, None)
            if track is None or not track.frames:
                continue
            if len(track.frames) >= self.min_length or track.partial_emitted:
                done.append(self._make(tid, track))
        return done

    def flush_all(self) -> list[Tracklet]:
        """Close every open track (end of stream or shutdown)."""
        return self.finish(sorted(self._open))

    def open_track_ids(self) -> list[int]:
        return sorted(self._open)

    def oldest_open_frame(self) -> int | None:
        """First frame of the longest-open track; None when no track is open."""
        starts = [t.frames[0] for t in self._open.values() if t.frames]
        return min(starts) if starts else None

    def _make(self, track_id: int, track: _OpenTrack) -> Tracklet:
        keep = np.arange(len(track.embeddings))
        if self.min_visibility > 0 and keep.size:
            visible = np.flatnonzero(np.asarray(track.visibility) >= self.min_visibility)
            keep = visible if visible.size else keep
        if keep.size:
            emb = np.stack([track.embeddings[i] for i in keep]).astype(np.float32)
        else:
            emb = np.zeros((0, 0), dtype=np.float32)
        return Tracklet(
            cam_id=self.cam_id,
            track_id=int(track_id),
            frames=np.asarray(track.frames, dtype=np.int64),
            timestamps=np.asarray(track.timestamps, dtype=np.float64),
            boxes_tlwh=np.stack(track.boxes_tlwh).astype(np.float64),
            embeddings=emb,
            embedding_frames=np.asarray([track.embedding_frames[i] for i in keep], dtype=np.int64),
        )
