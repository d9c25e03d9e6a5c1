"""The model factory: every embedding network by name (above the nets, so no net imports it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.core.errors import ConfigError
from reid_models.backbones import EmbeddingNet, MobileNetV2FC, MobileNetV2ImageNet, MobileNetV2Pool
from reid_models.small_nets import CNN3Siamese, VGG16Triplet


def _registry() -> dict[str, Callable[..., EmbeddingNet]]:
    return {
        "mobilenetv2_fc": MobileNetV2FC,
        "mobilenetv2_imagenet": MobileNetV2ImageNet,
        "mobilenetv2_pool": MobileNetV2Pool,
        "vgg16_triplet": VGG16Triplet,
        "cnn3_siamese": CNN3Siamese,
    }


def available_models() -> list[str]:
    """Valid names for :func:`build_model`."""
    return sorted(_registry())


def build_model(name: str, **kwargs: Any) -> EmbeddingNet:
    """Build an embedding network by name; ConfigError lists the valid names.

    kwargs go to the constructor (e.g. ``pretrained=None`` for random init,
    ``embedding_dim=...``, ``input_size=(H, W)``); a bad keyword is a ConfigError.
    """
    table = _registry()
    if name not in table:
        raise ConfigError(f"unknown model {name!r}; valid: {', '.join(sorted(table))}")
    try:
        net = table[name](**kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: bad arguments {sorted(kwargs)}: {exc}") from None
    net.model_name = name
    return net
