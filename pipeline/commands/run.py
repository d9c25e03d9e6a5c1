"""``reid-pipeline run cams.yaml``: the multi-camera pipeline (live feeds or recorded files)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HELP = "run the multi-camera pipeline described by a cams.yaml (live RTSP/HTTP feeds or recorded files)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="cams.yaml (see configs/cams.example.yaml)")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N",
                        help="stop after N frames per camera (default: until the sources end / Ctrl-C); in live"
                             " mode N frames captured from the camera, the stale ones dropped while processing"
                             " lagged included (a bound on the camera time covered), so fewer may be processed")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="output folder (default: outputs.dir of the config)")
    parser.add_argument("--mode", choices=["live", "batch"], default=None, help="override the config's mode")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from pipeline.camconfig import load_cams_config
    from pipeline.demo import prepare_demo
    from pipeline.core.memory import limit_malloc_arenas
    from pipeline.runner.loop import PipelineRunner

    limit_malloc_arenas()
    cfg = load_cams_config(args.config).with_ui_token()  # REID_UI_TOKEN, as serve reads it
    if args.mode:
        cfg = cfg.model_copy(update={"mode": args.mode})
        try:
            cfg.check_mode()
        except ValueError as exc:
            from pipeline.core.errors import ConfigError

            raise ConfigError(f"{args.config}: --mode {args.mode}: {exc}") from None
    if args.max_frames is not None and args.max_frames < 1:
        from pipeline.core.errors import ConfigError

        raise ConfigError("--max-frames: must be >= 1")
    prepare_demo(cfg, progress=not args.no_progress)
    old_umask = os.umask(0o077)  # what the run creates (folders, outputs, store) is private: 0700 / 0600
    try:
        if cfg.executor.kind == "ray":  # cameras as Ray actors (docs/scaling.md)
            from pipeline.distributed.executor import run_on_ray

            summary, table = run_on_ray(cfg, out_dir=args.out, max_frames=args.max_frames,
                                        progress=not args.no_progress)
        else:
            runner = PipelineRunner(cfg, out_dir=args.out, max_frames=args.max_frames, progress=not args.no_progress)
            summary = runner.run()
            table = runner.summary_table
    finally:
        os.umask(old_umask)
    print(table)
    # tracklets_stored counts store writes (a long track is also written as partial tracklets while it is open);
    # final_tracklets: the tracklets the store keeps for the run (what ``query --list`` shows)
    keys = ("run_key", "out_dir", "store", "interrupted", "tracklets_stored", "final_tracklets", "global_ids",
            "handovers", "final_identities", "final_multi_camera_identities")
    print(json.dumps({k: summary[k] for k in keys if k in summary}, indent=1))
    for line in summary_warnings(summary):  # what the run went on with: said where a script sees it
        print(f"reid-pipeline: warning: {line}", file=sys.stderr)
    return 130 if summary["interrupted"] else 0


def summary_warnings(summary: dict) -> list[str]:
    """The end-of-run warnings of a run summary: cameras that went down, and camera pairs that look overlapping
    although the config does not declare them (with the command that repairs the run)."""
    from pipeline.matching.overlap_check import SuspectedOverlap

    out = []
    for cid, health in (summary.get("cameras") or {}).items():
        if health.get("state") == "down":
            out.append(f"camera {cid} went down during the run ({health.get('delivered', 0)} frames delivered,"
                       f" {health.get('frames', 0)} captured); its results stop there")
    for o in map(SuspectedOverlap.from_json, summary.get("suspected_overlaps") or []):
        out.append(f"{o.message()}; {o.repair_hint(summary['store'], summary['run_key'])}")
    return out
