"""The training engine end to end on real PETS crops: checkpoints, resume, every loss kind, LSTM task."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.core.configio import validate
from pipeline.core.errors import ConfigError, DataError
from reid_models.checkpoint import load_checkpoint, read_checkpoint
from reid_models.config import TrainConfig
from reid_models.schedule import lr_factor
from reid_models.training import train_from_config

PIDS = (9, 11, 12, 15, 19)
TRAIN_PIDS = (9, 11, 12)


def write_tiny_dataset(pets_dir: Path, out: Path) -> Path:
    """Crops of 5 identities (3 train, 2 val) at 64x32, index.csv and tracklets.json in the H5 format."""
    import cv2

    gt = np.loadtxt(pets_dir / "gt" / "gt.txt", delimiter=",", ndmin=2)
    rows, tracklets = [], {}
    frames = range(1, 114, 8)
    for frame in frames:
        image = cv2.imread(str(pets_dir / "img1" / f"{frame:06d}.jpg"))
        for r in gt[gt[:, 0] == frame]:
            pid = int(r[1])
            if pid not in PIDS:
                continue
            x, y, w, h = (int(round(v)) for v in r[2:6])
            crop = image[max(y, 0):y + h, max(x, 0):x + w]
            rel = f"crops/PETS09-S2L1/{pid:05d}_{frame:06d}.jpg"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out / rel), cv2.resize(crop, (32, 64), interpolation=cv2.INTER_AREA))
            split = "train" if pid in TRAIN_PIDS else "val"
            rows.append((rel, pid, 0, "PETS09-S2L1", frame, split))
            t = tracklets.setdefault(pid, {"pid": pid, "camid": 0, "seq": "PETS09-S2L1", "split": split,
                                           "frames": [], "paths": []})
            t["frames"].append(frame)
            t["paths"].append(rel)
    with (out / "index.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "pid", "camid", "seq", "frame", "split"])
        w.writerows(rows)
    (out / "tracklets.json").write_text(json.dumps(list(tracklets.values())))
    return out


@pytest.fixture(scope="module")
def tiny_dataset(pets_dir, tmp_path_factory):
    return write_tiny_dataset(pets_dir, tmp_path_factory.mktemp("tiny_reid"))


def cfg_for(dataset, out, **over) -> TrainConfig:
    data = {
        "name": "t", "model": {"name": "cnn3_siamese", "pretrained": None, "kwargs": {"input_size": [32, 32], "widths": [4, 8, 8], "embedding_dim": 16}},
        "loss": {"kind": "batch_hard", "margin": "soft"},
        "sampler": {"p": 3, "k": 2, "batches_per_epoch": 2},
        "optim": {"name": "adam", "lr": 0.01},
        "data": {"datasets": [str(dataset)], "val_split": "val", "val_min_gap": 8},
        "epochs": 2, "seed": 5, "device": "cpu", "output_dir": str(out),
    }
    for k, v in over.items():
        data[k] = {**data[k], **v} if isinstance(v, dict) and isinstance(data.get(k), dict) else v
    return validate(TrainConfig, data, "test")


def test_train_writes_checkpoints_with_config_and_metrics(tiny_dataset, tmp_path):
    summary = train_from_config(cfg_for(tiny_dataset, tmp_path / "run"))
    assert [h["epoch"] for h in summary["history"]] == [0, 1]
    assert all("val_rank1" in h and 0 <= h["val_rank1"] <= 100 for h in summary["history"])
    model, meta = load_checkpoint(tmp_path / "run" / "last.pt")
    assert meta["epoch"] == 1 and meta["model_name"] == "cnn3_siamese"
    assert meta["config"]["loss"]["kind"] == "batch_hard" and meta["metrics"]["epoch"] == 1
    assert model.embedding_dim == 16 and (tmp_path / "run" / "best.pt").is_file()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["history"][1]["epoch"] == 1


def test_resume_reproduces_an_uninterrupted_run(tiny_dataset, tmp_path):
    no_val = {"val_split": None}
    full = train_from_config(cfg_for(tiny_dataset, tmp_path / "full", epochs=2, data=no_val))
    train_from_config(cfg_for(tiny_dataset, tmp_path / "part", epochs=1, data=no_val))
    resumed = train_from_config(cfg_for(tiny_dataset, tmp_path / "part", epochs=2, data=no_val),
                                resume=tmp_path / "part" / "last.pt")
    assert [h["epoch"] for h in resumed["history"]] == [0, 1]
    a = read_checkpoint(tmp_path / "full" / "last.pt")["state_dict"]
    b = read_checkpoint(tmp_path / "part" / "last.pt")["state_dict"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    assert resumed["history"][1]["loss"] == pytest.approx(full["history"][1]["loss"], rel=1e-5)


def test_channels_last_trains_the_same_network_in_nhwc(tiny_dataset, tmp_path):
    no_val = {"val_split": None}
    plain = train_from_config(cfg_for(tiny_dataset, tmp_path / "plain", data=no_val))
    nhwc = train_from_config(cfg_for(tiny_dataset, tmp_path / "nhwc", data=no_val, channels_last=True))
    a = read_checkpoint(tmp_path / "plain" / "last.pt")["state_dict"]
    b = read_checkpoint(tmp_path / "nhwc" / "last.pt")["state_dict"]
    conv = [k for k in b if b[k].dim() == 4]
    assert conv and all(b[k].is_contiguous(memory_format=torch.channels_last) for k in conv)
    # the same training up to float rounding of the other memory order: the same first-epoch loss, the same
    # parameters (Adam's normalised steps can turn a rounding-level gradient into a step of up to lr, so the
    # weights are compared to within a few steps of lr 0.01)
    assert nhwc["history"][0]["loss"] == pytest.approx(plain["history"][0]["loss"], rel=1e-5)
    assert set(a) == set(b) and max(float((a[k].float() - b[k].float()).abs().max()) for k in a) < 0.05
    model, _ = load_checkpoint(tmp_path / "nhwc" / "last.pt")  # loads back like any checkpoint
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 16)


@pytest.mark.parametrize("loss", [
    {"kind": "triplet", "margin": 0.5},
    {"kind": "contrastive", "id_weight": 1.0},
    {"kind": "identification"},
    {"kind": "fusion"},
])
def test_every_loss_kind_trains(tiny_dataset, tmp_path, loss):
    summary = train_from_config(cfg_for(tiny_dataset, tmp_path / "r", loss=loss, epochs=1))
    assert torch.isfinite(torch.tensor(summary["history"][0]["loss"]))
    blob = read_checkpoint(tmp_path / "r" / "last.pt")
    if loss["kind"] in ("fusion", "identification"):
        assert blob["extra"]["heads"]["ident.fc.weight"].shape == (3, 16)  # 3 training identities


def test_transfer_config_freezes_layers(tiny_dataset, tmp_path):
    train_from_config(cfg_for(tiny_dataset, tmp_path / "src", epochs=1))
    cfg = cfg_for(tiny_dataset, tmp_path / "dst", epochs=1,
                  transfer={"source": str(tmp_path / "src" / "last.pt"), "l_t": 3, "l_u": 1})
    train_from_config(cfg)
    src = read_checkpoint(tmp_path / "src" / "last.pt")["state_dict"]
    dst = read_checkpoint(tmp_path / "dst" / "last.pt")["state_dict"]
    for k in ("conv1.weight", "conv2.bias", "conv3.weight"):  # transferred and frozen: unchanged by training
        assert torch.equal(src[k], dst[k])
    assert not torch.equal(src["fc.weight"], dst["fc.weight"])


def test_config_errors_are_one_line():
    with pytest.raises(ConfigError, match="transfer: give both l_t and l_u"):
        validate(TrainConfig, {"data": {"datasets": ["x"]}, "transfer": {"l_t": 2}}, "c.yaml")
    with pytest.raises(ConfigError, match="c.yaml: loss.kind"):
        validate(TrainConfig, {"data": {"datasets": ["x"]}, "loss": {"kind": "magic"}}, "c.yaml")


def test_lr_schedules():
    assert lr_factor("linear", 0, 3, 0, 1e-3, 1e-5) == pytest.approx(1.0)
    assert lr_factor("linear", 2, 3, 0, 1e-3, 1e-5) == pytest.approx(0.01)
    assert lr_factor("exp_decay", 1, 5, 1, 1e-4, 1e-7) == pytest.approx(1.0)
    assert lr_factor("exp_decay", 4, 5, 1, 1e-4, 1e-7) == pytest.approx(1e-3)
    # linear warm-up over 3 epochs: 1/4, 2/4, 3/4, then the schedule itself
    assert [lr_factor("constant", e, 10, 0, 1e-3, 1e-5, warmup_epochs=3) for e in range(5)] == pytest.approx(
        [0.25, 0.5, 0.75, 1.0, 1.0])
    assert lr_factor("exp_decay", 1, 5, 0, 1e-4, 1e-7, warmup_epochs=2) == pytest.approx(2 / 3 * 1e-3 ** 0.25)


@pytest.mark.parametrize("extra", [{}, {"chunks_per_id": 2, "triplet_weight": 1.0, "residual": True},
                                   {"chunks_per_id": 2, "triplet_weight": 1.0, "pooling": "attention", "hidden_dim": 4,
                                    "contaminate": 0.5, "bidirectional": True, "contaminate_where": "anywhere"}],
                         ids=["seed004", "pk_triplet_residual", "attention_contaminated"])
def test_lstm_task_trains_aggregator(tiny_dataset, tmp_path, extra):
    from reid_models.aggregation import build_aggregator

    train_from_config(cfg_for(tiny_dataset, tmp_path / "enc", epochs=1))
    cfg = cfg_for(tiny_dataset, tmp_path / "lstm", task="lstm", epochs=2,
                  aggregator={"encoder_checkpoint": str(tmp_path / "enc" / "last.pt"), "max_len": 4, "batch_size": 4,
                              **extra})
    summary = train_from_config(cfg)
    assert {"val_rank1_lstm", "val_rank1_mean"} <= set(summary["history"][-1])
    agg = build_aggregator("lstm", tmp_path / "lstm" / "best.pt")
    assert agg.aggregate(torch.randn(5, 16).numpy()).shape == (16,)


def test_multitask_attribute_heads_from_index_columns(tiny_dataset, tmp_path):
    """Attribute labels in extra index.csv columns (here: hand-labelled, -1 = unknown) add entropy-weighted heads."""
    import shutil

    ds = tmp_path / "attr_ds"
    shutil.copytree(tiny_dataset, ds)
    labels = {9: (1, 0), 11: (0, -1), 12: (1, 1), 15: (0, 0), 19: (1, 0)}  # (dark_top, bag) per identity
    with (ds / "index.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    with (ds / "index.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[*rows[0].keys(), "dark_top", "bag"])
        w.writeheader()
        for r in rows:
            top, bag = labels[int(r["pid"])]
            w.writerow({**r, "dark_top": top, "bag": "" if bag < 0 else bag})
    cfg = cfg_for(ds, tmp_path / "mt", epochs=1, loss={"kind": "contrastive", "id_weight": 1.0, "attributes": ["dark_top", "bag"]})
    train_from_config(cfg)
    heads = read_checkpoint(tmp_path / "mt" / "last.pt")["extra"]["heads"]
    assert heads["attr.heads.0.weight"].shape == (2, 16) and heads["attr.heads.1.weight"].shape == (2, 16)
    bad = cfg_for(ds, tmp_path / "bad", epochs=1, loss={"kind": "contrastive", "attributes": ["hat"]})
    with pytest.raises(DataError, match="attribute column"):
        train_from_config(bad)


def test_transfer_without_source_keeps_own_init_of_frozen_layers(tiny_dataset, tmp_path):
    from reid_models.factory import build_model

    cfg = cfg_for(tiny_dataset, tmp_path / "own", epochs=1, transfer={"l_t": 4, "l_u": 1})
    train_from_config(cfg)
    torch.manual_seed(cfg.seed)  # train_from_config seeds before building the model
    init = build_model("cnn3_siamese", input_size=(32, 32), widths=(4, 8, 8), embedding_dim=16).state_dict()
    trained = read_checkpoint(tmp_path / "own" / "last.pt")["state_dict"]
    for k in ("conv1.weight", "conv2.weight", "conv3.bias"):
        assert torch.equal(init[k], trained[k])
    assert not torch.equal(init["fc.weight"], trained["fc.weight"])


def test_identity_subset_is_seeded_nested_and_trains_on_that_many(tiny_dataset, tmp_path):
    from reid_models.config import DataSpec
    from reid_models.train_data import build_image_data, identity_subset

    items = build_image_data(DataSpec(datasets=[str(tiny_dataset)], val_split=None), []).train_items
    two = identity_subset(items, 2, seed=3)
    assert len({it.pid for it in two}) == 2 and set(two) <= set(items)
    assert identity_subset(items, 2, seed=3) == two  # same seed, same subset
    assert {it.pid for it in identity_subset(items, 1, seed=3)} <= {it.pid for it in two}  # nested
    assert identity_subset(items, 99, seed=3) == items
    summary = train_from_config(cfg_for(tiny_dataset, tmp_path / "r", epochs=1, sampler={"p": 2},
                                        data={"val_split": None, "max_identities": 2}, loss={"id_weight": 1.0}))
    assert torch.isfinite(torch.tensor(summary["history"][0]["loss"]))
    assert read_checkpoint(tmp_path / "r" / "last.pt")["extra"]["heads"]["ident.fc.weight"].shape == (2, 16)


def test_part_swap_virtual_identities_compose_real_crops(tiny_dataset, tmp_path):
    from reid_models.config import DataSpec
    from reid_models.datasets.torch_data import PartSwapItem, ReidImageDataset, read_rgb_tensor
    from reid_models.train_data import build_image_data

    spec = DataSpec(datasets=[str(tiny_dataset)], val_split=None, part_swap_ids=4, part_swap_crops=5)
    data = build_image_data(spec, [], seed=1)
    real = [it for it in data.train_items if not isinstance(it, PartSwapItem)]
    virtual = [it for it in data.train_items if isinstance(it, PartSwapItem)]
    assert data.num_classes == 3 + 4 and len(virtual) == 4 * 5
    assert sorted({it.pid for it in virtual}) == [3, 4, 5, 6]  # after the real labels 0..2
    label_of = {it.path: it.pid for it in real}
    for v in virtual:  # upper part from one real identity, lower part from a different one
        assert label_of[v.path] != label_of[v.bottom_path] and 0.4 <= v.cut <= 0.6
    v = virtual[0]
    img = ReidImageDataset([v], transform=lambda x: x)[0][0]
    top, bottom = read_rgb_tensor(v.path), read_rgb_tensor(v.bottom_path)
    row = round(v.cut * 64)
    assert torch.equal(img[:, :row], top[:, :row]) and torch.equal(img[:, row:], bottom[:, row:])
    with pytest.raises(ConfigError, match="only 6 ordered pairs"):
        build_image_data(DataSpec(datasets=[str(tiny_dataset)], val_split=None, part_swap_ids=7), [])
    summary = train_from_config(cfg_for(tiny_dataset, tmp_path / "r", epochs=1, sampler={"p": 4},
                                        data={"val_split": None, "part_swap_ids": 3}, loss={"id_weight": 1.0}))
    assert torch.isfinite(torch.tensor(summary["history"][0]["loss"]))
    assert read_checkpoint(tmp_path / "r" / "last.pt")["extra"]["heads"]["ident.fc.weight"].shape == (6, 16)


def test_part_swap_with_attribute_heads_is_a_config_error(tiny_dataset, tmp_path):
    with pytest.raises(ConfigError, match="part_swap_ids cannot be combined with attribute heads"):
        cfg_for(tiny_dataset, tmp_path / "r", data={"part_swap_ids": 2},
                loss={"kind": "contrastive", "attributes": ["colour"]})


def test_train_resume_auto_on_a_finished_lstm_run_says_done(tmp_path, capsys):
    """``train --resume auto`` on a task: lstm config whose output folder holds every epoch: "done already",
    exit 0, nothing trained (it used to read the LSTM's last.pt as an embedding checkpoint and fail)."""
    import json

    from pipeline.cli import main

    (tmp_path / "metrics.json").write_text(json.dumps({"history": [{"epoch": e, "loss": 1.0} for e in range(4)]}))
    (tmp_path / "last.pt").write_bytes(b"an LSTM checkpoint")
    assert main(["train", "--config", "configs/reid/market_cuhk03_lstm.yaml", "--resume", "auto",
                 "--out", str(tmp_path)]) == 0
    assert "done already" in capsys.readouterr().out
    assert (tmp_path / "last.pt").read_bytes() == b"an LSTM checkpoint"


def _val_crops(dataset: Path) -> list[np.ndarray]:
    import cv2

    with (dataset / "index.csv").open() as fh:
        return [cv2.imread(str(dataset / r["path"])) for r in csv.DictReader(fh) if r["split"] == "val"]


def test_distillation_pulls_a_smaller_input_student_towards_its_teacher(tiny_dataset, tmp_path):
    from reid_models.encoder import AppearanceEncoder

    no_val = {"val_split": None}
    train_from_config(cfg_for(tiny_dataset, tmp_path / "teacher", data=no_val, epochs=3))
    teacher_path = tmp_path / "teacher" / "last.pt"
    small = {"name": "cnn3_siamese", "pretrained": None,
             "kwargs": {"input_size": [16, 16], "widths": [4, 8, 8], "embedding_dim": 16}}
    plain = train_from_config(cfg_for(tiny_dataset, tmp_path / "plain", data=no_val, model=small))
    kd = train_from_config(cfg_for(tiny_dataset, tmp_path / "kd", data=no_val, model=small,
                                   distill={"teacher": str(teacher_path), "weight": 5.0}))
    assert "distill_loss" in kd["history"][0] and "distill_loss" not in plain["history"][0]
    student, meta = load_checkpoint(tmp_path / "kd" / "last.pt")
    assert student.input_size == (16, 16) and meta["config"]["distill"]["teacher"] == str(teacher_path)
    assert not any(k.startswith("teacher") for k in read_checkpoint(tmp_path / "kd" / "last.pt")["state_dict"])

    crops = _val_crops(tiny_dataset)  # identities never trained on, each net at its own input size
    target = AppearanceEncoder.from_checkpoint(teacher_path, device="cpu").embed_crops(crops)
    agree = {name: float(np.mean(np.sum(AppearanceEncoder.from_checkpoint(tmp_path / name / "last.pt", device="cpu")
                                        .embed_crops(crops) * target, axis=1)))
             for name in ("plain", "kd")}
    # the same student, seed and batches: only the distillation term differs
    assert agree["kd"] > agree["plain"] + 0.3, agree


def test_distillation_config_errors_are_one_line(tiny_dataset, tmp_path):
    train_from_config(cfg_for(tiny_dataset, tmp_path / "t8", data={"val_split": None}, epochs=1,
                              model={"kwargs": {"input_size": [32, 32], "widths": [4, 8, 8], "embedding_dim": 8}}))
    with pytest.raises(ConfigError, match=r"distill.teacher: .*8 dimensions, the student in 16.*kind: relation"):
        train_from_config(cfg_for(tiny_dataset, tmp_path / "s", distill={"teacher": str(tmp_path / "t8" / "last.pt")}))
    # relation distillation has no such constraint
    kd = train_from_config(cfg_for(tiny_dataset, tmp_path / "r", epochs=1, data={"val_split": None},
                                   distill={"teacher": str(tmp_path / "t8" / "last.pt"), "kind": "relation"}))
    assert kd["history"][0]["distill_loss"] >= 0
    with pytest.raises(ConfigError, match="distill.teacher: distillation trains image models"):
        validate(TrainConfig, {"data": {"datasets": ["x"]}, "task": "lstm", "distill": {"teacher": "t.pt"}}, "c.yaml")


def test_keep_heads_starts_the_fine_tune_from_the_sources_classifier(tiny_dataset, tmp_path):
    ident = {"loss": {"kind": "batch_hard", "margin": "soft", "id_weight": 1.0, "bnneck": True}, "data": {"val_split": None}}
    train_from_config(cfg_for(tiny_dataset, tmp_path / "src", epochs=4, **ident))
    src = str(tmp_path / "src" / "last.pt")
    transfer = {"source": src, "l_t": 4, "l_u": 4}
    # a near-zero learning rate: what the first epoch's loss sees is the starting point itself
    slow = {"optim": {"name": "adam", "lr": 1e-9}}
    fresh = train_from_config(cfg_for(tiny_dataset, tmp_path / "fresh", epochs=1, transfer=transfer, **slow, **ident))
    kept = train_from_config(cfg_for(tiny_dataset, tmp_path / "kept", epochs=1, **slow, **ident,
                                     transfer={**transfer, "keep_heads": True}))
    heads_src = read_checkpoint(src)["extra"]["heads"]
    heads_kept = read_checkpoint(tmp_path / "kept" / "last.pt")["extra"]["heads"]
    heads_fresh = read_checkpoint(tmp_path / "fresh" / "last.pt")["extra"]["heads"]
    assert torch.allclose(heads_kept["ident.fc.weight"], heads_src["ident.fc.weight"], atol=1e-6)
    assert not torch.allclose(heads_fresh["ident.fc.weight"], heads_src["ident.fc.weight"], atol=1e-3)
    # the trained classifier already knows these 3 identities; a random one does not
    assert kept["history"][0]["loss"] < fresh["history"][0]["loss"] - 0.2, (kept["history"], fresh["history"])


def test_keep_heads_errors_are_one_line(tiny_dataset, tmp_path):
    ident = {"loss": {"kind": "batch_hard", "margin": "soft", "id_weight": 1.0, "bnneck": True}}
    with pytest.raises(ConfigError, match="transfer.keep_heads: needs transfer.source"):
        validate(TrainConfig, {"data": {"datasets": ["x"]}, "transfer": {"keep_heads": True}}, "c.yaml")
    # a source trained on 2 identities cannot start a 3-identity classifier
    train_from_config(cfg_for(tiny_dataset, tmp_path / "two", epochs=1, data={"val_split": None, "max_identities": 2},
                              sampler={"p": 2}, **ident))
    with pytest.raises(ConfigError, match=r"transfer.keep_heads: .*two/last.pt head ident.fc.weight has shape \(2, 16\)"):
        train_from_config(cfg_for(tiny_dataset, tmp_path / "r", epochs=1, data={"val_split": None}, **ident,
                                  transfer={"source": str(tmp_path / "two" / "last.pt"), "l_t": 4, "l_u": 4,
                                            "keep_heads": True}))


def test_an_interrupted_run_keeps_the_metrics_and_curves_of_its_finished_epochs(tiny_dataset, tmp_path, monkeypatch):
    from reid_models.engine import Engine

    real = Engine.train_epoch

    def dies_in_epoch_3(self, loader, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return real(self, loader, epoch)

    monkeypatch.setattr(Engine, "train_epoch", dies_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_from_config(cfg_for(tiny_dataset, tmp_path / "run", epochs=4))
    hist = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in hist] == [0, 1] and all("val_rank1" in h for h in hist)
    import cv2

    png = cv2.imread(str(tmp_path / "run" / "curves.png"))
    assert png is not None and png.shape[0] > 200 and png.std() > 10  # a drawn figure, not a blank


def test_plot_training_tool_compares_runs_and_names_a_bad_folder(tiny_dataset, tmp_path, tool_module, capsys):
    import cv2

    for name, lr in (("a", 0.01), ("b", 0.001)):
        train_from_config(cfg_for(tiny_dataset, tmp_path / name, optim={"name": "adam", "lr": lr}))
    tool = tool_module("plot_training")
    assert tool.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp.png")]) == 0
    assert "a: 2 epoch(s)" in capsys.readouterr().out
    png = cv2.imread(str(tmp_path / "cmp.png"))
    assert png is not None and png.shape[1] > 3 * png.shape[0] / 2  # three panels side by side: loss, lr, validation
    (tmp_path / "empty").mkdir()
    assert tool.main([str(tmp_path / "empty"), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "empty: no metrics.json or last.pt" in err


def test_keep_heads_from_a_checkpoint_without_heads_fails_before_the_data_is_read(tmp_path):
    from reid_models.checkpoint import save_checkpoint
    from reid_models.factory import build_model

    slim = tmp_path / "slim.pt"  # what a shipped model looks like: weights, no training heads
    save_checkpoint(slim, build_model("cnn3_siamese", input_size=(32, 32), widths=[4, 8, 8], embedding_dim=16),
                    {}, {}, 0)
    cfg = cfg_for(tmp_path / "no-such-dataset", tmp_path / "r",
                  transfer={"source": str(slim), "l_t": 4, "l_u": 4, "keep_heads": True})
    with pytest.raises(ConfigError, match=r"transfer.keep_heads: .*slim.pt was saved without training heads"):
        train_from_config(cfg)


def test_pk_batches_of_chunks_are_exact() -> None:
    """P x K chunk batches: 6 chunks, identities 1 (three chunks), 2 (two), 3 (one: no positive, left out);
    batch_size 4, k 2 -> one batch (6 // 4) of both usable identities, two chunks each, identity 2's two chunks
    drawn without replacement (it has exactly k)."""
    import numpy as np

    from reid_models.aggregator_training import pk_batches

    chunks = [{"pid": p} for p in (1, 1, 1, 2, 2, 3)]
    batches = pk_batches(chunks, 4, 2, np.random.default_rng(0))
    assert len(batches) == 1 and sorted(chunks[i]["pid"] for i in batches[0]) == [1, 1, 2, 2]
    assert sorted(i for i in batches[0] if chunks[i]["pid"] == 2) == [3, 4]
    assert len(pk_batches(chunks * 4, 4, 2, np.random.default_rng(0))) == 6  # 24 // 4


def test_val_ids_come_from_the_training_identities_only(shared) -> None:
    """DatasetEntry.val_ids: a validation split of Market-1501's training identities; the 250 test identities
    of the benchmark split are the same with and without it."""
    from reid_models.config import DatasetEntry
    from reid_models.train_data import load_items

    path = str(shared / "data" / "reid" / "Market-1501" / "bounding_box_train")
    plain = DatasetEntry(path=path, format="market", holdout_ids=250)
    with_val = DatasetEntry(path=path, format="market", holdout_ids=250, val_ids=100)
    ids = lambda entry, split: {it.pid for it in load_items(entry, split)}  # noqa: E731
    assert ids(with_val, "test") == ids(plain, "test") and len(ids(plain, "test")) == 250
    val, train = ids(with_val, "val"), ids(with_val, "train")
    assert len(val) == 100 and len(train) == 401 and val | train == ids(plain, "train") and not val & train


def test_lstm_training_with_a_non_finite_loss_stops_before_any_checkpoint(tiny_dataset, tmp_path):
    """A frame encoder that gives NaN embeddings (a run trained to NaN) makes the LSTM task's first loss NaN: the
    run stops with TrainingDiverged naming epoch 1 batch 1, before its step, and writes no checkpoint."""
    from reid_models.checkpoint import load_checkpoint, save_checkpoint
    from reid_models.engine import TrainingDiverged

    train_from_config(cfg_for(tiny_dataset, tmp_path / "enc", epochs=1))
    model, _ = load_checkpoint(tmp_path / "enc" / "last.pt")
    with torch.no_grad():
        model.fc.weight.fill_(float("nan"))
    save_checkpoint(tmp_path / "nan_enc.pt", model, {}, {}, epoch=0)
    cfg = cfg_for(tiny_dataset, tmp_path / "lstm", task="lstm", epochs=2,
                  aggregator={"encoder_checkpoint": str(tmp_path / "nan_enc.pt"), "max_len": 4, "batch_size": 4})
    with pytest.raises(TrainingDiverged, match=r"LSTM training diverged: loss nan in epoch 1 batch 1"):
        train_from_config(cfg)
    assert not (tmp_path / "lstm" / "last.pt").exists() and not (tmp_path / "lstm" / "best.pt").exists()
