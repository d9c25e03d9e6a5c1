#!/usr/bin/env python
"""Detector cost and accuracy per backend x precision x input size (issue 16, the detector).

For each setting of ``DetectorConfig`` (backend onnxruntime / openvino; precision fp32 / int8, and bf16 on
openvino; input 640 square (today's default) or rectangular 640 / 512 / 416) on the shipped yolov5n ONNX:

* ms/frame with 1 and 2 threads: the median of ``--reps`` calls after warm-up, all settings timed round-robin
  in one run (so load changes hit every row alike): ``detect`` = ``detector.detect([frame])`` end to end
  (letterbox, inference, decode, NMS), ``infer`` = the runtime's forward alone;
* GFLOPs/frame counted from the ONNX graph at that input shape (``onnx_graph.conv_gflops``: 2 x Conv MACs),
  the GFLOP/s reached (from ``infer``) and its share of the CPU's fp32 peak (``--ghz`` x 32 FLOP/cycle/core:
  two 256-bit FMA pipes; x threads). INT8 rows count the same operations (their "share of fp32 peak" can
  pass 100 %: VNNI does more int8 ops per cycle);
* accuracy on PETS09-S2L1 (every ``--stride``-th frame, gt filtered as the tracking evaluation does):
  AP@0.5 over detections down to score 0.01, precision/recall at the operating conf 0.25.

The INT8 model is made from the config (calibration: Market-1501 mosaics, ``tools/quantize_detector.py --market``
makes them; never PETS frames). Writes results.json, results.md and ms_vs_ap.png under --out.

    nice -n 10 .venv/bin/python tools/bench_detector.py [--reps 20] [--stride 2] [--out runs/bench_detector]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np

from pipeline.core.paths import require_shared
from pipeline.detectors import DetectorConfig, build_detector
from pipeline.detectors.geometry import letterbox_shape
from pipeline.detectors.models import dynamic_model
from pipeline.detectors.onnx_graph import conv_gflops
from pipeline.evaluation.detection_ap import detection_scores, detections_as_boxes
from pipeline.mot import MOTSequence

SIZES = [("640 square", 640, False), ("640 rect", 640, True), ("512 rect", 512, True), ("416 rect", 416, True)]
VARIANTS = [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "int8"),
            ("openvino", "bf16")]
FLOP_PER_CYCLE = 32  # fp32, one core: 2 FMA pipes x 8 lanes (256-bit) x 2 (Zen 3/4 AVX2; Zen 4 AVX-512 is 2 x 256)


def cpu_ghz() -> float:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("cpu MHz"):
            return float(line.split(":")[1]) / 1000
    return 2.9


def sgemm_gflops(threads: int, n: int = 2048, reps: int = 7) -> float:
    """The GFLOP/s a plain float32 matrix product (numpy's BLAS) reaches now with ``threads`` threads: what the
    shared machine gives at this moment, a yardstick for the detector's share of the nominal peak."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    times = []
    with threadpool_limits(threads):
        a @ b
        for _ in range(reps):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / float(np.median(times)) / 1e9


def make_cfg(args, weights: Path, backend: str, precision: str, imgsz: int, rect: bool, threads: int | None,
             conf: float = 0.25) -> DetectorConfig:
    return DetectorConfig(kind="onnx", weights=str(weights), backend=backend, precision=precision, imgsz=imgsz,
                          rect=rect, threads=threads, conf=conf, device="cpu",
                          calibration=str(args.calibration) if precision == "int8" else None,
                          model_cache=str(args.cache))


def run_accuracy(args, weights: Path, seq: MOTSequence, key: str, cfg: DetectorConfig) -> dict:
    """Detections at score >= 0.01 on every stride-th frame (cached as a det file), scored against gt."""
    from tqdm import tqdm

    path = args.out / "dets" / f"{key}.txt"
    frames = list(range(1, seq.info.seq_length + 1, args.stride))
    if not path.is_file():
        det = build_detector(cfg)
        rows = []
        for f in tqdm(frames, desc=f"accuracy {key}", unit="fr"):
            for d in det.detect([seq.frame_image(f)])[0]:
                rows.append(f"{f},-1,{d.tlwh[0]:.3f},{d.tlwh[1]:.3f},{d.tlwh[2]:.3f},{d.tlwh[3]:.3f},{d.score:.6f}\n")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_text("".join(rows))
        tmp.replace(path)
    arr = np.loadtxt(path, delimiter=",", ndmin=2)
    dets = detections_as_boxes(arr[:, 0], arr[:, 2:6], arr[:, 6]) if len(arr) else detections_as_boxes(
        np.zeros(0), np.zeros((0, 4)), np.zeros(0))
    gt = seq.gt()
    keep = np.isin(gt.frame, frames)
    gt = type(gt)(**{k: getattr(gt, k)[keep] for k in ("frame", "ids", "tlwh", "conf", "cls", "vis")})
    s = detection_scores(gt, dets, "MOT15", conf=0.25)
    return {"ap50": round(s.ap50, 4), "precision": round(s.precision, 4), "recall": round(s.recall, 4),
            "n_gt": s.n_gt, "n_det": s.n_det, "frames": len(frames)}


def run_timing(args, weights: Path, seq: MOTSequence, settings: list[tuple[str, DetectorConfig]]) -> dict:
    """Round-robin timing: per rep, each setting detects one frame and runs one bare forward."""
    from tqdm import tqdm

    images = [seq.frame_image(f) for f in range(1, seq.info.seq_length + 1, max(1, seq.info.seq_length // 30))][:30]
    dets, blobs = {}, {}
    for key, cfg in settings:
        det = build_detector(cfg)
        lb_img, _ = det.letterbox_image(images[0])
        blobs[key] = np.ascontiguousarray(lb_img[None, ..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
        for img in images[:3]:
            det.detect([img])
        dets[key] = det
    t_detect = {k: [] for k in dets}
    t_infer = {k: [] for k in dets}
    for rep in tqdm(range(args.reps), desc="timing (round-robin)", unit="rep"):
        for key, det in dets.items():
            t0 = time.perf_counter()
            det.detect([images[rep % len(images)]])
            t1 = time.perf_counter()
            det.runtime.run(blobs[key])
            t2 = time.perf_counter()
            t_detect[key].append((t1 - t0) * 1000)
            t_infer[key].append((t2 - t1) * 1000)
    return {k: {"detect_ms": round(float(np.median(t_detect[k])), 2), "infer_ms": round(float(np.median(t_infer[k])), 2),
                "input_hw": list(blobs[k].shape[2:])} for k in dets}


def write_png(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    colors = {"fp32": "tab:blue", "int8": "tab:red", "bf16": "tab:green"}
    markers = {"onnxruntime": "o", "openvino": "s"}
    for r in rows:
        ax.scatter(r["detect_ms_2t"], r["ap50"], c=colors[r["precision"]], marker=markers[r["backend"]], s=60)
        today = r["backend"] == "onnxruntime" and r["precision"] == "fp32" and r["size"] == "640 square"
        label = r["size"] + (" (today's default)" if today else "")
        ax.annotate(label, (r["detect_ms_2t"], r["ap50"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    for p, c in colors.items():
        ax.scatter([], [], c=c, label=p)
    for b, m in markers.items():
        ax.scatter([], [], c="gray", marker=m, label=b)
    ax.set_xlabel("ms / frame, detect() end to end, 2 threads (median; shared 2-core CPU)")
    ax.set_ylabel("AP@0.5, PETS09-S2L1 persons")
    ax.set_title("yolov5n detector: cost vs accuracy per backend x precision x input size")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_md(meta: dict, rows: list[dict], path: Path) -> None:
    lines = [f"# Detector benchmark ({meta['date']}, commit {meta['commit']})", "",
             f"CPU: {meta['cpu']}; fp32 peak {meta['peak_gflops_1t']:.0f} GFLOP/s per core "
             f"({meta['ghz']:.2f} GHz x {FLOP_PER_CYCLE} FLOP/cycle); load average at start {meta['load']}. "
             "Shared machine: absolute times are indicative, compare rows (timed round-robin in one run). "
             f"numpy float32 matmul at that time, GFLOP/s with 1 / 2 threads: start {meta['sgemm_gflops']['start']}, "
             f"end {meta['sgemm_gflops']['end']}.", "",
             f"Accuracy: PETS09-S2L1 every {meta['stride']} frames, AP@0.5 over scores >= 0.01, P/R at conf 0.25.", "",
             "| backend | precision | input | WxH | GFLOPs | detect ms 1t | detect ms 2t | infer ms 2t | GFLOP/s 2t | "
             "% fp32 peak 1t | % fp32 peak 2t | AP@0.5 | P | R |", "|" + "---|" * 14]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['precision']} | {r['size']} | {r['input_hw'][1]}x{r['input_hw'][0]} | "
                     f"{r['gflops']:.2f} | {r['detect_ms_1t']:.1f} | {r['detect_ms_2t']:.1f} | {r['infer_ms_2t']:.1f} | "
                     f"{r['gflops_per_s_2t']:.0f} | {r['peak_share_1t']:.0%} | {r['peak_share_2t']:.0%} | "
                     f"{r['ap50']:.3f} | {r['precision_at_conf']:.3f} | {r['recall_at_conf']:.3f} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench_detector"))
    ap.add_argument("--reps", type=int, default=20, help="timed calls per setting and thread count (median)")
    ap.add_argument("--stride", type=int, default=2, help="accuracy on every N-th PETS frame")
    ap.add_argument("--calibration", type=Path, default=Path("runs/calib/market_mosaics"))
    ap.add_argument("--cache", type=Path, default=Path("runs/detector_models"))
    ap.add_argument("--ghz", type=float, default=None, help="core clock for the peak (default: /proc/cpuinfo)")
    ap.add_argument("--only", default=None, help="comma-separated backend:precision to run (default all)")
    args = ap.parse_args()
    shared = require_shared()
    weights = shared / "weights" / "yolov5n.onnx"
    seq = MOTSequence(shared / "data" / "MOT15" / "train" / "PETS09-S2L1")
    if not any(args.calibration.glob("*.jpg")):
        from pipeline.detectors.calibration import write_market_mosaics
        write_market_mosaics(shared / "data/reid/Market-1501/bounding_box_train", args.calibration, 64)
    variants = VARIANTS if not args.only else [tuple(v.split(":")) for v in args.only.split(",")]
    ghz = args.ghz or cpu_ghz()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "ghz": ghz,
            "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
            "cpu": f"{os.cpu_count()} cores, " + next((l.split(":")[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                                                      if l.startswith("model name")), "?"),
            "peak_gflops_1t": ghz * FLOP_PER_CYCLE, "load": " ".join(f"{x:.2f}" for x in os.getloadavg()), "stride": args.stride}
    dyn = dynamic_model(weights, args.cache)
    h, w = seq.frame_image(1).shape[:2]
    accuracy, settings = {}, []
    for backend, precision in variants:
        for size, imgsz, rect in SIZES:
            key = f"{backend}-{precision}-{size.replace(' ', '')}"
            accuracy[key] = run_accuracy(args, weights, seq, key, make_cfg(args, weights, backend, precision, imgsz, rect, 2, conf=0.01))
            print(key, accuracy[key], flush=True)
            for t in (1, 2):
                settings.append((f"{key}@{t}", make_cfg(args, weights, backend, precision, imgsz, rect, t)))
    sgemm_start = {t: round(sgemm_gflops(t), 1) for t in (1, 2)}
    timing = run_timing(args, weights, seq, settings)
    meta["sgemm_gflops"] = {"start": sgemm_start, "end": {t: round(sgemm_gflops(t), 1) for t in (1, 2)}}
    rows = []
    for backend, precision in variants:
        for size, imgsz, rect in SIZES:
            key = f"{backend}-{precision}-{size.replace(' ', '')}"
            _, _, _, cw, ch = letterbox_shape(h, w, imgsz, 32 if rect else None)
            gflops = conv_gflops(dyn, ch, cw)
            t1, t2 = timing[f"{key}@1"], timing[f"{key}@2"]
            acc = accuracy[key]
            rows.append({"backend": backend, "precision": precision, "size": size, "input_hw": t2["input_hw"],
                         "gflops": round(gflops, 3), "detect_ms_1t": t1["detect_ms"], "detect_ms_2t": t2["detect_ms"],
                         "infer_ms_1t": t1["infer_ms"], "infer_ms_2t": t2["infer_ms"],
                         "gflops_per_s_2t": round(gflops / (t2["infer_ms"] / 1000), 1),
                         "peak_share_1t": round(gflops / (t1["infer_ms"] / 1000) / meta["peak_gflops_1t"], 3),
                         "peak_share_2t": round(gflops / (t2["infer_ms"] / 1000) / (2 * meta["peak_gflops_1t"]), 3),
                         "ap50": acc["ap50"], "precision_at_conf": acc["precision"], "recall_at_conf": acc["recall"],
                         "n_gt": acc["n_gt"], "n_det": acc["n_det"]})
    meta["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    write_md(meta, rows, args.out / "results.md")
    write_png(rows, args.out / "ms_vs_ap.png")
    print((args.out / "results.md").read_text())


if __name__ == "__main__":
    main()
