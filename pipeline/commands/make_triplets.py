"""``reid-pipeline make-triplets``: a re-id dataset (crops, pairs, triplets, tracklets) from MOT gt."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.commands.argtypes import positive_int

HELP = "cut gt pedestrians out of MOTChallenge train sequences into a re-id dataset (seed 000 §4.1)"


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--split needs three numbers like 0.5,0.0,0.5, got {text!r}") from None
    if len(parts) != 3 or min(parts) < 0 or sum(parts) <= 0:
        raise argparse.ArgumentTypeError(f"--split needs three non-negative numbers, got {text!r}")
    return parts  # type: ignore[return-value]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("seq_dirs", nargs="+", type=Path, metavar="SEQ_DIR", help="MOTChallenge sequence folders (with img1/ and gt/)")
    p.add_argument("--out", type=Path, required=True, help="output dataset folder")
    p.add_argument("--min-vis", type=float, default=0.25, help="minimum gt visibility (MOT17 column 9)")
    p.add_argument("--min-height", type=float, default=50.0, help="minimum box height in pixels")
    p.add_argument("--min-width", type=float, default=10.0, help="minimum box width in pixels")
    p.add_argument("--k", type=positive_int, default=10, help="anchor/positive at least k frames apart")
    p.add_argument("--split", type=_fractions, default=(0.5, 0.0, 0.5), help="identity fractions train,val,test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stride", type=positive_int, default=1, help="use every n-th frame")
    p.add_argument("--max-frame", type=int, default=None, help="ignore frames after this one")
    p.add_argument("--size", type=positive_int, nargs=2, default=(128, 64), metavar=("H", "W"), help="crop size")
    p.add_argument("--pairs", type=positive_int, default=2000, help="positive (= negative) test pairs")
    p.add_argument("--triplets", type=positive_int, default=10000, help="training triplets")
    p.add_argument("--same-seq-negatives", action="store_true", help="do not prefer negatives from other sequences")
    p.add_argument("--no-progress", action="store_true")


#: gt whose frames span less than this fraction of the sequence (or of 1..--max-frame) is warned about
MIN_GT_SPAN = 0.5


def gt_span_warning(seq, gt_frames, max_frame: int | None = None) -> str | None:
    """A one-line warning when the gt frames (array-like) of ``seq`` (a MOTSequence) span less than
    :data:`MIN_GT_SPAN` of its frames 1..seqLength (1..``max_frame`` when smaller): the mark of a gt.txt copied
    from another, shorter sequence (every MOT15 / MOT17 train sequence's gt spans all its frames). None when the
    span is fine or there is no gt row."""
    import numpy as np

    frames = np.asarray(gt_frames)
    if frames.size == 0:
        return None
    n = min(seq.info.seq_length, max_frame) if max_frame else seq.info.seq_length
    first, last = int(frames.min()), int(frames.max())
    if last - first + 1 >= MIN_GT_SPAN * n:
        return None
    names = "" if seq.info.name == seq.name else f"; seqinfo.ini names it {seq.info.name!r}, the folder is {seq.name!r}"
    return (f"warning: {seq.gt_path()}: gt spans frames {first}..{last} only, of the sequence's 1..{n}: is it this "
            f"sequence's gt{names}?")


def run(args: argparse.Namespace) -> int:
    """Run the command with owner-only outputs (``reid_models.run_report.private_umask``: 0600 / 0700)."""
    from reid_models.run_report import private_umask

    with private_umask():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import sys

    from pipeline.core.errors import DataError
    from pipeline.mot import MOTSequence
    from reid_models.datasets.mot_builder import BuildConfig, SequenceInput, build_dataset, format_summary
    from reid_models.datasets.selection import SelectionConfig

    seqs = []
    for d in args.seq_dirs:
        s = MOTSequence(d)
        if not s.has_frames():
            raise DataError(d, "sequence has no frames (img1/ missing); the generator needs images")
        gt = s.gt()
        warning = gt_span_warning(s, gt.frame, args.max_frame)
        if warning:
            print(warning, file=sys.stderr)
        seqs.append(SequenceInput(s.name, gt, (s.info.im_width, s.info.im_height), s.frame_image))
    cfg = BuildConfig(
        selection=SelectionConfig(min_vis=args.min_vis, min_height=args.min_height, min_width=args.min_width,
                                  stride=args.stride, max_frame=args.max_frame),
        size=tuple(args.size), k=args.k, split=args.split, seed=args.seed, n_pairs=args.pairs,
        n_triplets=args.triplets, neg_other_seq=not args.same_seq_negatives,
    )
    summary = build_dataset(seqs, args.out, cfg, progress=not args.no_progress)
    print(format_summary(summary))
    print(f"wrote {args.out}")
    for split, counts in summary["splits"].items():  # a split with identities but nothing to learn or score from
        what = "triplets" if split == "train" else "pairs"
        if counts.get("identities", 0) and not counts.get(what, 0):
            print(f"warning: split {split} has {counts['identities']} identities but 0 {what}: no anchor/positive "
                  f"pair is --k {args.k} frames apart (lower --k, or use longer sequences)")
    return 0
