#!/usr/bin/env python
"""Decode cost per frame of a video: ``read()`` (grab + retrieve) vs ``grab()`` only (what the camera stride does).

    .venv/bin/python -m tools.bench_decode VIDEO [VIDEO ...] [--frames 300]

Prints wall and process-CPU milliseconds per frame for each (docs/speed.md, "Decode").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def cost(video: Path, frames: int, mode: str) -> tuple[int, float, float]:
    """(frames read, wall ms / frame, CPU ms / frame) of ``mode`` ("read" or "grab") over the first ``frames``."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise SystemExit(f"{video}: cannot open")
    n, t, c = 0, time.perf_counter(), time.process_time()
    while n < frames and (cap.read()[0] if mode == "read" else cap.grab()):
        n += 1
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    cap.release()
    return n, 1000 * wall / max(n, 1), 1000 * cpu / max(n, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", type=Path, nargs="+")
    ap.add_argument("--frames", type=int, default=300)
    args = ap.parse_args(argv)
    for v in args.videos:
        for mode in ("read", "grab"):
            n, wall, cpu = cost(v, args.frames, mode)
            print(f"{v}: {mode:<4} {n} frames, {wall:.2f} ms wall/frame, {cpu:.2f} ms CPU/frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
