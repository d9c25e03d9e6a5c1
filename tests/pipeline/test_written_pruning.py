"""Live runs keep the global-MOT bookkeeping bounded: frames no open track can reach are forgotten."""

from __future__ import annotations

import numpy as np

from pipeline.core.types import TrackOutput
from pipeline.runner.identity import IdentityAssigner
from pipeline.tracklets import TrackletBuilder


def _out(track_id: int, frame: int) -> TrackOutput:
    return TrackOutput(cam_id="a", track_id=track_id, frame=frame, tlwh=np.array([0.0, 0.0, 10.0, 20.0]), score=1.0)


def test_oldest_open_frame_follows_the_open_tracks():
    b = TrackletBuilder("a", min_length=1, partial_every_s=None)
    assert b.oldest_open_frame() is None
    b.add([_out(1, 5)], 0.5)
    b.add([_out(1, 6), _out(2, 6)], 0.6)
    assert b.oldest_open_frame() == 5
    b.finish([1])
    assert b.oldest_open_frame() == 6
    b.finish([2])
    assert b.oldest_open_frame() is None


def test_forget_written_before_keeps_only_reachable_frames():
    a = IdentityAssigner(store=None, matcher=None, aggregator=None, run_id=1, model_version="v")
    a._written = {("a", 1): {3, 4, 9}, ("a", 2): {1, 2}, ("b", 1): {1, 2}}
    assert a.forget_written_before("a", 4) == 3  # frames 3, 1, 2 of camera a
    assert a._written == {("a", 1): {4, 9}, ("b", 1): {1, 2}}  # camera b untouched, emptied key gone
