"""Weight averaging of embedding networks fine-tuned from the same pre-trained weights ("model soups").

Networks fine-tuned from one pre-trained initialisation tend to lie in one basin of the loss (Neyshabur et al.,
"What is being transferred in transfer learning?", NeurIPS 2020), so the average of their weights is itself a
good network, often better than each of them away from the training domains (Wortsman et al., "Model soups",
ICML 2022; Rame et al., "Diverse weight averaging for out-of-distribution generalization", NeurIPS 2022, on
DomainBed). A soup costs no training and nothing at inference: the result has the architecture of its
ingredients.

Averaging the weights of a BatchNorm network leaves its running statistics wrong for the averaged weights
(the average of two models' activation means is not the mean activation of the averaged model), so the
statistics are re-estimated afterwards on training batches (:func:`recalibrated`), as stochastic weight
averaging does (Izmailov et al., 2018, ``torch.optim.swa_utils.update_bn``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from pipeline.core.errors import ModelError


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]], weights: Sequence[float] | None = None,
                        names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """The weighted average of state dicts with the same keys and shapes.

    ``weights``: one non-negative number per state dict (normalised to sum 1; default uniform). Floating-point
    tensors are averaged in float32 and returned as float32; integer tensors (BatchNorm's
    ``num_batches_tracked``) are taken from the first state dict. ``names`` (e.g. file paths) name the
    ingredients in the one-line ModelError raised when keys or shapes differ.
    """
    if not states:
        raise ModelError("average_state_dicts: no state dict to average")
    labels = list(names) if names is not None else [f"state dict {i}" for i in range(len(states))]
    w = [1.0] * len(states) if weights is None else [float(x) for x in weights]
    if len(w) != len(states) or any(x < 0 for x in w) or sum(w) <= 0:
        raise ModelError(f"average_state_dicts: need one non-negative weight per state dict with a positive sum, got {w}")
    total = sum(w)
    w = [x / total for x in w]
    first = states[0]
    for label, st in zip(labels[1:], states[1:]):
        if set(st) != set(first):
            extra = sorted(set(st) ^ set(first))[0]
            raise ModelError(f"{label}: its weights do not match {labels[0]}'s (key {extra!r} in only one)")
        for k, v in st.items():
            if v.shape != first[k].shape:
                raise ModelError(f"{label}: {k} has shape {tuple(v.shape)}, {labels[0]} has {tuple(first[k].shape)}")
    out: dict[str, torch.Tensor] = {}
    for k, v in first.items():
        if v.is_floating_point():
            out[k] = sum(wi * st[k].detach().float().cpu() for wi, st in zip(w, states))  # type: ignore[assignment]
        else:
            out[k] = v.detach().cpu().clone()
    return out


def recalibrated(model: nn.Module, batches: Iterable[torch.Tensor], device: str = "cpu") -> tuple[nn.Module, int]:
    """``model`` (in place) with every BatchNorm layer's running mean / variance re-estimated on ``batches``.

    ``batches``: (B, 3, H, W) float32 tensors, preprocessed as in training and passed in the order given (so
    one-dataset batches of a BH-switch sampler stay one-dataset batches, as in training); the estimate is
    :func:`reid_models.adaptation.bn.estimate_batchnorm_in_place` (only BatchNorm in train mode, MixStyle and
    dropout in eval mode). Returns (the model in eval mode, the number of batches used); ModelError when the
    model has BatchNorm and no batch of two or more images came.
    """
    from reid_models.adaptation.bn import batchnorm_layers, estimate_batchnorm_in_place

    used = estimate_batchnorm_in_place(model, batches, device)
    if batchnorm_layers(model) and not used:
        raise ModelError("recalibrated: no batch of two or more images to estimate BatchNorm statistics on")
    return model, used
