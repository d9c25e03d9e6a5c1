"""Run ONE peer tracker on one sequence's detections; write a MOTChallenge result file + timing JSON.

Runs inside ``.venv-peers`` (its own NumPy), called by tools/bench_mot.py as a subprocess:

    .venv-peers/bin/python tools/peers/run_peer.py --tracker boxmot_bytetrack --det det.txt \
        --frames 795 --fps 7 --width 768 --height 576 [--img-dir img1 --img-ext .jpg] \
        [--score-scale 100] --out result.txt
    .venv-peers/bin/python tools/peers/run_peer.py --jobs jobs.json   # a JSON list of such argument lists

Every frame 1..frames is fed (also frames without detections). Detection scores are divided by
``--score-scale`` and clipped to [0, 1] (boxmot rejects others). Only time inside the tracker's
update call counts (deep-sort-realtime's update includes its embedder: reported as such).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def load_dets(path: Path, scale: float) -> dict[int, np.ndarray]:
    """det file -> {frame: (N, 5) x1, y1, x2, y2, score in [0, 1]}."""
    rows = np.loadtxt(path, delimiter=",", ndmin=2) if path.stat().st_size else np.zeros((0, 10))
    out: dict[int, np.ndarray] = {}
    for f in np.unique(rows[:, 0]).astype(int):
        r = rows[rows[:, 0] == f]
        tlbr = np.c_[r[:, 2], r[:, 3], r[:, 2] + r[:, 4], r[:, 3] + r[:, 5]]
        out[int(f)] = np.c_[tlbr, np.clip(r[:, 6] / scale, 0.0, 1.0)]
    return out


class BoxmotPeer:
    """boxmot ByteTrack / OcSort / BotSort(no re-id), Python class defaults except the frame rate."""

    def __init__(self, name: str, fps: float) -> None:
        import inspect

        import importlib

        import boxmot

        cls, mod = {"boxmot_bytetrack": ("ByteTrack", "bytetrack.bytetrack"), "boxmot_ocsort": ("OcSort", "ocsort.ocsort"),
                    "boxmot_botsort": ("BotSort", "botsort.botsort")}[name]
        ctor = getattr(boxmot, cls, None) or getattr(importlib.import_module(f"boxmot.trackers.{mod}"), cls)
        params = inspect.signature(ctor).parameters
        kw: dict = {}
        if "frame_rate" in params:
            kw["frame_rate"] = int(round(fps))
        if cls == "BotSort":
            for key, val in (("use_embeddings", False), ("with_reid", False), ("reid_weights", None),
                             ("device", "cpu"), ("half", False)):
                if key in params:
                    kw[key] = val
        self.settings = {"class": f"boxmot.{cls}", "kwargs": {k: str(v) for k, v in kw.items()},
                         "version": getattr(boxmot, "__version__", "?")}
        self.tracker = ctor(**kw)

    def update(self, dets: np.ndarray, image: np.ndarray) -> list[tuple[int, np.ndarray, float]]:
        d6 = np.c_[dets[:, :5], np.zeros(len(dets))] if len(dets) else np.zeros((0, 6))
        out = np.asarray(self.tracker.update(d6, image))
        if out.size == 0:
            return []
        return [(int(r[4]), r[:4], float(r[5])) for r in out.reshape(len(out), -1)]


class SupervisionPeer:
    """supervision 0.30.9 ``sv.ByteTrack`` with its defaults and the real frame rate."""

    def __init__(self, fps: float) -> None:
        import supervision as sv

        self.sv = sv
        self.tracker = sv.ByteTrack(frame_rate=int(round(fps)))
        self.settings = {"class": "supervision.ByteTrack", "kwargs": {"frame_rate": int(round(fps))},
                         "version": sv.__version__}

    def update(self, dets: np.ndarray, image: np.ndarray):
        det = self.sv.Detections(xyxy=dets[:, :4].astype(np.float32).reshape(-1, 4),
                                 confidence=dets[:, 4].astype(np.float32), class_id=np.zeros(len(dets), int))
        out = self.tracker.update_with_detections(det)
        return [(int(t), b, float(c)) for b, t, c in zip(out.xyxy, out.tracker_id, out.confidence) if t >= 0]


class NorfairPeer:
    """norfair with the settings of norfair's own MOTChallenge demo (see ../shared/PEERS.md)."""

    def __init__(self, fps: float) -> None:
        import norfair
        from norfair.filter import FilterPyKalmanFilterFactory

        self.norfair = norfair
        kw = dict(distance_function="iou", distance_threshold=0.9, detection_threshold=0.5,
                  hit_counter_max=8, pointwise_hit_counter_max=3)
        self.tracker = norfair.Tracker(filter_factory=FilterPyKalmanFilterFactory(), **kw)
        self.settings = {"class": "norfair.Tracker", "kwargs": kw, "version": norfair.__version__}

    def update(self, dets: np.ndarray, image: np.ndarray):
        nd = [self.norfair.Detection(points=d[:4].reshape(2, 2), scores=np.array([d[4], d[4]])) for d in dets]
        objs = self.tracker.update(detections=nd)
        return [(int(o.id), o.estimate.reshape(-1), 1.0) for o in objs]


class DeepSortPeer:
    """deep-sort-realtime with its bundled MobileNetV2 embedder; confirmed tracks updated this frame only."""

    def __init__(self, fps: float) -> None:
        from deep_sort_realtime.deepsort_tracker import DeepSort

        kw = dict(embedder="mobilenet", embedder_gpu=False, half=False, bgr=True)
        self.tracker = DeepSort(**kw)
        self.settings = {"class": "deep_sort_realtime.DeepSort", "kwargs": kw,
                         "write": "is_confirmed() and time_since_update <= 1, KF box (deep_sort_app)"}

    def update(self, dets: np.ndarray, image: np.ndarray):
        raw = [([float(d[0]), float(d[1]), float(d[2] - d[0]), float(d[3] - d[1])], float(d[4]), 0) for d in dets]
        tracks = self.tracker.update_tracks(raw, frame=image)
        return [(int(t.track_id), np.asarray(t.to_ltrb(), float), 1.0) for t in tracks
                if t.is_confirmed() and t.time_since_update <= 1]


def build(name: str, fps: float):
    if name.startswith("boxmot_"):
        return BoxmotPeer(name, fps)
    return {"supervision_bytetrack": SupervisionPeer, "norfair": NorfairPeer, "deepsort": DeepSortPeer}[name](fps)


def run_one(a: argparse.Namespace) -> dict:
    """Track one sequence with a fresh tracker; writes the result file and its timing JSON."""
    import cv2

    peer = build(a.tracker, a.fps)
    dets = load_dets(a.det, a.score_scale)
    blank = np.zeros((a.height, a.width, 3), np.uint8)
    rows, seconds = [], 0.0
    video = cv2.VideoCapture(str(a.video)) if a.video else None  # frame f = the video's f-th frame
    for f in range(1, a.frames + 1):
        if video is not None:
            ok, image = video.read()
            image = image if ok else blank
        else:
            image = cv2.imread(str(a.img_dir / f"{f:06d}{a.img_ext}")) if a.img_dir else blank
        d = dets.get(f, np.zeros((0, 5)))
        t0 = time.perf_counter()
        out = peer.update(d, image)
        seconds += time.perf_counter() - t0
        for tid, tlbr, score in out:
            x1, y1, x2, y2 = (float(v) for v in tlbr[:4])
            if not (x2 > x1 and y2 > y1):   # degenerate predicted boxes (norfair estimates can invert)
                continue
            rows.append(f"{f},{tid + a.id_offset},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{score:.4f},-1,-1,-1\n")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("".join(rows))
    info = {"tracker": a.tracker, "frames": a.frames, "tracker_seconds": seconds,
            "fps": a.frames / seconds if seconds > 0 else None, "settings": peer.settings}
    a.out.with_suffix(".json").write_text(json.dumps(info, indent=1, default=str))
    return info


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracker", required=True)
    p.add_argument("--det", type=Path, required=True)
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--fps", type=float, required=True)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--img-dir", type=Path, default=None)
    p.add_argument("--img-ext", default=".jpg")
    p.add_argument("--video", type=Path, default=None, help="read the frames from this video instead of --img-dir")
    p.add_argument("--id-offset", type=int, default=0, help="added to every track id written (one id space per camera)")
    p.add_argument("--score-scale", type=float, default=1.0)
    p.add_argument("--out", type=Path, required=True)
    return p


def main() -> int:
    # --jobs FILE: a JSON list of argument lists (as above), run one after another in this process, so the
    # peer libraries (boxmot imports torch) are imported once for many sequences
    if len(sys.argv) == 3 and sys.argv[1] == "--jobs":
        for argv in json.loads(Path(sys.argv[2]).read_text()):
            info = run_one(parser().parse_args(argv))
            print(json.dumps({"out": argv[argv.index("--out") + 1], "fps": info["fps"]}), file=sys.stderr, flush=True)
        return 0
    info = run_one(parser().parse_args())
    print(json.dumps({"fps": info["fps"]}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
