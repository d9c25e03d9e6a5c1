"""The fixed evaluation protocols of the re-id benchmark (docs/reid_data_eval.md, "Protocols").

* **Market split**: the 751 identities of Market-1501 ``bounding_box_train`` split identity-disjoint
  and seeded (:data:`MARKET_SPLIT_SEED`) into :data:`MARKET_TRAIN_IDS` train / :data:`MARKET_TEST_IDS`
  test identities with :func:`~reid_models.datasets.selection.split_identities`. On the test identities
  :func:`market_query_gallery` draws one query per identity and camera (seeded); every other test
  crop is gallery, and gallery crops of the query's identity *and* camera are excluded from its
  ranking (the Market-1501 rule, applied by ``reid_models.metrics.cmc_map`` through camera ids).
* **CUHK03 single shot** (seed 003 §IV): on the 100 ``val/`` identities, each trial draws one image
  per identity from camera A (query) and one from camera B (gallery of 100); CMC is averaged over
  :data:`CUHK03_TRIALS` seeded trials (:func:`cuhk03_single_shot_trials`).
* **Any folder, all identities as test identities** (``eval-reid --folder``): the Market query /
  gallery rule above over every identity of the folder; for a folder of per-camera sequences (PRID2011
  ``multi_shot/``, iLIDS-VID ``sequences/``) also video-to-video and image-to-video retrieval over the
  sequences (:func:`folder_tracklets`; ``reid_models.evaluate.video_retrieval``). Options that narrow it:
  :func:`identities_in_several_cameras` (the literature's PRID2011 setting, the 200 people both cameras saw)
  and :func:`thin_sequences` (at most n evenly spaced frames per sequence, to bound the embedding cost).

Everything is a pure function of the item list and a seed, so the benchmark, ``eval-reid`` and the
tests share one definition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from pipeline.core.errors import DataError
from reid_models.datasets.index import CropItem
from reid_models.datasets.selection import split_identities

MARKET_TRAIN_IDS = 501
MARKET_TEST_IDS = 250
MARKET_SPLIT_SEED = 0
CUHK03_TRIALS = 10


def holdout_split(items: Sequence[CropItem], n_train: int, n_test: int, seed: int) -> list[CropItem]:
    """The items with ``split`` set to "train" / "test" by a seeded identity-disjoint split of their pids
    into ``n_train`` : ``n_test`` (exact counts when they add up to the number of identities)."""
    pids = sorted({it.pid for it in items})
    of = split_identities(pids, (float(n_train), 0.0, float(n_test)), seed)
    return [dataclasses.replace(it, split=of[it.pid]) for it in items]


def market_split(items: Sequence[CropItem], seed: int = MARKET_SPLIT_SEED) -> list[CropItem]:
    """Market-1501 train items labelled with the project's 501 / 250 identity split."""
    return holdout_split(items, MARKET_TRAIN_IDS, MARKET_TEST_IDS, seed)


def market_query_indices(items: Sequence[CropItem], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(query, gallery) index arrays into ``items``: one seeded query per (identity, camera), the rest gallery.

    Identities seen by one camera only still give a query; it simply has no valid gallery match and
    is skipped by ``cmc_map`` (which excludes same-identity same-camera gallery items)."""
    rng = np.random.default_rng(seed)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault((it.pid, it.camid), []).append(i)
    q = np.array(sorted(g[int(rng.integers(len(g)))] for _, g in sorted(groups.items())), dtype=np.int64)
    return q, np.setdiff1d(np.arange(len(items)), q)


def market_query_gallery(items: Sequence[CropItem], seed: int = 0) -> tuple[list[CropItem], list[CropItem]]:
    """(query, gallery) items of :func:`market_query_indices`."""
    q, g = market_query_indices(items, seed)
    return [items[i] for i in q], [items[i] for i in g]


def cuhk03_single_shot_trials(items: Sequence[CropItem], trials: int = CUHK03_TRIALS,
                              seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """``trials`` x (query indices, gallery indices) into ``items``: per identity seen by both cameras,
    one random image of the first camera (lowest ``camid``: CUHK03's camera A = 0) as query and one random
    image of the second as gallery. Any two-camera set works (a Market-style pair ``c1`` / ``c2`` too); other
    numbers of cameras are a one-line DataError."""
    cams = sorted({it.camid for it in items})
    if len(cams) != 2:
        raise DataError("<items>", f"the single-shot protocol needs exactly two cameras, found {len(cams)} ({cams})")
    cam_q, cam_g = cams
    by_pid: dict[int, dict[int, list[int]]] = {}
    for i, it in enumerate(items):
        by_pid.setdefault(it.pid, {}).setdefault(it.camid, []).append(i)
    both = [p for p in sorted(by_pid) if cam_q in by_pid[p] and cam_g in by_pid[p]]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(trials):
        q = [by_pid[p][cam_q][int(rng.integers(len(by_pid[p][cam_q])))] for p in both]
        g = [by_pid[p][cam_g][int(rng.integers(len(by_pid[p][cam_g])))] for p in both]
        out.append((q, g))
    return out


def folder_tracklets(items: Sequence[CropItem]) -> list[dict]:
    """Per-camera sequences of image-folder crops as tracklets (seed 004's image-to-video training data).

    One tracklet per (identity, camera, sequence), crops ordered by frame: a Market-1501 identity's
    crops in one camera and recording sequence, or CUHK03's 5 images of an identity in one camera.
    Same dict layout as ``load_tracklets``: pid, camid, seq, split, frames, paths."""
    groups: dict[tuple[int, int, str], list[CropItem]] = {}
    for it in items:
        groups.setdefault((it.pid, it.camid, it.seq), []).append(it)
    out = []
    for (pid, camid, seq), g in sorted(groups.items()):
        g = sorted(g, key=lambda it: (it.frame, str(it.path)))
        out.append({"pid": pid, "camid": camid, "seq": seq, "split": g[0].split,
                    "frames": [it.frame for it in g], "paths": [it.path for it in g]})
    return out


def identities_in_several_cameras(items: Sequence[CropItem]) -> list[CropItem]:
    """The items of identities seen by two or more cameras (PRID2011: the 200 of 385 / 749 people that both
    cameras saw, as McLaughlin et al. and seed 004 evaluate), in their order."""
    cams: dict[int, set[int]] = {}
    for it in items:
        cams.setdefault(it.pid, set()).add(it.camid)
    return [it for it in items if len(cams[it.pid]) > 1]


def thin_sequences(items: Sequence[CropItem], max_frames: int) -> list[CropItem]:
    """At most ``max_frames`` frames of each sequence (:func:`folder_tracklets`), evenly spaced in frame order (the
    first and the last kept), the items' order otherwise kept; ``max_frames`` <= 0 keeps everything."""
    if max_frames <= 0:
        return list(items)
    keep: set = set()
    for t in folder_tracklets(items):
        n = len(t["paths"])
        keep.update(t["paths"][int(k)] for k in np.unique(np.round(np.linspace(0, n - 1, min(max_frames, n)))))
    return [it for it in items if it.path in keep]
