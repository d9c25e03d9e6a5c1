"""HotGallery answers least-recent and memory-order queries exactly as the full scans it replaces."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from pipeline.core.types import GlobalIdentity
from pipeline.matching.hot_gallery import HotGallery


def _ident(g: int, seen: float) -> GlobalIdentity:
    return GlobalIdentity(g, np.zeros(2, np.float32), last_seen=seen)


def _brute_least_recent(d: dict, k: int, skip: set, extra: dict) -> list[int]:
    rows = [(i.last_seen, g) for g, i in d.items() if g not in skip]
    rows += [(i.last_seen, g) for g, i in extra.items() if g not in skip]
    return [g for _, g in sorted(rows)[:k]]


def test_random_operations_match_brute_force():
    rng = np.random.default_rng(7)
    hot, plain = HotGallery(), {}
    for step in range(4000):
        op = rng.integers(0, 6)
        g = int(rng.integers(0, 200))
        if op <= 1:  # insert or replace (a new object, as a re-solve or a page-in does)
            ident = _ident(g, float(rng.integers(0, 50)))  # integer times: many ties, broken by id
            hot[g], plain[g] = ident, ident
        elif op == 2 and g in plain:  # seen again, reported
            plain[g].last_seen = max(plain[g].last_seen, float(rng.integers(0, 60)))
            hot.touch(g, plain[g].last_seen)
        elif op == 3 and g in plain:  # seen again WITHOUT touch: must still be found at its new value
            plain[g].last_seen = max(plain[g].last_seen, float(rng.integers(0, 60)))
        elif op == 4 and g in plain:
            if rng.random() < 0.5:
                del hot[g]
            else:
                assert hot.pop(g) is plain[g]
            del plain[g]
        assert list(hot) == list(plain)
        if step % 7 == 0:
            k = int(rng.integers(1, 30))
            skip = {int(x) for x in rng.integers(0, 200, size=int(rng.integers(0, 10)))}
            extra = {int(x): _ident(int(x), float(rng.integers(0, 60))) for x in rng.integers(200, 230, size=3)}
            assert hot.least_recent(k, skip, extra) == _brute_least_recent(plain, k, skip, extra)
            subset = [int(x) for x in rng.integers(0, 250, size=20)]
            assert hot.in_memory_order(subset) == [x for x in plain if x in set(subset)]


def test_an_identity_changed_without_touch_is_not_lost():
    hot = HotGallery()
    for g in range(5):
        hot[g] = _ident(g, float(g))
    hot[0].last_seen = 10.0  # no touch: its entry (0.0, 0) is stale
    assert hot.least_recent(1) == [1]  # the stale entry is re-queued at 10.0, not taken
    assert hot.least_recent(5) == [1, 2, 3, 4, 0]


def test_key_reinserted_after_delete_goes_last_and_replacement_keeps_place():
    hot = HotGallery((g, _ident(g, 0.0)) for g in (3, 1, 2))
    hot[1] = _ident(1, 5.0)  # replaced: keeps its place
    assert hot.in_memory_order([2, 1, 3, 99]) == [3, 1, 2]
    del hot[3]
    hot[3] = _ident(3, 1.0)
    assert hot.in_memory_order([1, 2, 3]) == [1, 2, 3] == list(hot)
    assert hot.least_recent(2) == [2, 3]


def test_pickle_round_trip_keeps_order_and_answers():
    hot = HotGallery((g, _ident(g, float(10 - g))) for g in range(10))
    back = pickle.loads(pickle.dumps(hot))
    assert isinstance(back, HotGallery) and list(back) == list(hot)
    assert back.least_recent(3) == hot.least_recent(3) == [9, 8, 7]


def test_the_batch_checkpoint_loads_it_as_plain_data():
    """The resume checkpoint's restricted unpickler (pipeline/runner/checkpoint.py) rebuilds it."""
    import io

    from pipeline.runner.checkpoint import RestrictedUnpickler

    hot = HotGallery((g, _ident(g, float(g % 3))) for g in range(6))
    back = RestrictedUnpickler(io.BytesIO(pickle.dumps(hot))).load()
    assert isinstance(back, HotGallery) and list(back) == list(hot)
    assert back.least_recent(6) == hot.least_recent(6) == [0, 3, 1, 4, 2, 5]


def test_mutators_that_would_bypass_the_upkeep_are_refused():
    hot = HotGallery()
    with pytest.raises(TypeError):
        hot.update({1: _ident(1, 0.0)})
    with pytest.raises(TypeError):
        hot.setdefault(1, _ident(1, 0.0))
    with pytest.raises(KeyError):
        hot.pop(5)
    assert hot.pop(5, None) is None


def test_heap_is_compacted_when_touched_often():
    hot = HotGallery((g, _ident(g, 0.0)) for g in range(3))
    for t in range(5000):
        hot[1].last_seen = float(t + 1)
        hot.touch(1, float(t + 1))
    assert len(hot._heap) <= 4 * len(hot) + 1024 + 1
    assert hot.least_recent(3) == [0, 2, 1]
