"""cams.yaml validation: one-line errors naming the key path; the shipped configs load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pydantic import ValidationError

from pipeline.camconfig import CamsConfig, load_cams_config
from pipeline.core.errors import ConfigError
from pipeline.core.paths import REPO_ROOT
from trackers.config import load_tracker_config


def _write(tmp_path: Path, data: dict | str) -> Path:
    p = tmp_path / "cams.yaml"
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return p


def _base(tmp_path: Path) -> dict:
    video = tmp_path / "cam.mp4"
    video.write_bytes(b"")
    return {"cameras": [{"id": "a", "source": "cam.mp4"}, {"id": "b", "source": "rtsp://u:pw@10.0.0.1/s"}]}


def _error(tmp_path: Path, data: dict | str) -> str:
    with pytest.raises(ConfigError) as exc:
        load_cams_config(_write(tmp_path, data))
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_valid_config_resolves_paths_relative_to_the_file(tmp_path):
    data = _base(tmp_path)
    data["store"] = {"path": "db/ids.sqlite"}
    data["cameras"][0]["roi"] = [0, 0, 100, 50]
    cfg = load_cams_config(_write(tmp_path, data))
    assert cfg.cameras[0].source == str(tmp_path / "cam.mp4")
    assert cfg.cameras[1].source == "rtsp://u:pw@10.0.0.1/s"  # URLs untouched
    assert cfg.store.path == str(tmp_path / "db" / "ids.sqlite")
    assert cfg.outputs.dir == str(tmp_path / "outputs")
    assert "pw" not in cfg.cameras[1].display_uri()
    assert cfg.fingerprint() == load_cams_config(_write(tmp_path, data)).fingerprint()


def test_malformed_yaml_names_file_and_line(tmp_path):
    msg = _error(tmp_path, "cameras:\n  - id: a\n    source: [unclosed\n")
    assert "cams.yaml:" in msg and "malformed YAML" in msg


def test_unknown_key_names_its_path(tmp_path):
    data = _base(tmp_path)
    data["cameras"][1]["strid"] = 2
    assert "cameras.1.strid: unknown key" in _error(tmp_path, data)
    data = _base(tmp_path)
    data["matching"] = {"treshold": 0.3}
    assert "matching.treshold: unknown key" in _error(tmp_path, data)


def test_bad_values_name_their_path(tmp_path):
    data = _base(tmp_path)
    data["cameras"][0]["stride"] = 0
    assert "cameras.0.stride:" in _error(tmp_path, data)
    data = _base(tmp_path)
    data["mode"] = "turbo"
    assert "mode:" in _error(tmp_path, data)
    data = _base(tmp_path)
    data["cameras"][0]["roi"] = [10, 10, 5, 20]
    assert "cameras.0.roi" in _error(tmp_path, data)
    data = _base(tmp_path)
    data["cameras"][1]["id"] = "a"
    assert "duplicate camera id 'a'" in _error(tmp_path, data)
    data = _base(tmp_path)
    data["cameras"][1]["id"] = data["cameras"][0]["id"].upper()  # one file on case-insensitive file systems
    assert "differ only by case" in _error(tmp_path, data)
    data = _base(tmp_path)
    data["encoder"] = {"backend": "tensorrt"}
    assert "encoder.backend:" in _error(tmp_path, data)


def test_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_cams_config(tmp_path / "absent.yaml")
    data = _base(tmp_path)
    data["cameras"][0]["source"] = "missing.mp4"
    assert "cameras.0.source: no such file or folder" in _error(tmp_path, data)
    data = _base(tmp_path)
    data["tracker"] = "trk/absent.yaml"
    assert "tracker: no such tracker config file: trk/absent.yaml" in _error(tmp_path, data)


def test_tracker_default_is_the_yolo_preset(tmp_path):
    """No ``tracker:`` key = the preset tuned for YOLO detections (what `run` detects with), not the schema's
    neutral field defaults; a preset is named by its bare name, an unknown name is one line listing them."""
    from trackers.config import TrackerConfig

    yolo = load_tracker_config("yolo")
    assert yolo != TrackerConfig()  # else this test could not tell the two apart
    assert CamsConfig.model_validate({"cameras": [{"id": "a", "source": "0"}]}).tracker_config() == yolo
    assert load_cams_config(_write(tmp_path, _base(tmp_path))).tracker_config() == yolo
    data = _base(tmp_path)
    data["tracker"] = "acf"
    acf = load_cams_config(_write(tmp_path, data)).tracker_config()
    assert acf == load_tracker_config("acf") and acf.detection.score_range == (0.0, 100.0)
    # a mapping overrides a preset, section by section: yolo unless it names another, none = the neutral defaults
    data["tracker"] = {}
    assert load_cams_config(_write(tmp_path, data)).tracker_config() == yolo
    data["tracker"] = {"lifecycle": {"max_age": 90}}
    mine = load_cams_config(_write(tmp_path, data)).tracker_config()
    assert mine.lifecycle.max_age == 90 and mine.lifecycle.output_coasting_frames == 2  # the rest is yolo's
    assert mine.model_copy(update={"lifecycle": yolo.lifecycle}) == yolo
    data["tracker"] = {"preset": "acf", "association": {"ocm_weight": 0.0}}
    mine = load_cams_config(_write(tmp_path, data)).tracker_config()
    assert mine.detection.score_range == (0.0, 100.0) and mine.association.ocm_weight == 0.0
    assert mine.association.second_match_thresh == acf.association.second_match_thresh == 0.7
    data["tracker"] = {"preset": "none"}
    assert load_cams_config(_write(tmp_path, data)).tracker_config() == TrackerConfig()
    # a dumped config (Ray actors, resume) reads back unchanged whatever the base
    neutral = CamsConfig.model_validate({"cameras": [{"id": "a", "source": "0"}], "tracker": {"preset": "none"}})
    assert CamsConfig.model_validate(neutral.model_dump()).tracker_config() == TrackerConfig()
    data["tracker"] = {"preset": "yollo"}
    assert "unknown tracker preset 'yollo'" in _error(tmp_path, data)
    data["tracker"] = "yollo"
    msg = _error(tmp_path, data)
    assert "tracker:" in msg and "unknown tracker preset 'yollo'" in msg and "yolo" in msg.split("presets:")[1]
    assert "\n" not in msg


def test_shipped_configs_load():
    # the example names a recording that does not exist here: check its schema only
    data = yaml.safe_load((REPO_ROOT / "configs" / "cams.example.yaml").read_text())
    from pipeline.camconfig import CamsConfig
    from pipeline.core.configio import validate

    cfg = validate(CamsConfig, data, "cams.example.yaml")
    assert [c.id for c in cfg.cameras] == ["entrance", "corridor"]
    assert cfg.matcher_config().topology is not None
    demo = load_cams_config(REPO_ROOT / "configs" / "demo_pets.yaml")  # demo block: missing files allowed
    assert [c.id for c in demo.cameras] == ["left", "right"] and demo.demo is not None


def test_demo_block_builds_missing_virtual_cameras(tmp_path, shared):
    from pipeline.demo import missing_sources, prepare_demo

    data = {
        "cameras": [{"id": c, "source": f"cams/{c}/video.mp4"} for c in ("left", "right")],
        "demo": {"out": "cams", "options": {"layout": "two-regions", "gap": 0.1, "frames": [1, 5]}},
    }
    cfg = load_cams_config(_write(tmp_path, data))  # missing files are fine with a demo block
    assert len(missing_sources(cfg)) == 2
    assert prepare_demo(cfg) is True
    assert missing_sources(cfg) == [] and (tmp_path / "cams" / "identities.json").is_file()
    assert prepare_demo(cfg) is False  # already there: nothing rebuilt
    data["demo"]["options"] = {"colour": "red"}
    (tmp_path / "cams" / "left" / "video.mp4").unlink()
    with pytest.raises(ConfigError, match="demo.options.colour: unknown key"):
        prepare_demo(load_cams_config(_write(tmp_path, data)))


def test_encoder_threads_validated_and_applied(tmp_path):
    import torch

    from pipeline.runner.components import build_encoder

    data = _base(tmp_path)
    data["encoder"] = {"threads": 0}
    assert "encoder.threads" in _error(tmp_path, data)
    data["encoder"] = {"threads": 1, "checkpoint": "default", "device": "cpu"}
    cfg = load_cams_config(_write(tmp_path, data))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        enc = build_encoder(cfg)
        assert torch.get_num_threads() == 1 and enc.dim > 0
    finally:
        torch.set_num_threads(before)


def test_fingerprint_ignores_camera_credentials():
    """The default run key is stored in the store: it hashes the redacted config, so it cannot test passwords."""
    def cfg(uri):
        return CamsConfig.model_validate({"cameras": [{"id": "a", "source": uri}]})

    base = cfg("rtsp://user:first@10.0.0.1/s?token=abc").fingerprint()
    assert cfg("rtsp://user:second@10.0.0.1/s?token=xyz").fingerprint() == base
    assert cfg("rtsp://user:first@10.0.0.2/s?token=abc").fingerprint() != base  # another camera, another key


def test_loaded_config_is_frozen_and_resolved(tmp_path):
    """load_cams_config returns absolute paths and a read tracker file; nothing can change it afterwards."""
    (tmp_path / "clip").mkdir()
    (tmp_path / "cams.yaml").write_text(
        "cameras: [{id: a, source: clip}]\ntracker: trk/mine.yaml\nstore: {path: ids.sqlite}\n")
    (tmp_path / "trk").mkdir()
    (tmp_path / "trk" / "mine.yaml").write_text("lifecycle: {max_age: 77}\n")
    cfg = load_cams_config(tmp_path / "cams.yaml")
    assert cfg.cameras[0].source == str(tmp_path / "clip") and cfg.store.path == str(tmp_path / "ids.sqlite")
    assert cfg.tracker_config() == load_tracker_config(tmp_path / "trk" / "mine.yaml")
    assert cfg.tracker_config().lifecycle.max_age == 77
    with pytest.raises(ValidationError):
        cfg.mode = "live"
    with pytest.raises(ValidationError):
        cfg.store.path = "elsewhere.sqlite"
    assert cfg.model_copy(update={"mode": "live"}).mode == "live" and cfg.mode == "batch"
