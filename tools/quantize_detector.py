#!/usr/bin/env python
"""Make the INT8 detector: cut the YOLOv5 ONNX to a dynamic input size, quantise it (onnxruntime QDQ, per-channel
weights, percentile (99.999) ranges, Detect convs fp32) with calibration images, write it. The same file a config with ``precision: int8`` makes
on first use (and caches in ``model_cache``); this tool makes it ahead of time or from another folder.

    .venv/bin/python tools/quantize_detector.py --weights ../shared/weights/yolov5n.onnx \\
        --frames runs/calib/market_mosaics --market 64 --out runs/detector_models/yolov5n.int8.onnx

``--market N``: first write N calibration mosaics of Market-1501 crops (not PETS09-S2L1, the clip the detector is
evaluated on) into --frames (pipeline/detectors/calibration.py). A config then uses the file with
``weights: <out>, precision: int8`` (no calibration needed), or ``calibration: <frames>`` to make it itself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.core.errors import ReidPipelineError
from pipeline.core.paths import require_shared
from pipeline.detectors.calibration import write_market_mosaics
from pipeline.detectors.models import dynamic_model
from pipeline.detectors.quantize import calibration_images, quantize_detector


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, required=True, help="fp32 YOLO ONNX (fixed-size YOLOv5 export or dynamic)")
    ap.add_argument("--frames", type=Path, required=True, help="folder of calibration images")
    ap.add_argument("--out", type=Path, required=True, help="INT8 ONNX file to write")
    ap.add_argument("--count", type=int, default=64, help="calibration images used (evenly spaced; default 64)")
    ap.add_argument("--imgsz", type=int, default=640, help="letterbox long side for calibration (default 640)")
    ap.add_argument("--market", type=int, default=0, metavar="N",
                    help="first write N Market-1501 mosaics into --frames (when it has no images)")
    ap.add_argument("--cache", type=Path, default=Path("runs/detector_models"), help="where the dynamic cut goes")
    args = ap.parse_args(argv)
    try:
        if args.market and not any(args.frames.glob("*.jpg")):
            market = require_shared() / "data" / "reid" / "Market-1501" / "bounding_box_train"
            write_market_mosaics(market, args.frames, args.market)
            print(f"wrote {args.market} Market-1501 mosaics to {args.frames}")
        src = dynamic_model(args.weights, args.cache)
        quantize_detector(src, calibration_images(args.frames, args.count), args.out, args.imgsz)
    except ReidPipelineError as exc:
        print(f"quantize_detector: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} (from {src})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
