"""Adaptation on a folder of crops from several cameras, without labels (``reid-pipeline adapt --folder``).

The crops carry no tracker output, only what a Market-1501-style file name says:
``<anything>_c<C>s<S>_<FFFFFF>_<NN>.jpg`` = camera C, sequence S of that camera, frame F of that
sequence, box NN. The first field (the identity, in Market-1501) is **never read**.

* **"Tracklets" without a tracker** (:func:`group_crops`): per camera and sequence, in frame order,
  a crop joins the open group of the same camera and sequence whose mean embedding (base model) is
  closest, when that group has a crop at most ``window_frames`` earlier, has no crop of this frame
  (two crops of one frame are two people) and is closer than a label-free threshold; otherwise it
  starts a new group. The threshold is the ``link_quantile`` quantile of the distances of the
  certain negatives, the pairs of crops cut from one frame: at most that share of known different
  people would be close enough to link. A group is what a tracker would give for a short stretch
  of one camera: a few crops of one walk past it, the model vouching for their continuity.
* **Negatives** (§3.2.2): two groups holding crops of one video frame (same camera, sequence and
  frame) are different people. The names give no clock shared by the cameras (Market-1501's
  sequences are not synchronised), so no cross-camera negative is used, and no cross-camera pair is
  excluded from the presumed positives for being seen at the same moment.
* Everything after the grouping is the live worker's own path
  (:func:`pipeline.adaptation.worker.run_round`): hold-out, presumed positives (§3.2.1), modified
  batch-hard fine-tuning (§3.2.3), the continuity guardrail (positives: the two halves of a held-out
  group; negatives: halves of two held-out groups with crops of one frame), versioning in an
  identity store (the ``--out`` file: ``model_versions`` holds every candidate, the deployed ones
  with weights; ``reid-pipeline adapt --store OUT --rollback`` and a pipeline run with that store
  use them like any adapted version).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.adaptation.data import CropSet, check_sets
from pipeline.adaptation.settings import AdaptSettings
from pipeline.core.errors import DataError

#: camera, sequence, frame of a Market-1501-style name; the first field (identity) is skipped unread
_NAME_RE = re.compile(r"^[^_]+_c(\d+)s(\d+)_(\d+)_(\d+)\.(?:jpe?g|png|bmp)$", re.IGNORECASE)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
FPS = 25.0  # Market-1501's frame rate: crop times (s) = frame / FPS, per sequence (informational)


@dataclass(frozen=True)
class FolderCrop:
    """One crop file: its path and the camera, sequence and frame of its name (no identity)."""

    path: Path
    cam: int
    seq: int
    frame: int

    @property
    def key(self) -> tuple[int, int, int]:
        """(camera, sequence, frame): crops with one key were cut from one video frame."""
        return (self.cam, self.seq, self.frame)


def parse_crop_name(path: Path) -> FolderCrop:
    """A crop file -> FolderCrop; DataError naming the file when the name is not Market-style."""
    m = _NAME_RE.match(path.name)
    if m is None:
        raise DataError(path, "file name is not <id>_c<camera>s<sequence>_<frame>_<box>.jpg (Market-1501 style)")
    return FolderCrop(Path(path), int(m.group(1)), int(m.group(2)), int(m.group(3)))


def list_folder(folder: Path) -> list[FolderCrop]:
    """Every image directly in ``folder`` (sorted by name) as a FolderCrop; one-line DataErrors."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "no such folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise DataError(folder, "no crop images (.jpg/.png/.bmp) in this folder")
    return [parse_crop_name(p) for p in files]


def read_crops(crops: Sequence[FolderCrop]) -> list[np.ndarray]:
    """BGR uint8 images of the crops; DataError naming an unreadable file."""
    from pipeline.core.images import read_image

    out = []
    for c in crops:
        img = read_image(c.path)
        if img is None:
            raise DataError(c.path, "cannot read this image")
        out.append(img)
    return out


def same_frame_distances(crops: Sequence[FolderCrop], vectors: np.ndarray) -> np.ndarray:
    """Cosine distances of every pair of crops cut from one frame (certain negatives), (M,)."""
    by_key: dict[tuple[int, int, int], list[int]] = {}
    for i, c in enumerate(crops):
        by_key.setdefault(c.key, []).append(i)
    out = []
    for idx in by_key.values():
        if len(idx) > 1:
            v = vectors[idx]
            d = 1.0 - v @ v.T
            out.append(d[np.triu_indices(len(idx), 1)])
    return np.concatenate(out) if out else np.zeros(0)


def link_threshold(crops: Sequence[FolderCrop], vectors: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of the same-frame (certain negative) distances; 0 (no linking) without any."""
    d = same_frame_distances(crops, vectors)
    return float(np.quantile(d, quantile)) if d.size else 0.0


def group_crops(crops: Sequence[FolderCrop], vectors: np.ndarray, window_frames: int,
                threshold: float) -> list[list[int]]:
    """Crops -> groups (lists of crop indices, frame order), see the module docstring.

    vectors: (N, D) L2-normalised base-model embeddings of ``crops``. Deterministic: ties in frame
    are taken in input order. Groups never span two cameras or sequences, nor hold two crops of one frame.
    """
    by_seq: dict[tuple[int, int], list[int]] = {}
    for i, c in enumerate(crops):
        by_seq.setdefault((c.cam, c.seq), []).append(i)
    groups: list[list[int]] = []
    for key in sorted(by_seq):
        order = sorted(by_seq[key], key=lambda i: (crops[i].frame, i))
        open_: list[tuple[list[int], np.ndarray, set[int]]] = []  # members, sum of vectors, frames
        for i in order:
            f = crops[i].frame
            still = []
            for g in open_:  # a group whose last crop is more than window_frames back is closed
                if crops[g[0][-1]].frame >= f - window_frames:
                    still.append(g)
                else:
                    groups.append(g[0])
            open_ = still
            best, best_d = None, threshold
            for g in open_:
                if f in g[2]:
                    continue
                d = 1.0 - float(g[1] @ vectors[i]) / max(float(np.linalg.norm(g[1])), 1e-12)
                if d < best_d:
                    best, best_d = g, d
            if best is None:
                open_.append(([i], vectors[i].astype(np.float64), {f}))
            else:
                best[0].append(i)
                np.add(best[1], vectors[i], out=best[1])
                best[2].add(f)
        groups.extend(g[0] for g in open_)
    return sorted(groups, key=lambda g: (crops[g[0]].cam, crops[g[0]].seq, crops[g[0]].frame, g[0]))


def crop_sets(crops: Sequence[FolderCrop], images: Sequence[np.ndarray], groups: Sequence[Sequence[int]]) -> list[CropSet]:
    """One CropSet per group (tracklet id = group index), with its frame keys and source files."""
    out = []
    for gi, g in enumerate(groups):
        frames = np.array([crops[i].frame for i in g], dtype=np.int64)
        times = frames / FPS
        out.append(CropSet(gi, f"c{crops[g[0]].cam}", gi, float(times.min()), float(times.max()), frames, times,
                           [images[i] for i in g], keys=frozenset(crops[i].key for i in g),
                           sources=[str(crops[i].path) for i in g]))
    return out


@dataclass
class FolderRound:
    """A folder round: the report, the groups it formed (as crop sets) and the grouping's threshold."""

    report: object  # pipeline.adaptation.worker.AdaptReport
    sets: list[CropSet]
    link_threshold: float
    crops: int


def adapt_folder(crops: Sequence[FolderCrop], store, settings: AdaptSettings, checkpoint: str | Path | None = None,
                 window_frames: int = 100, link_quantile: float = 0.02, base_vectors: np.ndarray | None = None,
                 should_stop=None, progress: bool = False, source: object = "folder") -> FolderRound:
    """One adaptation round on folder crops; versions go to ``store`` (an IdentityStore, e.g. a new file).

    The base model is the store's deployed version, else ``checkpoint`` (default: the shipped model).
    ``base_vectors``: (N, D) embeddings of ``crops`` by that base model when the caller has them
    (a benchmark embedding the same crops for several rounds); computed here otherwise.
    """
    from pipeline.adaptation.worker import AdaptReport, load_base_model, run_round
    from pipeline.core.device import resolve_device
    from reid_models.adaptation.trainer import embed_sets, tensors_from_crops

    t0 = time.monotonic()
    device = resolve_device(settings.device)
    base_version, base = load_base_model(store, checkpoint)
    base = base.to(device)
    images = read_crops(crops)
    tensors = tensors_from_crops(images, base.input_size, base.pixel_mean, base.pixel_std)
    if base_vectors is None:  # one set per crop, so a base with per-camera statistics embeds each by its camera
        base_vectors = np.concatenate(embed_sets(base, [tensors[i:i + 1] for i in range(len(crops))], device,
                                                 cams=[f"c{c.cam}" for c in crops]))
    elif len(base_vectors) != len(crops):
        raise ValueError(f"base_vectors: {len(base_vectors)} rows for {len(crops)} crops")
    threshold = link_threshold(crops, base_vectors, link_quantile)
    groups = group_crops(crops, base_vectors, window_frames, threshold)
    sets = crop_sets(crops, images, groups)
    cams = check_sets(sets, settings.min_tracklets_per_camera, source, min_crops=1)  # a lone crop is a group too
    rep = AdaptReport(base_version=base_version, tracklets=len(sets), cameras=cams, device=device)
    set_images = [tensors[g] for g in groups]
    set_vecs = [base_vectors[g] for g in groups]
    run_round(store, rep, base, sets, set_images, set_vecs, settings, device, non_overlapping=True,
              should_stop=should_stop, progress=progress, reembed=False, holdout_min_crops=2)
    rep.total_s = round(time.monotonic() - t0, 2)
    return FolderRound(rep, sets, threshold, len(crops))
