"""Issue 11: the quick fault campaign (tools/fault_campaign.py --quick) against real local servers.

Runs the tool like CI does: a real GStreamer RTSP server on 127.0.0.1, the real ``reid-pipeline run``
in subprocesses, faults injected (server killed / frozen, kill -9 mid-batch, a second writer, an
unreachable camera, credentials in URLs, bad inputs). Every row of its JSON report must PASS; a
failing row names what went wrong.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.paths import REPO_ROOT

pytestmark = [pytest.mark.rtsp, pytest.mark.slow]


def test_quick_fault_campaign_passes_every_row(tmp_path: Path, shared: Path) -> None:
    report = tmp_path / "campaign.json"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "fault_campaign.py"), "--quick", "--json", str(report)],
        capture_output=True, text=True, timeout=480, cwd=tmp_path,
    )
    assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(report.read_text())["classes"]
    names = {r["name"] for r in rows}
    assert {"rtsp_restart", "stall", "kill9_resume", "two_writers", "unreachable", "credentials",
            "bad_inputs"} <= names
    failed = {r["name"]: r["failures"] for r in rows if not r["passed"]}
    assert not failed, proc.stdout[-4000:]
    assert all(r["injected"] > 0 and r["recovered"] == r["injected"] for r in rows)
    assert proc.returncode == 0
