"""tools/bench_soak.py's per-window table (issue 16's RSS row: does the level stop rising?) on hand-made samples,
and --summarise on a finished soak's rss.json (and its one-line error on a file that is not one)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def soak(tool_module):
    return tool_module("bench_soak")


SAMPLES = [(0.0, 100.0), (2.0, 102.0), (4.0, 104.0), (10.0, 200.0), (12.0, 200.0), (14.0, 200.0)]
GALLERY = [(4.0, 3), (14.0, 5)]
FPS = [(2.0, 1.0), (4.0, 3.0), (12.0, 2.0)]


def test_windows_by_hand(soak):
    rows = soak.windows(SAMPLES, GALLERY, FPS, 10.0)
    assert len(rows) == 2
    first, second = rows
    # 0-10 s: 100, 102, 104 MiB rising 1 MiB/s = 3600 MiB/h; gallery 3 at its end; fps (1 + 3) / 2
    assert first == {"from_min": 0.0, "to_min": 0.2, "rss_median_mib": 102.0, "rss_min_mib": 100.0,
                     "rss_max_mib": 104.0, "slope_mib_per_h": 3600.0, "gallery_end": 3, "camera_fps": 2.0}
    # 10-14 s (the run's end): flat at 200
    assert second["rss_median_mib"] == 200.0 and second["slope_mib_per_h"] == pytest.approx(0.0, abs=1e-9)
    assert second["gallery_end"] == 5 and second["camera_fps"] == 2.0 and second["to_min"] == 0.2
    table = soak.windows_table(rows)
    assert table.splitlines()[2] == "| 0-0 | 102 | 100 | 104 | +3600 | 3 | 2.0 |"


def test_summarise_writes_the_table_and_refuses_other_files(soak, tmp_path, capsys):
    rss = tmp_path / "rss.json"
    rss.write_text(json.dumps({"samples": SAMPLES, "gallery": GALLERY, "fps": FPS}))
    assert soak.main(["--summarise", str(rss), "--window", "10"]) == 0
    assert (tmp_path / "windows.md").read_text().splitlines()[3].startswith("| 0-0 | 200 | 200 | 200 |")
    bad = tmp_path / "other.json"
    bad.write_text("[1, 2]")
    assert soak.main(["--summarise", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"bench_soak: {bad}: not a soak's rss.json") and "\n" not in err
