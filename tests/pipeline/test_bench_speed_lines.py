"""tools/bench_speed.py's deep-sort-realtime verdict lines on hand-made rows (issue 16's ">= 3x" row)."""

from __future__ import annotations

import pytest


@pytest.fixture
def bench(tool_module):
    return tool_module("bench_speed")


ND = {"row": "new_default", "fps": 35.0, "cpu_ms_per_frame": 40.0, "track_IDF1": 77.2, "global_IDF1": 65.9,
      "stage_s": {"detect": 30.0}}
PEER = {"row": "deepsort", "camera_frames": 1000, "fps": 10.0, "cpu_ms_per_frame": 120.0, "track_IDF1": 71.6,
        "global_IDF1": 56.9, "stage_s": {"decode": 1.0, "detect (ours, measured in this run)": 50.0,
                                         "deep-sort-realtime update incl. embedder": 69.0}}


def test_peer_line_states_both_ratios_and_the_verdict(bench):
    line = bench._peer_line("new_default", ND, PEER)
    assert "3.50x its camera-frames/s (10.00)" in line and "3.00x by CPU time" in line   # 35/10, 120/40
    assert "track IDF1 (each tracker's own ids) 77.2 vs 71.6" in line and line.endswith(": met")
    slow = {**ND, "fps": 29.0}
    assert bench._peer_line("new_default", slow, PEER).endswith("NOT met")             # 2.9x


def test_peer_charged_our_detector_time(bench):
    # 1000 camera-frames / (30 s our detector + 1 s decode + 69 s deep-sort) = 10.00 /s; 35 / 10 = 3.50x
    line = bench._peer_same_detector_line(ND, PEER)
    assert "(30.0 s): 10.00 camera-frames/s; new_default is 3.50x that" in line
    faster = {**ND, "stage_s": {"detect": 10.0}}   # 1000 / 80 s = 12.50 /s; 35 / 12.5 = 2.80x
    assert "12.50 camera-frames/s; new_default is 2.80x that" in bench._peer_same_detector_line(faster, PEER)
