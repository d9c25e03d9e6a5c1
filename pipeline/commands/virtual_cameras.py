"""``reid-pipeline virtual-cameras SEQ_DIR --out DIR``: cut one MOTChallenge sequence into virtual cameras."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.commands.argtypes import unit_fraction
from pipeline.core.errors import ConfigError
from pipeline.virtual_cameras import LAYOUTS

HELP = "cut a MOTChallenge sequence into virtual cameras (regions, time windows, an overlapping pair) with gt"


def _frame_range(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        a, b = text.split(":")
        return int(a), int(b)
    except ValueError:
        raise ConfigError(f"--frames: expected FIRST:LAST (1-based, inclusive), got {text!r}") from None


def _splits(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--splits: expected comma-separated fractions, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("seq_dir", type=Path, help="MOTChallenge sequence folder (seqinfo.ini, gt/, img1/)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--layout", default="two-regions", choices=list(LAYOUTS))
    parser.add_argument("--gap", type=float, default=0.1,
                        help="blind gap between cameras: fraction of the width/height (regions) or length (time)")
    parser.add_argument("--cams", type=int, default=2,
                        help="time windows (time-windows, regions-windows) or columns (overlap)")
    parser.add_argument("--time-gap", type=float, default=0.05,
                        help="regions-windows: pause between recording windows (fraction of the length)")
    parser.add_argument("--splits", default=None,
                        help="regions-windows: where the pauses are centred, comma-separated fractions "
                             "(default: evenly spaced)")
    parser.add_argument("--overlap", type=float, default=1 / 12,
                        help="overlap: pixels col1 and col2 share (fraction of the width)")
    parser.add_argument("--frames", default=None, help="source frame range FIRST:LAST (default: all)")
    parser.add_argument("--format", dest="fmt", default="mp4", choices=["mp4", "images"])
    parser.add_argument("--min-visible", type=unit_fraction, default=0.5,
                        help="keep a gt box when at least this fraction of it lies in the region")
    parser.add_argument("--video", type=Path, default=None, help="read frames from this video (no img1/ folder)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from pipeline.virtual_cameras import build_virtual_cameras

    summary = build_virtual_cameras(
        args.seq_dir, args.out, layout=args.layout, gap=args.gap, n=args.cams,
        frame_range=_frame_range(args.frames), fmt=args.fmt, min_visible=args.min_visible, video=args.video,
        time_gap=args.time_gap, splits=_splits(args.splits), overlap=args.overlap,
    )
    summary["png"] = str(_draw(args, summary))
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"{summary['source']} -> {args.out} ({summary['layout']}, source frames {summary['frames']})")
    for cam, s in summary["cameras"].items():
        print(f"  {cam:14s} region tlbr {s['region_tlbr']} frames {s['frames']} recording {s['records']}: "
              f"{s['boxes']} gt boxes, {s['ids']} ids")
    if summary["overlapping_cameras"]:
        print(f"  overlapping cameras (matching.overlapping_cameras): {summary['overlapping_cameras']}")
    print(f"  identities seen by all cameras: {len(summary['shared_ids'])}")
    print(f"  wrote {args.out / 'identities.json'}, {args.out / 'cams.yaml'} and {summary['png']}")
    return 0


def _draw(args: argparse.Namespace, summary: dict) -> Path:
    """out/layout.png: the cuts on the first source frame of the range (pipeline.evaluation.layout_png)."""
    from pipeline.evaluation.layout_png import draw_layout
    from pipeline.mot import MOTSequence
    from pipeline.virtual_cameras import read_cuts

    first = summary["frames"][0]
    _, image = next(iter(MOTSequence(args.seq_dir, video=args.video).iter_frames(first, first)))
    return draw_layout(image, read_cuts(args.out), f"{summary['layout']}: {summary['source']} frame {first}",
                       args.out / "layout.png", summary["overlapping_cameras"])
