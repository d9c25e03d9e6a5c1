"""Per-camera timeline PNG: one row per global identity, a bar per tracklet (time on x)."""

from __future__ import annotations

from collections import defaultdict, deque
from pathlib import Path


class TimelineRecorder:
    """Collects (global id, start s, end s) spans per camera; a later span of the same
    (camera, track) replaces the earlier one (partial -> final tracklets).

    ``keep_s`` (live runs): spans that ended more than this many seconds before the latest recorded end
    are forgotten, so memory stays bounded over a run of any length (the runner draws the final PNGs from
    the store, :meth:`from_spans`); None keeps every span."""

    def __init__(self, keep_s: float | None = None) -> None:
        self._spans: dict[str, dict[int, tuple[int, float, float]]] = defaultdict(dict)
        self.keep_s = keep_s
        self._ends: deque[tuple[float, str, int]] = deque()  # (end s, camera, track) in recording order
        self._latest = float("-inf")

    @classmethod
    def from_spans(cls, spans) -> TimelineRecorder:
        """A recorder holding ``spans``: (cam_id, track_id, global_id, start s, end s) each."""
        rec = cls()
        for cam, track, gid, a, b in spans:
            rec.record(cam, track, gid, a, b)
        return rec

    def record(self, cam_id: str, track_id: int, global_id: int, start_s: float, end_s: float) -> None:
        self._spans[cam_id][int(track_id)] = (int(global_id), float(start_s), float(end_s))
        if self.keep_s is None:
            return
        self._latest = max(self._latest, float(end_s))
        self._ends.append((float(end_s), cam_id, int(track_id)))
        while self._ends and self._ends[0][0] < self._latest - self.keep_s:
            end, cam, track = self._ends.popleft()
            span = self._spans[cam].get(track)
            if span is not None and span[2] == end:  # not replaced by a later span of the same track
                del self._spans[cam][track]

    def __len__(self) -> int:
        return sum(len(v) for v in self._spans.values())

    def spans(self, cam_id: str) -> list[tuple[int, float, float]]:
        return sorted(self._spans.get(cam_id, {}).values(), key=lambda s: (s[1], s[0]))

    def relabel(self, current: dict[tuple[str, int], int]) -> int:
        """Give each recorded (camera, track) span the identity ``current`` maps it to now (identities revised
        after the span was recorded: online merges/splits, the batch re-clustering); returns how many changed."""
        changed = 0
        for cam, spans in self._spans.items():
            for track, (gid, a, b) in list(spans.items()):
                new = current.get((cam, track))
                if new is not None and int(new) != gid:
                    spans[track] = (int(new), a, b)
                    changed += 1
        return changed

    def cameras(self) -> list[str]:
        return sorted(self._spans)

    def write_all(self, out_dir: Path, t0: float = 0.0) -> list[Path]:
        """One ``timeline_<cam>.png`` per camera; times shown relative to ``t0``."""
        paths = []
        for cam in self.cameras():
            p = Path(out_dir) / f"timeline_{cam}.png"
            write_timeline_png(p, cam, [(g, a - t0, b - t0) for g, a, b in self.spans(cam)])
            paths.append(p)
        return paths


def write_timeline_png(path: Path, cam_id: str, spans: list[tuple[int, float, float]]) -> Path:
    """spans: (global id, start s, end s). Writes a PNG; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = sorted({g for g, _, _ in spans})
    row = {g: i for i, g in enumerate(ids)}
    fig, ax = plt.subplots(figsize=(10, max(2.0, 0.3 * len(ids) + 1.2)))
    cmap = plt.get_cmap("tab20")
    for g, a, b in spans:
        ax.barh(row[g], max(b - a, 0.05), left=a, height=0.7, color=cmap(g % 20))
    ax.set_yticks(range(len(ids)))
    ax.set_yticklabels([str(g) for g in ids], fontsize=7)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("global id")
    ax.set_title(f"camera {cam_id}: {len(ids)} identities, {len(spans)} tracklets")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
