"""A matcher call whose tracklets are all continuations of settled tracks, while other tracklets wait in the
incremental revision window, returns their ids (it raised ValueError 'need at least one array to stack' in
solve_window: the incremental region was empty; found replaying a live soak's tracklets, issue 16)."""

from __future__ import annotations

import numpy as np

from pipeline.core.types import TrackletEmbedding
from pipeline.matching.config import MatcherConfig, ReviseConfig
from pipeline.matching.matcher import CrossCameraMatcher


def test_call_of_only_settled_continuations_with_a_busy_window():
    e = np.eye(8)
    m = CrossCameraMatcher(MatcherConfig(threshold=0.3, ttl_s=None, auto_threshold=None,
                                         revise=ReviseConfig(window_s=10.0, incremental=True)))
    [a] = m.match_detailed([TrackletEmbedding("c0", 1, 0.0, 5.0, e[0])])  # long track: a first partial
    [b] = m.match_detailed([TrackletEmbedding("c1", 2, 20.0, 21.0, e[1])])  # clock 21: track 1 settles
    assert (a.global_id, b.global_id) == (1, 2) and set(m.tentative) == {("c1", 2)}
    # the long track's next partial: a settled continuation; track 2 is still tentative, untouched by it
    [r] = m.match_detailed([TrackletEmbedding("c0", 1, 0.0, 22.0, e[0])])
    assert (r.global_id, r.is_new, r.continuation) == (1, False, True)
    assert m.tentative == {("c1", 2): 2} and m.pop_changes() == []
