#!/usr/bin/env python
"""Detection stride on MOT det files, tracker only (no detector cost): how much MOTA/IDF1 a stride costs.

Feeds ``det/<name>.txt`` to the Tracker on every detected frame of the schedule and calls
``Tracker.predict_only`` on the others (pipeline/runner/detect_schedule.py decides which, as in the
runner), then scores with the project's evaluator. Used to design the stride's output rules and the
adaptive thresholds on MOT15 train sequences other than PETS09-S2L1 (the speed benchmark's clip)::

    .venv/bin/python -m tools.sweep_detect_stride --det frcnn --config trackers/presets/default.yaml \
        --exclude PETS09-S2L1 --strides 1,2,3,adaptive
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.camconfig import ScheduleSettings
from pipeline.core.paths import REPO_ROOT, require_shared
from pipeline.evaluation.sequences import evaluate
from pipeline.mot import detections_by_frame, read_mot_file
from pipeline.mot.sequence import find_sequences
from pipeline.runner.detect_schedule import CameraSchedule
from trackers.config import load_tracker_config
from trackers.tracker import Tracker


def track(seq, det: str, config, settings: ScheduleSettings) -> tuple[list, float]:
    by_frame = detections_by_frame(seq.det(det))
    trk = Tracker(config, cam_id=seq.name, frame_rate=seq.info.frame_rate)
    sch = CameraSchedule(settings, seq.info.frame_rate)
    hw = (seq.info.im_height, seq.info.im_width)
    outs = []
    for f in range(1, seq.info.seq_length + 1):
        if sch.due():
            outs += trk.update(by_frame.get(f, []))
            sch.detected(trk, hw)
        else:
            outs += trk.predict_only()
            sch.predicted()
    return outs, sch.detected_frames / seq.info.seq_length


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=None, help="MOT15/train (default: ../shared/data/MOT15/train)")
    ap.add_argument("--det", default="frcnn")
    ap.add_argument("--config", default="default", help="tracker preset name or YAML file")
    ap.add_argument("--exclude", default="PETS09-S2L1")
    ap.add_argument("--strides", default="1,2,3,adaptive")
    ap.add_argument("--max-every", type=int, default=3)
    ap.add_argument("--busy-every", type=int, default=2)
    ap.add_argument("--max-gap-s", type=float, default=None, help="schedule.max_gap_s")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "sweep_detect_stride")
    args = ap.parse_args(argv)
    from pipeline.mot import write_mot_results

    root = args.root or require_shared() / "data" / "MOT15" / "train"
    seqs = [s for s in find_sequences(root, args.det) if s.name not in args.exclude.split(",")]
    config = load_tracker_config(args.config)
    res = {}
    for stride in args.strides.split(","):
        every = stride if stride == "adaptive" else int(stride)
        settings = ScheduleSettings(detect_every=every, max_every=args.max_every, busy_every=args.busy_every,
                                    max_gap_s=args.max_gap_s)
        out = args.out / f"stride_{stride}"
        pairs, shares = [], []
        for seq in seqs:
            outs, share = track(seq, args.det, config, settings)
            shares.append(share)
            write_mot_results(out / f"{seq.name}.txt", outs)
            pairs.append((seq.name, read_mot_file(seq.gt_path(), "gt"), read_mot_file(out / f"{seq.name}.txt", "result")))
        rep = evaluate(pairs, benchmark="MOT15", workers=1, hota=False)
        ov = rep.overall
        res[stride] = {"MOTA": round(ov["MOTA"], 2), "IDF1": round(ov["IDF1"], 2), "IDSW": ov["IDSW"],
                       "detected": round(sum(shares) / len(shares), 3),
                       "per_seq": {k: round(v["MOTA"], 1) for k, v in rep.per_sequence.items()}}
        print(stride, json.dumps(res[stride]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
