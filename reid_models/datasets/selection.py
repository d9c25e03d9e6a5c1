"""Pure selection logic of the MOT-derived re-id generator (seed 000 §4.1, §5.1).

Everything here works on arrays of ground-truth rows (no images), so it is
testable on MOT17 gt without frames. Row arrays follow the MOT layout
(``pipeline.mot.MOTBoxes`` has exactly these attributes):

* ``frame``: (N,) int, 1-based; ``ids``: (N,) int
* ``tlwh``: (N, 4) float, pixels; ``conf``: (N,) float (0 = ignore row)
* ``cls``: (N,) int, -1 when the file has no class column (MOT15: pedestrians)
* ``vis``: (N,) float, -1 when absent
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pipeline.core.types import estimate_visibility

#: MOT17 class ids: 1 = pedestrian (2 person on vehicle, 7 static person, ... are not used)
MOT17_PEDESTRIAN = 1
SPLITS = ("train", "val", "test")


class GtRows(Protocol):
    frame: np.ndarray
    ids: np.ndarray
    tlwh: np.ndarray
    conf: np.ndarray
    cls: np.ndarray
    vis: np.ndarray


@dataclass(frozen=True)
class SelectionConfig:
    """Which gt boxes become crops.

    min_vis: minimum visibility (rows with vis < 0, i.e. no column, pass);
    min_height / min_width: minimum size in pixels of the box clipped to the image;
    stride: keep frames 1, 1+stride, 1+2*stride, ...; pedestrian_classes: classes
    kept (class -1 = no class column = pedestrian); max_frame: ignore later frames;
    estimate_vis: where the visibility column is absent (-1), estimate it from the
    overlap with boxes nearer to the camera (:func:`estimate_visibility`).
    """

    min_vis: float = 0.25
    min_height: float = 50.0
    min_width: float = 10.0
    stride: int = 1
    pedestrian_classes: tuple[int, ...] = (MOT17_PEDESTRIAN,)
    max_frame: int | None = None
    estimate_vis: bool = True


def clip_tlwh(tlwh: np.ndarray, image_wh: tuple[int, int] | None) -> np.ndarray:
    """(N, 4) tlwh boxes clipped to a (width, height) image -> (N, 4) tlwh (w, h may be 0)."""
    tlwh = np.asarray(tlwh, dtype=np.float64).reshape(-1, 4)
    if image_wh is None:
        return tlwh.copy()
    w_img, h_img = image_wh
    x1 = np.clip(tlwh[:, 0], 0, w_img)
    y1 = np.clip(tlwh[:, 1], 0, h_img)
    x2 = np.clip(tlwh[:, 0] + tlwh[:, 2], 0, w_img)
    y2 = np.clip(tlwh[:, 1] + tlwh[:, 3], 0, h_img)
    return np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)


def select_rows(rows: GtRows, cfg: SelectionConfig, image_wh: tuple[int, int] | None = None) -> np.ndarray:
    """(N,) bool mask of gt rows that become re-id crops.

    Kept: conf != 0, class in ``cfg.pedestrian_classes`` or -1, visibility >= min_vis
    (absent: estimated, or passes when ``estimate_vis`` is off), clipped box at least min_width x min_height, frame on the stride
    grid and <= max_frame, id >= 0.
    """
    frame = np.asarray(rows.frame)
    cls = np.asarray(rows.cls)
    vis = np.asarray(rows.vis, dtype=np.float64)
    if cfg.estimate_vis and (vis < 0).any():
        vis = np.where(vis < 0, estimate_visibility(frame, rows.tlwh), vis)
    box = clip_tlwh(rows.tlwh, image_wh)
    keep = np.asarray(rows.conf) != 0
    keep &= np.isin(cls, list(cfg.pedestrian_classes)) | (cls == -1)
    keep &= (vis < 0) | (vis >= cfg.min_vis)
    keep &= (box[:, 3] >= cfg.min_height) & (box[:, 2] >= cfg.min_width)
    keep &= (frame - 1) % max(cfg.stride, 1) == 0
    keep &= np.asarray(rows.ids) >= 0
    if cfg.max_frame is not None:
        keep &= frame <= cfg.max_frame
    return keep


def split_identities(
    keys: list, fractions: tuple[float, float, float], seed: int = 0
) -> dict:
    """Identity-disjoint split: each key (e.g. (seq, id) or a global pid) -> 'train'|'val'|'test'.

    Keys are sorted, shuffled with ``seed`` and cut by ``fractions`` (train, val, test;
    normalised to sum 1). Counts are rounded; every split with a positive fraction
    gets at least one identity when there are enough; the remainder goes to test.
    """
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.shape != (3,) or (fr < 0).any() or fr.sum() <= 0:
        raise ValueError(f"split fractions must be three non-negative numbers, got {fractions}")
    fr = fr / fr.sum()
    keys = sorted(set(keys))
    n = len(keys)
    counts = np.floor(fr * n + 0.5).astype(int)
    for i in range(3):
        if fr[i] > 0 and counts[i] == 0 and n >= int((fr > 0).sum()):
            counts[i] = 1
    while counts.sum() > n:
        counts[int(np.argmax(counts))] -= 1
    counts[2] = n - counts[0] - counts[1]
    perm = np.random.default_rng(seed).permutation(n)
    out = {}
    bounds = np.cumsum(counts)
    for rank, idx in enumerate(perm):
        out[keys[idx]] = SPLITS[int(np.searchsorted(bounds, rank, side="right"))]
    return out


def _partners(frames: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For sorted frames of one identity: per crop, how many crops lie >= k frames before / after.

    Returns (n_before, start_after): crops [0, n_before) are >= k before; [start_after, n) >= k after.
    """
    n_before = np.searchsorted(frames, frames - k, side="right")
    start_after = np.searchsorted(frames, frames + k, side="left")
    return n_before, start_after


def sample_positive_pairs(
    pids: np.ndarray, frames: np.ndarray, k: int, n: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Up to ``n`` distinct unordered pairs (i, j) of crop indices with pids[i] == pids[j]
    and |frames[i] - frames[j]| >= k (seed 000: anchor/positive need not be consecutive).

    The anchor is uniform over crops that have a partner, the positive uniform over its partners.
    """
    pids, frames = np.asarray(pids), np.asarray(frames)
    groups = []  # (indices sorted by frame, n_before, start_after)
    cand_anchor: list[tuple[int, int]] = []
    for pid in np.unique(pids):
        idx = np.nonzero(pids == pid)[0]
        idx = idx[np.argsort(frames[idx], kind="stable")]
        nb, sa = _partners(frames[idx], k)
        g = len(groups)
        groups.append((idx, nb, sa))
        for pos in np.nonzero(nb + (len(idx) - sa) > 0)[0]:
            cand_anchor.append((g, int(pos)))
    seen: set[tuple[int, int]] = set()
    if not cand_anchor:
        return []
    for _ in range(max(20 * n, 100)):
        if len(seen) >= n:
            break
        g, pos = cand_anchor[int(rng.integers(len(cand_anchor)))]
        idx, nb, sa = groups[g]
        n_part = int(nb[pos] + len(idx) - sa[pos])
        r = int(rng.integers(n_part))
        other = r if r < nb[pos] else int(sa[pos] + r - nb[pos])
        a, b = int(idx[pos]), int(idx[other])
        seen.add((min(a, b), max(a, b)))
    return sorted(seen)


def sample_negative(
    anchor: int, pids: np.ndarray, seqs: np.ndarray, rng: np.random.Generator, other_seq: bool = False
) -> int:
    """A crop index of another identity (from another sequence when ``other_seq`` and one exists)."""
    cand = pids != pids[anchor]
    if other_seq:
        cross = cand & (seqs != seqs[anchor])
        if cross.any():
            cand = cross
    idx = np.nonzero(cand)[0]
    if len(idx) == 0:
        raise ValueError("negatives need at least two identities")
    return int(idx[int(rng.integers(len(idx)))])


def balanced_pairs(
    pids: np.ndarray, frames: np.ndarray, seqs: np.ndarray, k: int, n: int, seed: int = 0
) -> list[tuple[int, int, int]]:
    """Seed 000 §5.1 test set: equally many positive (same id, >= k frames apart) and
    negative (different ids) pairs, ``(i, j, same)``; at most ``n`` of each class.
    """
    rng = np.random.default_rng(seed)
    pos = sample_positive_pairs(pids, frames, k, n, rng)
    if len(np.unique(pids)) < 2:
        return []
    neg: set[tuple[int, int]] = set()
    for _ in range(max(20 * len(pos), 100)):
        if len(neg) >= len(pos):
            break
        a = int(rng.integers(len(pids)))
        b = sample_negative(a, pids, seqs, rng)
        neg.add((min(a, b), max(a, b)))
    m = min(len(pos), len(neg))
    return [(a, b, 1) for a, b in pos[:m]] + [(a, b, 0) for a, b in sorted(neg)[:m]]


def sample_triplets(
    pids: np.ndarray, frames: np.ndarray, seqs: np.ndarray, k: int, n: int,
    seed: int = 0, other_seq: bool = False,
) -> list[tuple[int, int, int]]:
    """``(anchor, positive, negative)`` crop indices: a/p same id >= k frames apart, n another id."""
    rng = np.random.default_rng(seed)
    if len(np.unique(pids)) < 2:
        return []
    pos = sample_positive_pairs(pids, frames, k, n, rng)
    return [(a, p, sample_negative(a, pids, seqs, rng, other_seq)) for a, p in pos]


def tracklet_runs(frames: np.ndarray, max_gap: int, min_len: int = 2) -> list[np.ndarray]:
    """Split one identity's crop indices into runs of contiguous frames.

    frames: (N,) frame numbers of the identity's crops. A run breaks where two
    consecutive (sorted) frames differ by more than ``max_gap``. Returns arrays of
    indices into ``frames`` (sorted by frame), runs shorter than ``min_len`` dropped.
    """
    frames = np.asarray(frames)
    order = np.argsort(frames, kind="stable")
    if len(order) == 0:
        return []
    breaks = np.nonzero(np.diff(frames[order]) > max_gap)[0] + 1
    return [r for r in np.split(order, breaks) if len(r) >= min_len]
