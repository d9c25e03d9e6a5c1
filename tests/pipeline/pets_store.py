"""Build a small identity store from real PETS09-S2L1 frames and gt boxes (for adaptation tests).

Two virtual cameras: a gt box belongs to ``left`` when its centre x < 384 (half of the 768 px
frame), else to ``right``; a tracklet is a run of consecutive frames of one gt id in one camera.
Every tracklet is stored with its gt id as global id and up to ``max_crops`` evenly spread crops.
No model is involved, so the store is exactly reproducible.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.store import IdentityStore
from pipeline.core.types import Tracklet

FPS = 7.0


def _runs(rows: np.ndarray) -> list[np.ndarray]:
    """Split rows (sorted by frame) where the frame number jumps."""
    cut = np.nonzero(np.diff(rows[:, 0]) > 1)[0] + 1
    return np.split(rows, cut)


def build_pets_store(pets_dir: Path, path: Path, last_frame: int = 200, max_crops: int = 8,
                     min_length: int = 8) -> dict[int, int]:
    """Write the store at ``path``; returns tracklet_id -> gt id."""
    gt = np.loadtxt(pets_dir / "gt" / "gt.txt", delimiter=",")
    gt = gt[(gt[:, 0] <= last_frame) & (gt[:, 6] != 0)]
    cam_of = np.where(gt[:, 2] + gt[:, 4] / 2 < 384, "left", "right")
    images: dict[int, np.ndarray] = {}
    truth: dict[int, int] = {}
    with IdentityStore(path) as store:
        run_id = store.begin_run("pets-gt")
        for cam in ("left", "right"):
            for pid in sorted(set(gt[cam_of == cam, 1].astype(int))):
                rows = gt[(cam_of == cam) & (gt[:, 1] == pid)]
                for seg in _runs(rows[np.argsort(rows[:, 0])]):
                    if len(seg) < min_length:
                        continue
                    frames = seg[:, 0].astype(np.int64)
                    tr = Tracklet(cam, int(pid), frames, frames / FPS, seg[:, 2:6].astype(np.float64),
                                  np.zeros((0, 128), np.float32))
                    tid = store.add_tracklet(run_id, tr, None, "none")
                    store.new_identity(np.zeros(128, np.float32), tr.start_time, cam, global_id=int(pid))
                    store.assign(tid, int(pid))
                    pick = np.unique(np.linspace(0, len(seg) - 1, max_crops).round().astype(int))
                    crops = []
                    for i in pick:
                        f = int(frames[i])
                        if f not in images:
                            images[f] = cv2.imread(str(pets_dir / "img1" / f"{f:06d}.jpg"))
                        x, y, w, h = seg[i, 2:6]
                        crops.append(images[f][max(int(y), 0):int(y + h), max(int(x), 0):int(x + w)].copy())
                    store.add_crops(tid, [int(frames[i]) for i in pick], crops)
                    truth[tid] = int(pid)
    return truth
