"""GcFreezer (pipeline/core/gcpauses.py): when it collects and freezes, that frozen objects are skipped by
collections, that a cycle which dies after being frozen is freed by the periodic full collection, and that
closing it leaves nothing frozen."""

from __future__ import annotations

import gc
import weakref

import pytest

from pipeline.core.gcpauses import GcFreezer


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class _Node:
    """A container object that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> tuple[weakref.ref, _Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a), a


@pytest.fixture
def clock():
    yield _Clock()
    gc.unfreeze()  # whatever a failed assertion left frozen


def test_ticks_follow_the_clock(clock):
    with GcFreezer(every_s=1.0, full_every_s=10.0, clock=clock) as f:
        assert f.tick() == "young"  # the first tick freezes what start-up loaded
        assert gc.get_freeze_count() > 0
        clock.t += 0.5
        assert f.tick() is None
        clock.t += 0.5
        assert f.tick() == "young"
        clock.t += 9.0  # 10 s since the start: a full collection
        assert f.tick() == "full"
        clock.t += 1.0
        assert f.tick() == "young"
        assert f.counts == {"young": 3, "full": 1}
    assert gc.get_freeze_count() == 0


def test_frozen_cycle_survives_young_ticks_and_dies_at_the_full_one(clock):
    with GcFreezer(every_s=1.0, full_every_s=5.0, clock=clock) as f:
        ref, node = _cycle()
        assert f.tick() == "young"  # the live cycle is frozen
        del node  # now garbage, but frozen: young ticks and full collections of the frozen state skip it
        for _ in range(3):
            clock.t += 1.0
            assert f.tick() == "young"
        gc.collect()
        assert ref() is not None
        clock.t += 2.0
        assert f.tick() == "full"  # unfreezes, then collects everything
        assert ref() is None


def test_cycles_that_die_young_are_collected_by_the_young_tick(clock):
    with GcFreezer(every_s=1.0, full_every_s=None, clock=clock) as f:
        f.tick()
        ref, node = _cycle()
        del node
        clock.t += 1.0
        assert f.tick() == "young"
        assert ref() is None


def test_close_unfreezes_and_bad_periods_are_refused(clock):
    f = GcFreezer(every_s=1.0, clock=clock)
    f.tick()
    assert gc.get_freeze_count() > 0
    f.close()
    assert gc.get_freeze_count() == 0
    with pytest.raises(ValueError):
        GcFreezer(every_s=0)
    with pytest.raises(ValueError):
        GcFreezer(every_s=2.0, full_every_s=1.0)
