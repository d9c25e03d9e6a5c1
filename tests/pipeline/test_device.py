"""The one device rule (pipeline.core.device.resolve_device): what this machine has, or a one-line error."""

from __future__ import annotations

import pytest
import torch

from pipeline.cli import main
from pipeline.core.device import resolve_device
from pipeline.core.errors import ConfigError


def test_devices_this_machine_has_and_has_not():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match=r"device 'gpu': not a torch device \(auto, cpu, cuda, cuda:N\)"):
        resolve_device("gpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        for spec in ("cuda", "cuda:0", "0"):
            with pytest.raises(ConfigError, match="no usable CUDA GPU"):
                resolve_device(spec)
    else:
        assert resolve_device("cuda:0") == "cuda:0" and resolve_device("0") == "0"
        with pytest.raises(ConfigError, match=f"has {count} CUDA GPU"):
            resolve_device(f"cuda:{count}")


def test_track_refuses_an_unknown_device_in_one_line_even_without_reid(shared, tmp_path, capsys):
    seq = shared / "data" / "MOT15" / "train" / "TUD-Campus"
    rc = main(["track", str(seq), "--det", "frcnn", "--device", "gpu", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == "reid-pipeline: error: device 'gpu': not a torch device (auto, cpu, cuda, cuda:N)"
    assert not (tmp_path / "TUD-Campus.txt").exists()
