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
  :func:`choose_folder_protocol` picks single shot for two cameras with one image per person and camera (VIPeR,
  GRID), the Market rule otherwise; :func:`folder_protocol_problem` says, before anything is embedded, why a
  protocol would score nothing (no valid query, empty gallery).

Everything is a pure function of the item list and a seed, so the benchmark, ``eval-reid`` and the
tests share one definition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from pipeline.core.errors import DataError
from reid_models.datasets.index import DISTRACTOR_PID, CropItem
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


def market_query_indices(items: Sequence[CropItem], seed: int = 0,
                         distractors: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(query, gallery) index arrays into ``items``: one seeded query per (identity, camera), the rest gallery.

    Identities seen by one camera only still give a query; it simply has no valid gallery match and
    is skipped by ``cmc_map`` (which excludes same-identity same-camera gallery items). ``distractors``: items
    of :data:`~reid_models.datasets.index.DISTRACTOR_PID` (Market-1501's 0000, GRID's one-camera 0000) are
    gallery negatives only, never queries (leave it False where 0 is a person: CUHK03's 0000)."""
    rng = np.random.default_rng(seed)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, it in enumerate(items):
        if not (distractors and it.pid == DISTRACTOR_PID):
            groups.setdefault((it.pid, it.camid), []).append(i)
    q = np.array(sorted(g[int(rng.integers(len(g)))] for _, g in sorted(groups.items())), dtype=np.int64)
    return q, np.setdiff1d(np.arange(len(items)), q)


def market_query_gallery(items: Sequence[CropItem], seed: int = 0) -> tuple[list[CropItem], list[CropItem]]:
    """(query, gallery) items of :func:`market_query_indices`."""
    q, g = market_query_indices(items, seed)
    return [items[i] for i in q], [items[i] for i in g]


def cuhk03_single_shot_trials(items: Sequence[CropItem], trials: int = CUHK03_TRIALS, seed: int = 0,
                              distractors: bool = False) -> list[tuple[list[int], list[int]]]:
    """``trials`` x (query indices, gallery indices) into ``items``: per identity seen by both cameras,
    one random image of the first camera (lowest ``camid``: CUHK03's camera A = 0, a ``probe/`` or ``query/``
    folder of a per-camera layout) as query; per identity the second camera saw, one random image of it as
    gallery, so people only the second camera saw are gallery distractors (none in CUHK03, whose figures this
    leaves as they were), never queries. ``distractors``: every item of
    :data:`~reid_models.datasets.index.DISTRACTOR_PID` in the second camera is in every gallery (GRID's 0000
    crops, unrelated people), never a query. Any two-camera set works (a Market-style pair ``c1`` / ``c2`` too);
    other numbers of cameras, or no identity in both, are a one-line DataError."""
    cams = sorted({it.camid for it in items})
    if len(cams) != 2:
        raise DataError("<items>", f"the single-shot protocol needs exactly two cameras, found {len(cams)} ({cams})")
    cam_q, cam_g = cams
    by_pid: dict[int, dict[int, list[int]]] = {}
    extra: list[int] = []  # distractor crops of the gallery camera, all of them in every gallery
    for i, it in enumerate(items):
        if distractors and it.pid == DISTRACTOR_PID:
            if it.camid == cam_g:
                extra.append(i)
            continue
        by_pid.setdefault(it.pid, {}).setdefault(it.camid, []).append(i)
    both = [p for p in sorted(by_pid) if cam_q in by_pid[p] and cam_g in by_pid[p]]
    if not both:
        raise DataError("<items>", "the single-shot protocol needs people seen by both cameras, found none")
    seen_g = [p for p in sorted(by_pid) if cam_g in by_pid[p]]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(trials):
        q = [by_pid[p][cam_q][int(rng.integers(len(by_pid[p][cam_q])))] for p in both]
        g = [by_pid[p][cam_g][int(rng.integers(len(by_pid[p][cam_g])))] for p in seen_g]
        out.append((q, g + extra))
    return out


def choose_folder_protocol(items: Sequence[CropItem], distractors: bool = False) -> tuple[str, str]:
    """(protocol, why) for ``eval-reid --folder --protocol-folder auto``: ``single_shot`` when the items (a
    Market-1501 root's official split aside) span exactly two cameras with at most one image per person and
    camera (VIPeR, PRID2011 ``single_shot/``, GRID, iLIDS-VID ``images/``: under the Market rule every crop
    would be a query and the gallery empty), else ``market``. ``distractors``: as :func:`market_query_indices`."""
    if any(it.split == "query" for it in items):
        return "market", "a Market-1501 root: its query/ against bounding_box_test/"
    cams = sorted({it.camid for it in items})
    counts: dict[tuple[int, int], int] = {}
    for it in items:
        if not (distractors and it.pid == DISTRACTOR_PID):
            counts[(it.pid, it.camid)] = counts.get((it.pid, it.camid), 0) + 1
    if len(cams) == 2 and counts and max(counts.values()) == 1:
        return "single_shot", "2 cameras, one image per person and camera"
    most = max(counts.values(), default=0)
    return "market", (f"{len(cams)} camera{'s' if len(cams) != 1 else ''}" if len(cams) != 2 else f"up to {most} images per person and camera")


def folder_protocol_problem(items: Sequence[CropItem], protocol: str, distractors: bool = False) -> str | None:
    """Why ``protocol`` ("market" or "single_shot") would score nothing on ``items`` (no valid query: no person
    with a gallery image from another camera; or an empty gallery), with the protocol that fits where one does;
    None when it scores something. Checked before anything is embedded."""
    cams_of: dict[int, set[int]] = {}
    for it in items:
        if not (distractors and it.pid == DISTRACTOR_PID):
            cams_of.setdefault(it.pid, set()).add(it.camid)
    n_cams = len({it.camid for it in items})
    if not any(len(c) > 1 for c in cams_of.values()):
        return (f"no person is seen by two cameras ({n_cams} camera{'s' if n_cams != 1 else ''}, {len(cams_of)} "
                "people): nothing to match across cameras")
    if protocol == "single_shot":
        if n_cams != 2:
            return (f"the single-shot protocol needs exactly two cameras, found {n_cams}: "
                    "use --protocol-folder market")
        return None
    if any(it.split == "query" for it in items):
        gallery: dict[int, set[int]] = {}
        for it in items:
            if it.split == "gallery":
                gallery.setdefault(it.pid, set()).add(it.camid)
        if any(it.split == "query" and gallery.get(it.pid, set()) - {it.camid} for it in items):
            return None
        return "0 valid queries: no query person has a gallery image from another camera"
    q, g = market_query_indices(items, 0, distractors)
    gallery = {}
    for i in g:
        gallery.setdefault(items[i].pid, set()).add(items[i].camid)
    if any(gallery.get(items[i].pid, set()) - {items[i].camid} for i in q):
        return None
    hint = "use --protocol-folder single_shot" if n_cams == 2 else "the single-shot protocol needs two cameras"
    return (f"0 valid queries under the market protocol (one query per person and camera, the rest gallery: "
            f"{len(q)} queries, {len(g)} gallery crops): every person has one image per camera; {hint}")


def folder_tracklets(items: Sequence[CropItem]) -> list[dict]:
    """Per-camera sequences of image-folder crops as tracklets (seed 004's image-to-video training data).

    One tracklet per (identity, camera, sequence, split), crops ordered by frame: a Market-1501 identity's
    crops in one camera and recording sequence, or CUHK03's 5 images of an identity in one camera. The split
    is part of the key, so a query/ crop never joins a gallery sequence (a Market-1501 root's official split).
    Same dict layout as ``load_tracklets``: pid, camid, seq, split, frames, paths."""
    groups: dict[tuple[int, int, str, str], list[CropItem]] = {}
    for it in items:
        groups.setdefault((it.pid, it.camid, it.seq, it.split), []).append(it)
    out = []
    for (pid, camid, seq, _), g in sorted(groups.items()):
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
    first and the last kept), the items' order otherwise kept; ``max_frames`` <= 0 keeps everything. Items of split
    ``query`` (an official split's queries: a Market-1501 root's ``query/``) are all kept: the cap bounds the
    embedding time of long sequences, it never changes the protocol's queries."""
    if max_frames <= 0:
        return list(items)
    keep: set = {it.path for it in items if it.split == "query"}
    for t in folder_tracklets(items):
        if t["split"] == "query":
            continue
        n = len(t["paths"])
        keep.update(t["paths"][int(k)] for k in np.unique(np.round(np.linspace(0, n - 1, min(max_frames, n)))))
    return [it for it in items if it.path in keep]
