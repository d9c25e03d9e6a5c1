"""The training loop (one loop; each loss variant overrides only :meth:`Engine.loss_step`).

Modelled on torchreid's ``Engine``: an epoch walks over P x K batches, the
subclass turns a batch of embeddings into a loss, the base class does the
optimiser step, the per-epoch learning-rate schedule, validation (rank-1 /
mAP on the validation split via ``reid_models.metrics``) and checkpoints
(``last.pt`` every epoch, ``best.pt`` at the best validation rank-1; both hold
config, metric history, optimizer/heads/scheduler state). ``fit(resume=...)``
continues a run exactly where a checkpoint left it: epoch e is seeded with
``(seed, e)`` so a resumed run draws the same batches as an uninterrupted one.

The learning-rate schedule and seeding live in :mod:`reid_models.schedule`; building the model and
running a config end to end (``train_from_config``) in :mod:`reid_models.training`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.core.errors import ConfigError
from reid_models import losses
from reid_models.backbones import EmbeddingNet
from reid_models.batch_mining import pairs_from_batch, triplets_from_batch
from reid_models.checkpoint import read_checkpoint, save_checkpoint
from reid_models.config import TrainConfig
from reid_models.schedule import lr_factor, seed_everything
from reid_models.heads import AttributeHeads, IdentificationHead, VerificationHead
from reid_models.transfer import freeze_frozen_batchnorm
from reid_models.run_report import write_run_report


def fit_size(imgs: torch.Tensor, size: tuple[int, int] | list[int]) -> torch.Tensor:
    """(B, 3, H, W) batch -> (B, 3, h, w) for a network of input ``size`` = (h, w): unchanged when it already
    fits, else bilinear with antialiasing (the same filter as the transforms' resize)."""
    h, w = int(size[0]), int(size[1])
    if tuple(imgs.shape[-2:]) == (h, w):
        return imgs
    return torch.nn.functional.interpolate(imgs, size=(h, w), mode="bilinear", antialias=True, align_corners=False)


class TrainingDiverged(ConfigError):
    """A non-finite training loss: the run stops before the step, its last good checkpoint untouched."""


class Engine:
    """Base engine: subclasses implement :meth:`build_heads` (optional) and :meth:`loss_step`."""

    def __init__(self, cfg: TrainConfig, model: EmbeddingNet, num_classes: int, device: str,
                 out_dir: Path, attributes: torch.Tensor | None = None, teacher: EmbeddingNet | None = None) -> None:
        self.cfg, self.model, self.device, self.out_dir = cfg, model.to(device), device, Path(out_dir)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        # distillation (cfg.distill): a frozen teacher in eval mode, never in the optimiser or the checkpoint
        self.teacher = (teacher.to(device, memory_format=self.memory_format).float().eval().requires_grad_(False)
                        if teacher is not None else None)
        self.num_classes = num_classes
        self.attributes = attributes
        self.heads = self.build_heads(model.embedding_dim, num_classes).to(device)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        params = [p for p in model.parameters() if p.requires_grad] + list(self.heads.parameters())
        o = cfg.optim
        if o.name == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
        elif o.name == "rmsprop":
            self.optimizer = torch.optim.RMSprop(params, lr=o.lr, weight_decay=o.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        s = cfg.schedule
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda e: lr_factor(s.kind, e, cfg.epochs, s.decay_start, o.lr, s.final_lr, s.warmup_epochs)
        )
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0

    # -- the override points -------------------------------------------------
    def build_heads(self, dim: int, num_classes: int) -> nn.ModuleDict:
        """Training-only heads (identification, verification, attributes). None by default."""
        return nn.ModuleDict()

    def loss_step(self, emb: torch.Tensor, pids: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """(B, D) embeddings, (B,) labels, (B,) dataset row numbers -> (scalar loss, stats)."""
        raise NotImplementedError

    # -- the loop ------------------------------------------------------------
    def train_epoch(self, loader, epoch: int) -> dict[str, float]:
        from pipeline.core.progress import progress

        seed_everything(self.cfg.seed * 1000 + epoch)
        self.generator.manual_seed(self.cfg.seed * 1000 + epoch)
        if hasattr(loader.batch_sampler, "set_epoch"):
            loader.batch_sampler.set_epoch(epoch)
        self.model.train()
        self.heads.train()
        freeze_frozen_batchnorm(self.model)
        total, distill_total, n, seen = 0.0, 0.0, 0, 0
        t0 = time.perf_counter()
        bar = progress(loader, desc=f"epoch {epoch + 1}/{self.cfg.epochs}", leave=False, dynamic_ncols=True)
        for imgs, pids, _cams, index in bar:
            imgs, pids = imgs.to(self.device, memory_format=self.memory_format), pids.to(self.device)
            emb = self.model(fit_size(imgs, self.model.input_size))
            loss, _stats = self.loss_step(emb, pids, index)
            if self.teacher is not None:
                with torch.no_grad():
                    target = self.teacher(fit_size(imgs, self.teacher.input_size))
                d = losses.distillation(emb, target, self.cfg.distill.kind)
                loss = loss + self.cfg.distill.weight * d
                distill_total += float(d.detach())
            if not bool(torch.isfinite(loss.detach())):
                # before the step and before this epoch's checkpoint: last.pt keeps the last good epoch
                raise TrainingDiverged(
                    f"training diverged: loss {float(loss.detach())} in epoch {epoch + 1} batch {n + 1} (of "
                    f"{self.cfg.epochs} epochs); {self.out_dir / 'last.pt'} keeps the last finished epoch "
                    "(try a lower optim.lr)")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach())
            n += 1
            seen += int(imgs.shape[0])
            bar.set_postfix(loss=f"{total / n:.4f}")
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        seconds = time.perf_counter() - t0
        row = {"loss": total / max(n, 1), "lr": lr, "seconds": round(seconds, 1),
               "crops_per_s": round(seen / max(seconds, 1e-9), 1)}
        if self.teacher is not None:
            row["distill_loss"] = round(distill_total / max(n, 1), 5)
        return row

    @torch.no_grad()
    def embed_items(self, items: list, batch_size: int = 64) -> np.ndarray:
        """(N, D) float32 L2-normalised embeddings of crop items (test transform)."""
        from reid_models.datasets.torch_data import ReidImageDataset
        from reid_models.transforms import build_test_transform

        ds = ReidImageDataset(items, build_test_transform(tuple(self.model.input_size)), cache=False)
        self.model.eval()
        out = []
        for s in range(0, len(ds), batch_size):
            batch = torch.stack([ds[i][0] for i in range(s, min(s + batch_size, len(ds)))]).to(self.device)
            out.append(torch.nn.functional.normalize(self.model(batch).float(), dim=1).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.model.embedding_dim), np.float32)

    def validate(self, items: list) -> dict[str, float]:
        """All-vs-all rank-1 / mAP over validation crops (self and same-track neighbours within
        ``val_min_gap`` frames ignored, so a query cannot match its own near-duplicates)."""
        from reid_models.metrics import cmc_map

        spec = self.cfg.data
        if len(items) > spec.val_max_items:
            keep = np.random.default_rng(self.cfg.seed).choice(len(items), spec.val_max_items, replace=False)
            items = [items[i] for i in sorted(keep)]
        feats = self.embed_items(items)
        pids = np.array([it.pid for it in items])
        seqs = np.array([it.seq for it in items])
        frames = np.array([it.frame for it in items])
        near = (pids[:, None] == pids[None, :]) & (seqs[:, None] == seqs[None, :]) & (
            np.abs(frames[:, None] - frames[None, :]) < max(spec.val_min_gap, 1)
        )
        res = cmc_map(feats, pids, None, feats, pids, None, ignore=near)
        return {"val_rank1": float(res["rank1"]), "val_mAP": float(res["mAP"]), "val_queries": int(res["num_queries"])}

    def checkpoint(self, path: Path, epoch: int) -> None:
        extra = {"heads": {k: v.cpu() for k, v in self.heads.state_dict().items()},
                 "scheduler": self.scheduler.state_dict(), "history": self.history}
        metrics = self.history[-1] if self.history else {}
        save_checkpoint(path, self.model, self.cfg.model_dump(mode="json"), metrics, epoch, self.optimizer, extra)

    def load_heads(self, heads: dict[str, torch.Tensor], source: str) -> None:
        """Start the training heads from ``heads`` (a checkpoint's ``extra.heads``); ConfigError naming
        ``source`` when they are missing or were made for other classes or dimensions."""
        from pipeline.core.errors import ConfigError

        own = self.heads.state_dict()
        if not heads:
            raise ConfigError(f"transfer.keep_heads: {source} was saved without training heads")
        if set(heads) != set(own):
            raise ConfigError(f"transfer.keep_heads: {source} has heads {sorted(heads)}, this loss needs {sorted(own)}")
        for k, v in heads.items():
            if tuple(v.shape) != tuple(own[k].shape):
                raise ConfigError(f"transfer.keep_heads: {source} head {k} has shape {tuple(v.shape)}, this training "
                                  f"needs {tuple(own[k].shape)} (other classes or embedding size?)")
        self.heads.load_state_dict(heads)

    def resume(self, path: Path) -> None:
        """Load model, heads, optimizer, scheduler and history; continue after the saved epoch."""
        from reid_models.config import resume_differences

        blob = read_checkpoint(path)
        diffs = resume_differences(blob.get("config") or {}, self.cfg)
        if diffs:
            short = lambda v: "(unset)" if v is None else (repr(v) if len(repr(v)) <= 80 else repr(v)[:77] + "...")  # noqa: E731
            shown = "; ".join(f"{k}: {short(a)} -> {short(b)}" for k, a, b in diffs[:3])
            more = f" (and {len(diffs) - 3} more)" if len(diffs) > 3 else ""
            raise ConfigError(f"--resume {path}: the config differs from the one this checkpoint was trained with: "
                              f"{shown}{more}; resume with its config, or train into another --out")
        try:
            self.model.load_state_dict(blob["state_dict"])
            self.heads.load_state_dict(blob["extra"].get("heads", {}))
            if blob.get("optimizer"):
                self.optimizer.load_state_dict(blob["optimizer"])
            if "scheduler" in blob["extra"]:
                self.scheduler.load_state_dict(blob["extra"]["scheduler"])
        except (RuntimeError, KeyError, ValueError) as exc:  # same config, other data (e.g. more identities)
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
            first = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else lines[0]
            first = first if len(first) <= 200 else first[:200] + "..."
            raise ConfigError(f"--resume {path}: its weights or optimizer state do not fit this training "
                              f"(other data or classes?): {first}") from None
        self.history = list(blob["extra"].get("history", []))
        self.start_epoch = int(blob["epoch"]) + 1

    def fit(self, loader, val_items: list) -> dict[str, Any]:
        """Train ``cfg.epochs`` epochs from ``start_epoch``; returns the final summary."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        best = max((h.get("val_rank1", -1.0) for h in self.history), default=-1.0)
        for epoch in range(self.start_epoch, self.cfg.epochs):
            row: dict[str, Any] = {"epoch": epoch, **self.train_epoch(loader, epoch)}
            if val_items and ((epoch + 1) % self.cfg.eval_every == 0 or epoch + 1 == self.cfg.epochs):
                row.update(self.validate(val_items))
            self.history.append(row)
            print(json.dumps(row), flush=True)
            self.checkpoint(self.out_dir / "last.pt", epoch)
            if row.get("val_rank1", -1.0) > best or (not val_items and epoch + 1 == self.cfg.epochs):
                best = row.get("val_rank1", -1.0)
                self.checkpoint(self.out_dir / "best.pt", epoch)
            # every epoch: an interrupted run keeps the metrics and curves of what it finished
            write_run_report(self.out_dir, self.summary(best))
        return self.summary(best)

    def summary(self, best: float) -> dict[str, Any]:
        """The run so far: metric history, output folder, best validation rank-1 (-1 without validation)."""
        return {"history": self.history, "out_dir": str(self.out_dir), "best_val_rank1": best}


class BatchHardEngine(Engine):
    """Seed 002: batch-hard triplet loss (soft margin by default), plus identification if id_weight > 0."""

    def build_heads(self, dim: int, num_classes: int) -> nn.ModuleDict:
        h = nn.ModuleDict()
        if self.cfg.loss.id_weight > 0:
            h["ident"] = IdentificationHead(dim, num_classes, self.cfg.loss.feature_dropout, self.cfg.loss.bnneck)
        return h

    def _ident(self, emb: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
        if "ident" not in self.heads:
            return emb.new_zeros(())
        logits = self.heads["ident"](emb)
        return self.cfg.loss.id_weight * losses.identification(logits, pids, self.cfg.loss.label_smoothing)

    def loss_step(self, emb, pids, index):
        loss = losses.batch_hard_triplet(emb, pids, self.cfg.loss.margin) + self._ident(emb, pids)
        return loss, {}


class TripletEngine(BatchHardEngine):
    """Seed 000: triplet loss on one random (anchor, positive, negative) per anchor of the batch."""

    def loss_step(self, emb, pids, index):
        a, p, n = (t.to(emb.device) for t in triplets_from_batch(pids, self.generator))
        return losses.triplet(emb[a], emb[p], emb[n], self.cfg.loss.margin) + self._ident(emb, pids), {}


class IdentificationEngine(Engine):
    """Softmax identification over the training identities."""

    def build_heads(self, dim: int, num_classes: int) -> nn.ModuleDict:
        return nn.ModuleDict({"ident": IdentificationHead(dim, num_classes, self.cfg.loss.feature_dropout,
                                                          self.cfg.loss.bnneck)})

    def loss_step(self, emb, pids, index):
        return losses.identification(self.heads["ident"](emb), pids, self.cfg.loss.label_smoothing), {}


class ContrastiveEngine(Engine):
    """Seed 001: Siamese contrastive cost on balanced in-batch pairs; multi-task with identification
    (``id_weight``) and entropy-weighted attribute heads when ``loss.attributes`` are given."""

    def build_heads(self, dim: int, num_classes: int) -> nn.ModuleDict:
        h = nn.ModuleDict()
        if self.cfg.loss.id_weight > 0:
            h["ident"] = IdentificationHead(dim, num_classes)
        if self.attributes is not None:
            n_labels = [int(self.attributes[:, a].max().clamp_min(1)) + 1 for a in range(self.attributes.shape[1])]
            h["attr"] = AttributeHeads(dim, n_labels)
            self.attr_weights = losses.entropy_weights(self.attributes)
        return h

    def loss_step(self, emb, pids, index):
        ia, ib, same = (t.to(emb.device) for t in pairs_from_batch(pids, self.generator))
        verif = losses.contrastive(emb[ia], emb[ib], same, self.cfg.loss.contrastive_margin)
        id_logits = self.heads["ident"](emb) if "ident" in self.heads else None
        attr_logits, attr_labels = (), None
        if "attr" in self.heads and self.attributes is not None:
            attr_logits = self.heads["attr"](emb)
            attr_labels = self.attributes[index].to(emb.device)
        loss = losses.multitask_entropy_weighted(
            verif, id_logits, pids, attr_logits, attr_labels,
            getattr(self, "attr_weights", None), id_weight=self.cfg.loss.id_weight,
        )
        return loss, {}


class FusionEngine(Engine):
    """Seed 003: lambda * verification (Square Layer + 2-way softmax) + identification of both images."""

    def build_heads(self, dim: int, num_classes: int) -> nn.ModuleDict:
        return nn.ModuleDict({
            "ident": IdentificationHead(dim, num_classes),
            "verif": VerificationHead(dim),
            "dropout": nn.Dropout(self.cfg.loss.feature_dropout),
        })

    def loss_step(self, emb, pids, index):
        ia, ib, same = (t.to(emb.device) for t in pairs_from_batch(pids, self.generator))
        mask = self.heads["dropout"](torch.ones_like(emb[ia]))  # the same dropout mask on both images
        x1, x2 = emb[ia] * mask, emb[ib] * mask
        return losses.verification_identification_fusion(
            self.heads["verif"](x1, x2), same, self.heads["ident"](x1), pids[ia], self.heads["ident"](x2), pids[ib],
            lam=self.cfg.loss.fusion_lambda,
        ), {}


ENGINES: dict[str, type[Engine]] = {
    "batch_hard": BatchHardEngine,
    "triplet": TripletEngine,
    "identification": IdentificationEngine,
    "contrastive": ContrastiveEngine,
    "fusion": FusionEngine,
}
