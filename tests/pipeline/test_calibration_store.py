"""The matcher's label-free calibration persisted in the identity store (issue 12; schema 4).

Checks: a store round-trip (a matcher built from the reopened store continues with the same
negatives and threshold, and keeps calibrating), a model-version change starts over, a kept
warm-up threshold survives, a schema-3 store migrates, the saver only writes changes, and a short
real 2-camera run saves the calibration that a restarted run on the same store continues.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.core.types import TrackletEmbedding
from pipeline.matching.config import AutoThresholdConfig, MatcherConfig
from pipeline.matching.matcher import CrossCameraMatcher
from pipeline.store import IdentityStore
from pipeline.store.calibration import (CalibrationSaver, load_calibration, restore_calibration,
                                        save_calibration)
from pipeline.store.schema import MIGRATIONS, SCHEMA_VERSION

# 10 known-different distances; the 0.2 quantile (numpy "linear") of 0.10, 0.15, ..., 0.55 is
# 0.10 + 0.2 * 9 * 0.05 = 0.19
NEGATIVES = np.round(np.arange(10) * 0.05 + 0.10, 2)
EXPECTED = 0.19


def _config(**auto) -> MatcherConfig:
    kw = dict(false_match_rate=0.2, min_negatives=10, warmup="no-link")
    kw.update(auto)
    return MatcherConfig(threshold=0.35, auto_threshold=AutoThresholdConfig(**kw))


def test_store_round_trip_continues_threshold_and_negatives(tmp_path: Path) -> None:
    db = tmp_path / "ids.sqlite"
    with IdentityStore(db) as store:
        m = CrossCameraMatcher(_config())
        assert m.threshold == 0.0  # no-link warm-up
        m.calibrator.add(NEGATIVES)
        assert m.threshold == pytest.approx(EXPECTED)
        save_calibration(store, m.calibrator, "v1")

    with IdentityStore(db) as store:
        row = load_calibration(store)
        assert row.model_version == "v1" and row.fallback is None
        assert row.threshold == pytest.approx(EXPECTED)
        np.testing.assert_array_equal(row.negatives, NEGATIVES)
        fresh = CrossCameraMatcher(_config())
        assert restore_calibration(store, fresh.calibrator, "v1")
    assert fresh.calibration == {"threshold": pytest.approx(EXPECTED), "calibrated": True, "negatives": 10}
    np.testing.assert_array_equal(fresh.calibrator.negatives, NEGATIVES)

    # it goes on calibrating from there: a real known-different pair (two tracks at once in one camera)
    a = TrackletEmbedding("c1", 1, 0.0, 5.0, np.array([1.0, 0.0], np.float32))
    b = TrackletEmbedding("c1", 2, 1.0, 4.0, np.array([0.6, 0.8], np.float32))  # cos 0.6 -> distance 0.4
    fresh.match([a])
    fresh.match([b])
    np.testing.assert_allclose(fresh.calibrator.negatives, np.append(NEGATIVES, 0.4))
    expect = float(np.quantile(np.append(NEGATIVES, 0.4), 0.2))  # 0.10 + 0.2 * 10 * 0.05 = 0.20
    assert fresh.threshold == pytest.approx(expect) == pytest.approx(0.20)
    # max_negatives smaller than what is stored: the most recent ones are kept
    small = CrossCameraMatcher(_config(max_negatives=10, min_negatives=5))
    small.calibrator.restore(np.append(NEGATIVES, 0.4))
    np.testing.assert_allclose(small.calibrator.negatives, np.append(NEGATIVES[1:], 0.4))


def test_another_model_version_starts_over(tmp_path: Path, caplog) -> None:
    with IdentityStore(tmp_path / "ids.sqlite") as store:
        m = CrossCameraMatcher(_config())
        m.calibrator.add(NEGATIVES)
        save_calibration(store, m.calibrator, "v1")

        other = CrossCameraMatcher(_config())
        with caplog.at_level(logging.INFO, logger="pipeline.store.calibration"):
            assert not restore_calibration(store, other.calibrator, "v2")
        assert "measured by model v1, the encoder is v2: starting it over" in caplog.text
        assert other.calibration == {"threshold": 0.0, "calibrated": False, "negatives": 0}
        # its next save replaces the old version's samples
        other.calibrator.add(np.array([0.7]))
        save_calibration(store, other.calibrator, "v2")
        row = load_calibration(store)
        assert row.model_version == "v2"
        np.testing.assert_array_equal(row.negatives, [0.7])
        # a matcher without calibration (auto_threshold: null) has nothing to restore
        assert not restore_calibration(store, CrossCameraMatcher(MatcherConfig(auto_threshold=None)).calibrator, "v2")


def test_threshold_kept_by_a_hot_swap_survives_a_restart(tmp_path: Path) -> None:
    with IdentityStore(tmp_path / "ids.sqlite") as store:
        m = CrossCameraMatcher(_config())
        m.calibrator.add(NEGATIVES)
        m.reset_calibration(keep_threshold=True)  # new weights: the calibrated value bridges the re-sampling
        m.calibrator.add(np.array([0.5, 0.6]))
        save_calibration(store, m.calibrator, "v2")
        fresh = CrossCameraMatcher(_config())
        assert restore_calibration(store, fresh.calibrator, "v2")
    assert fresh.calibration == {"threshold": pytest.approx(EXPECTED), "calibrated": False, "negatives": 2}


def test_schema_3_store_migrates_to_4(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for v in (1, 2, 3):
        MIGRATIONS[v](conn)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (v,))
    conn.close()
    with IdentityStore(db) as store:
        assert store.db.query("SELECT MAX(version) FROM schema_version")[0][0] == SCHEMA_VERSION
        assert load_calibration(store) is None
        m = CrossCameraMatcher(_config())
        assert not restore_calibration(store, m.calibrator, "v1")


def test_saver_writes_only_changes(tmp_path: Path) -> None:
    with IdentityStore(tmp_path / "ids.sqlite") as store:
        m = CrossCameraMatcher(_config())
        saver = CalibrationSaver(store, every_s=3600.0)
        m.calibrator.add(NEGATIVES[:3])
        assert not saver.maybe_save(m, "v1")  # not due yet
        assert load_calibration(store) is None
        assert saver.save(m, "v1")
        assert not saver.save(m, "v1")  # unchanged
        m.calibrator.add(NEGATIVES[3:])
        assert saver.save(m, "v1")
        np.testing.assert_array_equal(load_calibration(store).negatives, NEGATIVES)
        assert saver.saves == 2
        with pytest.raises(RuntimeError):  # only the store's writer saves
            with IdentityStore(tmp_path / "ids.sqlite", mode="read") as ro:
                save_calibration(ro, m.calibrator, "v1")


# ---------------------------------------------------------------- a short real run, then a restart
N_FRAMES = 30  # person 11 enters at frame 17, 12 at 22: fresh tracklets beside a gallery


@pytest.fixture(scope="module")
def split(pets_dir: Path, tmp_path_factory) -> Path:
    from pipeline.virtual_cameras import build_virtual_cameras

    out = tmp_path_factory.mktemp("pets_split_cal")
    build_virtual_cameras(pets_dir, out, layout="two-regions", gap=0.1, frame_range=(1, N_FRAMES), progress=False)
    return out


def _run_config(split: Path, tmp: Path, shared: Path, run_key: str, offset: float) -> Path:
    data = {
        "mode": "batch",
        "run_key": run_key,
        "cameras": [{"id": c, "source": str(split / c / "video.mp4"), "time_offset_s": offset}
                    for c in ("left", "right")],
        "detector": {"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx")},
        "tracklets": {"min_length": 3, "partial_every_s": 0.5},
        "matching": {"auto_threshold": {"min_negatives": 5, "warmup": "no-link"}},
        "store": {"path": str(tmp / "ids.sqlite")},
        "outputs": {"dir": str(tmp / f"out_{run_key}"), "video": False, "timeline_png": False},
    }
    p = tmp / f"{run_key}.yaml"
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p


def test_real_run_saves_calibration_and_a_restart_continues_it(split, tmp_path, shared, capsys):
    from pipeline.cli import main

    db = tmp_path / "ids.sqlite"
    assert main(["run", str(_run_config(split, tmp_path, shared, "r1", 0.0)), "--no-progress"]) == 0
    with IdentityStore(db, mode="read") as store:
        first = load_calibration(store)
    assert first is not None and first.model_version  # the encoder version that measured them
    assert len(first.negatives) > 0, "the short run saw no known-different pair"

    # restart on the same store, later on the common clock: the calibration continues (its samples
    # are the first run's followed by the restart's own), measured by the same encoder version
    assert main(["run", str(_run_config(split, tmp_path, shared, "r2", 100.0)), "--no-progress"]) == 0
    with IdentityStore(db, mode="read") as store:
        second = load_calibration(store)
    assert second.model_version == first.model_version
    assert len(second.negatives) > len(first.negatives)
    np.testing.assert_array_equal(second.negatives[: len(first.negatives)], first.negatives)
    capsys.readouterr()
