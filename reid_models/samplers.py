"""P x K identity samplers (seed 002, after Hermans et al.) and multi-dataset batching.

* :class:`PKSampler` — a flat index sampler: consecutive chunks of ``P * K``
  indices are batches of P identities with K samples each (use it with
  ``DataLoader(batch_size=P*K, sampler=..., drop_last=True)``).
* :class:`MultiDatasetBatchSampler` — a batch sampler over several datasets
  concatenated: ``mode="switch"`` (BH-switch: every batch from one dataset,
  datasets taken in turn) or ``mode="merge"`` (BH-merge: batches from the
  union of identities).

An epoch has ``N_total // (P * K)`` batches (seed 002 §3.1). Identities are
walked through in a shuffled order so every identity is used about equally;
an identity with fewer than K samples is sampled with replacement.
Call ``set_epoch(e)`` to get a different (reproducible) order per epoch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


def group_by_pid(pids: Sequence[int]) -> dict[int, list[int]]:
    """Sample indices grouped by identity, in index order."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, pid in enumerate(pids):
        groups[int(pid)].append(i)
    return dict(groups)


def pk_batches(groups: dict[int, list[int]], p: int, k: int, n_batches: int, rng: np.random.Generator) -> list[list[int]]:
    """``n_batches`` batches of P distinct identities x K indices each.

    If fewer than P identities exist, all of them are used (batch of len(groups) * K).
    """
    ids = sorted(groups)
    p_eff = min(p, len(ids))
    order: list[int] = []
    batches = []
    for _ in range(n_batches):
        if len(order) < p_eff:
            order = order + [int(x) for x in rng.permutation(ids) if x not in order]
        chosen, order = order[:p_eff], order[p_eff:]
        batch: list[int] = []
        for pid in chosen:
            members = groups[pid]
            replace = len(members) < k
            batch.extend(int(i) for i in rng.choice(members, size=k, replace=replace))
        batches.append(batch)
    return batches


class PKSampler(Sampler[int]):
    """Flat P x K sampler: yields ``len(self)`` indices, P*K per batch."""

    def __init__(self, pids: Sequence[int], p: int, k: int, seed: int = 0, batches_per_epoch: int | None = None) -> None:
        if p < 1 or k < 1:
            raise ValueError(f"P and K must be >= 1, got P={p}, K={k}")
        self.groups = group_by_pid(pids)
        if not self.groups:
            raise ValueError("PKSampler needs at least one sample")
        self.p, self.k, self.seed, self.epoch = p, k, seed, 0
        self.batch_size = min(p, len(self.groups)) * k
        self.n_batches = batches_per_epoch or max(1, len(pids) // (p * k))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        for batch in pk_batches(self.groups, self.p, self.k, self.n_batches, rng):
            yield from batch

    def __len__(self) -> int:
        return self.n_batches * self.batch_size


class MultiDatasetBatchSampler(Sampler[list[int]]):
    """BH-switch / BH-merge batches over datasets concatenated in one index space.

    pids: (N,) identity per sample (unique across datasets, e.g. offset per dataset);
    dataset_ids: (N,) which dataset each sample comes from.
    """

    def __init__(
        self,
        pids: Sequence[int],
        dataset_ids: Sequence[int],
        p: int,
        k: int,
        mode: str = "switch",
        seed: int = 0,
        batches_per_epoch: int | None = None,
    ) -> None:
        if mode not in ("switch", "merge"):
            raise ValueError(f"mode must be 'switch' or 'merge', got {mode!r}")
        if len(pids) != len(dataset_ids):
            raise ValueError("pids and dataset_ids differ in length")
        self.mode, self.p, self.k, self.seed, self.epoch = mode, p, k, seed, 0
        self.n_batches = batches_per_epoch or max(1, len(pids) // (p * k))
        self.all_groups = group_by_pid(pids)
        per_ds: dict[int, dict[int, list[int]]] = defaultdict(dict)
        for pid, members in self.all_groups.items():
            ds = {int(dataset_ids[i]) for i in members}
            if len(ds) != 1:
                raise ValueError(f"identity {pid} appears in several datasets; offset pids per dataset")
            per_ds[ds.pop()][pid] = members
        self.per_dataset = dict(sorted(per_ds.items()))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.mode == "merge":
            yield from pk_batches(self.all_groups, self.p, self.k, self.n_batches, rng)
            return
        names = list(self.per_dataset)
        counts = [self.n_batches // len(names) + (1 if i < self.n_batches % len(names) else 0) for i in range(len(names))]
        streams = [
            iter(pk_batches(self.per_dataset[name], self.p, self.k, counts[i], rng)) for i, name in enumerate(names)
        ]
        for step in range(self.n_batches):  # datasets in turn: 0, 1, ..., 0, 1, ...
            yield next(streams[step % len(names)])

    def __len__(self) -> int:
        return self.n_batches
