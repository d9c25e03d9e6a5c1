"""Cut gt crops out of MOTChallenge frames and write a re-id dataset (seed 000 §4.1).

The caller (``pipeline/commands/make_triplets.py``) reads the sequences with
``pipeline.mot`` and hands them over as :class:`SequenceInput`; this
module only selects, crops, resizes and writes (see ``index.py`` for the format).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pipeline.core.errors import DataError
from pipeline.core.types import crop_tlwh, resize_crop
from reid_models.datasets.index import INDEX_COLUMNS, write_csv
from reid_models.datasets.selection import (
    SPLITS, GtRows, SelectionConfig, balanced_pairs, clip_tlwh, sample_triplets, select_rows,
    split_identities, tracklet_runs,
)


@dataclass
class SequenceInput:
    """One MOT sequence: name, gt rows (MOTBoxes-like), image (width, height), frame reader.

    read_frame(frame) -> (H, W, 3) uint8 BGR image of the 1-based ``frame``.
    """

    name: str
    gt: GtRows
    image_wh: tuple[int, int]
    read_frame: Callable[[int], np.ndarray]


@dataclass(frozen=True)
class BuildConfig:
    """Generator options. size = (height, width) of the resized crops; split = (train, val, test)."""

    selection: SelectionConfig = field(default_factory=SelectionConfig)
    size: tuple[int, int] = (128, 64)
    k: int = 10
    split: tuple[float, float, float] = (0.5, 0.0, 0.5)
    seed: int = 0
    n_pairs: int = 2000
    n_triplets: int = 10000
    neg_other_seq: bool = True
    tracklet_min_len: int = 4
    jpeg_quality: int = 95


@dataclass
class _Crops:
    seq: list[str] = field(default_factory=list)
    camid: list[int] = field(default_factory=list)
    local_id: list[int] = field(default_factory=list)
    frame: list[int] = field(default_factory=list)
    path: list[str] = field(default_factory=list)


def _cut_sequence(
    cam: int, seq: SequenceInput, cfg: BuildConfig, out_dir: Path, crops: _Crops, progress: bool
) -> None:
    import cv2
    from tqdm import tqdm

    mask = select_rows(seq.gt, cfg.selection, seq.image_wh)
    frames = np.asarray(seq.gt.frame)[mask]
    ids = np.asarray(seq.gt.ids)[mask]
    boxes = clip_tlwh(np.asarray(seq.gt.tlwh)[mask], seq.image_wh)
    (out_dir / "crops" / seq.name).mkdir(parents=True, exist_ok=True)
    h_out, w_out = cfg.size
    for f in tqdm(np.unique(frames), desc=f"crops {seq.name}", unit="frame", disable=not progress):
        image = seq.read_frame(int(f))
        for i in np.nonzero(frames == f)[0]:
            crop = resize_crop(crop_tlwh(image, boxes[i]), (h_out, w_out))
            rel = f"crops/{seq.name}/{int(ids[i]):05d}_{int(f):06d}.jpg"
            if not cv2.imwrite(str(out_dir / rel), crop, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]):
                raise DataError(out_dir / rel, "cannot write crop")
            crops.seq.append(seq.name)
            crops.camid.append(cam)
            crops.local_id.append(int(ids[i]))
            crops.frame.append(int(f))
            crops.path.append(rel)


def _tracklets(c: _Crops, pid: np.ndarray, split: np.ndarray, cfg: BuildConfig) -> list[dict]:
    out = []
    frames = np.asarray(c.frame)
    for p in np.unique(pid):
        idx = np.nonzero(pid == p)[0]
        for run in tracklet_runs(frames[idx], cfg.selection.stride, cfg.tracklet_min_len):
            sel = idx[run]
            out.append({
                "pid": int(p), "camid": c.camid[sel[0]], "seq": c.seq[sel[0]], "split": str(split[sel[0]]),
                "frames": [int(frames[j]) for j in sel], "paths": [c.path[j] for j in sel],
            })
    return out


def build_dataset(
    sequences: list[SequenceInput], out_dir: Path, cfg: BuildConfig, progress: bool = True
) -> dict:
    """Write the dataset for ``sequences`` into ``out_dir``; return the summary dict.

    pids are global ints assigned to (sequence, gt id) in sorted order; camid is the
    sequence index. Splits are identity-disjoint (seeded); positives are >= k frames apart.
    """
    out_dir = Path(out_dir)
    c = _Crops()
    for cam, seq in enumerate(sequences):
        _cut_sequence(cam, seq, cfg, out_dir, c, progress)
    if not c.path:
        raise DataError(out_dir, "no gt box passed the selection (check --min-vis / --min-height)")
    keys = sorted(set(zip(c.seq, c.local_id)))
    pid_of = {key: i for i, key in enumerate(keys)}
    split_of = split_identities(keys, cfg.split, cfg.seed)
    pid = np.array([pid_of[key] for key in zip(c.seq, c.local_id)])
    split = np.array([split_of[key] for key in zip(c.seq, c.local_id)])
    frames, seqs = np.asarray(c.frame), np.asarray(c.seq)
    write_csv(out_dir / "index.csv", INDEX_COLUMNS + ("local_id",), [
        (c.path[i], int(pid[i]), c.camid[i], c.seq[i], c.frame[i], split[i], c.local_id[i])
        for i in range(len(c.path))
    ])
    summary: dict = {"config": _config_json(cfg), "sequences": [s.name for s in sequences], "splits": {}}
    for sp in SPLITS:
        idx = np.nonzero(split == sp)[0]
        summary["splits"][sp] = {"identities": int(len(np.unique(pid[idx]))), "crops": int(len(idx))}
    summary["splits"]["test"].update(_write_pairs(out_dir, c, pid, frames, seqs, split, cfg))
    for sp, seed_off in (("train", 2), ("test", 3)):
        idx = np.nonzero(split == sp)[0]
        trip = sample_triplets(pid[idx], frames[idx], seqs[idx], cfg.k,
                               cfg.n_triplets if sp == "train" else cfg.n_pairs,
                               cfg.seed + seed_off, cfg.neg_other_seq)
        write_csv(out_dir / f"triplets_{sp}.csv", ("anchor", "positive", "negative"),
                  [tuple(c.path[idx[j]] for j in t) for t in trip])
        summary["splits"][sp]["triplets"] = len(trip)
    tracklets = _tracklets(c, pid, split, cfg)
    (out_dir / "tracklets.json").write_text(json.dumps(tracklets), encoding="utf-8")
    for sp in SPLITS:
        summary["splits"][sp]["tracklets"] = sum(t["split"] == sp for t in tracklets)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def _write_pairs(out_dir: Path, c: _Crops, pid, frames, seqs, split, cfg: BuildConfig) -> dict:
    idx = np.nonzero(split == "test")[0]
    pairs = balanced_pairs(pid[idx], frames[idx], seqs[idx], cfg.k, cfg.n_pairs, cfg.seed + 1)
    write_csv(out_dir / "pairs_test.csv", ("a", "b", "same"),
              [(c.path[idx[a]], c.path[idx[b]], s) for a, b, s in pairs])
    n_pos = sum(s for _, _, s in pairs)
    return {"pairs": len(pairs), "pairs_pos": n_pos, "pairs_neg": len(pairs) - n_pos}


# How crops are resized (pipeline.core.types.resize_crop), recorded in summary.json so that a cached dataset made
# under an older rule can be told apart (until 2026-12-07: INTER_AREA always, which repeats pixels when enlarging).
CROP_RESIZE_RULE = "area-shrink/linear-enlarge"


def _config_json(cfg: BuildConfig) -> dict:
    d = asdict(cfg)
    d["selection"]["pedestrian_classes"] = list(cfg.selection.pedestrian_classes)
    d["crop_resize"] = CROP_RESIZE_RULE
    return d


def format_summary(summary: dict) -> str:
    """A small text table of the per-split counts."""
    cols = ("identities", "crops", "pairs", "triplets", "tracklets")
    lines = [f"{'split':<6} " + " ".join(f"{c:>10}" for c in cols)]
    for sp, d in summary["splits"].items():
        lines.append(f"{sp:<6} " + " ".join(f"{d.get(c, 0):>10}" for c in cols))
    return "\n".join(lines)
