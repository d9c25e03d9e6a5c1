"""TrackletBuilder lifecycle, frame by frame, with hand-computed expectations."""

from __future__ import annotations

import numpy as np

from pipeline.tracklets import TrackletBuilder
from pipeline.core.types import TrackOutput


def _out(tid: int, frame: int, emb: list[float] | None = None) -> TrackOutput:
    e = None if emb is None else np.asarray(emb, dtype=np.float32)
    return TrackOutput("c1", tid, frame, np.array([frame, 0.0, 10.0, 20.0]), 0.9, e)


def test_finish_builds_exact_tracklet_and_drops_short_ones():
    b = TrackletBuilder("c1", min_length=3, partial_every_s=None)
    for f in range(1, 5):  # track 1 on frames 1..4, track 2 on frames 2..3
        outs = [_out(1, f, [1.0, 0.0] if f % 2 else None)]
        if f in (2, 3):
            outs.append(_out(2, f, [0.0, 1.0]))
        assert b.add(outs, timestamps=f / 10.0) == []
    assert b.open_track_ids() == [1, 2]
    done = b.finish([1, 2, 99])  # 99 was never seen: ignored
    assert [t.track_id for t in done] == [1]  # track 2 has 2 < 3 frames
    t = done[0]
    assert t.cam_id == "c1"
    assert t.frames.tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(t.timestamps, [0.1, 0.2, 0.3, 0.4])
    assert t.boxes_tlwh[:, 0].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert t.embeddings.shape == (2, 2)  # embeddings only on frames 1 and 3
    assert t.embedding_frames.tolist() == [1, 3]
    assert b.open_track_ids() == []
    assert b.flush_all() == []


def test_partial_tracklets_are_cumulative_and_final_is_kept():
    b = TrackletBuilder("c1", min_length=2, partial_every_s=1.0)
    emitted = {}
    for f in range(1, 32):  # 10 fps: t = 0.0 .. 3.0
        for p in b.add([_out(7, f, [1.0, 0.0])], timestamps=(f - 1) / 10.0):
            emitted[f] = p
    # due at t >= 1.0 after start (frame 11), then every 1.0 s after that (21, 31)
    assert sorted(emitted) == [11, 21, 31]
    assert emitted[11].frames.tolist() == list(range(1, 12))
    assert emitted[21].frames[0] == 1 and emitted[21].frames[-1] == 21
    final = b.flush_all()
    assert len(final) == 1 and final[0].frames.tolist() == list(range(1, 32))


def test_short_track_with_partial_still_gets_final_and_duplicates_ignored():
    b = TrackletBuilder("c1", min_length=2, partial_every_s=0.0)
    assert b.add([_out(3, 1)], 0.0) == []  # 1 frame < min_length: no partial yet
    parts = b.add([_out(3, 2)], 0.1)
    assert len(parts) == 1 and parts[0].frames.tolist() == [1, 2]
    assert parts[0].embeddings.shape == (0, 0)
    assert b.add([_out(3, 2)], 0.1) == []  # same frame twice: ignored
    final = b.finish([3])
    assert final[0].frames.tolist() == [1, 2]


def test_embedding_cap_decimates_uniformly():
    b = TrackletBuilder("c1", min_length=1, partial_every_s=None, max_embeddings=4)
    for f in range(1, 11):
        b.add([_out(1, f, [float(f), 0.0])], float(f))
    t = b.flush_all()[0]
    # offers 1..5 -> cap exceeded at 5 -> keep [1,3,5], stride 2; then keep 7, 9 -> [1,3,5,7,9]
    # exceeds 4 again -> [1,5,9], stride 4; offers 10 is (10-1)%4 != 0 -> dropped
    assert t.embedding_frames.tolist() == [1, 5, 9]
    assert t.embeddings[:, 0].tolist() == [1.0, 5.0, 9.0]
    assert len(t) == 10


def test_min_visibility_leaves_out_the_embeddings_of_boxes_hidden_behind_another():
    """Track 2 (box 0..10 x 0..20, bottom edge y 20) walks behind track 1; on frames 2 and 3 track 1's box
    (bottom edge 30, lower: nearer the camera) covers its left half (x 0..5, y 0..30) -> visible 0.5 on the
    8-column sample grid, then 3/4 hidden on frame 4 (x 0..7.5: 6 of 8 columns) -> 0.25. Frame 1: alone, 1.0."""
    def out(tid, frame, tlwh, emb):
        return TrackOutput("c1", tid, frame, np.array(tlwh, float), 0.9, np.asarray(emb, np.float32))

    covers = {2: [0, 0, 5, 30], 3: [0, 0, 5, 30], 4: [0, 0, 7.5, 30]}
    for min_vis, kept in ((0.0, [1, 2, 3, 4]), (0.5, [1, 2, 3]), (0.6, [1])):
        b = TrackletBuilder("c1", min_length=1, partial_every_s=None, min_visibility=min_vis)
        for f in range(1, 5):
            outs = [out(2, f, [0, 0, 10, 20], [float(f), 1.0])]
            if f in covers:
                outs.append(out(1, f, covers[f], [0.0, 9.0]))
            b.add(outs, timestamps=float(f))
        t2 = next(t for t in b.flush_all() if t.track_id == 2)
        assert t2.embedding_frames.tolist() == kept
        assert t2.embeddings[:, 0].tolist() == [float(f) for f in kept]
        assert t2.frames.tolist() == [1, 2, 3, 4]  # boxes are all kept: only the descriptor changes
    # a tracklet with no embedding that visible keeps all of them (the descriptor needs something)
    b = TrackletBuilder("c1", min_length=1, partial_every_s=None, min_visibility=0.9)
    b.add([out(2, 5, [0, 0, 10, 20], [1.0, 0.0]), out(1, 5, [0, 0, 5, 30], [0.0, 1.0])], timestamps=5.0)
    t2 = next(t for t in b.flush_all() if t.track_id == 2)
    assert t2.embedding_frames.tolist() == [5]
