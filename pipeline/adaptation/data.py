"""Stored tracklets with crops -> the sets an adaptation round works on.

* :func:`load_crop_sets` reads every stored tracklet that has crops (with the
  timestamp of each crop, taken from the tracklet's own frames/timestamps);
* :func:`check_sets` turns a store adaptation cannot use into one line;
* :func:`split_holdout` sets aside tracklets for the continuity guardrail, in
  same-camera pairs that overlap in time (so the hold-out has negatives too);
  they are never trained on (not as positives, not as negatives);
* :func:`half_tracklets` splits each held-out tracklet into its first and
  second half of crops (:class:`~reid_models.adaptation.holdout.HalfTracklet`).

"Seen together" (two people): stored tracklets of one camera overlapping in
time; folder crop groups (:mod:`pipeline.adaptation.folder`, which carry
``keys``) holding crops of one video frame (:func:`sets_cooccur`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.core.errors import DataError
from reid_models.adaptation.holdout import HalfTracklet
from reid_models.adaptation.mining import Cooccur, shared_key_cooccurrence
from reid_models.adaptation.trainer import mean_vector


@dataclass
class CropSet:
    """One stored tracklet's crops. frames/times: (n,) crop frame numbers and seconds; crops: BGR."""

    tracklet_id: int
    cam_id: str
    track_id: int
    start_time: float
    end_time: float
    frames: np.ndarray
    times: np.ndarray
    crops: list[np.ndarray]
    global_id: int | None = None
    boxes_tlwh: np.ndarray | None = None  # (T, 4) of all the tracklet's frames
    all_frames: np.ndarray | None = None  # (T,)
    keys: frozenset | None = None  # folder groups: the (camera, sequence, frame) of every crop
    sources: list[str] | None = None  # folder groups: the crop files, in crop order


def load_crop_sets(store, limit: int | None = None) -> list[CropSet]:
    """Stored tracklets with >= 1 crop (the ``limit`` most recent ones), by start time.

    DataError when the store has no crops.
    """
    counts = store.crop_counts()
    if not counts:
        raise DataError(store.path, "no stored crops: run the pipeline with `adapt: {enabled: true}` in cams.yaml")
    ids = sorted(counts)[-limit:] if limit else sorted(counts)
    out = []
    for t in store.tracklets(tracklet_ids=ids, with_arrays=True):
        rows = store.crops(t.tracklet_id)
        frames = np.array([f for f, _ in rows], dtype=np.int64)
        lookup = dict(zip(np.asarray(t.frames).tolist(), np.asarray(t.timestamps).tolist()))
        times = np.array([lookup.get(int(f), t.start_time) for f in frames], dtype=np.float64)
        out.append(CropSet(t.tracklet_id, t.cam_id, t.track_id, t.start_time, t.end_time, frames, times,
                           [c for _, c in rows], t.global_id, t.boxes_tlwh, t.frames))
    return out


def check_sets(sets: Sequence[CropSet], min_per_camera: int, source: object, min_crops: int = 2) -> dict[str, int]:
    """Tracklets with >= ``min_crops`` crops per camera; DataError unless >= 2 cameras have ``min_per_camera``."""
    per_cam = Counter(s.cam_id for s in sets if len(s.crops) >= min_crops)
    usable = {c: n for c, n in per_cam.items() if n >= min_per_camera}
    if len(usable) < 2:
        have = ", ".join(f"{c}: {n}" for c, n in sorted(per_cam.items())) or "none"
        thin = sum(len(s.crops) < min_crops for s in sets)
        hint = (f"; {thin} tracklets have fewer than {min_crops} crops (a run without adapt stores one thumbnail"
                " per tracklet: run the pipeline with `adapt: {enabled: true}` in cams.yaml)") if thin else ""
        raise DataError(source, f"adaptation needs >= 2 cameras with >= {min_per_camera} tracklets with"
                                f" >= {min_crops} crops each (have {have}){hint}")
    return dict(sorted(per_cam.items()))


def sets_cooccur(a: CropSet, b: CropSet) -> bool:
    """True when ``a`` and ``b`` are two people seen at the same moment: they share a frame key when
    both have ``keys`` (folder groups), else their time spans overlap (stored tracklets, one clock)."""
    if a.keys is not None and b.keys is not None:
        return not a.keys.isdisjoint(b.keys)
    return a.start_time <= b.end_time and b.start_time <= a.end_time


def set_cooccurrence(sets: Sequence[CropSet], indices: Sequence[int]) -> Cooccur | None:
    """The mining rule (``reid_models.adaptation.mining.Cooccur``) over ``[sets[i] for i in indices]``:
    None (the time-overlap default) for stored tracklets, shared frame keys for folder groups."""
    chosen = [sets[i] for i in indices]
    if not chosen or any(s.keys is None for s in chosen):
        return None
    return shared_key_cooccurrence([s.keys for s in chosen])


def _partners(sets: Sequence[CropSet], cand: list[int]) -> dict[int, list[int]]:
    """For each candidate, the other candidates of its camera seen together with it (sorted)."""
    if cand and all(sets[i].keys is not None for i in cand):  # folder groups: through the shared frame keys
        holders: dict[object, list[int]] = {}
        for i in cand:
            for k in sets[i].keys:
                holders.setdefault(k, []).append(i)
        return {i: sorted({j for k in sets[i].keys for j in holders[k]
                           if j != i and sets[j].cam_id == sets[i].cam_id}) for i in cand}
    return {i: [j for j in cand if j != i and sets[j].cam_id == sets[i].cam_id and sets_cooccur(sets[i], sets[j])]
            for i in cand}


def split_holdout(sets: Sequence[CropSet], fraction: float, seed: int = 0,
                  min_crops: int = 4) -> tuple[list[int], list[int]]:
    """(train indices, hold-out indices). Hold-out: about ``fraction`` of the sets, taken in
    same-camera pairs seen together (:func:`sets_cooccur`), among sets with >= ``min_crops`` crops."""
    rng = np.random.default_rng(seed)
    cand = [i for i, s in enumerate(sets) if len(s.crops) >= min_crops]
    partners = _partners(sets, cand)
    target = int(round(fraction * len(sets)))
    chosen: list[int] = []
    for i in rng.permutation(cand).tolist():
        if len(chosen) >= target:
            break
        free = [j for j in partners[i] if j not in chosen]
        if i in chosen or not free:
            continue
        chosen += [i, free[int(rng.integers(len(free)))]]
    hold = sorted(chosen)
    train = [i for i in range(len(sets)) if i not in set(hold)]
    return train, hold


def half_tracklets(sets: Sequence[CropSet], indices: Sequence[int],
                   vectors: Sequence[np.ndarray]) -> list[HalfTracklet]:
    """Two halves (first / second half of the crops) per set; ``vectors[i]``: (n_i, D) crop embeddings."""
    out = []
    for i in indices:
        s, v = sets[i], vectors[i]
        mid = len(s.crops) // 2
        for lo, hi in ((0, mid), (mid, len(s.crops))):
            out.append(HalfTracklet(s.tracklet_id, s.cam_id, float(s.times[lo]), float(s.times[hi - 1]),
                                    mean_vector(v[lo:hi])))
    return out
