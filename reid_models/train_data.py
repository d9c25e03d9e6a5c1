"""Training / validation data for the engine, built from ``TrainConfig.data``.

Identities of every dataset are relabelled to contiguous class labels
``0..C-1`` over all training datasets (needed by identification heads), so
identities of different datasets never collide. Each training item also
carries its dataset number (for BH-switch batches) and its row number (for
looking up attribute labels).

Virtual identities (``data.part_swap_ids`` > 0): with few real identities (9 on
the PETS09-S2L1 benchmark split), extra classes are made by putting the upper
part of one identity's crops over the lower part of another's (an ordered pair
of distinct real identities of the same dataset, drawn without replacement,
seeded), cut at a height fraction drawn from [0.4, 0.6] per crop. Each virtual
identity has ``part_swap_crops`` crops and its own class label after the real
ones; they only ever appear in training batches (never in validation). Attribute
labels are not defined for them, so ``TrainConfig`` rejects the option together
with attribute heads.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.core.errors import ConfigError, DataError
from reid_models.config import DataSpec, DatasetEntry, SamplerSpec
from reid_models.samplers import MultiDatasetBatchSampler


@dataclass
class ImageData:
    """Relabelled training items and validation items (CropItem lists)."""

    train_items: list
    dataset_ids: list[int]
    num_classes: int
    val_items: list
    attributes: torch.Tensor | None  # (N_train, A) int64, -1 = unknown


def load_items(entry: DatasetEntry, split: str) -> list:
    """The items of one dataset in ``split`` (after its identity hold-out, if any)."""
    from reid_models.datasets.index import load_reid_folder
    from reid_models.datasets.protocols import holdout_split

    folder = Path(entry.path)
    if not folder.is_dir():
        raise DataError(folder, "no such dataset folder")
    fmt = entry.format or "index"
    if not entry.holdout_ids and not entry.val_ids:
        if fmt == "index":
            return load_reid_folder(folder, fmt, split)
        # an image folder's crops are all training crops (a Market-1501 root: its sub-folders' splits); asking
        # for them as another split ("val") must not label the training crops so (no validation split then)
        return [it for it in load_reid_folder(folder, fmt, None) if it.split == split]
    items = load_reid_folder(folder, fmt, None if fmt == "index" else "train")
    n_ids = len({it.pid for it in items})
    if entry.holdout_ids + entry.val_ids >= n_ids:
        held = f"holdout_ids {entry.holdout_ids}" + (f" + val_ids {entry.val_ids}" if entry.val_ids else "")
        raise ConfigError(f"data.datasets: {folder}: {held} leaves no training identity of {n_ids}")
    if entry.holdout_ids:
        items = holdout_split(items, n_ids - entry.holdout_ids, entry.holdout_ids, entry.holdout_seed)
    if entry.val_ids:  # from the training identities only: the test identities stay those of the hold-out
        train = [it for it in items if it.split == "train"]
        n_train = len({it.pid for it in train})
        val = {it.path for it in holdout_split(train, n_train - entry.val_ids, entry.val_ids, entry.holdout_seed + 1)
               if it.split == "test"}
        items = [dataclasses.replace(it, split="val") if it.path in val else it for it in items]
    return [it for it in items if it.split == split]


def _attribute_table(folder: Path, names: list[str], items: list) -> np.ndarray:
    """(len(items), A) int labels from extra columns of ``folder/index.csv`` (-1 when empty)."""
    path = folder / "index.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [n for n in names if n not in (reader.fieldnames or [])]
        if missing:
            raise DataError(path, f"attribute column(s) {', '.join(missing)} not found", line=1)
        by_path = {}
        for line, row in enumerate(reader, start=2):
            try:
                by_path[(folder / row["path"]).resolve()] = [int(row[n]) if row[n] != "" else -1 for n in names]
            except ValueError:
                raise DataError(path, "attribute values must be integers", line=line) from None
    return np.array([by_path.get(Path(it.path).resolve(), [-1] * len(names)) for it in items], dtype=np.int64)


def build_image_data(spec: DataSpec, attributes: list[str], seed: int = 0) -> ImageData:
    """Load every dataset's train and val items; relabel train identities 0..C-1 (then virtual ones)."""
    train, ds_ids, val, attrs = [], [], [], []
    label_of: dict[tuple[int, int], int] = {}
    for d, entry in enumerate(spec.entries()):
        folder = Path(entry.path)
        items = load_items(entry, spec.train_split)
        if not items:
            raise DataError(folder, f"no items in split {spec.train_split!r}")
        if spec.max_identities is not None:
            items = identity_subset(items, spec.max_identities, spec.subset_seed)
        for it in items:
            label = label_of.setdefault((d, it.pid), len(label_of))
            train.append(dataclasses.replace(it, pid=label))
            ds_ids.append(d)
        if attributes:
            attrs.append(_attribute_table(folder, attributes, items))
        if spec.val_split:
            val += [dataclasses.replace(it, pid=d * 1_000_000 + it.pid) for it in load_items(entry, spec.val_split)]
    table = torch.from_numpy(np.concatenate(attrs)) if attrs else None
    num_classes = len(label_of)
    if spec.part_swap_ids:  # TrainConfig rejects part_swap_ids together with attribute heads
        virtual, virtual_ds = part_swap_items(train, ds_ids, spec.part_swap_ids, spec.part_swap_crops, seed)
        train, ds_ids, num_classes = train + virtual, ds_ids + virtual_ds, num_classes + spec.part_swap_ids
    return ImageData(train, ds_ids, num_classes, val, table)


def identity_subset(items: list, n: int, seed: int) -> list:
    """The items of ``n`` identities drawn (seeded, without replacement) from those present; a larger
    ``n`` than available keeps all. Subsets are nested: the first n of one seeded permutation."""
    pids = sorted({it.pid for it in items})
    order = np.random.default_rng(seed).permutation(len(pids))
    keep = {pids[int(i)] for i in order[:n]}
    return [it for it in items if it.pid in keep]


def part_swap_items(items: list, dataset_ids: list[int], n_ids: int, crops_per_id: int,
                    seed: int) -> tuple[list, list[int]]:
    """``n_ids`` virtual identities (labels after the largest real one) from ordered pairs of real ones.

    items: relabelled training CropItems (labels 0..C-1); returns the PartSwapItems and their dataset ids.
    ConfigError when there are fewer ordered same-dataset pairs than ``n_ids``.
    """
    from reid_models.datasets.torch_data import PartSwapItem

    by_label: dict[int, list] = {}
    ds_of: dict[int, int] = {}
    for it, d in zip(items, dataset_ids):
        by_label.setdefault(it.pid, []).append(it)
        ds_of[it.pid] = d
    pairs = [(a, b) for a in sorted(by_label) for b in sorted(by_label) if a != b and ds_of[a] == ds_of[b]]
    if n_ids > len(pairs):
        raise ConfigError(f"data.part_swap_ids: {n_ids} virtual identities requested, only {len(pairs)} "
                          "ordered pairs of training identities exist")
    rng = np.random.default_rng(seed)
    base = max(by_label) + 1
    out, out_ds = [], []
    for v, k in enumerate(rng.choice(len(pairs), size=n_ids, replace=False)):
        a, b = pairs[int(k)]
        tops = rng.integers(0, len(by_label[a]), crops_per_id)
        bottoms = rng.integers(0, len(by_label[b]), crops_per_id)
        for t, u, cut in zip(tops, bottoms, rng.uniform(0.4, 0.6, crops_per_id)):
            top = by_label[a][int(t)]
            out.append(PartSwapItem(top.path, by_label[b][int(u)].path, float(cut), base + v, top.camid))
            out_ds.append(ds_of[a])
    return out, out_ds


class IndexedDataset(Dataset):
    """Wraps a dataset returning ``(img, pid, camid)`` to return ``(img, pid, camid, index)``."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        img, pid, camid = self.base[i]
        return img, pid, camid, i


def build_train_loader(data: ImageData, spec: DataSpec, sampler: SamplerSpec, input_size: tuple[int, int], seed: int) -> DataLoader:
    """P x K batches (BH-switch / BH-merge when several datasets) of transformed training crops."""
    from reid_models.datasets.torch_data import ReidImageDataset
    from reid_models.transforms import build_train_transform

    if data.num_classes < 2:
        raise ConfigError(f"data.datasets: need at least 2 training identities, found {data.num_classes}")
    transform = build_train_transform(
        tuple(input_size), flip=spec.flip, random_crop=spec.random_crop, pad=spec.pad,
        color_jitter=spec.color_jitter, random_erasing=spec.random_erasing,
        low_resolution=spec.low_resolution, low_resolution_min_scale=spec.low_resolution_min_scale,
        grayscale=spec.grayscale,
    )
    dataset = IndexedDataset(ReidImageDataset(data.train_items, transform, cache=spec.cache_images))
    batch_sampler = MultiDatasetBatchSampler(
        [it.pid for it in data.train_items], data.dataset_ids, sampler.p, sampler.k,
        mode=sampler.multi_dataset, seed=seed, batches_per_epoch=sampler.batches_per_epoch,
    )
    return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=spec.num_workers)
