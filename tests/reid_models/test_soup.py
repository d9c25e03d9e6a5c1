"""Weight averaging (reid_models/soup.py) on hand-computed values, and tools/average_models.py end to end on
two small networks trained on real PETS crops."""

from __future__ import annotations

import pytest
import torch
import yaml
from torch import nn

from pipeline.core.errors import ModelError
from reid_models.checkpoint import load_checkpoint, read_checkpoint
from reid_models.soup import average_state_dicts, recalibrated
from reid_models.training import train_from_config
from tests.reid_models.test_reid_engine import cfg_for, write_tiny_dataset


def test_weighted_average_by_hand():
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 6.0], dtype=torch.float16), "n": torch.tensor(5)}
    out = average_state_dicts([a, b], [1, 3])  # weights normalised to 0.25 / 0.75
    assert torch.equal(out["w"], torch.tensor([2.5, 5.0])) and out["w"].dtype == torch.float32
    assert out["n"].item() == 3  # integer buffers come from the first
    assert torch.equal(average_state_dicts([a, b])["w"], torch.tensor([2.0, 4.0]))


@pytest.mark.parametrize("other, words", [
    ({"w": torch.zeros(2)}, "key 'n' in only one"),
    ({"w": torch.zeros(3), "n": torch.tensor(0)}, "w has shape (3,), first.pt has (2,)"),
])
def test_mismatched_ingredients_are_one_line_errors(other, words):
    a = {"w": torch.zeros(2), "n": torch.tensor(0)}
    with pytest.raises(ModelError) as info:
        average_state_dicts([a, other], names=["first.pt", "second.pt"])
    assert words in str(info.value) and str(info.value).startswith("second.pt") and "\n" not in str(info.value)
    with pytest.raises(ModelError):
        average_state_dicts([a, a], [0, 0])


class _Recorder(nn.Module):
    """Identity that records whether it ran in train mode (stands for MixStyle / dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.modes: list[bool] = []

    def forward(self, x):
        self.modes.append(self.training)
        return x


def test_batchnorm_statistics_re_estimated_by_hand():
    conv = nn.Conv2d(1, 1, 1, bias=False)
    conv.weight.data.fill_(2.0)
    rec = _Recorder()
    model = nn.Sequential(conv, rec, nn.BatchNorm2d(1, momentum=0.3))
    model[2].running_mean.fill_(99.0)
    batches = [torch.tensor([1.0, 3.0]).view(2, 1, 1, 1),   # conv: 2, 6 -> mean 4, unbiased var 8
               torch.tensor([5.0]).view(1, 1, 1, 1),        # one image: skipped
               torch.tensor([0.0, 0.0, 3.0]).view(3, 1, 1, 1)]  # conv: 0, 0, 6 -> mean 2, unbiased var 12
    out, used = recalibrated(model, batches)
    bn = out[2]
    assert used == 2 and not out.training and not bn.training and bn.momentum == 0.3
    assert bn.running_mean.item() == pytest.approx(3.0) and bn.running_var.item() == pytest.approx(10.0)
    assert rec.modes == [False, False]  # everything but BatchNorm stayed in eval mode
    assert torch.equal(conv.weight, torch.full_like(conv.weight, 2.0))  # no weight moved
    with pytest.raises(ModelError):
        recalibrated(model, [torch.zeros(1, 1, 1, 1)])


@pytest.fixture(scope="module")
def two_runs(pets_dir, tmp_path_factory):
    """Two small BatchNorm-free networks trained on real PETS crops with different seeds, and a config file."""
    root = tmp_path_factory.mktemp("soup")
    data = write_tiny_dataset(pets_dir, root / "data")
    no_val = {"datasets": [str(data)], "val_split": None}
    for seed in (1, 2):
        train_from_config(cfg_for(data, root / f"r{seed}", epochs=1, data=no_val, seed=seed))
    cfg = cfg_for(data, root / "unused", data=no_val).model_dump()
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    return root


def test_average_models_tool_writes_a_loadable_average(two_runs, tool_module):
    tool = tool_module("average_models")
    a, b, out = two_runs / "r1" / "last.pt", two_runs / "r2" / "last.pt", two_runs / "soup" / "last.pt"
    assert tool.main([str(a), str(b), "--weights", "3", "1", "--config", str(two_runs / "cfg.yaml"),
                      "--bn-batches", "2", "--threads", "1", "--out", str(out)]) == 0
    sa, sb = read_checkpoint(a)["state_dict"], read_checkpoint(b)["state_dict"]
    model, meta = load_checkpoint(out)
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            assert torch.allclose(v, 0.75 * sa[k] + 0.25 * sb[k], atol=1e-6), k
    soup = meta["extra"]["soup"]
    assert [i["weight"] for i in soup["ingredients"]] == [0.75, 0.25] and soup["bn_batches"] == 2
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 16)


def test_average_models_tool_refuses_a_missing_checkpoint(two_runs, tool_module, capsys):
    tool = tool_module("average_models")
    code = tool.main([str(two_runs / "r1" / "last.pt"), str(two_runs / "nope.pt"), "--config",
                      str(two_runs / "cfg.yaml"), "--out", str(two_runs / "x.pt")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "nope.pt: no such checkpoint" in err and "\n" not in err


def test_shipping_a_weight_average_keeps_its_recipe(two_runs, tool_module, tmp_path):
    import json

    average, ship = tool_module("average_models"), tool_module("ship_default_model")
    soup = tmp_path / "soup.pt"
    assert average.main([str(two_runs / "r1" / "last.pt"), str(two_runs / "r2" / "last.pt"), "--config",
                         str(two_runs / "cfg.yaml"), "--bn-batches", "1", "--threads", "1", "--out", str(soup)]) == 0
    assert ship.main([str(soup), "--out", str(tmp_path / "w" / "default.pt"), "--config", "cfg.yaml"]) == 0
    info = json.loads((tmp_path / "w" / "default.json").read_text())
    assert [i["weight"] for i in info["soup"]["ingredients"]] == [0.5, 0.5]
    command = info["reproduce"][1]
    assert command.startswith(".venv/bin/python tools/average_models.py ") and "--weights 0.5 0.5" in command
    assert "--bn-batches 1" in command and command.endswith(f"--out {soup}")
    model, meta = load_checkpoint(tmp_path / "w" / "default.pt")
    assert meta["extra"]["soup"] == info["soup"] and model.embedding_dim == 16


def test_shipping_a_stepwise_recipe_lists_the_steps_before_training(two_runs, tool_module, tmp_path):
    import json

    ship = tool_module("ship_default_model")
    base = "git show abc1234:reid_models/weights/default.pt > runs/base.pt"
    assert ship.main([str(two_runs / "r1" / "last.pt"), "--out", str(tmp_path / "w" / "default.pt"),
                      "--config", "cfg.yaml", "--before", base, "--before", "echo second"]) == 0
    info = json.loads((tmp_path / "w" / "default.json").read_text())
    assert info["reproduce"][:3] == [base, "echo second", "reid-pipeline train --config cfg.yaml"]
