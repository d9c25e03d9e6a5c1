"""Fine-tuning loop of seed 002 §3.2.3 on presumed positives and co-occurrence negatives.

Input is per-tracklet image tensors (no labels): ``images[i]`` is an (n_i, 3, H, W)
float32 batch of tracklet i's crops, already normalised (see
:func:`tensors_from_crops`). A training step takes one presumed-positive pair
(a, b): ``K`` crops drawn from a and b (half each) are the mutual positives,
``(P - 1) * K`` crops drawn from the pair's negative tracklets are the
negatives, and :func:`~reid_models.adaptation.loss.modified_batch_hard`
averages over the first K. Optimiser: RMSProp, learning rate decaying
exponentially from ``lr`` to ``final_lr`` over ``max_steps`` steps; the time
budget ``budget_s`` only cuts training short (a schedule by elapsed time would
make a round depend on the machine's load). Seeded: the same data, settings
and seed give the same weights. BatchNorm layers stay in eval mode (batches
of a few people would corrupt their running statistics); dropout stays on.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from pipeline.core.types import unit_mean
from reid_models.adaptation.loss import modified_batch_hard
from reid_models.checkpoint import cpu_state
from reid_models.schedule import flush_denormals


@dataclass(frozen=True)
class FineTuneSettings:
    """k: mutual positives per batch; p: batch = p * k images; budget_s / max_steps: stop rule."""

    k: int = 4
    p: int = 4
    lr: float = 1e-5
    final_lr: float = 1e-6
    budget_s: float = 120.0
    max_steps: int = 300
    margin: float | str = "soft"
    pad: int = 6  # random translation (pixels) for augmentation
    flip: bool = True
    seed: int = 0
    device: str = "cpu"


@dataclass
class FineTuneResult:
    """state_dict: CPU weights of the fine-tuned copy; losses: one per step."""

    state_dict: dict[str, torch.Tensor]
    steps: int
    seconds: float
    stopped_by: str  # max_steps | budget | stop_request | no_data
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)


def tensors_from_crops(crops_bgr: Sequence[np.ndarray], input_size: tuple[int, int],
                       mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """BGR uint8 crops -> (N, 3, H, W) float32, preprocessed exactly as the encoder does."""
    from reid_models.encoder import preprocess_crops

    return torch.from_numpy(preprocess_crops(list(crops_bgr), input_size, tuple(mean), tuple(std)))


def augment(batch: torch.Tensor, gen: torch.Generator, pad: int, flip: bool) -> torch.Tensor:
    """(B, 3, H, W) -> same shape: random horizontal flip and random translation by <= pad pixels."""
    b, _, h, w = batch.shape
    out = batch.clone()
    if flip:
        mask = torch.rand(b, generator=gen) < 0.5
        out[mask] = out[mask].flip(-1)
    if pad > 0:
        padded = nn.functional.pad(out, (pad, pad, pad, pad))
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
        out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])
    return out


def _draw(images: Sequence[torch.Tensor], owners: Sequence[int], n: int, rng: np.random.Generator) -> torch.Tensor:
    """n crops: a random owner tracklet each (cycled evenly), a random crop of it."""
    picks = [owners[i % len(owners)] for i in rng.permutation(max(n, len(owners)))[:n]]
    return torch.stack([images[t][int(rng.integers(len(images[t])))] for t in picks])


def make_batch(images: Sequence[torch.Tensor], pair: tuple[int, int], negatives: Sequence[int],
               k: int, p: int, rng: np.random.Generator) -> torch.Tensor:
    """(p * k, 3, H, W): rows [0, k) crops of the pair (k//2 of a, the rest of b), then negatives."""
    a, b = pair
    pos = torch.cat([_draw(images, [a], k // 2, rng), _draw(images, [b], k - k // 2, rng)])
    neg = _draw(images, list(negatives), (p - 1) * k, rng)
    return torch.cat([pos, neg])


def _freeze_bn(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def fine_tune(
    model: nn.Module,
    images: Sequence[torch.Tensor],
    pairs: Sequence[tuple[int, int]],
    negatives: Sequence[Sequence[int]],
    settings: FineTuneSettings,
    should_stop: Callable[[], bool] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> FineTuneResult:
    """Fine-tune a copy of ``model``; ``negatives[i]`` are tracklet indices negative for ``pairs[i]``.

    Pairs without negatives are skipped. The input model is not modified.
    """
    usable = [(pr, ng) for pr, ng in zip(pairs, negatives) if len(ng) > 0]
    net = copy.deepcopy(model).to(settings.device)
    if not usable or settings.max_steps <= 0:
        return FineTuneResult(cpu_state(net), 0, 0.0, "no_data")
    with torch.random.fork_rng(devices=[]):  # dropout draws from the global RNG: seed it, then restore it
        torch.manual_seed(settings.seed)
        with flush_denormals(str(settings.device)):
            return _train(net, images, usable, settings, should_stop, on_step)


def _train(net: nn.Module, images: Sequence[torch.Tensor], usable: list, settings: FineTuneSettings,
           should_stop, on_step) -> FineTuneResult:
    net.train()
    _freeze_bn(net)
    opt = torch.optim.RMSprop([q for q in net.parameters() if q.requires_grad], lr=settings.lr)
    rng = np.random.default_rng(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    ratio = math.log(settings.final_lr / settings.lr)
    t0, losses, lrs, stopped = time.monotonic(), [], [], "max_steps"
    order = rng.permutation(len(usable))
    for step in range(settings.max_steps):
        elapsed = time.monotonic() - t0
        if should_stop is not None and should_stop():
            stopped = "stop_request"
            break
        if elapsed >= settings.budget_s:
            stopped = "budget"
            break
        lr = settings.lr * math.exp(ratio * step / settings.max_steps)  # by step only: reproducible
        for group in opt.param_groups:
            group["lr"] = lr
        if step and step % len(usable) == 0:
            order = rng.permutation(len(usable))
        pair, negs = usable[order[step % len(usable)]]
        batch = make_batch(images, pair, negs, settings.k, settings.p, rng)
        batch = augment(batch, gen, settings.pad, settings.flip).to(settings.device)
        loss = modified_batch_hard(net(batch), settings.k, settings.margin)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        lrs.append(lr)
        if on_step is not None:
            on_step(step, losses[-1])
    return FineTuneResult(cpu_state(net), len(losses), time.monotonic() - t0, stopped, losses, lrs)


def embed_sets(model: nn.Module, images: Sequence[torch.Tensor], device: str = "cpu",
               batch_size: int = 128, cams: Sequence[str] | None = None) -> list[np.ndarray]:
    """Per-set (n_i, D) L2-normalised float32 embeddings, model in eval mode (state restored).

    ``cams[i]``: the camera of set i; when the model carries per-camera BatchNorm statistics
    (``model.camera_bn``), a set of such a camera is embedded with that camera's statistics."""
    stats = getattr(model, "camera_bn", None)
    if not stats or cams is None:
        return _embed_sets(model, images, device, batch_size)
    from reid_models.adaptation.bn import with_statistics

    out: list[np.ndarray | None] = [None] * len(images)
    for cam in sorted(set(cams), key=str):
        idx = [i for i, c in enumerate(cams) if c == cam]
        net = with_statistics(model, stats[cam]) if cam in stats else model
        for i, v in zip(idx, _embed_sets(net, [images[i] for i in idx], device, batch_size)):
            out[i] = v
    return out  # type: ignore[return-value]


@torch.inference_mode()
def _embed_sets(model: nn.Module, images: Sequence[torch.Tensor], device: str, batch_size: int) -> list[np.ndarray]:
    was_training = model.training
    model.eval()
    sizes = [len(x) for x in images]
    flat = torch.cat(list(images)) if images else torch.zeros(0)
    feats = [model(flat[s:s + batch_size].to(device)).float().cpu() for s in range(0, len(flat), batch_size)]
    model.train(was_training)
    allf = torch.cat(feats).numpy() if feats else np.zeros((0, 0), np.float32)
    allf = allf / np.maximum(np.linalg.norm(allf, axis=1, keepdims=True), 1e-12)
    return list(np.split(allf.astype(np.float32), np.cumsum(sizes)[:-1])) if sizes else []


def mean_vector(frame_embeddings: np.ndarray) -> np.ndarray:
    """(n, D) L2-normalised rows -> (D,) float32 re-normalised mean (as MeanAggregator)."""
    return unit_mean(frame_embeddings)
