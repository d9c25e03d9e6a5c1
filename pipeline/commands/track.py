"""``reid-pipeline track``: run the tracker on MOTChallenge sequences, one result file each."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "track MOTChallenge sequences from their det/<NAME>.txt detections; write one MOT result file per sequence"

DEFAULT_CONFIG = "auto"  # the preset each detection file's scores call for (trackers.presets.choose_preset)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("seq_dirs", nargs="+", type=Path, metavar="SEQ_DIR", help="sequence folders (with seqinfo.ini)")
    parser.add_argument("--det", default="det", help="detection file name under det/ (default: det -> det/det.txt)")
    parser.add_argument("--out", type=Path, required=True, help="output folder for <sequence>.txt")
    parser.add_argument("--config", default=None,
                        help="tracker preset name (yolo, default, acf, ...), YAML file, or auto (the default): per "
                             "sequence the preset its detection scores call for (ACF-like, FRCNN-like or YOLO-like)")
    parser.add_argument("--reid", default="none",
                        help="appearance: none | default (shipped checkpoint) | imagenet (raw MobileNetV2 baseline) | checkpoint path; needs frames")
    parser.add_argument("--device", default="auto", help="device for the re-id encoder (auto, cpu, cuda)")


def resolve_config(path: str | Path | None):
    """The tracker config ``path`` (a preset name or a YAML file), validated; None for ``auto`` (and for None, the
    default): each sequence's config then comes from :func:`config_for`."""
    from trackers.config import load_tracker_config

    spec = path if path is not None else DEFAULT_CONFIG
    return None if str(spec) == "auto" else load_tracker_config(spec)


def config_for(seq, det: str, config):
    """(config, preset name or None): ``config`` itself, or with ``auto`` (None) the preset that ``seq``'s
    ``det/<det>.txt`` scores call for, with the score range they call for
    (:func:`trackers.config.config_for_scores`), said in one line."""
    from trackers.config import config_for_scores

    if config is not None:
        return config, None
    chosen, choice = config_for_scores(seq.det(det).conf)
    print(f"{seq.name}: tracker preset {choice.name} ({choice.reason}; --config names another)")
    return chosen, choice.name


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pipeline.mot import MOTSequence
    from pipeline.mot.tracking import load_encoder, track_sequence, write_run

    from pipeline.core.errors import ConfigError

    config = resolve_config(args.config)
    seqs = [MOTSequence(d) for d in args.seq_dirs]  # all validated before any work
    seen: dict[str, Path] = {}
    for seq in seqs:  # one result file per name: a second folder of the same name would overwrite the first
        if seq.name in seen and seen[seq.name].resolve() != seq.seq_dir.resolve():
            raise ConfigError(f"two sequence folders named {seq.name!r} ({seen[seq.name]}, {seq.seq_dir}) would "
                              f"write the same {args.out / (seq.name + '.txt')}; track them into different --out folders")
        seen[seq.name] = seq.seq_dir
    encoder = load_encoder(args.reid, args.device)
    for seq in tqdm(seqs, desc="track", unit="seq", disable=len(seqs) < 2):
        seq_config, preset = config_for(seq, args.det, config)
        result = track_sequence(seq, args.det, seq_config, encoder, check_scores=preset is None)
        path = write_run(result, args.out)
        print(f"{seq.name}: {len({o.track_id for o in result.outputs})} tracks, {len(result.outputs)} boxes, "
              f"{result.fps:.0f} fps (tracker only) -> {path}")
    return 0
