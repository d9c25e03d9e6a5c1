"""PyTorch datasets over :class:`~reid_models.datasets.index.CropItem` lists.

Images are read with OpenCV (BGR; ``pipeline.core.images.read_image``, so any file name works) and
converted to RGB uint8 tensors (3, H, W) before the transform (see ``reid_models/transforms.py``), which returns float
(3, H, W). Items may also be :class:`PartSwapItem` (virtual identities, composed
on load). ``cache=True`` keeps decoded crops in memory (they are small: the
generator already resized them), so epochs after the first skip JPEG decoding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.core.errors import DataError
from pipeline.core.images import image_problem, read_image
from reid_models.datasets.index import CropItem


def read_rgb_tensor(path: Path) -> torch.Tensor:
    """(3, H, W) uint8 RGB tensor of an image file; DataError saying why when unreadable (a truncated JPEG...)."""
    img = read_image(path)
    if img is None:
        raise DataError(path, image_problem(path))
    return torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1])).permute(2, 0, 1).contiguous()


class _ImageCache:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._data: dict[Path, torch.Tensor] = {}

    def get(self, path: Path) -> torch.Tensor:
        if not self.enabled:
            return read_rgb_tensor(path)
        img = self._data.get(path)
        if img is None:
            img = self._data[path] = read_rgb_tensor(path)
        return img


@dataclass(frozen=True)
class PartSwapItem:
    """A virtual identity's crop: rows ``[0, cut)`` of ``path``'s image over rows ``[cut, H)`` of
    ``bottom_path``'s (``cut`` as a fraction of the height). ``path`` is the upper part's source."""

    path: Path
    bottom_path: Path
    cut: float
    pid: int
    camid: int


def compose_part_swap(top: torch.Tensor, bottom: torch.Tensor, cut: float) -> torch.Tensor:
    """(3, H, W) uint8: ``top``'s rows above ``round(cut * H)`` over ``bottom``'s (resized to ``top``'s size)."""
    if bottom.shape != top.shape:
        bottom = torch.nn.functional.interpolate(bottom[None].float(), size=top.shape[1:], mode="bilinear",
                                                 align_corners=False)[0].round().clamp(0, 255).to(top.dtype)
    row = int(round(cut * top.shape[1]))
    return torch.cat([top[:, :row], bottom[:, row:]], dim=1)


class ReidImageDataset(Dataset):
    """``(image (3,H,W) float, pid, camid)`` per crop; ``.pids`` lists the pid of every item."""

    def __init__(self, items: Sequence[CropItem], transform: Callable[[torch.Tensor], torch.Tensor],
                 cache: bool = True) -> None:
        self.items = list(items)
        self.transform = transform
        self.pids = [it.pid for it in self.items]
        self.camids = [it.camid for it in self.items]
        self._cache = _ImageCache(cache)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        it = self.items[i]
        img = self._cache.get(it.path)
        if isinstance(it, PartSwapItem):
            img = compose_part_swap(img, self._cache.get(it.bottom_path), it.cut)
        return self.transform(img), it.pid, it.camid


class TrackletDataset(Dataset):
    """``(seq (T,3,H,W) float, pid, camid)`` per tracklet (T varies; use :func:`collate_tracklets`).

    tracklets: dicts from :func:`~reid_models.datasets.index.load_tracklets`. Runs
    longer than ``max_len`` are cut into consecutive chunks of ``max_len`` frames
    (a last chunk shorter than ``min_len`` is dropped).
    """

    def __init__(self, tracklets: Sequence[dict], transform: Callable[[torch.Tensor], torch.Tensor],
                 max_len: int | None = 16, min_len: int = 2, cache: bool = True) -> None:
        self.transform = transform
        self.chunks: list[dict] = []
        for t in tracklets:
            step = max_len or len(t["paths"])
            for s in range(0, len(t["paths"]), step):
                if len(t["paths"][s:s + step]) >= min_len:
                    self.chunks.append({**t, "paths": t["paths"][s:s + step], "frames": t["frames"][s:s + step]})
        self.pids = [c["pid"] for c in self.chunks]
        self._cache = _ImageCache(cache)

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        c = self.chunks[i]
        seq = torch.stack([self.transform(self._cache.get(p)) for p in c["paths"]])
        return seq, c["pid"], c["camid"]


def collate_tracklets(batch: list[tuple[torch.Tensor, int, int]]) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Keep variable-length sequences as a list; pids and camids as (B,) int64 tensors."""
    seqs = [b[0] for b in batch]
    return seqs, torch.tensor([b[1] for b in batch]), torch.tensor([b[2] for b in batch])
