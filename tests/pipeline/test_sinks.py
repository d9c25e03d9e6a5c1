"""Sinks: exact MOT rows, flushed JSON-lines events, timeline PNG, annotated video."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.sinks import AnnotatedVideoWriter, EventSink, MOTWriter, TimelineRecorder
from pipeline.sinks.mot import format_mot_row


def test_mot_rows_are_exact_and_flushed(tmp_path):
    assert format_mot_row(3, 7, np.array([1.0, 2.5, 10.0, 20.0]), 0.5) == "3,7,1.00,2.50,10.00,20.00,0.5000,-1,-1,-1\n"
    w = MOTWriter(tmp_path / "mot" / "a.txt")
    w.write_rows([(1, 2, np.array([0.0, 0.0, 1.0, 1.0]), 1.0)])
    assert (tmp_path / "mot" / "a.txt").read_text().startswith("1,2,0.00,0.00,1.00,1.00,1.0000")  # before close
    w.close()
    assert w.rows == 1


def test_events_are_json_lines_flushed_per_event(tmp_path):
    sink = EventSink(tmp_path / "events.jsonl")
    sink.emit("appear", 4, "left", 1.23456, track_id=2)
    line = (tmp_path / "events.jsonl").read_text().strip()  # readable before close
    assert json.loads(line) == {"kind": "appear", "global_id": 4, "cam_id": "left", "t": 1.235, "track_id": 2}
    with pytest.raises(ValueError, match="unknown event kind"):
        sink.emit("vanish", 4, "left", 2.0)
    sink.close()


def test_timeline_keeps_latest_span_per_track_and_writes_png(tmp_path):
    tl = TimelineRecorder()
    tl.record("left", 1, 5, 0.0, 1.0)
    tl.record("left", 1, 5, 0.0, 3.0)  # final replaces partial
    tl.record("left", 2, 6, 2.0, 4.0)
    assert tl.spans("left") == [(5, 0.0, 3.0), (6, 2.0, 4.0)]
    paths = tl.write_all(tmp_path)
    assert [p.name for p in paths] == ["timeline_left.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_annotated_video_has_the_frames(tmp_path):
    import cv2

    w = AnnotatedVideoWriter(tmp_path / "v.mp4", fps=7.0)
    img = np.zeros((64, 96, 3), np.uint8)
    for _ in range(3):
        w.write(img, [(np.array([10.0, 10.0, 20.0, 30.0]), "G1", 1)])
    w.close()
    assert img.sum() == 0  # the caller's image is not drawn on
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 3


def test_timeline_relabel_gives_spans_their_final_identity(tmp_path):
    """Spans recorded under the identity of the moment take the store's final one (revisions, re-clustering);
    tracks the mapping does not name keep theirs."""
    from pipeline.runner.components import Sinks

    tl = TimelineRecorder()
    tl.record("left", 1, 5, 0.0, 2.0)
    tl.record("left", 2, 6, 1.0, 3.0)
    tl.record("right", 1, 6, 4.0, 5.0)
    assert tl.relabel({("left", 2): 5, ("right", 1): 6, ("right", 9): 1}) == 1
    assert tl.spans("left") == [(5, 0.0, 2.0), (5, 1.0, 3.0)] and tl.spans("right") == [(6, 4.0, 5.0)]
    sinks = Sinks(out_dir=tmp_path, local_mot={}, global_mot={}, events=None, video={}, timeline=tl, write_timeline=True)
    # the runner's end of a run: the PNGs of the store's spans under their final ids (the recorder is not used)
    paths = sinks.write_timelines([("right", 1, 5, 4.0, 5.0), ("left", 1, 5, 0.0, 2.0)])
    assert sorted(p.name for p in paths) == ["timeline_left.png", "timeline_right.png"]
    assert TimelineRecorder.from_spans([("right", 1, 5, 4.0, 5.0), ("right", 1, 7, 4.0, 6.0)]).spans("right") == [
        (7, 4.0, 6.0)]
    assert [p.name for p in sinks.write_timelines()] == ["timeline_left.png", "timeline_right.png"]  # the recorder's
    assert Sinks(out_dir=tmp_path, local_mot={}, global_mot={}, events=None, video={}, timeline=tl,
                 write_timeline=False).write_timelines([("left", 1, 9, 0.0, 2.0)]) == []


def test_live_timeline_forgets_spans_older_than_keep_s():
    """A live run's recorder stays bounded: 300 tracks of 5 s, one starting every 2 s, keep_s 20 -> the spans that
    ended within 20 s of the latest end (11 of them); a partial replaced by its final is not dropped early."""
    tl = TimelineRecorder(keep_s=20.0)
    for k in range(300):
        tl.record("cam", k, k, 2.0 * k, 2.0 * k + 1.0)  # partial
        tl.record("cam", k, k, 2.0 * k, 2.0 * k + 5.0)  # its final
        assert len(tl) <= 11
    latest = 2.0 * 299 + 5.0
    assert [s[0] for s in tl.spans("cam")] == list(range(289, 300))
    assert all(b >= latest - 20.0 for _, _, b in tl.spans("cam")) and len(tl._ends) <= 22
    assert len(TimelineRecorder.from_spans(("cam", k, k, 2.0 * k, 2.0 * k + 5.0) for k in range(300))) == 300
