"""``train`` on bad or risky input (probe_train items 1-6, 12): refuse to overwrite a run, refuse to resume with a
changed config, no validation split made of training crops, stop on a non-finite loss, validated input_size,
sampler.p and aggregator.min_len. Real data: tiny PETS crops (test_reid_engine) and a few Market-1501 identities."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.core.configio import validate
from pipeline.core.errors import ConfigError
from reid_models.checkpoint import read_checkpoint
from reid_models.config import TrainConfig, resume_differences
from reid_models.training import train_from_config
from tests.reid_models.test_reid_engine import cfg_for, write_tiny_dataset

NO_VAL = {"val_split": None}


@pytest.fixture(scope="module")
def tiny_dataset(pets_dir, tmp_path_factory):
    return write_tiny_dataset(pets_dir, tmp_path_factory.mktemp("tiny_reid"))


def market_ids(shared: Path, dst: Path, pids: tuple[int, ...]) -> Path:
    """A Market-1501-style folder holding symlinks to the bounding_box_train crops of ``pids``."""
    src = shared / "data" / "reid" / "Market-1501" / "bounding_box_train"
    dst.mkdir(parents=True, exist_ok=True)
    for pid in pids:
        files = sorted(src.glob(f"{pid:04d}_*.jpg"))
        assert files, pid
        for f in files:
            (dst / f.name).symlink_to(f)
    return dst


def write_cfg(path: Path, cfg: TrainConfig) -> Path:
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return path


# -- item 1: no silent overwrite ------------------------------------------------------------------------------

def test_train_refuses_to_overwrite_a_run_and_resume_auto_still_continues_it(tiny_dataset, tmp_path, capsys):
    from pipeline.cli import main

    out = tmp_path / "run"
    cfg = write_cfg(tmp_path / "c.yaml", cfg_for(tiny_dataset, out, epochs=2, data=NO_VAL))
    assert main(["train", "--config", str(cfg), "--epochs", "1"]) == 0
    before = (out / "last.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("reid-pipeline: error: ")
    assert str(out) in err and "epoch 0" in err
    assert "--resume auto" in err and "--out" in err and "delete the folder" in err
    assert (out / "last.pt").read_bytes() == before
    # the way on that it names works: the run continues at epoch 1
    assert main(["train", "--config", str(cfg), "--resume", "auto"]) == 0
    assert read_checkpoint(out / "last.pt")["epoch"] == 1


def test_train_from_config_refuses_an_output_folder_with_a_checkpoint(tiny_dataset, tmp_path):
    train_from_config(cfg_for(tiny_dataset, tmp_path / "r", epochs=1, data=NO_VAL))
    with pytest.raises(ConfigError, match=r"already holds a checkpoint .*epoch 0"):
        train_from_config(cfg_for(tiny_dataset, tmp_path / "r", epochs=1, data=NO_VAL))


# -- item 2: resume only what was trained ---------------------------------------------------------------------

@pytest.mark.parametrize("change, key", [
    ({"optim": {"name": "adam", "lr": 0.1}}, "optim.lr: 0.01 -> 0.1"),
    ({"optim": {"name": "sgd"}}, "optim.name: 'adam' -> 'sgd'"),
    ({"model": {"kwargs": {"input_size": [32, 32], "widths": [4, 8, 8], "embedding_dim": 8}}},
     "model.kwargs.embedding_dim: 16 -> 8"),
    ({"loss": {"kind": "batch_hard", "id_weight": 1.0}}, "loss.id_weight: 0.0 -> 1.0"),
    ({"seed": 6}, "seed: 5 -> 6"),
], ids=["lr", "optimizer", "embedding_dim", "id_weight", "seed"])
def test_resume_with_a_changed_config_is_one_line_naming_the_key(tiny_dataset, tmp_path, change, key):
    out = tmp_path / "r"
    train_from_config(cfg_for(tiny_dataset, out, epochs=1, data=NO_VAL))
    before = (out / "last.pt").read_bytes()
    with pytest.raises(ConfigError) as exc:
        train_from_config(cfg_for(tiny_dataset, out, epochs=2, data=NO_VAL, **change), resume=out / "last.pt")
    msg = str(exc.value)
    assert "\n" not in msg and str(out / "last.pt") in msg and key in msg
    assert (out / "last.pt").read_bytes() == before


def test_resume_allows_more_epochs_threads_and_device(tiny_dataset, tmp_path):
    """What does not change results may differ; the resumed run equals an uninterrupted one (up to float rounding:
    another thread count sums in another order)."""
    full = train_from_config(cfg_for(tiny_dataset, tmp_path / "full", epochs=2, data=NO_VAL))
    train_from_config(cfg_for(tiny_dataset, tmp_path / "part", epochs=1, data=NO_VAL))
    resumed = train_from_config(cfg_for(tiny_dataset, tmp_path / "part", epochs=2, data=NO_VAL, threads=1,
                                        eval_every=2, name="renamed"), resume=tmp_path / "part" / "last.pt")
    # threads change the order of float sums only
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in full["history"]], rel=1e-5)


def test_resume_differences_treat_keys_missing_from_an_older_checkpoint_as_defaults(tiny_dataset, tmp_path):
    cfg = cfg_for(tiny_dataset, tmp_path, data=NO_VAL)
    stored = cfg.model_dump(mode="json")
    del stored["data"]["grayscale"], stored["channels_last"]  # options added after the checkpoint was written
    assert resume_differences(stored, cfg) == []
    stored["data"]["grayscale"] = 0.5
    stored["epochs"], stored["device"], stored["output_dir"] = 40, "cuda", "elsewhere"
    assert resume_differences(stored, cfg) == [("data.grayscale", 0.5, 0.0)]


def test_resume_on_a_dataset_that_gained_an_identity_is_one_line(shared, tmp_path):
    """Same config, other classes (the folder gained an identity): the identification head does not fit."""
    data = market_ids(shared, tmp_path / "mk", (2, 7, 10))
    model = {"name": "cnn3_siamese", "pretrained": None,
             "kwargs": {"input_size": [32, 32], "widths": [4, 8, 8], "embedding_dim": 16}}
    over = dict(model=model, loss={"kind": "batch_hard", "id_weight": 1.0},
                data={"datasets": [{"path": str(data), "format": "market"}], "val_split": None},
                sampler={"p": 2, "k": 2, "batches_per_epoch": 1})
    train_from_config(cfg_for(data, tmp_path / "r", epochs=1, **over))
    market_ids(shared, data, (11,))
    with pytest.raises(ConfigError, match=r"--resume .*last.pt: .*do not fit .*ident"):
        train_from_config(cfg_for(data, tmp_path / "r", epochs=2, **over), resume=tmp_path / "r" / "last.pt")


# -- item 3: no validation split of training crops -------------------------------------------------------------

def test_market_folder_without_val_ids_has_no_validation_split(shared, tmp_path):
    from reid_models.train_data import build_image_data

    folder = market_ids(shared, tmp_path / "mk", (2, 7, 10, 11))
    n = len(list(folder.iterdir()))
    default = validate(TrainConfig, {"data": {"datasets": [{"path": str(folder), "format": "market"}]}}, "t")
    assert default.data.val_split == "val"
    data = build_image_data(default.data, [])
    assert len(data.train_items) == n and data.val_items == []
    # with val_ids the split exists and holds identities that are not trained on
    held = validate(TrainConfig, {"data": {"datasets": [{"path": str(folder), "format": "market", "val_ids": 1}]}}, "t")
    data = build_image_data(held.data, [])
    val_files = {Path(it.path).name[:4] for it in data.val_items}
    train_files = {Path(it.path).name[:4] for it in data.train_items}
    assert len(val_files) == 1 and not val_files & train_files
    assert len(data.train_items) + len(data.val_items) == n


def test_training_on_a_market_folder_with_the_default_val_split_writes_best_as_last(shared, tmp_path):
    folder = market_ids(shared, tmp_path / "mk", (2, 7, 10))
    cfg = cfg_for(folder, tmp_path / "r", epochs=2, sampler={"p": 2, "k": 2, "batches_per_epoch": 1},
                  data={"datasets": [{"path": str(folder), "format": "market"}], "val_split": "val"})
    summary = train_from_config(cfg)
    assert all("val_rank1" not in h for h in summary["history"])
    assert read_checkpoint(tmp_path / "r" / "best.pt")["epoch"] == 1


# -- item 4: non-finite loss, sampler.p ------------------------------------------------------------------------

def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_dataset, tmp_path):
    from reid_models.engine import TrainingDiverged

    out = tmp_path / "r"
    # epoch 1 at lr 0.01, epoch 2 at 1e30 (linear schedule): the first step of epoch 2 blows the weights up
    cfg = cfg_for(tiny_dataset, out, epochs=2, data=NO_VAL, optim={"name": "sgd", "lr": 0.01, "momentum": 0.0},
                  schedule={"kind": "linear", "final_lr": 1e30}, sampler={"p": 3, "k": 2, "batches_per_epoch": 3})
    with pytest.raises(TrainingDiverged, match=r"loss (nan|inf) in epoch 2 batch [23] .*last.pt keeps"):
        train_from_config(cfg)
    blob = read_checkpoint(out / "last.pt")
    assert blob["epoch"] == 0
    assert all(bool(torch.isfinite(v).all()) for v in blob["state_dict"].values() if v.is_floating_point())
    assert not (out / "best.pt").exists()
    assert len(json.loads((out / "metrics.json").read_text())["history"]) == 1


@pytest.mark.parametrize("kind", ["batch_hard", "triplet", "contrastive", "fusion"])
def test_sampler_p_1_is_refused_for_losses_that_need_negatives(kind):
    with pytest.raises(ConfigError, match=rf"sampler.p must be >= 2 for loss {kind}"):
        validate(TrainConfig, {"data": {"datasets": ["x"]}, "loss": {"kind": kind}, "sampler": {"p": 1, "k": 2}}, "c")


def test_sampler_p_1_is_accepted_for_identification():
    cfg = validate(TrainConfig, {"data": {"datasets": ["x"]}, "loss": {"kind": "identification"},
                                 "sampler": {"p": 1, "k": 2}}, "c")
    assert cfg.sampler.p == 1


# -- item 5: input_size ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", ["128x64", [128], [128, 64, 3], [0, 64], [128.5, 64], [True, 64], None])
def test_bad_input_size_is_one_line_naming_the_key(size):
    with pytest.raises(ConfigError) as exc:
        validate(TrainConfig, {"data": {"datasets": ["x"]}, "model": {"kwargs": {"input_size": size}}}, "c.yaml")
    msg = str(exc.value)
    assert "\n" not in msg and "c.yaml" in msg and "model.kwargs.input_size: expected [height, width]" in msg


def test_a_valid_input_size_builds_a_net_of_that_size(tiny_dataset, tmp_path):
    from reid_models.training import build_engine_model

    cfg = cfg_for(tiny_dataset, tmp_path, model={"kwargs": {"input_size": [48, 24], "widths": [4, 8, 8],
                                                             "embedding_dim": 16}})
    net = build_engine_model(cfg)
    assert tuple(net.input_size) == (48, 24)
    assert net(torch.zeros(2, 3, 48, 24)).shape == (2, 16)


# -- item 6 (probe 12): aggregator.min_len ---------------------------------------------------------------------

def test_min_len_above_max_len_is_refused():
    with pytest.raises(ConfigError, match=r"aggregator.min_len 10 is above aggregator.max_len 4"):
        validate(TrainConfig, {"data": {"datasets": ["x"]}, "task": "lstm",
                               "aggregator": {"min_len": 10, "max_len": 4}}, "c")


def test_min_len_above_every_tracklet_names_aggregator_min_len(tiny_dataset, tmp_path):
    from reid_models.datasets import load_tracklets

    longest = max(len(t["paths"]) for t in load_tracklets(tiny_dataset, "train"))
    cfg = cfg_for(tiny_dataset, tmp_path / "lstm", task="lstm", epochs=1, data=NO_VAL,
                  aggregator={"min_len": longest + 1, "max_len": longest + 1, "batch_size": 4})
    with pytest.raises(ConfigError, match=rf"aggregator.min_len {longest + 1}: .*longest training tracklet has "
                                          rf"{longest} frames"):
        train_from_config(cfg)
    assert not (tmp_path / "lstm" / "last.pt").exists()
