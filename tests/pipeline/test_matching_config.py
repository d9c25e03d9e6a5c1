"""Matcher config rules that catch typos which would otherwise switch a constraint off silently."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipeline.matching.config import MatcherConfig, TopologyConfig
from pipeline.matching.matcher import CrossCameraMatcher


def _links(*links: dict) -> dict:
    return {"links": list(links)}


def test_each_direction_has_one_transit_window():
    both = {"a": "left", "b": "right", "min_s": 1, "max_s": 5}
    with pytest.raises(ValidationError, match=r"links.1 \(left -> right\) repeats the direction left -> right of links.0"):
        TopologyConfig.model_validate(_links(both, {"a": "left", "b": "right", "min_s": 100, "max_s": 200}))
    with pytest.raises(ValidationError, match="repeats the direction right -> left"):  # the reverse, via bidirectional
        TopologyConfig.model_validate(_links(both, {"a": "right", "b": "left", "min_s": 100, "max_s": 200,
                                                    "bidirectional": False}))
    with pytest.raises(ValidationError, match="links camera 'left' to itself"):
        TopologyConfig.model_validate(_links({"a": "left", "b": "left"}))
    # one window per direction is what a one-way pair is: accepted, and the matcher keeps each
    topo = TopologyConfig.model_validate(_links({"a": "left", "b": "right", "min_s": 1, "max_s": 5, "bidirectional": False},
                                                {"a": "right", "b": "left", "min_s": 100, "max_s": 200,
                                                 "bidirectional": False}))
    m = CrossCameraMatcher(MatcherConfig(topology=topo))
    assert m._transit("left", "right", 3.0) == 0.0 and m._transit("left", "right", 150.0) == float("inf")
    assert m._transit("right", "left", 150.0) == 0.0 and m._transit("right", "left", 3.0) == float("inf")


@pytest.mark.parametrize("groups", [[["left", "left"]], [["left"]], [[]]])
def test_overlap_groups_name_two_cameras(groups):
    with pytest.raises(ValidationError, match="overlapping_cameras.0 .* must name two or more different cameras"):
        MatcherConfig(overlapping_cameras=groups)
    assert MatcherConfig(overlapping_cameras=[["left", "right"], ["right", "left"]]).overlapping_cameras
