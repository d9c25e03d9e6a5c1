"""``mot_global/<cam>.txt`` rewritten in place at a cost bounded by the recent past, not by the run's length.

The global-id MOT file of a camera holds one row per (frame, global id), sorted by frame then id, the box
of the earliest-starting tracklet first (what :func:`pipeline.matching.recluster.write_global_mot` writes
from the store). While a run goes on, revisions (merges, splits) change the ids of recent tracklets, so
the file is rewritten now and then. Reloading every tracklet of the run for that makes each rewrite cost
more the longer the run has lasted (issue 16); :class:`GlobalMotFile` rewrites only the file's tail:

* rows of frames below ``frozen_frame`` are final: no tracklet still to come reaches them (every open
  track starts at or after it) and none of the tracklets that cover them can change its id any more
  (they are settled). They stay in the first ``frozen_bytes`` bytes of the file, untouched;
* the tracklets that reach ``frozen_frame`` or later (:class:`LiveTracklet`: frames, boxes already
  formatted, the current id) are kept in memory. :meth:`GlobalMotFile.rewrite` truncates the file to
  ``frozen_bytes`` and writes their rows, then moves ``frozen_frame`` up to the caller's bound and
  forgets the tracklets that end below it.

So a rewrite costs the rows of the open horizon (the oldest open track and the revision window), and
the file after it is byte-identical to a full rewrite from the store. The caller decides the bound and
falls back to :meth:`GlobalMotFile.reset` (all of the camera's tracklets, from the store) when the past
it froze changes after all (:meth:`GlobalMotFile.add` and :meth:`GlobalMotFile.relabel` say so).
A reader of the file during a rewrite may see its tail missing for a moment (it is truncated, then
written); the frozen part is never rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.sinks.mot import format_tlwh, mot_line


@dataclass
class LiveTracklet:
    """One final tracklet's rows. frames: (n,) int64, 1-based; boxes: (n,) ``x,y,w,h`` strings
    (:func:`~pipeline.sinks.mot.format_tlwh`); order: the full rewrite's order of tracklets
    (start time, camera, track id, tracklet id)."""

    tracklet_id: int
    track_id: int
    start_time: float
    cam_id: str
    frames: np.ndarray
    boxes: list[str]
    global_id: int
    end_time: float

    @classmethod
    def from_arrays(cls, tracklet_id: int, cam_id: str, track_id: int, start_time: float, end_time: float,
                    frames: np.ndarray, boxes_tlwh: np.ndarray, global_id: int) -> LiveTracklet:
        """frames: (n,) 1-based; boxes_tlwh: (n, 4) pixels."""
        f = np.asarray(frames, dtype=np.int64).reshape(-1)
        b = np.asarray(boxes_tlwh, dtype=np.float64).reshape(-1, 4)
        return cls(int(tracklet_id), int(track_id), float(start_time), cam_id, f, [format_tlwh(x) for x in b],
                   int(global_id), float(end_time))

    @property
    def order(self) -> tuple[float, str, int, int]:
        return (self.start_time, self.cam_id, self.track_id, self.tracklet_id)

    @property
    def first_frame(self) -> int:
        return int(self.frames[0])

    @property
    def last_frame(self) -> int:
        return int(self.frames[-1])


class GlobalMotFile:
    """One camera's ``mot_global`` file: a frozen prefix on disk plus the live tracklets (module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.frozen_frame = 0  # rows of frames below this are final and on disk
        self.frozen_bytes = 0  # ... in the file's first frozen_bytes bytes
        self.live: dict[int, LiveTracklet] = {}  # tracklet_id -> the tracklets reaching frozen_frame or later

    def add(self, t: LiveTracklet) -> bool:
        """Keep a final tracklet's rows for the next rewrite (a longer version of the same tracklet replaces
        it); False when it reaches into the frozen rows (the caller must :meth:`reset`)."""
        self.live[t.tracklet_id] = t
        return t.first_frame >= self.frozen_frame

    def relabel(self, track_id: int, global_id: int) -> tuple[int, bool]:
        """Give the live tracklets of ``track_id`` the id ``global_id``; (how many, whether one of them
        reaches into the frozen rows: then the caller must :meth:`reset`)."""
        hit, frozen = 0, False
        for t in self.live.values():
            if t.track_id == int(track_id):
                hit += 1
                if t.global_id != int(global_id):
                    t.global_id = int(global_id)
                    frozen |= t.first_frame < self.frozen_frame
        return hit, frozen

    def reset(self, tracklets: list[LiveTracklet]) -> None:
        """Start over from all of the camera's final tracklets (nothing frozen); the next rewrite writes the
        whole file."""
        self.frozen_frame, self.frozen_bytes = 0, 0
        self.live = {t.tracklet_id: t for t in tracklets}

    def rewrite(self, freeze_before: int | None = None) -> int:
        """Truncate the file to its frozen prefix and write the rows of frames >= ``frozen_frame`` (sorted by
        frame then id, one box per (frame, id): the earliest-starting tracklet's). Then freeze the rows of
        frames below ``freeze_before`` (the caller's promise: no tracklet to come and no revision reaches
        them) and forget the tracklets that end below it. Returns the rows written."""
        z = self.frozen_frame
        rows: dict[tuple[int, int], str] = {}
        for t in sorted(self.live.values(), key=lambda t: t.order):
            g = t.global_id
            start = int(np.searchsorted(t.frames, z)) if t.first_frame < z else 0
            for f, box in zip(t.frames[start:].tolist(), t.boxes[start:]):
                rows.setdefault((f, g), box)
        keys = sorted(rows)
        lines = [mot_line(f, g, rows[(f, g)], 1.0) for f, g in keys]
        new_z = z if freeze_before is None else max(z, int(freeze_before))
        keep_bytes = self.frozen_bytes
        for (f, _), line in zip(keys, lines):
            if f >= new_z:
                break
            keep_bytes += len(line)  # ASCII: one byte a character
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "r+b" if self.path.exists() else "w+b") as fh:
            fh.truncate(self.frozen_bytes)
            fh.seek(self.frozen_bytes)
            fh.write("".join(lines).encode("ascii"))
        self.frozen_frame, self.frozen_bytes = new_z, keep_bytes
        self.live = {k: t for k, t in self.live.items() if t.last_frame >= new_z}
        return len(lines)

    def live_rows(self) -> int:
        """Frames held by the live tracklets (the next rewrite's size)."""
        return sum(len(t.frames) for t in self.live.values())
