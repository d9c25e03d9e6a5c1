#!/usr/bin/env python
"""How the INT8 detector's quantisation settings were chosen: agreement with the fp32 detector (rect 640) on 16
HELD-OUT Market-1501 mosaics (seed 1; calibration uses the 64 of seed 0), never on PETS09-S2L1 (the evaluation clip).
Per setting: the share of fp32 boxes matched by an INT8 box at IoU > 0.9, the INT8 box count, the median IoU.

    .venv/bin/python tools/bench_int8_settings.py      # after tools/quantize_detector.py ... --market 64
"""
import json
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.core.paths import require_shared
from pipeline.core.types import iou_matrix_tlbr
from pipeline.detectors import DetectorConfig, build_detector
from pipeline.detectors.calibration import write_market_mosaics
from pipeline.detectors.models import dynamic_model
from pipeline.detectors.quantize import calibration_images, quantize_detector

OUT = Path("runs/bench_int8_settings")
shared = require_shared()
held = Path("runs/calib/heldout_mosaics")
if not held.is_dir():
    write_market_mosaics(shared / "data/reid/Market-1501/bounding_box_train", held, 16, seed=1)
imgs = [cv2.imread(str(p)) for p in sorted(held.glob("*.jpg"))]
weights = shared / "weights/yolov5n.onnx"
src = dynamic_model(weights, Path("runs/detector_models"))
ref = build_detector(DetectorConfig(kind="onnx", weights=str(weights), rect=True)).detect(imgs)
cal = calibration_images(Path("runs/calib/market_mosaics"), 64)
rows = []
for method, keep in [("minmax", False), ("minmax", True), ("percentile", False), ("percentile", True), ("entropy", True)]:
    out = OUT / f"q_{method}_{'headsfp32' if keep else 'all'}.onnx"
    if not out.is_file():
        quantize_detector(src, cal, out, 640, method, keep)
    dets = build_detector(DetectorConfig(kind="onnx", weights=str(out), precision="int8", rect=True)).detect(imgs)
    matched = total = n_int8 = 0
    ious: list[float] = []
    for a, b in zip(ref, dets):
        A = np.array([x.tlbr for x in a]).reshape(-1, 4)
        B = np.array([x.tlbr for x in b]).reshape(-1, 4)
        iou = iou_matrix_tlbr(A, B)
        r, c = linear_sum_assignment(-iou)
        ious += list(iou[r, c]); matched += int((iou[r, c] > 0.9).sum()); total += len(A); n_int8 += len(B)
    rows.append({"method": method, "detect_convs_fp32": keep, "matched_iou_0.9": round(matched / total, 3),
                 "fp32_boxes": total, "int8_boxes": n_int8, "median_iou": round(float(np.median(ious)), 3)})
    print(rows[-1], flush=True)
(OUT / "results.json").write_text(json.dumps(rows, indent=1))
