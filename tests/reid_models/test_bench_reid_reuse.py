"""tools/bench_reid.py's --reuse: an earlier result is replayed only for the same weights, flip, re-ranking *and*
crop-resize rule (results written before the crop-resize fix carry no rule and must be scored again)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def bench(tool_module):
    return tool_module("bench_reid")


def _model(version: str, **extra) -> dict:
    return {"model": {"spec": "x", "version": version, "dim": 1280, "flip": False, "rerank": False, **extra},
            "market": {}}


def test_reuse_is_keyed_by_the_crop_resize_rule(bench, tmp_path):
    doc = {"results": {"old": _model("aaaa"), "new": _model("bbbb", crop_resize="auto"),
                       "flip": _model("bbbb", crop_resize="auto", flip=True)}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    earlier = bench.reusable(path)
    assert bench.reuse_key("aaaa", False, False, "auto") not in earlier      # made before the fix: scored again
    assert earlier[bench.reuse_key("aaaa", False, False, "area")] is not None  # what it was made with
    assert earlier[bench.reuse_key("bbbb", False, False, "auto")]["model"]["flip"] is False
    assert earlier[bench.reuse_key("bbbb", True, False, "auto")]["model"]["flip"] is True
    assert bench.reuse_key("bbbb", False, True, "auto") not in earlier       # re-ranked: another result
    assert bench.reusable(tmp_path / "missing.json") == {}


def test_sequence_figures_reach_the_headline_and_the_table(bench):
    """The per-camera sequence rank-1 (video-to-video, image-to-video; mean / LSTM) of evaluate_items' "video"
    lands in the flat headline and the table; a result without it (an earlier --reuse) shows "-"."""
    r = {"rank1": 1.0, "rank5": 2.0, "rank10": 3.0, "mAP": 4.0}
    seq = lambda v2v, i2v: {"video_to_video": {"rank1": v2v, "num_queries": 9},  # noqa: E731
                            "image_to_video": {"rank1": i2v, "num_queries": 9}}
    m = {"market": {"retrieval": r, "video": {"mean": seq(92.1, 88.0), "lstm": seq(77.6, 58.0)}},
         "cuhk03": {"retrieval": r, "video": {"mean": seq(69.0, 62.0)}},
         "pets": {"retrieval": r, "roc": {"tpr_at_fpr": 0.5, "fpr_at_that": 0.1, "auc": 0.9},
                  "tracklets": {"mean": {"rank1": 40.0, "num_queries": 5}}}}
    h = bench.headline(m)
    assert (h["market_v2v_mean"], h["market_i2v_mean"], h["market_v2v_lstm"], h["market_i2v_lstm"]) == (92.1, 88.0, 77.6, 58.0)
    assert (h["cuhk03_v2v_mean"], h["cuhk03_i2v_mean"], h["cuhk03_v2v_lstm"]) == (69.0, 62.0, None)
    old = {**m, "market": {"retrieval": r}, "cuhk03": {"retrieval": r}}
    text = bench.table({"default": h, "earlier": bench.headline(old)}, None, None, [])
    assert "| default | 92.1 | 77.6 | 88.0 | 58.0 | 69.0 | - | 62.0 | - |" in text
    assert "| earlier | - | - | - | - | - | - | - | - |" in text
