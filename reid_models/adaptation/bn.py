"""BatchNorm statistics re-estimated on the target domain's crops (AdaBN; Li et al., "Revisiting batch
normalization for practical domain adaptation", 2016).

A re-id network trained on other cameras normalises every layer with its source domain's means and
variances. Re-estimating those running statistics on crops of the deployed cameras needs no label and no
gradient (forward passes only) and moves the features toward the target domain's own distribution; it is
the first, cheapest step of label-free adaptation (docs/adaptation.md measures it on Market-1501).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

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
    flat = torch.cat([x for x in images if len(x)]) if any(len(x) for x in images) else None
    if not batchnorm_layers(net) or flat is None:
        return net.eval()
    order = torch.randperm(len(flat), generator=torch.Generator().manual_seed(seed))
    estimate_batchnorm_in_place(net, (flat[order[s:s + batch_size]] for s in range(0, len(flat), batch_size)), device)
    return net


@torch.no_grad()
def estimate_batchnorm_in_place(model: nn.Module, batches: Iterable[torch.Tensor], device: str = "cpu") -> int:
    """Reset ``model``'s BatchNorm running statistics and re-estimate them on ``batches`` ((B, 3, H, W) float32,
    in the order given) with a cumulative average (``momentum=None``); only BatchNorm runs in train mode (dropout,
    MixStyle and the rest stay in eval mode: they would skew the statistics). Batches of one image are skipped (no
    variance). Each layer's momentum is restored and the model left in eval mode. Returns the batches used."""
    layers = batchnorm_layers(model)
    model.to(device).eval()
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch counts equally
        m.train()
    used = 0
    try:
        for x in batches:
            if len(x) > 1:
                model(x.to(device))
                used += 1
    finally:
        for m, mom in zip(layers, momenta):
            m.momentum = mom
        model.eval()
    return used


#: Per-camera BatchNorm statistics: camera id -> {state-dict name of a BatchNorm buffer: tensor}.
CameraStats = dict[str, dict[str, torch.Tensor]]


def batchnorm_statistics(model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of the running mean / variance buffers of ``model``'s BatchNorm layers, by state-dict name."""
    names = {id(m): n for n, m in model.named_modules()}
    out = {}
    for m in batchnorm_layers(model):
        prefix = f"{names[id(m)]}." if names[id(m)] else ""
        out[prefix + "running_mean"] = m.running_mean.detach().cpu().clone()
        out[prefix + "running_var"] = m.running_var.detach().cpu().clone()
    return out


def camera_statistics(model: nn.Module, images_by_camera: dict[str, Sequence[torch.Tensor]], seed: int = 0,
                      device: str = "cpu") -> CameraStats:
    """Camera-based BatchNorm (Zhuang et al., ECCV 2020): for every camera, ``model``'s BatchNorm statistics
    re-estimated on that camera's crops alone (:func:`reestimate_batchnorm`), so each camera's features are
    normalised by its own distribution and the cameras' differences (light, colour, viewpoint) are divided
    out before two cameras are compared. Cameras without crops are left out."""
    return {cam: batchnorm_statistics(reestimate_batchnorm(model, imgs, seed=seed, device=device))
            for cam, imgs in sorted(images_by_camera.items()) if any(len(x) for x in imgs)}


def with_statistics(model: nn.Module, stats: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of ``model`` (eval mode, same device) with the given BatchNorm statistics loaded."""
    net = copy.deepcopy(model)
    own = net.state_dict()
    missing = [k for k in stats if k not in own]
    if missing:
        raise ValueError(f"statistics for unknown BatchNorm buffers: {missing[:3]}")
    with torch.no_grad():
        for k, v in stats.items():
            own[k].copy_(v.to(own[k].device, own[k].dtype))
    return net.eval()


def camera_models(model: nn.Module, camera_stats: CameraStats | None) -> dict[str, nn.Module]:
    """camera id -> a copy of ``model`` with that camera's statistics (empty without camera statistics)."""
    return {cam: with_statistics(model, stats) for cam, stats in (camera_stats or {}).items()}


def statistics_items(camera_stats: CameraStats | None) -> dict[str, torch.Tensor]:
    """Flat ``camera_bn/<camera>/<buffer>`` -> tensor, e.g. to include the statistics in a content hash."""
    return {f"camera_bn/{cam}/{k}": v for cam, stats in (camera_stats or {}).items() for k, v in stats.items()}
