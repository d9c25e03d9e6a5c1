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
