"""``reid-pipeline track``: run the tracker on MOTChallenge sequences, one result file each."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "track MOTChallenge sequences from their det/<NAME>.txt detections; write one MOT result file per sequence"

DEFAULT_CONFIG = "default"  # the tracker preset for MOT15 frcnn-like detection files (trackers/presets/)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("seq_dirs", nargs="+", type=Path, metavar="SEQ_DIR", help="sequence folders (with seqinfo.ini)")
    parser.add_argument("--det", default="det", help="detection file name under det/ (default: det -> det/det.txt)")
    parser.add_argument("--out", type=Path, required=True, help="output folder for <sequence>.txt")
    parser.add_argument("--config", default=None,
                        help=f"tracker preset name (yolo, default, acf, ...) or YAML file (default: preset {DEFAULT_CONFIG})")
    parser.add_argument("--reid", default="none",
                        help="appearance: none | default (shipped checkpoint) | imagenet (raw MobileNetV2 baseline) | checkpoint path; needs frames")
    parser.add_argument("--device", default="auto", help="device for the re-id encoder (auto, cpu, cuda)")


def resolve_config(path: str | Path | None):
    """The tracker config ``path`` (a preset name or a YAML file; None: the ``default`` preset), validated."""
    from trackers.config import load_tracker_config

    return load_tracker_config(path if path is not None else DEFAULT_CONFIG)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pipeline.mot import MOTSequence
    from pipeline.mot.tracking import load_encoder, track_sequence, write_run

    config = resolve_config(args.config)
    seqs = [MOTSequence(d) for d in args.seq_dirs]  # all validated before any work
    encoder = load_encoder(args.reid, args.device)
    for seq in tqdm(seqs, desc="track", unit="seq", disable=len(seqs) < 2):
        result = track_sequence(seq, args.det, config, encoder)
        path = write_run(result, args.out)
        print(f"{seq.name}: {len({o.track_id for o in result.outputs})} tracks, {len(result.outputs)} boxes, "
              f"{result.fps:.0f} fps (tracker only) -> {path}")
    return 0
