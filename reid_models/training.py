"""A training config end to end: the network with its transfer levels, the data, the engine of the loss, fit.

``train_from_config`` is what ``reid-pipeline train`` calls; the loop itself is :mod:`reid_models.engine`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch

from pipeline.core.device import resolve_device
from reid_models.backbones import EmbeddingNet
from reid_models.config import TrainConfig
from reid_models.engine import ENGINES
from reid_models.schedule import flush_denormals, seed_everything


def build_engine_model(cfg: TrainConfig) -> EmbeddingNet:
    """The network of ``cfg.model``, with the transfer levels of ``cfg.transfer`` applied."""
    from reid_models.factory import build_model
    from reid_models.checkpoint import load_checkpoint
    from reid_models.transfer import apply_transfer

    kwargs = dict(cfg.model.kwargs)
    if "input_size" in kwargs:
        kwargs["input_size"] = tuple(kwargs["input_size"])
    if cfg.model.name.startswith("mobilenetv2"):
        kwargs["pretrained"] = cfg.model.pretrained
    model = build_model(cfg.model.name, **kwargs)
    t = cfg.transfer
    if t.l_t is not None and t.l_u is not None:
        # no source: the model's own initialisation (e.g. ImageNet) is the pre-trained model
        source = load_checkpoint(t.source)[0] if t.source else copy.deepcopy(model)
        info = apply_transfer(model, source, t.l_t, t.l_u)
        print(json.dumps({"transfer": info}), flush=True)
    return model


def load_teacher(cfg: TrainConfig, model: EmbeddingNet) -> EmbeddingNet | None:
    """The frozen teacher of ``cfg.distill`` (None without one); a one-line error when it cannot teach ``model``."""
    from pipeline.core.errors import ConfigError
    from reid_models.checkpoint import load_checkpoint

    d = cfg.distill
    if not d.teacher:
        return None
    teacher = load_checkpoint(d.teacher)[0]  # the engine makes it float32, frozen, eval
    if d.kind == "feature" and teacher.embedding_dim != model.embedding_dim:
        raise ConfigError(f"distill.teacher: {d.teacher} embeds in {teacher.embedding_dim} dimensions, the student in "
                          f"{model.embedding_dim}; feature distillation needs equal ones (use kind: relation)")
    return teacher


def kept_heads(cfg: TrainConfig) -> dict[str, torch.Tensor] | None:
    """The source checkpoint's training heads for ``transfer.keep_heads`` (None when not asked for); a one-line
    ConfigError naming the source when it was saved without them (e.g. a shipped, slimmed checkpoint)."""
    from pipeline.core.errors import ConfigError
    from reid_models.checkpoint import read_checkpoint

    t = cfg.transfer
    if not (t.keep_heads and t.source):
        return None
    heads = (read_checkpoint(t.source).get("extra") or {}).get("heads") or {}
    if not heads:
        raise ConfigError(f"transfer.keep_heads: {t.source} was saved without training heads (a shipped or slimmed "
                          "checkpoint?); use the run's last.pt, or keep_heads: false")
    return heads


def batch_input_size(model: EmbeddingNet, teacher: EmbeddingNet | None) -> tuple[int, int]:
    """The size training batches are made at: the student's, or the teacher's when it has more pixels (the
    student then gets them shrunk, :func:`reid_models.engine.fit_size`)."""
    size = tuple(model.input_size)
    if teacher is not None and teacher.input_size[0] * teacher.input_size[1] > size[0] * size[1]:
        size = tuple(teacher.input_size)
    return (int(size[0]), int(size[1]))


def checkpoint_epoch(path: Path) -> str:
    """The (0-based) epoch stored in a run's checkpoint, embedding or LSTM, as text ("?" when unreadable)."""
    from pipeline.core.errors import ModelError
    from reid_models.safe_load import load_weights

    try:
        blob = load_weights(path, str(path), "a checkpoint")
    except ModelError:  # only for the message: whatever the file is, it is not overwritten
        return "?"
    if not isinstance(blob, dict):
        return "?"
    epoch = blob.get("epoch")  # embedding checkpoints; LSTM ones keep it in their metrics
    if epoch is None and isinstance(blob.get("metrics"), dict):
        epoch = blob["metrics"].get("epoch")
    return str(epoch) if isinstance(epoch, int) else "?"


def refuse_overwrite(out: Path) -> None:
    """ConfigError when ``out`` already holds a run's ``last.pt``: a fresh start would overwrite its work."""
    from pipeline.core.errors import ConfigError

    last = out / "last.pt"
    if last.is_file():
        raise ConfigError(f"{out}: already holds a checkpoint ({last}, epoch {checkpoint_epoch(last)}); training "
                          "without --resume would overwrite it: continue it with --resume auto, train into another "
                          "--out / output_dir, or delete the folder first")


def train_from_config(cfg: TrainConfig, resume: str | Path | None = None, out_dir: str | Path | None = None,
                      restart: bool = False) -> dict[str, Any]:
    """Train as configured (``task: image``: embedding net; ``task: lstm``: tracklet aggregator).

    Writes ``last.pt`` / ``best.pt`` / ``metrics.json`` under ``out_dir`` (default
    ``cfg.output_dir``) and returns the summary (metric history, out_dir). Without ``resume`` an output folder
    that already holds ``last.pt`` is refused (:func:`refuse_overwrite`) unless ``restart`` (an unfinished LSTM
    run restarted by ``train --resume auto``).
    """
    out = Path(out_dir or cfg.output_dir)
    if resume is None and not restart:
        refuse_overwrite(out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    if cfg.task == "lstm":
        from reid_models.aggregator_training import train_aggregator

        with flush_denormals(device):
            return train_aggregator(cfg, device, out, resume)
    from reid_models.train_data import build_image_data, build_train_loader

    source_heads = kept_heads(cfg)  # before the data: a source without heads fails in seconds, not minutes
    data = build_image_data(cfg.data, cfg.loss.attributes, cfg.seed)
    model = build_engine_model(cfg)
    teacher = load_teacher(cfg, model)
    loader = build_train_loader(data, cfg.data, cfg.sampler, batch_input_size(model, teacher), cfg.seed)
    engine = ENGINES[cfg.loss.kind](cfg, model, data.num_classes, device, out, data.attributes, teacher)
    if source_heads is not None:
        engine.load_heads(source_heads, str(cfg.transfer.source))
    if resume:
        engine.resume(Path(resume))
    print(json.dumps({"device": device, "train_items": len(data.train_items), "identities": data.num_classes,
                      "val_items": len(data.val_items), "batches_per_epoch": len(loader),
                      "start_epoch": engine.start_epoch}), flush=True)
    with flush_denormals(device):
        return engine.fit(loader, data.val_items)
