"""Revision announcements that wait until the evidence has held (``matching.revise.announce_after_s``).

The revision window re-solves its tentative tracklets on every matcher call, and a tracklet whose
distance to an identity sits at the calibrated threshold can leave and rejoin it several times as the
threshold moves with new samples (docs/pipeline.md, "Revision churn"). The store follows every re-solve
at once (it is the current best answer, and its ``identity_changes`` table the full audit trail), but
each move was also a ``merge`` / ``split`` *notification* (events.jsonl, the store's events feed, MQTT),
and an operator or a home-automation rule saw a person split off and merge back within seconds.

:class:`RevisionAnnouncer` sits between the matcher's :class:`~pipeline.matching.revise.IdentityChange`
list and the notifications. It remembers, per moved track, the id its consumers were last told and the
id it has now. A track's move is announced once it has kept its new id for ``delay_s`` seconds of the
matcher's clock (the newest tracklet end seen); a track that returns to the announced id before that is
never announced (counted in :attr:`RevisionAnnouncer.withdrawn`). What is announced is the *net* move
(a -> b -> c within the delay is one change a -> c), grouped by (from, to) like the matcher's changes:
``merge`` when the id it left has no member any more, else ``split``; the evidence (distances,
probability) is that of the latest re-solve that moved the tracks; ``decided_t`` is when that re-solve
ran and ``announced_t`` the clock when the move was announced. At the end of a run :meth:`flush`
announces every move still waiting, so the last notification of every track names its final identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from pipeline.matching.revise import IdentityChange

__all__ = ["PendingMove", "RevisionAnnouncer"]

TrackKey = tuple[str, int]


@dataclass
class PendingMove:
    """One track whose current id differs from the id last announced for it.

    announced: the id consumers were last told; current: the id it has now; since: the matcher clock of
    the re-solve that gave it ``current``; start_t: the track's start time (the change's ``t``); change:
    the matcher's latest change that moved it (its evidence)."""

    announced: int
    current: int
    since: float
    start_t: float
    change: IdentityChange


@dataclass
class RevisionAnnouncer:
    """Per-track debounce of revision notifications (module docstring). ``delay_s`` > 0."""

    delay_s: float
    pending: dict[TrackKey, PendingMove] = field(default_factory=dict)
    withdrawn: int = 0  # track moves undone before they were announced
    announced_changes: int = 0

    def add(self, changes: list[IdentityChange], clock: float) -> None:
        """Record the matcher's changes of one call (made at matcher clock ``clock``)."""
        for ch in changes:
            when = ch.decided_t if ch.decided_t is not None else clock
            for k, (cam, track) in enumerate(ch.moved):
                key = (cam, int(track))
                start = ch.moved_t[k] if k < len(ch.moved_t) else ch.t
                move = self.pending.get(key)
                if move is None:
                    self.pending[key] = PendingMove(ch.source, ch.into, when, start, ch)
                elif ch.into == move.announced:  # back where consumers think it is: nothing to say
                    del self.pending[key]
                    self.withdrawn += 1
                else:
                    move.current, move.since, move.change = ch.into, when, ch

    def due(self, clock: float, alive: Callable[[int], bool]) -> list[IdentityChange]:
        """The net changes of the tracks that have kept their id for ``delay_s`` by ``clock`` (removed from
        :attr:`pending`). ``alive(gid)``: whether identity ``gid`` still has members (merge vs split)."""
        ready = [k for k, m in self.pending.items() if clock - m.since >= self.delay_s]
        return self._announce(ready, clock, alive)

    def flush(self, clock: float, alive: Callable[[int], bool]) -> list[IdentityChange]:
        """Every waiting move, announced now (the end of a run)."""
        return self._announce(list(self.pending), clock, alive)

    def _announce(self, keys: list[TrackKey], clock: float, alive: Callable[[int], bool]) -> list[IdentityChange]:
        groups: dict[tuple[int, int], list[TrackKey]] = {}
        for key in keys:
            m = self.pending[key]
            groups.setdefault((m.announced, m.current), []).append(key)
        out = []
        for (src, dst), members in sorted(groups.items()):
            order = sorted(((k, self.pending.pop(k)) for k in members), key=lambda km: (km[1].start_t, km[0]))
            latest = max((m for _, m in order), key=lambda m: m.since)
            kind = "split" if alive(src) else "merge"
            out.append(replace(
                latest.change, kind=kind, global_id=dst if kind == "merge" else src, into=dst, source=src,
                moved=tuple(k for k, _ in order), moved_t=tuple(m.start_t for _, m in order),
                cam_id=order[0][0][0], t=order[0][1].start_t, decided_t=latest.since, announced_t=float(clock)))
        self.announced_changes += len(out)
        return sorted(out, key=lambda c: (c.t, c.cam_id, c.global_id, c.kind))
