"""Watch camera sources without the pipeline: frames, stalls, reconnects, health lines, Prometheus metrics.

    .venv/bin/python tools/watch_sources.py rtsp://127.0.0.1:8554/cam0 ../shared/data/videos/PETS09-S2L1.avi \
        --seconds 30 --log-every 5 --metrics-port 9100

Each source becomes camera cam0, cam1, ... (``--realtime`` replays files at their frame
rate like live cameras). Prints one health line per camera every ``--log-every`` seconds
and a final JSON summary; credentials in URLs are redacted everywhere.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict


from pipeline.core.errors import ReidPipelineError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("uris", nargs="+", help="rtsp:// or http(s):// URL, video file, image folder or webcam index")
    p.add_argument("--seconds", type=float, default=20.0, help="how long to watch (files may finish earlier)")
    p.add_argument("--log-every", type=float, default=5.0)
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics on 127.0.0.1:PORT")
    p.add_argument("--mode", choices=["auto", "live", "lossless"], default="auto")
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--realtime", action="store_true", help="pace files/folders at their frame rate")
    p.add_argument("--stall-timeout", type=float, default=10.0, help="no new frame for this long: stalled, reopen")
    p.add_argument("--give-up-after", type=float, default=None,
                   help="streams: stop retrying after this many seconds without a frame (default: never)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pipeline.health import HealthMonitor
    from pipeline.sources import SourceOptions, open_source

    try:
        sources = [
            open_source(SourceOptions(f"cam{i}", uri, mode=args.mode, stride=args.stride, realtime=args.realtime,
                                      stall_timeout_s=args.stall_timeout, give_up_after_s=args.give_up_after))
            for i, uri in enumerate(args.uris)
        ]
    except ReidPipelineError as exc:
        print(f"watch_sources: error: {exc}", file=sys.stderr)
        return 2
    monitor = HealthMonitor(sources, interval_s=args.log_every)
    if args.metrics_port is not None:
        port = monitor.start_metrics_server(args.metrics_port)
        logging.info("metrics on http://127.0.0.1:%d/metrics", port)
    for s in sources:
        s.start()
    monitor.start()
    deadline = time.monotonic() + args.seconds
    try:
        while time.monotonic() < deadline and not all(s.finished for s in sources):
            for s in sources:
                s.read(timeout=0.01)
    except KeyboardInterrupt:
        pass
    finally:
        for s in sources:
            s.stop()
        monitor.stop()
    print(json.dumps([asdict(s.health()) for s in sources], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
