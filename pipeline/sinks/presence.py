"""Who is in view where, derived from the event stream alone: the state behind the MQTT state topics.

Events (as in events.jsonl) change it: ``appear`` puts a camera's track in view under its identity,
``leave`` takes it out, ``merge`` / ``split`` move the listed tracks (``moved``: ``[{cam_id, track_id}]``)
to the identity ``into``. ``handover`` changes nothing (its track already appeared). :meth:`Presence.apply`
returns what changed, so a publisher sends only new state:

* per camera, the number of people in view (Frigate's ``frigate/<camera>/person`` count);
* per identity, whether it is in view, on which cameras, and where and when it was last seen; an
  identity absorbed by a merge and no longer in view anywhere is ``gone`` (its state can be cleared).

Memory is bounded over a live run of any length: the last sighting and the merge history are kept for
the ``max_identities`` identities seen (or merged) most recently; an older identity that comes back
gets a new last sighting from its event, so only a merge with a forgotten identity loses that
identity's older last sighting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class IdentityState:
    """One identity's state: ``cameras`` where it is in view now (sorted), the last camera and time it was
    seen (an appear or leave), and ``absorbed_into`` when a merge folded it into another identity."""

    global_id: int
    cameras: list[str]
    last_camera: str | None
    last_seen: float | None
    absorbed_into: int | None = None

    @property
    def present(self) -> bool:
        return bool(self.cameras)

    def as_json(self) -> dict[str, Any]:
        return {"global_id": self.global_id, "present": self.present, "cameras": self.cameras,
                "last_camera": self.last_camera, "last_seen": self.last_seen, "absorbed_into": self.absorbed_into}


@dataclass
class PresenceChange:
    """What one event changed: camera -> new count; identity -> new state (None: absorbed and out of view,
    i.e. gone)."""

    counts: dict[str, int] = field(default_factory=dict)
    identities: dict[int, IdentityState | None] = field(default_factory=dict)


class Presence:
    """Tracks in view per camera, keyed by (camera, track id), with their identity."""

    def __init__(self, max_identities: int = 10_000) -> None:
        if max_identities < 1:
            raise ValueError("max_identities must be >= 1")
        self.max_identities = int(max_identities)
        self._in_view: dict[tuple[str, int], int] = {}
        self._last: dict[int, tuple[str, float]] = {}  # least recently updated first
        self._absorbed: dict[int, int] = {}  # oldest merge first

    @staticmethod
    def _put(d: dict, key, value, cap: int) -> None:
        """``d[key] = value`` as the most recent entry; the oldest beyond ``cap`` entries go."""
        d.pop(key, None)
        d[key] = value
        while len(d) > cap:
            del d[next(iter(d))]

    def count(self, cam_id: str) -> int:
        """People (tracks with an identity) in view of ``cam_id``."""
        return sum(1 for cam, _ in self._in_view if cam == cam_id)

    def identity(self, global_id: int) -> IdentityState:
        gid = int(global_id)
        cams = sorted({cam for (cam, _), g in self._in_view.items() if g == gid})
        last = self._last.get(gid)
        return IdentityState(gid, cams, last[0] if last else None, last[1] if last else None, self._absorbed.get(gid))

    def apply(self, event: dict[str, Any]) -> PresenceChange:
        """Apply one event (an events.jsonl object: kind, global_id, cam_id, t, payload...); what changed."""
        kind, cam = event["kind"], event["cam_id"]
        gid, t = int(event["global_id"]), float(event["t"])
        cams: set[str] = set()
        ids: set[int] = set()
        if kind in ("appear", "leave") and event.get("track_id") is not None:
            key = (cam, int(event["track_id"]))
            before = self._in_view.get(key)
            if kind == "appear":
                self._in_view[key] = gid
            else:
                self._in_view.pop(key, None)
            self._put(self._last, gid, (cam, t), self.max_identities)
            cams.add(cam)
            ids.update(g for g in (gid, before) if g is not None)
        elif kind in ("merge", "split"):
            into = int(event.get("into", gid))
            for m in event.get("moved") or []:
                key = (m["cam_id"], int(m["track_id"]))
                if key in self._in_view:
                    ids.add(self._in_view[key])
                    self._in_view[key] = into
            source = event.get("from")
            if kind == "merge" and source is not None:
                self._put(self._absorbed, int(source), into, self.max_identities)
                ids.add(int(source))
                last = [v for v in (self._last.get(into), self._last.get(int(source))) if v is not None]
                if last:
                    self._put(self._last, into, max(last, key=lambda v: v[1]), self.max_identities)
            elif kind == "split":
                self._absorbed.pop(into, None)  # a split-off identity stands on its own again
            ids.add(into)
        change = PresenceChange(counts={c: self.count(c) for c in sorted(cams)})
        for g in sorted(ids):
            state = self.identity(g)
            change.identities[g] = None if state.absorbed_into is not None and not state.present else state
        return change
