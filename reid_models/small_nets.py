"""The two paper networks trained from scratch: VGG16 of seed 000 and the 3-layer CNN of seed 001."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from reid_models.backbones import IMAGENET_MEAN, IMAGENET_STD, EmbeddingNet

#: VGG16 configuration "D": conv widths, "M" = 2x2 max-pool stride 2
VGG16_CFG: tuple[Any, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16Triplet(EmbeddingNet):
    """Seed 000 Table 1: VGG16 (13 conv 3x3 + 5 pools + FC4096, FC4096, FC1000), softmax removed.

    Input (B, 3, 128, 64) -> Pool-5 (B, 512, 4, 2) -> FC-6 4096 -> FC-7 4096 -> FC-8 (B, 1000).
    ReLU after every hidden layer; FC-8 is linear (the embedding). ``width_mult``
    scales every width (1.0 = the paper; small values only for quick tests).
    """

    def __init__(
        self,
        input_size: tuple[int, int] = (128, 64),
        embedding_dim: int = 1000,
        fc_dim: int = 4096,
        dropout: float = 0.5,
        width_mult: float = 1.0,
        pretrained: Any = None,
    ) -> None:
        super().__init__()
        self._build_kwargs = {
            "input_size": tuple(input_size),
            "embedding_dim": embedding_dim,
            "fc_dim": fc_dim,
            "dropout": dropout,
            "width_mult": width_mult,
        }
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.embedding_dim = embedding_dim
        layers: list[nn.Module] = []
        self._convs: list[nn.Module] = []
        c_in = 3
        for item in VGG16_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            c_out = max(1, int(round(item * width_mult)))
            conv = nn.Conv2d(c_in, c_out, 3, padding=1)
            self._convs.append(conv)
            layers += [conv, nn.ReLU(inplace=True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        flat = c_in * (self.input_size[0] // 32) * (self.input_size[1] // 32)
        fc = max(1, int(round(fc_dim * width_mult)))
        self.fc6 = nn.Linear(flat, fc)
        self.fc7 = nn.Linear(fc, fc)
        self.fc8 = nn.Linear(fc, embedding_dim)
        self.head = nn.Sequential(
            self.fc6, nn.ReLU(inplace=True), nn.Dropout(dropout), self.fc7, nn.ReLU(inplace=True), nn.Dropout(dropout), self.fc8
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))

    def layer_groups(self) -> list[nn.Module]:
        """16 layers: Conv-1-1 ... Conv-5-3, FC-6, FC-7, FC-8 (L = 16 of seed 000 §4.2)."""
        return [*self._convs, self.fc6, self.fc7, self.fc8]


class CNN3Siamese(EmbeddingNet):
    """Seed 001 Fig. 3: the Siamese sub-network G.

    Input (B, 3, 56, 56) (random 56x56 crops of 64x64 images in training) ->
    RGB -> YUV, each channel standardised per image (zero mean, unit variance) ->
    conv 5x5x16, tanh, 2x2 max-pool -> conv 5x5x64, tanh, max-pool -> conv 5x5x64
    (linear), max-pool -> dropout -> FC 128 = the feature G(x), (B, 128).
    Convolutions keep the size (padding 2), so 56 -> 28 -> 14 -> 7.
    """

    _RGB_TO_YUV = ((0.299, 0.587, 0.114), (-0.14713, -0.28886, 0.436), (0.615, -0.51499, -0.10001))

    def __init__(
        self,
        input_size: tuple[int, int] = (56, 56),
        widths: tuple[int, int, int] = (16, 64, 64),
        embedding_dim: int = 128,
        dropout: float = 0.5,
        pretrained: Any = None,
    ) -> None:
        super().__init__()
        self._build_kwargs = {
            "input_size": tuple(input_size),
            "widths": tuple(widths),
            "embedding_dim": embedding_dim,
            "dropout": dropout,
        }
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.embedding_dim = embedding_dim
        w1, w2, w3 = widths
        self.conv1 = nn.Conv2d(3, w1, 5, padding=2)
        self.conv2 = nn.Conv2d(w1, w2, 5, padding=2)
        self.conv3 = nn.Conv2d(w2, w3, 5, padding=2)
        self.pool = nn.MaxPool2d(2, 2)
        self.dropout = nn.Dropout(dropout)
        flat = w3 * (self.input_size[0] // 8) * (self.input_size[1] // 8)
        self.fc = nn.Linear(flat, embedding_dim)
        self.register_buffer("yuv", torch.tensor(self._RGB_TO_YUV), persistent=False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def to_yuv_standardised(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalised RGB (B, 3, H, W) -> per-image standardised YUV (B, 3, H, W)."""
        rgb = x * self.std + self.mean
        yuv = torch.einsum("ck,bkhw->bchw", self.yuv, rgb)
        mu = yuv.mean(dim=(2, 3), keepdim=True)
        sd = yuv.std(dim=(2, 3), keepdim=True).clamp_min(1e-6)
        return (yuv - mu) / sd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.to_yuv_standardised(x)
        x = self.pool(torch.tanh(self.conv1(x)))
        x = self.pool(torch.tanh(self.conv2(x)))
        x = self.pool(self.conv3(x))
        return self.fc(self.dropout(torch.flatten(x, 1)))

    def layer_groups(self) -> list[nn.Module]:
        return [self.conv1, self.conv2, self.conv3, self.fc]
