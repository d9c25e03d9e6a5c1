"""The ``executor:`` key of cams.yaml: validated at load with the key path in the one-line error."""

from __future__ import annotations

import pytest

from pipeline.camconfig import CamsConfig
from pipeline.core.configio import validate
from pipeline.core.errors import ConfigError

CAMS = [{"id": "a", "source": "a.mp4"}, {"id": "b", "source": "b.mp4"}]


def _cfg(**extra) -> CamsConfig:
    return validate(CamsConfig, {"cameras": CAMS, **extra}, "cams.yaml")


def test_default_is_the_local_executor():
    ex = _cfg().executor
    assert (ex.kind, ex.address) == ("local", "local")


@pytest.mark.parametrize("address", ["local", "auto", "ray://10.1.2.3:10001", "127.0.0.1:6379", "head-0:6379"])
def test_ray_addresses_accepted(address):
    assert _cfg(executor={"kind": "ray", "address": address}).executor.address == address


@pytest.mark.parametrize("executor, key", [
    ({"address": "my cluster"}, "executor.address"),
    ({"address": "ray://head"}, "executor.address"),
    ({"kind": "spark"}, "executor.kind"),
    ({"camera_num_cpus": -1}, "executor.camera_num_cpus"),
    ({"chunk_frames": 8, "queue_frames": 4}, "executor"),
    ({"max_restarts": -2}, "executor.max_restarts"),
    ({"unknown": 1}, "executor.unknown"),
])
def test_bad_executor_values_name_the_key(executor, key):
    with pytest.raises(ConfigError) as err:
        _cfg(executor=executor)
    msg = str(err.value)
    assert msg.startswith(f"cams.yaml: {key}") and "\n" not in msg


def test_ray_refuses_what_needs_frames_in_the_matcher():
    with pytest.raises(ConfigError, match="executor.kind: ray does not support outputs.video, ui.enabled"):
        _cfg(executor={"kind": "ray"}, outputs={"video": True}, ui={"enabled": True})


def test_the_executor_does_not_change_the_run_key():
    # same config run by either executor: same default batch run key (and resume checkpoint)
    assert _cfg().fingerprint() == _cfg(executor={"kind": "ray", "address": "auto"}).fingerprint()
    assert _cfg().fingerprint() != _cfg(tracklets={"min_length": 7}).fingerprint()
