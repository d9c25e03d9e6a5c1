#!/usr/bin/env python
"""OpenVINO detector: n cameras' frames per call run one after another, as one batch-n forward, or as parallel
infer requests (``detector.streams``), fp32 and bf16, side by side (docs/speed.md, "streams").

The model is the dynamic-size cut of yolov5n (``detector.rect``), the frames the first ``--cameras`` PETS09-S2L1
frames letterboxed to 640 on their aspect (640x480). Each mode is timed round-robin ``--reps`` times after two
warm-up calls; wall and process CPU ms per call (median) are printed as a Markdown table::

    .venv/bin/python -m tools.bench_ov_streams [--cameras 2] [--reps 15] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=2, help="frames per detector call")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2, help="INFERENCE_NUM_THREADS")
    ap.add_argument("--imgsz", type=int, default=640)
    args = ap.parse_args(argv)

    from pipeline.core.paths import require_shared
    from pipeline.detectors.config import DetectorConfig
    from pipeline.detectors.geometry import letterbox
    from pipeline.detectors.models import resolve_model
    from pipeline.mot import MOTSequence
    from pipeline.core.openvino_cpu import import_openvino

    ov = import_openvino("detector.backend")
    shared = require_shared()
    seq = MOTSequence(shared / "data" / "MOT15" / "train" / "PETS09-S2L1")
    imgs = [letterbox(seq.frame_image(1 + 100 * i), args.imgsz, stride=32)[0] for i in range(args.cameras)]
    blob = np.ascontiguousarray(np.stack(imgs)[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
    path = resolve_model(DetectorConfig(kind="onnx", weights=str(shared / "weights" / "yolov5n.onnx"), rect=True,
                                        imgsz=args.imgsz))
    core = ov.Core()
    model = core.read_model(str(path))
    n = args.cameras

    def compiled(batch: int, cfg: dict):
        m = model.clone()
        m.reshape({0: ov.PartialShape([batch] + list(blob.shape[1:]))})
        return core.compile_model(m, "CPU", {**cfg, "INFERENCE_NUM_THREADS": args.threads})

    print(f"| precision | mode | wall ms per call of {n} frames | CPU ms per call |\n|---|---|---:|---:|")
    for prec in ("f32", "bf16"):
        lat = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": prec}
        one = compiled(1, lat).create_infer_request()
        batch = compiled(n, lat).create_infer_request()
        queue = ov.AsyncInferQueue(compiled(1, {**lat, "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": n}), n)

        def sequential():
            for i in range(n):
                one.infer({0: blob[i:i + 1]})

        def batched():
            batch.infer({0: blob})

        def parallel():
            for i in range(n):
                queue.start_async({0: blob[i:i + 1]})
            queue.wait_all()

        modes = {"one after another (streams 1)": sequential, f"batch-{n} forward": batched,
                 f"{n} parallel requests (streams {n})": parallel}
        for fn in modes.values():
            fn(), fn()
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in modes}
        for _ in range(args.reps):
            for k, fn in modes.items():
                c0, t0 = time.process_time(), time.perf_counter()
                fn()
                times[k].append((time.perf_counter() - t0, time.process_time() - c0))
        for k, v in times.items():
            a = np.array(v)
            print(f"| {prec} | {k} | {1000 * np.median(a[:, 0]):.1f} | {1000 * np.median(a[:, 1]):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
