"""Tracker YAML configs: every shipped file validates; bad files give one-line ConfigErrors with key paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import ConfigError
from trackers.config import TrackerConfig, load_tracker_config
from trackers.presets import PRESETS_DIR
from trackers.tracker import Tracker

CONFIGS = sorted(PRESETS_DIR.glob("*.yaml"))


def test_shipped_configs_exist():
    names = {p.name for p in CONFIGS}
    assert {"default.yaml", "motion_only.yaml", "bytetrack_like.yaml", "acf.yaml", "yolo.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_validates_and_runs(path: Path):
    cfg = load_tracker_config(path)
    assert isinstance(cfg, TrackerConfig)
    Tracker(cfg).update([])


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "t.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_unknown_key_names_its_path(tmp_path):
    p = _write(tmp_path, "association:\n  first_match_thresh: 0.8\n  bogus: 1\n")
    with pytest.raises(ConfigError) as e:
        load_tracker_config(p)
    msg = str(e.value)
    assert "association.bogus" in msg and "unknown key" in msg and str(p) in msg and "\n" not in msg


def test_bad_value_names_its_path(tmp_path):
    p = _write(tmp_path, "lifecycle:\n  n_init: zero\n")
    with pytest.raises(ConfigError, match=r"lifecycle\.n_init"):
        load_tracker_config(p)
    p = _write(tmp_path, "detection:\n  high_thresh: 1.5\n")
    with pytest.raises(ConfigError, match=r"detection\.high_thresh"):
        load_tracker_config(p)


def test_inconsistent_thresholds_rejected(tmp_path):
    p = _write(tmp_path, "detection:\n  high_thresh: 0.3\n  low_thresh: 0.5\n")
    with pytest.raises(ConfigError, match="low_thresh must be <= high_thresh"):
        load_tracker_config(p)
    p = _write(tmp_path, "detection:\n  score_range: [5, 1]\n")
    with pytest.raises(ConfigError, match="score_range"):
        load_tracker_config(p)


def test_malformed_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_tracker_config(_write(tmp_path, "association: [\n"))
    with pytest.raises(ConfigError, match="no such config file"):
        load_tracker_config(tmp_path / "nope.yaml")


def test_max_age_scales_with_frame_rate():
    cfg = TrackerConfig.model_validate({"lifecycle": {"max_age": 30, "max_age_reference_fps": 30}})
    assert Tracker(cfg, frame_rate=15).max_age == 15
    cfg = TrackerConfig.model_validate({"lifecycle": {"max_age": 30, "max_age_reference_fps": None}})
    assert Tracker(cfg, frame_rate=15).max_age == 30


def test_presets_by_name(tmp_path, monkeypatch):
    """A bare name is a shipped preset (found in the package, whatever the working folder); anything else a path;
    an unknown name is one line that lists the presets. ``track`` / ``benchmark mot`` default to ``auto`` (None: the
    preset per sequence, test_auto_preset_follows_the_detection_scores)."""
    from pipeline.commands.track import resolve_config
    from trackers.presets import preset_names

    monkeypatch.chdir(tmp_path)  # not the checkout: the presets come from the package
    assert preset_names() == ["acf", "bytetrack_like", "default", "motion_only", "yolo"]
    for name in preset_names():
        assert load_tracker_config(name) == load_tracker_config(PRESETS_DIR / f"{name}.yaml")
    assert resolve_config(None) is None and resolve_config("auto") is None
    assert resolve_config("default") == load_tracker_config(PRESETS_DIR / "default.yaml")
    assert resolve_config("yolo").lifecycle.max_age == 120  # trackers/presets/yolo.yaml
    with pytest.raises(ConfigError) as exc:
        load_tracker_config("yollo")
    assert str(exc.value) == ("tracker preset 'yollo': unknown (presets: acf, bytetrack_like, default, motion_only, "
                              "yolo; or give a YAML file path)")
    with pytest.raises(ConfigError, match="no such config file"):
        load_tracker_config("yolo.yaml")  # a file name, not a preset: there is none in this folder


def test_auto_preset_follows_the_detection_scores(shared):
    """``--config auto``: hand-made score sets, then every real MOT15 detection file here (frcnn.txt -> default,
    ACF det.txt -> acf) and YOLO-like scores -> yolo."""
    from pipeline.mot import find_sequences
    from trackers.presets import choose_preset

    assert choose_preset([])[0] == "default"
    assert choose_preset([0.5, 0.95, 0.97]) == ("default", "median score 0.950 >= 0.9 (FRCNN-like)", None)
    assert choose_preset([0.3, 0.8, 0.99])[0] == "yolo"
    assert choose_preset([-0.5, 20.0, 40.0]) == ("acf", "scores -0.50..40.00 are not in [0, 1] (ACF-like), mapped "
                                                 "from [0, 32] (their 80% quantile)", (0.0, 32.0))
    root = shared / "data" / "MOT15" / "train"
    seen = {"frcnn": 0, "det": 0}
    for det, expect in (("frcnn", "default"), ("det", "acf")):
        for seq in find_sequences(root, det=det):
            assert choose_preset(seq.det(det).conf)[0] == expect, (seq.name, det)
            seen[det] += 1
    assert seen == {"frcnn": 7, "det": 5}
    # the PETS09 frcnn scores cut where a YOLO set is cut (0.25) and shrunk as yolov5n's are (median ~0.8)
    pets = next(s for s in find_sequences(root, det="frcnn") if s.name == "PETS09-S2L1").det("frcnn").conf
    assert choose_preset(pets * 0.82)[0] == "yolo"


def test_score_floor_counts_detections_that_could_start_a_track():
    """Hand-computed: new_track_thresh 0.7 (no floor mapping); 5 scores of which 2 reach it, then 1 of 3."""
    from trackers.detections import ScoreFloor

    floor = ScoreFloor(TrackerConfig().detection)
    assert floor.start_share() == 1.0
    floor.observe(np.array([0.1, 0.69, 0.7, 0.95, 0.3]))
    assert (floor.n_seen, floor.n_startable) == (5, 2)
    floor.observe(np.array([0.71, 0.2, 0.5]))
    assert floor.start_share() == 3 / 8


def test_a_file_with_preset_overrides_it(tmp_path):
    """A tracker file is a whole config unless it names ``preset:``; then its keys are written over that preset."""
    plain = _write(tmp_path, "lifecycle: {max_age: 90}\n")
    assert load_tracker_config(plain) == TrackerConfig().model_copy(
        update={"lifecycle": TrackerConfig().lifecycle.model_copy(update={"max_age": 90})})
    over = tmp_path / "over.yaml"
    over.write_text("preset: yolo\nlifecycle: {max_age: 90}\n")
    yolo = load_tracker_config("yolo")
    mine = load_tracker_config(over)
    assert mine.lifecycle.max_age == 90 and mine.model_copy(update={"lifecycle": yolo.lifecycle}) == yolo
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: yollo\n")
    with pytest.raises(ConfigError) as exc:
        load_tracker_config(bad)
    assert str(exc.value).startswith(f"{bad}: preset: unknown tracker preset 'yollo'")
