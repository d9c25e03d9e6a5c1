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
    low_resolution: float = 0.0, low_resolution_min_scale: float = 0.25, grayscale: float = 0.0,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Resize, optional low-resolution simulation (:class:`RandomLowResolution`), horizontal flip
    (p = 0.5), random crop of ``size`` after zero-padding by ``pad`` pixels (seed 001: random
    translations), optional colour jitter, optional grayscale (with probability ``grayscale`` the crop's
    three channels become its luminance: colour is not always there to lean on, as across two cameras with
    different colour rendering) and random erasing."""
    from torchvision.transforms import v2

    steps: list = [v2.Resize(size, antialias=True)]
    if low_resolution > 0:
        steps.append(RandomLowResolution(low_resolution, low_resolution_min_scale))
    if flip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    if random_crop:
        steps.append(v2.RandomCrop(size, padding=pad, padding_mode="constant"))
    if color_jitter > 0:
        steps.append(v2.ColorJitter(color_jitter, color_jitter, color_jitter, 0.0))
    if grayscale > 0:
        steps.append(v2.RandomGrayscale(grayscale))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if random_erasing > 0:
        steps.append(v2.RandomErasing(p=random_erasing, value=0))
    return v2.Compose(steps)


class RandomLowResolution:
    """With probability ``p``: shrink the image by a factor s ~ U(min_scale, 1) (antialiased, area-like)
    and enlarge it back to its size (bilinear), so the network also sees the blur of a far-away person
    whose small detection the encoder enlarges to its input size. (3, H, W) uint8 -> (3, H, W) uint8.

    ``scale`` fixes s (tests); ``generator`` makes the draws reproducible.
    """

    def __init__(self, p: float, min_scale: float = 0.25, scale: float | None = None,
                 generator: torch.Generator | None = None) -> None:
        if not (0.0 <= p <= 1.0) or not (0.0 < min_scale <= 1.0):
            raise ValueError(f"RandomLowResolution: p={p} must be in [0, 1] and min_scale={min_scale} in (0, 1]")
        self.p, self.min_scale, self.scale, self.generator = p, min_scale, scale, generator

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if torch.rand((), generator=self.generator).item() >= self.p:
            return image
        s = self.scale if self.scale is not None else (
            self.min_scale + (1.0 - self.min_scale) * torch.rand((), generator=self.generator).item())
        h, w = image.shape[-2:]
        small = (max(1, round(h * s)), max(1, round(w * s)))
        x = image.unsqueeze(0).float()
        x = F.interpolate(x, size=small, mode="bilinear", antialias=True, align_corners=False)
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        return x.squeeze(0).round().clamp(0, 255).to(image.dtype)


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
