"""Wall-clock time per pipeline stage (decode, detect, embed, track, match, store/sinks)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: the stages the runner reports, in pipeline order
STAGES = ("decode", "detect", "embed", "track", "match", "store_sinks")


class StageTimer:
    """Accumulates seconds per stage; ``with timer.stage("detect"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {s: 0.0 for s in STAGES}
        self.calls: dict[str, int] = {s: 0 for s in STAGES}
        self._t0 = time.perf_counter()

    def restart(self) -> None:
        """Zero everything; the wall clock starts now (call when the frame loop starts)."""
        self.__init__()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t
            self.calls[name] = self.calls.get(name, 0) + 1

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + float(seconds)
        self.calls[name] = self.calls.get(name, 0) + 1

    def report(self, frames_per_cam: dict[str, int]) -> dict:
        """Totals, shares, fps per camera, and the pipeline's own overhead vs. detection."""
        wall = time.perf_counter() - self._t0
        total = sum(self.seconds.values()) or 1e-9
        overhead = sum(v for k, v in self.seconds.items() if k not in ("decode", "detect"))
        detect = self.seconds.get("detect", 0.0)
        return {
            "wall_s": round(wall, 3),
            "stage_s": {k: round(v, 4) for k, v in self.seconds.items()},
            "stage_share": {k: round(v / total, 4) for k, v in self.seconds.items()},
            "frames_per_cam": dict(frames_per_cam),
            "fps_per_cam": {c: round(n / wall, 3) if wall > 0 else 0.0 for c, n in frames_per_cam.items()},
            "overhead_s": round(overhead, 4),
            "overhead_vs_detect": round(overhead / detect, 4) if detect > 0 else None,
        }

    def table(self, report: dict) -> str:
        lines = [f"{'stage':<12} {'seconds':>9} {'share':>7}"]
        for k in self.seconds:
            lines.append(f"{k:<12} {report['stage_s'][k]:>9.2f} {100 * report['stage_share'][k]:>6.1f}%")
        fps = ", ".join(f"{c} {v:.2f}" for c, v in report["fps_per_cam"].items())
        ratio = report["overhead_vs_detect"]
        lines.append(f"fps per camera: {fps}; wall {report['wall_s']:.1f} s")
        if ratio is not None:
            lines.append(f"pipeline overhead (all but decode+detect) = {100 * ratio:.1f}% of detector time")
        return "\n".join(lines)

    def write_json(self, path: Path, report: dict) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
