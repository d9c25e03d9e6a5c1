"""BatchNorm statistics re-estimated on the target domain's crops (AdaBN; Li et al., "Revisiting batch
normalization for practical domain adaptation", 2016).

A re-id network trained on other cameras normalises every layer with its source domain's means and
variances. Re-estimating those running statistics on crops of the deployed cameras needs no label and no
gradient (forward passes only) and moves the features toward the target domain's own distribution; it is
the first, cheapest step of label-free adaptation (docs/adaptation.md measures it on Market-1501).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The model's BatchNorm layers (1-D / 2-D / 3-D) with running statistics."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def reestimate_batchnorm(model: nn.Module, images: Sequence[torch.Tensor], batch_size: int = 64, seed: int = 0,
                         device: str = "cpu") -> nn.Module:
    """A copy of ``model`` whose BatchNorm running mean / variance are those of ``images``.

    ``images``: (n_i, 3, H, W) float32 tensors (preprocessed crops, e.g. one per tracklet), pooled and
    shuffled with ``seed``, passed forward in batches of ``batch_size`` with BatchNorm in train mode and a cumulative
    average (``momentum=None``); every other weight is unchanged. The copy is returned in eval mode with
    each layer's momentum restored. No crop, or no BatchNorm layer: an unchanged copy.
    """
    net = copy.deepcopy(model).to(device)
    layers = batchnorm_layers(net)
    flat = torch.cat([x for x in images if len(x)]) if any(len(x) for x in images) else None
    if not layers or flat is None:
        return net.eval()
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch counts equally
    net.eval()
    for m in layers:  # only BatchNorm in train mode (dropout off: it would skew the statistics)
        m.train()
    order = torch.randperm(len(flat), generator=torch.Generator().manual_seed(seed))
    for start in range(0, len(flat), batch_size):
        idx = order[start:start + batch_size]
        if len(idx) > 1:  # a batch of one has no variance
            net(flat[idx].to(device))
    for m, mom in zip(layers, momenta):
        m.momentum = mom
    return net.eval()
