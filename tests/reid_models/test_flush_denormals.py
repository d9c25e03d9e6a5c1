"""reid_models.schedule.flush_denormals: denormals read as zero inside (CPU training only), restored after."""

from __future__ import annotations

import pytest
import torch

from reid_models.schedule import flush_denormals

TINY = 1e-39  # a float32 denormal (the smallest normal float32 is 1.18e-38)


def _times_one() -> float:
    return float(torch.tensor([TINY], dtype=torch.float32) * torch.tensor([1.0]))


def test_denormals_are_zero_inside_and_back_after():
    assert _times_one() == pytest.approx(TINY, rel=1e-3)  # the default: denormals are kept
    with flush_denormals("cpu") as on:
        if not on:
            pytest.skip("this CPU cannot flush denormals (torch.set_flush_denormal returned False)")
        assert _times_one() == 0.0
    assert _times_one() == pytest.approx(TINY, rel=1e-3)


def test_nothing_changes_off_the_cpu_or_after_an_error():
    with flush_denormals("cuda:0") as on:
        assert on is False
        assert _times_one() == pytest.approx(TINY, rel=1e-3)
    with pytest.raises(RuntimeError), flush_denormals("cpu"):
        raise RuntimeError("training failed")
    assert _times_one() == pytest.approx(TINY, rel=1e-3)
