"""The matcher's in-memory identities: a dict by global id that also answers two questions without a
full scan, which at scale (thousands of identities in memory, a call every few milliseconds) cost more
than the rest of a call.

* **Least recently seen** (``least_recent``): the ``k`` identities with the smallest
  ``(last_seen, global_id)``, which leave memory beyond ``max_gallery``. A heap of ``(last_seen, id)``
  entries with lazy deletion: an entry is pushed when an identity enters the dict or its ``last_seen``
  is reported with :meth:`HotGallery.touch`; entries of identities that left, or whose ``last_seen``
  changed since, are discarded when they reach the top. An identity whose ``last_seen`` grew without
  a ``touch`` is re-queued at its current value when its entry reaches the top, so no identity is ever
  without an entry (a ``last_seen`` lowered in place needs a ``touch`` to be found at its new place; the
  matcher only raises it in place, and replaces identities by assignment). O(k log n) per call instead
  of O(n).
* **Memory order** (``in_memory_order``): any subset of ids in the dict's own iteration order (insertion
  order: a key re-assigned keeps its place, a key deleted and added again goes last), from a rank kept per
  key, instead of iterating the whole dict.

Results are exactly those of the full scans they replace (``tests/pipeline/test_hot_gallery.py`` checks
them against brute force after random operations).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping

from pipeline.core.types import GlobalIdentity

__all__ = ["HotGallery"]

#: the heap is rebuilt from the dict when it holds more than this many times the dict's entries (+ slack)
_COMPACT_FACTOR = 4
_COMPACT_SLACK = 1024


class HotGallery(dict):
    """``{global_id: GlobalIdentity}`` with insertion ranks and a recency heap (see the module docstring).

    Mutate it with ``d[g] = ident``, ``del d[g]`` and ``d.pop(g[, default])``; the other dict mutators
    (``update``, ``setdefault``, ``popitem``, ``clear``, ``|=``) are refused, so the upkeep cannot be
    bypassed. After changing an identity's ``last_seen`` in place, call :meth:`touch`."""

    def __init__(self, items: Iterable[tuple[int, GlobalIdentity]] = ()) -> None:
        super().__init__()
        self._rank: dict[int, int] = {}
        self._next_rank = 0
        self._heap: list[tuple[float, int]] = []
        self._pushed: dict[int, float] = {}  # id -> the last_seen of its newest heap entry
        for g, ident in items:
            self[g] = ident

    # ------------------------------------------------------------------ mutation
    def __setitem__(self, global_id: int, ident: GlobalIdentity) -> None:
        if global_id not in self:
            self._rank[global_id] = self._next_rank
            self._next_rank += 1
        super().__setitem__(global_id, ident)
        self.touch(global_id, ident.last_seen)

    def __delitem__(self, global_id: int) -> None:
        super().__delitem__(global_id)
        del self._rank[global_id]

    _MISSING = object()

    def pop(self, global_id: int, default=_MISSING):
        if global_id in self:
            del self._rank[global_id]
            return super().pop(global_id)
        if default is HotGallery._MISSING:
            raise KeyError(global_id)
        return default

    def _refuse(self, *args, **kwargs):
        raise TypeError("HotGallery: use d[g] = ident, del d[g] or d.pop(g)")

    update = setdefault = popitem = clear = __ior__ = _refuse

    def __reduce__(self):
        """Pickled as its items (rebuilt in order, ranks and heap afresh): the batch checkpoint."""
        return (HotGallery, (list(self.items()),))

    def touch(self, global_id: int, last_seen: float) -> None:
        """Record that ``global_id``'s ``last_seen`` is now ``last_seen`` (no-op when already recorded)."""
        if self._pushed.get(global_id) != last_seen:
            heapq.heappush(self._heap, (last_seen, global_id))
            self._pushed[global_id] = last_seen
            if len(self._heap) > _COMPACT_FACTOR * len(self) + _COMPACT_SLACK:
                self._compact()

    def _compact(self) -> None:
        self._heap = [(ident.last_seen, g) for g, ident in self.items()]
        heapq.heapify(self._heap)
        self._pushed = {g: s for s, g in self._heap}

    # ------------------------------------------------------------------ queries
    def in_memory_order(self, global_ids: Iterable[int]) -> list[int]:
        """The ids of ``global_ids`` that are in the dict, in the dict's iteration order."""
        rank = self._rank
        return sorted({g for g in global_ids if g in rank}, key=rank.__getitem__)

    def least_recent(self, k: int, skip: set[int] | frozenset[int] = frozenset(),
                     extra: Mapping[int, GlobalIdentity] | None = None) -> list[int]:
        """The ``k`` ids with the smallest ``(last_seen, id)`` among the dict's identities not in ``skip``
        and ``extra``'s (identities about to join), in that order."""
        if k <= 0:
            return []
        heap, pushed = self._heap, self._pushed
        taken: list[tuple[float, int]] = []  # valid entries popped: pushed back afterwards
        picked: list[tuple[float, int]] = []
        while len(picked) < k and heap:
            s, g = heapq.heappop(heap)
            ident = self.get(g)
            if ident is None:
                if pushed.get(g) == s:
                    del pushed[g]
                continue
            cur = ident.last_seen
            if cur != s:  # changed since this entry: re-queue unless a newer entry exists
                if pushed.get(g) == s:
                    heapq.heappush(heap, (cur, g))
                    pushed[g] = cur
                continue
            if taken and taken[-1] == (s, g):  # a duplicate entry (same id, same value pushed twice)
                continue
            taken.append((s, g))
            if g not in skip:
                picked.append((s, g))
        for entry in taken:
            heapq.heappush(heap, entry)
        if extra:
            picked.extend((ident.last_seen, g) for g, ident in extra.items() if g not in skip)
            picked.sort()
        return [g for _, g in picked[:k]]
