"""Train / test image transforms and 10-crop test-time averaging (seed 001 §IV-B, §IV-C).

Transforms take a (3, H, W) uint8 RGB tensor (as read by ``reid_models.datasets``)
and return a (3, H, W) float tensor: RGB scaled to [0, 1] and normalised with the
ImageNet mean/std — what every ``EmbeddingNet`` in ``reid_models.backbones`` expects.
size is (height, width), 128x64 by default.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_train_transform(
    size: tuple[int, int] = (128, 64), flip: bool = True, random_crop: bool = True, pad: int = 10,
    color_jitter: float = 0.0, random_erasing: float = 0.0,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Resize, horizontal flip (p = 0.5), random crop of ``size`` after zero-padding by ``pad``
    pixels (seed 001: random translations), optional colour jitter and random erasing."""
    from torchvision.transforms import v2

    steps: list = [v2.Resize(size, antialias=True)]
    if flip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    if random_crop:
        steps.append(v2.RandomCrop(size, padding=pad, padding_mode="constant"))
    if color_jitter > 0:
        steps.append(v2.ColorJitter(color_jitter, color_jitter, color_jitter, 0.0))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if random_erasing > 0:
        steps.append(v2.RandomErasing(p=random_erasing, value=0))
    return v2.Compose(steps)


def build_test_transform(size: tuple[int, int] = (128, 64)) -> Callable[[torch.Tensor], torch.Tensor]:
    """Resize to ``size`` and normalise (no randomness)."""
    from torchvision.transforms import v2

    return v2.Compose([
        v2.Resize(size, antialias=True), v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def ten_crop_batch(images: torch.Tensor, scale: float = 0.875) -> torch.Tensor:
    """The 10 test crops of seed 001 (4 corners + centre, and their horizontal flips).

    images: (B, C, H, W). Each crop covers ``scale`` of the height and width and is
    resized back to (H, W) (bilinear) so the network sees its usual input size.
    Returns (10, B, C, H, W): crops 0-4 = TL, TR, BL, BR, centre; 5-9 = their flips.
    """
    _, _, h, w = images.shape
    ch, cw = max(1, round(h * scale)), max(1, round(w * scale))
    tops = (0, 0, h - ch, h - ch, (h - ch) // 2)
    lefts = (0, w - cw, 0, w - cw, (w - cw) // 2)
    crops = [images[:, :, t:t + ch, l:l + cw] for t, l in zip(tops, lefts)]
    crops = [F.interpolate(c, size=(h, w), mode="bilinear", align_corners=False) for c in crops]
    crops += [torch.flip(c, dims=[3]) for c in crops]
    return torch.stack(crops)


@torch.no_grad()
def ten_crop_features(model: torch.nn.Module, images: torch.Tensor, scale: float = 0.875) -> torch.Tensor:
    """Embeddings averaged over the 10 crops: (B, C, H, W) normalised images -> (B, D).

    Each crop's embedding is L2-normalised before averaging (so every crop counts
    equally); the mean is returned un-normalised.
    """
    crops = ten_crop_batch(images, scale)
    n, b = crops.shape[:2]
    feats = model(crops.reshape(n * b, *crops.shape[2:]))
    feats = F.normalize(feats.float(), dim=1).reshape(n, b, -1)
    return feats.mean(0)
