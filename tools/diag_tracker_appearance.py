"""Where does appearance change the tracker's first-pass decisions, and is the change right?

    .venv/bin/python -m tools.diag_tracker_appearance --det-sets yolov5n-640-c40-n60 frcnn [--set k=v ...]

For each PETS09-S2L1 detection set, the set's shipped config with appearance on (plus ``--set`` overrides) is
run with the default re-id encoder (box embeddings from the benchmark cache, runs/bench_mot/emb_cache/). Every
frame, the first pass is also solved with appearance removed (same tracks, same detections); each track whose
match differs is one *decision* appearance made. A decision is judged against the ground truth: every detection
gets the gt id it overlaps most (IoU >= 0.5, one-to-one per frame), every track the gt id most of its earlier
matched detections had. ``right``: appearance gave the track a detection of its own person where motion would
have given another (or none); ``wrong``: the reverse; ``neutral``: neither choice is the track's person.
Prints per set the counts by kind (``swap``: both solutions match the track, to different detections; ``gain``:
only appearance matches it; ``loss``: only motion does) with the IoU distance, cosine distance and the track's
frames since its last match (for a ``loss``: the track that took the box, and its person), and writes the
decisions to ``--json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.core.paths import REPO_ROOT, require_shared
from pipeline.mot.bench_sets import (YOLO_SETS, BoxCachedEncoder, det_sequence, emb_cache_path, make_yolo_sets,
                                     ours_config)


def gt_by_frame(seq) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """frame -> (gt ids (G,), gt tlbr (G, 4)) of the rows the MOT15 evaluation considers (conf flag 1)."""
    from pipeline.core.types import tlwh_to_tlbr

    gt = seq.gt()
    keep = gt.conf > 0
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for f in np.unique(gt.frame[keep]):
        m = keep & (gt.frame == f)
        out[int(f)] = (gt.ids[m], tlwh_to_tlbr(gt.tlwh[m]))
    return out


def label_detections(dets_tlbr: np.ndarray, gt: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """(M, 4) tlbr -> (M,) gt id per detection (one-to-one, IoU >= 0.5), -1 where none."""
    from scipy.optimize import linear_sum_assignment

    from pipeline.core.types import iou_matrix_tlbr

    out = np.full(len(dets_tlbr), -1, dtype=np.int64)
    if gt is None or len(dets_tlbr) == 0 or len(gt[0]) == 0:
        return out
    iou = iou_matrix_tlbr(dets_tlbr, gt[1])
    r, c = linear_sum_assignment(-iou)
    ok = iou[r, c] >= 0.5
    out[r[ok]] = gt[0][c[ok]]
    return out


def make_diag_tracker(config, cam_id: str, frame_rate: float):
    """A Tracker that records, per frame, the first-pass decisions appearance changed."""
    from pipeline.core.types import iou_matrix_tlbr
    from trackers.tracker import Tracker

    class DiagTracker(Tracker):
        def __init__(self) -> None:
            super().__init__(config, cam_id=cam_id, frame_rate=frame_rate)
            self.labels = np.zeros(0, dtype=np.int64)  # gt id per row of the caller's detection list (this frame)
            self.history: dict[int, Counter] = {}  # track id -> gt ids of its matched detections
            self.decisions: list[dict] = []

        def _first_pass(self, idx, dets):
            fused = super()._first_pass(idx, dets)
            if dets.embeddings is None or len(fused[0]) + len(idx) == 0:
                return fused
            motion = super()._first_pass(idx, dataclasses.replace(dets, embeddings=None))
            f_map = {int(r): int(c) for r, c in fused[0]}
            m_map = {int(r): int(c) for r, c in motion[0]}
            iou_d = 1.0 - iou_matrix_tlbr(self._pred_tlbr[idx], dets.tlbr)
            for r in sorted(set(f_map) | set(m_map)):
                a, b = f_map.get(r), m_map.get(r)
                if a == b:
                    continue
                t = self.tracks[idx[r]]
                hist = self.history.get(t.track_id)
                own = hist.most_common(1)[0][0] if hist else -1
                ga = int(self.labels[dets.index[a]]) if a is not None else -2
                gb = int(self.labels[dets.index[b]]) if b is not None else -2
                verdict = "right" if (ga == own and gb != own) else "wrong" if (gb == own and ga != own) else "neutral"
                kind = "swap" if a is not None and b is not None else "gain" if a is not None else "loss"
                taker = next((q for q, c in f_map.items() if b is not None and c == b), None) if a is None else None
                t_own, t_since = -1, -1
                if taker is not None:
                    tt = self.tracks[idx[taker]]
                    th = self.history.get(tt.track_id)
                    t_own, t_since = (th.most_common(1)[0][0] if th else -1), int(tt.time_since_update)
                cos_a = float(1.0 - t.feature @ dets.embeddings[a]) if a is not None and t.feature is not None else None
                self.decisions.append(dict(
                    frame=self.frame_id, track=t.track_id, own=int(own), kind=kind, verdict=verdict,
                    since=int(t.time_since_update), det_app=a, det_motion=b, gt_app=ga, gt_motion=gb,
                    iou_d_app=None if a is None else round(float(iou_d[r, a]), 3),
                    iou_d_motion=None if b is None else round(float(iou_d[r, b]), 3),
                    cos_app=None if cos_a is None else round(cos_a, 3),
                    taken_by=None if taker is None else self.tracks[idx[taker]].track_id, taker_own=t_own,
                    taker_since=t_since))
            return fused

        def _apply(self, idx, dets, matches, matched):
            super()._apply(idx, dets, matches, matched)
            for r, c in matches:
                g = int(self.labels[dets.index[c]])
                if g >= 0:
                    self.history.setdefault(self.tracks[idx[r]].track_id, Counter())[g] += 1

    return DiagTracker()


def run_set(seq, det_name: str, config, encoder) -> list[dict]:
    from pipeline.core.types import tlwh_to_tlbr
    from pipeline.mot import detections_by_frame

    by_frame = detections_by_frame(seq.det(det_name))
    gts = gt_by_frame(seq)
    tracker = make_diag_tracker(config, seq.name, seq.info.frame_rate)
    for frame in range(1, seq.info.seq_length + 1):
        dets = by_frame.get(frame, [])
        if dets:
            emb = encoder.embed_boxes(seq.frame_image(frame), np.stack([d.tlwh for d in dets]))
            for d, e in zip(dets, emb):
                d.embedding = e
            tracker.labels = label_detections(tlwh_to_tlbr(np.stack([d.tlwh for d in dets])), gts.get(frame))
        else:
            tracker.labels = np.zeros(0, dtype=np.int64)
        tracker.update(dets, None)
    return tracker.decisions


def main(argv: list[str] | None = None) -> int:
    from pipeline.mot import MOTSequence
    from pipeline.mot.tracking import load_encoder
    from tools.tune_tracker import override

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--det-sets", nargs="+", required=True, help="PETS09 det set names (frcnn, det, yolov5n...)")
    p.add_argument("--set", nargs="*", default=[], metavar="section.key=value", help="config overrides")
    p.add_argument("--json", type=Path, default=REPO_ROOT / "runs" / "diag_appearance" / "decisions.json")
    a = p.parse_args(argv)
    shared = require_shared()
    pets = shared / "data" / "MOT15" / "train" / "PETS09-S2L1"
    yolo = tuple(s for s in YOLO_SETS if s.name in a.det_sets)
    files = make_yolo_sets(pets, shared / "weights" / "yolov5n.onnx", yolo) if yolo else {}
    inner = load_encoder("default", "cpu")
    encoder = BoxCachedEncoder(inner, emb_cache_path(inner))
    out: dict[str, list[dict]] = {}
    for name in a.det_sets:
        seq_dir = det_sequence(pets, REPO_ROOT / "runs" / "bench_mot", name, files[name]) if name in files else pets
        config = override(ours_config("ours_reid", name)[0], a.set)
        dec = run_set(MOTSequence(seq_dir), name, config, encoder)
        encoder.save()
        out[name] = dec
        tally = Counter((d["kind"], d["verdict"]) for d in dec)
        print(f"{name}: {len(dec)} decisions changed by appearance: "
              + ", ".join(f"{k}/{v} {n}" for (k, v), n in sorted(tally.items())))
        for d in dec:
            if d["verdict"] != "neutral":
                print(f"  f{d['frame']:4d} track {d['track']:3d} (gt {d['own']:3d}, missed {d['since']:2d}) "
                      f"{d['kind']:4s} "
                      f"{d['verdict']:5s} app->gt {d['gt_app']:3d} iou_d {d['iou_d_app']} cos {d['cos_app']} | "
                      f"motion->gt {d['gt_motion']:3d} iou_d {d['iou_d_motion']}"
                      + (f" | taken by track {d['taken_by']} (gt {d['taker_own']}, missed {d['taker_since']})"
                         if d["taken_by"] is not None else ""))
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
