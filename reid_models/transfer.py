"""Transfer levels of seed 000 §4.2: ``lT`` layers transferred, the last ``lU`` layers updated.

A network of depth L (its ``layer_groups()``, e.g. 16 for VGG16) is prepared
for fine-tuning on a target dataset as follows:

* the first ``lT`` layers get the weights of a model pre-trained on the source
  dataset (same architecture); the remaining ``L - lT`` layers are
  re-initialised with Xavier (Glorot) uniform weights and zero biases
  (BatchNorm layers reset to weight 1, bias 0, fresh running statistics);
* only the last ``lU`` layers are trainable (``requires_grad``); the first
  ``L - lU`` are frozen. Frozen BatchNorm layers are kept in eval mode by
  :func:`freeze_frozen_batchnorm` so their statistics do not drift.

``lT = L, lU = L`` is full fine-tuning; ``lT = 0`` is training from scratch.
"""

from __future__ import annotations

from torch import nn

from pipeline.core.errors import ConfigError
from reid_models.backbones import EmbeddingNet


def xavier_reset(module: nn.Module) -> None:
    """Xavier-uniform weights / zero biases for every Conv/Linear inside; BatchNorm reset."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_parameters()


def apply_transfer(
    model: EmbeddingNet,
    pretrained: EmbeddingNet | None,
    l_t: int,
    l_u: int,
) -> dict[str, int]:
    """Copy the first ``l_t`` layers from ``pretrained``, Xavier-init the rest, train only the last ``l_u``.

    ``pretrained`` must have the same layer structure (None allowed only with l_t = 0).
    Returns counts {"layers", "transferred", "trainable", "trainable_params"}.
    """
    dst = model.layer_groups()
    depth = len(dst)
    if not (0 <= l_t <= depth and 0 <= l_u <= depth):
        raise ConfigError(f"transfer: l_t={l_t} and l_u={l_u} must be within 0..{depth} (layers of this model)")
    if l_t > 0:
        if pretrained is None:
            raise ConfigError("transfer: l_t > 0 needs a pre-trained model (transfer.source)")
        src = pretrained.layer_groups()
        if len(src) != depth:
            raise ConfigError(f"transfer: source model has {len(src)} layers, target {depth}")
    for i, layer in enumerate(dst):
        if i < l_t:
            layer.load_state_dict(src[i].state_dict())
        else:
            xavier_reset(layer)
    for i, layer in enumerate(dst):
        for p in layer.parameters():
            p.requires_grad_(i >= depth - l_u)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"layers": depth, "transferred": l_t, "trainable": l_u, "trainable_params": trainable}


def freeze_frozen_batchnorm(model: nn.Module) -> None:
    """Put BatchNorm layers whose parameters are all frozen into eval mode (call after ``model.train()``)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                m.eval()
