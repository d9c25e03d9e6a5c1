"""``reid-pipeline benchmark mot``: track every sequence with det/<NAME>.txt under a root, evaluate, time."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "benchmarks: 'mot' tracks and evaluates all MOTChallenge sequences under a root, with tracker fps"

_BENCHMARKS = ("MOT15", "MOT16", "MOT17", "MOT20")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCH")
    sub.required = True
    p = sub.add_parser("mot", help="track + evaluate MOTChallenge sequences", description=_mot_doc())
    p.add_argument("--root", type=Path, required=True, help="folder of sequences (e.g. ../shared/data/MOT15/train)")
    p.add_argument("--det", default="det", help="detection file name under det/ (e.g. frcnn, det)")
    p.add_argument("--config", default=None,
                   help="tracker preset name (yolo, default, acf, ...), YAML file, or auto (the default): per sequence "
                        "the preset its detection scores call for")
    p.add_argument("--reid", default="none", help="none | default | imagenet | checkpoint path (sequences without frames fail)")
    p.add_argument("--device", default="auto", help="device for the re-id encoder")
    p.add_argument("--benchmark", choices=_BENCHMARKS, default=None, type=str.upper,
                   help="evaluation conventions (default: guessed from the root path, else MOT17)")
    p.add_argument("--clear", choices=["motmetrics", "trackeval"], default="motmetrics",
                   help="what counts CLEAR-MOT (MOTA, IDSW, FP, FN, ...): motmetrics (default) or TrackEval's own "
                        "CLEAR, i.e. exactly the official figures (docs/evaluation.md)")
    p.add_argument("--out", type=Path, default=None, help="also keep the result files here (default: runs/benchmark/<det>)")
    p.add_argument("--json", type=Path, default=None, help="write metrics, per-sequence fps and config here")
    p.add_argument("--seqs", nargs="*", default=None, help="only these sequence names")


def _mot_doc() -> str:
    return ("Track all sequences under --root that have det/<--det>.txt, evaluate them with the project's "
            "evaluator, print the table and the tracker-only frames per second.")


def run_mot(args: argparse.Namespace) -> dict:
    """Track, write, evaluate; returns the JSON-able summary."""
    from tqdm import tqdm

    from pipeline.commands.track import config_for, resolve_config
    from pipeline.core.errors import DataError
    from pipeline.evaluation import evaluate
    from pipeline.evaluation.dirs import choose_benchmark
    from pipeline.mot import find_sequences, read_mot_file
    from pipeline.mot.boxes import check_unique_ids
    from pipeline.mot.tracking import load_encoder, track_sequence, write_run

    config = resolve_config(args.config)
    seqs = find_sequences(args.root, det=args.det)
    if args.seqs:
        unknown = sorted(set(args.seqs) - {s.name for s in seqs})
        if unknown:
            raise DataError(args.root, f"--seqs {', '.join(unknown)}: no such sequence with det/{args.det}.txt "
                                       f"(there are: {', '.join(s.name for s in seqs)})")
        seqs = [s for s in seqs if s.name in set(args.seqs)]
    if not seqs:
        raise DataError(args.root, f"no sequences with det/{args.det}.txt")
    bench, rules = choose_benchmark(args.root, args.benchmark)
    print(rules)
    gts = {}
    for seq in seqs:  # every gt checked before any tracking: a bad file fails in seconds, not after the run
        gts[seq.name] = read_mot_file(seq.gt_path(), "gt", max_frame=seq.info.seq_length)
        check_unique_ids(seq.gt_path(), gts[seq.name], "gt")
    out_dir = args.out or (Path("runs") / "benchmark" / args.det)
    encoder = load_encoder(args.reid, args.device)
    pairs, fps, frames, seconds = [], {}, 0, 0.0
    presets: dict[str, str] = {}
    for seq in tqdm(seqs, desc=f"benchmark {args.det}", unit="seq"):
        seq_config, preset = config_for(seq, args.det, config)
        if preset is not None:
            presets[seq.name] = preset
        result = track_sequence(seq, args.det, seq_config, encoder, check_scores=preset is None)
        path = write_run(result, out_dir)
        pairs.append((seq.name, gts[seq.name], read_mot_file(path, "result")))
        fps[seq.name] = result.fps
        frames += result.n_frames
        seconds += result.tracker_seconds
    report = evaluate(pairs, benchmark=bench, clear=args.clear)
    overall_fps = frames / seconds if seconds > 0 else float("inf")
    return {"report": report, "fps": fps, "overall_fps": overall_fps, "frames": frames, "benchmark": bench,
            "det": args.det, "results_dir": str(out_dir),
            "config": config.model_dump(mode="json") if config is not None else {"auto": presets}}


def run(args: argparse.Namespace) -> int:
    summary = run_mot(args)
    report = summary.pop("report")
    print(report.table())
    for name, f in summary["fps"].items():
        print(f"{name}: {f:.0f} fps (tracker only)")
    print(f"OVERALL: {summary['overall_fps']:.0f} fps (tracker only, {summary['frames']} frames)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        data = {**report.to_json(), **summary}
        args.json.write_text(json.dumps(data, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0
