"""Every shipped training config (configs/reid/*.yaml) is a valid TrainConfig, and the larger-budget
pre-training configs of issue 13 differ from their base only in the budget and the output folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reid_models.config import TrainConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "reid"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_training_config_validates(path: Path) -> None:
    cfg = TrainConfig.model_validate(yaml.safe_load(path.read_text()))
    assert cfg.output_dir and cfg.data.datasets


@pytest.mark.parametrize("name", ["cuhk03", "multi"])
def test_long_pretraining_changes_only_the_budget(name: str) -> None:
    base = yaml.safe_load((CONFIGS / f"adapt_pre_{name}.yaml").read_text())
    long = yaml.safe_load((CONFIGS / f"adapt_pre_{name}_long.yaml").read_text())
    assert (long["epochs"], long["sampler"]["batches_per_epoch"]) == (2 * base["epochs"], 2 * base["sampler"]["batches_per_epoch"])
    for cfg in (base, long):
        cfg.pop("name"), cfg.pop("output_dir"), cfg.pop("epochs"), cfg["sampler"].pop("batches_per_epoch")
        cfg["schedule"].pop("decay_start")
    assert base == long


def test_low_resolution_control_differs_only_in_the_augmentation() -> None:
    shipped = yaml.safe_load((CONFIGS / "market_cuhk03_lowres_ft.yaml").read_text())
    control = yaml.safe_load((CONFIGS / "experiments" / "i17_ft_control_no_lowres.yaml").read_text())
    assert shipped["data"].pop("low_resolution") == 0.5 and shipped["data"].pop("low_resolution_min_scale") == 0.25
    assert "low_resolution" not in control["data"]
    for cfg in (shipped, control):
        cfg.pop("name"), cfg.pop("output_dir")
    assert shipped == control
