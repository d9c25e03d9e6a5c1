"""Per-epoch learning-rate schedule (warm-up, constant / linear / exponential decay) and seeding of a run."""

from __future__ import annotations

import math
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def lr_factor(kind: str, epoch: int, epochs: int, decay_start: int, lr: float, final_lr: float,
              warmup_epochs: int = 0) -> float:
    """Multiplier of the base lr at ``epoch`` (0-based) for the schedules of ScheduleSpec."""
    warm = (epoch + 1) / (warmup_epochs + 1) if epoch < warmup_epochs else 1.0
    return warm * _decay_factor(kind, epoch, epochs, decay_start, lr, final_lr)


def _decay_factor(kind: str, epoch: int, epochs: int, decay_start: int, lr: float, final_lr: float) -> float:
    if kind == "constant" or epochs <= 1:
        return 1.0
    ratio = final_lr / lr
    if kind == "linear":
        return 1.0 + (ratio - 1.0) * epoch / (epochs - 1)
    span = max(1, epochs - 1 - decay_start)  # exp_decay
    t = min(max(epoch - decay_start, 0), span) / span
    return math.exp(t * math.log(ratio))
