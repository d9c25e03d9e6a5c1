"""Fixtures for the console tests: a demo store built from real PETS09-S2L1 frames and gt boxes with real
embeddings of the shipped default encoder (pipeline.testing.gt_store, same two-camera split as
tests/pipeline/pets_store.py), the console served on a free loopback port, and Debian's chromium driven by
Playwright (``executable_path``; Playwright's own browser download is never needed).

Screenshots go to ``$REID_CONSOLE_SHOTS`` when set (e.g. runs/console/shots), else to the test's tmp dir.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("REID_CHROMIUM", "/usr/bin/chromium")
LAST_FRAME = 200  # the store holds frames 1..200; probes come from later frames


@pytest.fixture(scope="session")
def encoder():
    from reid_models.encoder import AppearanceEncoder

    return AppearanceEncoder.from_checkpoint(None, device="cpu")


@pytest.fixture(scope="session")
def demo_store(pets_dir: Path, encoder, tmp_path_factory) -> Path:
    from pipeline.testing.gt_store import build_gt_store

    path = tmp_path_factory.mktemp("console") / "demo.sqlite"
    build_gt_store(pets_dir, path, encoder, last_frame=LAST_FRAME)
    return path


@pytest.fixture(scope="session")
def gt_probe(pets_dir: Path):
    """probe(gt_id, frame) -> the BGR gt crop of that person in that frame (a real crop)."""
    import cv2

    from pipeline.testing.gt_store import gt_rows

    def probe(pid: int, frame: int):
        row = [r for r in gt_rows(pets_dir, frame, frame) if int(r[1]) == pid][0]
        image = cv2.imread(str(pets_dir / "img1" / f"{frame:06d}.jpg"))
        x, y, w, h = (int(v) for v in row[2:6])
        return image[y:y + h, x:x + w].copy()

    return probe


@pytest.fixture(scope="session")
def gt_box(pets_dir: Path):
    """gt_box(gt_id, frame) -> that person's gt box (x, y, w, h) in pixels."""
    from pipeline.testing.gt_store import gt_rows

    def box(pid: int, frame: int) -> tuple[float, float, float, float]:
        row = [r for r in gt_rows(pets_dir, frame, frame) if int(r[1]) == pid][0]
        return tuple(float(v) for v in row[2:6])

    return box


@pytest.fixture
def console(demo_store: Path, encoder):
    from pipeline.web.server import ConsoleServer

    srv = ConsoleServer(demo_store, lambda: encoder, port=0).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> Path:
    env = os.environ.get("REID_CONSOLE_SHOTS")
    path = Path(env) if env else tmp_path_factory.mktemp("shots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def chromium():
    """A headless Debian chromium under Playwright (installed by tools/setup_system.sh)."""
    if not Path(CHROMIUM).is_file() and shutil.which("chromium") is None:
        pytest.fail(f"{CHROMIUM}: Debian's chromium is missing; run tools/setup_system.sh", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium"),
                                    headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    """A fresh page that records console errors and failed requests (``page.problems``)."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("requestfailed", lambda r: None if "ERR_ABORTED" in (r.failure or "") else  # left the page mid-fetch
          problems.append(f"request failed: {r.url} {r.failure}"))
    pg.problems = problems
    yield pg
    context.close()


@pytest.fixture
def merged_store(demo_store: Path, tmp_path: Path) -> tuple[Path, int, int, list[int]]:
    """A copy of the demo store where the second identity was merged into the first (store history + alias):
    (path, into, absorbed, moved tracklet ids), each move with distance 0.25 and probability 0.875."""
    from pipeline.store import IdentityStore

    path = tmp_path / "merged.sqlite"
    shutil.copy(demo_store, path)
    store = IdentityStore(path)
    rows = store.db.query("SELECT global_id FROM assignments GROUP BY global_id ORDER BY global_id")
    into, absorbed = int(rows[0][0]), int(rows[1][0])
    moved = [int(r[0]) for r in store.db.query("SELECT tracklet_id FROM assignments WHERE global_id=?", (absorbed,))]
    for tid in moved:
        store.assign(tid, into, distance=0.25, probability=0.875)
    store.record_change(None, "merge", into, into, absorbed, "left", 1.0, moved, distance=0.25, probability=0.875,
                        payload={"from": absorbed, "into": into, "tracklets": len(moved)})
    store.close()
    return path, into, absorbed, moved
