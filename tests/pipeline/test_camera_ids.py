"""Camera ids become file names (mot/<id>.txt, video/<id>.mp4, timeline_<id>.png): issue 11 item 7e.

Ids such as ``.``, ``..``, ``....`` or ``-rf`` gave hidden-looking or option-looking file names;
they are rejected by the cams.yaml validator with one line naming the key.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.camconfig import CamsConfig, load_cams_config
from pipeline.core.configio import validate
from pipeline.core.errors import ConfigError
from pipeline.core.paths import REPO_ROOT


def _load(tmp_path: Path, cam_id: str):
    (tmp_path / "cam.mp4").write_bytes(b"")
    data = {"cameras": [{"id": cam_id, "source": "cam.mp4"}, {"id": "ok", "source": "cam.mp4"}]}
    p = tmp_path / "cams.yaml"
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_cams_config(p)


@pytest.mark.parametrize("cam_id", [".", "..", "....", "-rf", ".hidden", "a.b", "a/b", "_x", "", "a" * 65, "é"])
def test_bad_camera_ids_are_one_line_config_errors_naming_the_key(tmp_path, cam_id):
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, cam_id)
    msg = str(exc.value)
    assert "\n" not in msg
    assert "cameras.0.id:" in msg


@pytest.mark.parametrize("cam_id", ["a", "0", "cam-1", "Left_2", "a" * 64])
def test_good_camera_ids_load(tmp_path, cam_id):
    assert _load(tmp_path, cam_id).cameras[0].id == cam_id


def test_shipped_configs_use_valid_ids():
    for name in ("cams.example.yaml", "demo_pets.yaml"):
        data = yaml.safe_load((REPO_ROOT / "configs" / name).read_text(encoding="utf-8"))
        cfg = validate(CamsConfig, data, name)
        assert cfg.cameras
