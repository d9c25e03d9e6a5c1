"""Build the PETS09-S2L1 yolov5n detection sets of the tracker benchmark (cached under runs/dets/).

    .venv/bin/python tools/make_det_sets.py [--imgsz 640 480] [--list]

yolov5n (../shared/weights/yolov5n.onnx) runs once per input size at score >= 0.1 with NMS deferred; the
candidates are cached in runs/dets/PETS09-S2L1/raw_yolov5n_<imgsz>.npz and every variant of the grid
(score 0.25 / 0.4 / 0.5 x NMS IoU 0.45 / 0.6 x input 640 / 480, plus the original conf 0.1 / NMS 0.45 / 640
set ``yolov5n``) is derived from them (pipeline.mot.bench_sets). The ONNX file has a fixed 640 input: input
480 letterboxes the frame to 480 and pads it to 640 (the network sees people at the 480 scale).
Existing det files are kept (delete one to rebuild it). frcnn and the official det.txt come with MOT15.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.core.paths import require_shared
from pipeline.mot.bench_sets import YOLO_SETS, make_yolo_sets


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--imgsz", type=int, nargs="+", default=[640, 480], help="input sizes to build")
    p.add_argument("--list", action="store_true", help="print the sets and exit")
    a = p.parse_args(argv)
    sets = tuple(s for s in YOLO_SETS if s.imgsz in a.imgsz)
    if a.list:
        for s in sets:
            print(f"{s.name}: conf {s.conf} nms {s.iou} imgsz {s.imgsz}")
        return 0
    shared = require_shared()
    pets = shared / "data" / "MOT15" / "train" / "PETS09-S2L1"
    made = make_yolo_sets(pets, shared / "weights" / "yolov5n.onnx", sets)
    for name, path in made.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
