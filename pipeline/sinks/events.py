"""JSON-lines event sink: identity appears / leaves / hands over between cameras.

One JSON object per line, flushed per event::

    {"kind": "appear", "global_id": 3, "cam_id": "cam1", "t": 12.4, "frame": 311, "track_id": 5, ...}

``kind`` is one of :data:`EVENT_KINDS`; extra keys are the event's payload.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENT_KINDS = ("appear", "leave", "handover", "merge", "split")  # merge/split: identities revised (recluster)


class EventSink:
    """Appends events to a JSON-lines file (truncated on open unless ``append``)."""

    def __init__(self, path: Path, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a" if append else "w", encoding="utf-8")
        self.count = 0

    def emit(self, kind: str, global_id: int, cam_id: str, t: float, **payload: Any) -> dict[str, Any]:
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; valid: {', '.join(EVENT_KINDS)}")
        event = {"kind": kind, "global_id": int(global_id), "cam_id": cam_id, "t": round(float(t), 3), **payload}
        self._fh.write(json.dumps(event, sort_keys=False) + "\n")
        self._fh.flush()
        self.count += 1
        return event

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()
