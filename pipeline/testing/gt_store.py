"""A small identity store from real PETS09-S2L1 frames and gt boxes, with real embeddings: the console's
demo store (tests/web, tools/bench_console.py).

Two virtual cameras, as tests/pipeline/pets_store.py: a gt box belongs to ``left`` when its centre x < 384
(half of the 768 px frame), else to ``right``; a tracklet is a run of consecutive frames of one gt id in
one camera (at least ``min_length`` frames). Each tracklet is stored with its gt id as global id, up to
``max_crops`` evenly spread gt crops (the console shows the middle one as its thumbnail), and, with an
encoder, the L2-normalised mean of those crops' embeddings under the encoder's
version; an identity's prototype is the mean of its tracklets' vectors, and each tracklet's assignment
distance is its cosine distance to that prototype. ``appear``/``handover``/``leave`` events are written
as the runner would. ``exclude``: gt id -> frames whose neighbourhood (``|frame - f| < exclude_frames``)
is left out of the store, so that probes cut from those frames are never in the gallery (the re-id
bench's time protocol, reid_models.evaluate.query_gallery).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core.types import Tracklet, crop_tlwh, unit_mean
from pipeline.store import IdentityStore

FPS = 7.0
SPLIT_X = 384.0


def gt_rows(pets_dir: Path, first_frame: int = 1, last_frame: int = 795) -> np.ndarray:
    """(N, 6) float64 gt rows (frame, id, x, y, w, h) of the frames in [first_frame, last_frame]."""
    gt = np.loadtxt(pets_dir / "gt" / "gt.txt", delimiter=",")
    keep = (gt[:, 0] >= first_frame) & (gt[:, 0] <= last_frame) & (gt[:, 6] != 0)
    return gt[keep][:, :6]


def _segments(rows: np.ndarray, min_length: int) -> list[np.ndarray]:
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    cut = np.nonzero(np.diff(rows[:, 0]) > 1)[0] + 1
    return [s for s in np.split(rows, cut) if len(s) >= min_length]


def build_gt_store(pets_dir: Path, path: Path, encoder=None, first_frame: int = 1, last_frame: int = 200,
                   max_crops: int = 8, min_length: int = 8, exclude: dict[int, list[int]] | None = None,
                   exclude_frames: int = 35) -> dict[int, int]:
    """Write the store at ``path`` (must not exist yet); returns tracklet_id -> gt id."""
    from pipeline.core.images import read_image

    gt = gt_rows(pets_dir, first_frame, last_frame)
    for pid, frames in (exclude or {}).items():
        near = (gt[:, 1] == pid) & (np.abs(gt[:, 0][:, None] - np.asarray(frames)[None, :]) < exclude_frames).any(1)
        gt = gt[~near]
    cam_of = np.where(gt[:, 2] + gt[:, 4] / 2 < SPLIT_X, "left", "right")
    images: dict[int, np.ndarray] = {}
    pieces = []  # (start_time, cam, pid, segment rows)
    for cam in ("left", "right"):
        for pid in sorted(set(gt[cam_of == cam, 1].astype(int))):
            for seg in _segments(gt[(cam_of == cam) & (gt[:, 1] == pid)], min_length):
                pieces.append((seg[0, 0] / FPS, cam, pid, seg))
    pieces.sort(key=lambda p: (p[0], p[1], p[2]))
    version = encoder.version if encoder is not None else "none"
    stored = []  # (tid, pid, cam, tracklet, crops frames, vector)
    with IdentityStore(path) as store:
        run_id = store.begin_run("pets-gt-demo")
        for _, cam, pid, seg in pieces:
            frames = seg[:, 0].astype(np.int64)
            tr = Tracklet(cam, int(pid), frames, frames / FPS, seg[:, 2:6].astype(np.float64),
                          np.zeros((0, 1), np.float32))
            pick = np.unique(np.linspace(0, len(seg) - 1, max_crops).round().astype(int))
            crops = []
            for i in pick:
                f = int(frames[i])
                if f not in images:
                    images[f] = read_image(pets_dir / "img1" / f"{f:06d}.jpg")
                crops.append(crop_tlwh(images[f], seg[i, 2:6], min_size=1).copy())
            vec = None
            if encoder is not None:
                vec = unit_mean(np.asarray(encoder.embed_crops(crops), np.float32)).astype(np.float32)
            tid = store.add_tracklet(run_id, tr, vec, version)
            store.add_crops(tid, [int(frames[i]) for i in pick], crops)
            stored.append((tid, int(pid), cam, tr, vec))
        protos = {}
        for pid in sorted({s[1] for s in stored}):
            vecs = [s[4] for s in stored if s[1] == pid and s[4] is not None]
            protos[pid] = unit_mean(np.stack(vecs)).astype(np.float32) if vecs else np.zeros(1, np.float32)
        last: dict[int, tuple[str, float]] = {}
        for tid, pid, cam, tr, vec in stored:
            dist = None if vec is None else float(1.0 - vec @ protos[pid])
            with store.transaction():
                store.new_identity(protos[pid], tr.start_time, cam, global_id=pid, model_version=version)
                store.update_identity(pid, protos[pid], tr.end_time, cam)
                store.assign(tid, pid, dist)
                store.add_event("appear", pid, cam, tr.start_time, {"track_id": pid, "tracklet_id": tid})
                if pid in last and last[pid][0] != cam:
                    store.add_event("handover", pid, cam, tr.start_time + 1e-3,
                                    {"from_cam": last[pid][0], "transit_s": round(tr.start_time - last[pid][1], 3)})
                store.add_event("leave", pid, cam, tr.end_time, {"track_id": pid})
            last[pid] = (cam, tr.end_time)
    return {s[0]: s[1] for s in stored}
