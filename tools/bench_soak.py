#!/usr/bin/env python
"""RSS over time of a live run at 8 cameras (issue 16: "RSS after an hour of live input at 8 cameras: flat").

Serves the PETS09-S2L1 frames looped at 7 fps on 8 RTSP mounts of a real loopback server
(:class:`pipeline.testing.rtsp.RtspServer`, GStreamer; tools/setup_system.sh installs it), runs the
whole pipeline in live mode on them (the benchmark's detector and default re-id encoder; settings
as ``--schedule`` / ``--policy`` say; ``--backends plain``: onnxruntime detector and torch encoder, the config
defaults, as in the runs of docs/speed.md; ``shipped``: OpenVINO detector and encoder as configs/cams.example.yaml) for ``--seconds``, and samples the process's resident set size
every ``--every`` seconds. Writes ``rss.json`` (samples, start, end, growth per hour after the
warm-up) and ``rss.png`` (RSS vs time) under ``--out`` (runs/bench_soak)::

    .venv/bin/python -m tools.bench_soak --seconds 900 [--cameras 8] [--schedule adaptive] [--policy needed]

The first ``--warmup`` seconds (models loading, buffers and the store filling) are excluded from the
growth figure. ``windows`` in rss.json (and ``windows.md``) gives per ``--window`` seconds the RSS median / min / max,
its slope, the gallery size and the processed rate: whether the level stops rising once the gallery stops growing.
``--summarise RSS_JSON`` prints that table for a finished soak.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

from pipeline.core.paths import REPO_ROOT, require_shared


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def growth_per_hour(samples: list[tuple[float, float]], warmup: float) -> float | None:
    """Least-squares slope (MiB per hour) of the samples after ``warmup`` seconds."""
    import numpy as np

    pts = np.array([(t, r) for t, r in samples if t >= warmup])
    if len(pts) < 3:
        return None
    slope = np.polyfit(pts[:, 0], pts[:, 1], 1)[0]
    return float(slope * 3600.0)


def windows(samples: list[tuple[float, float]], gallery: list[tuple[float, int]], fps: list[tuple[float, float]],
            window_s: float) -> list[dict]:
    """Per consecutive ``window_s`` of the run: RSS median / min / max and least-squares slope (MiB per hour), the
    gallery at the window's end and the mean processed camera-frames/s. A level that stops rising shows here as
    medians that stop rising while the gallery stops growing (``ttl_s`` ages identities out)."""
    import numpy as np

    if not samples:
        return []
    rss = np.array(samples, dtype=np.float64)
    gal = np.array(gallery, dtype=np.float64).reshape(-1, 2)
    fp = np.array(fps, dtype=np.float64).reshape(-1, 2)
    out = []
    for lo in np.arange(0.0, rss[-1, 0], window_s):
        hi = lo + window_s
        pick = rss[(rss[:, 0] >= lo) & (rss[:, 0] < hi)]
        if len(pick) < 3:
            continue
        g = gal[(gal[:, 0] >= lo) & (gal[:, 0] < hi), 1]
        f = fp[(fp[:, 0] >= lo) & (fp[:, 0] < hi), 1]
        out.append({"from_min": round(lo / 60, 1), "to_min": round(min(hi, rss[-1, 0]) / 60, 1),
                    "rss_median_mib": round(float(np.median(pick[:, 1])), 1),
                    "rss_min_mib": round(float(pick[:, 1].min()), 1), "rss_max_mib": round(float(pick[:, 1].max()), 1),
                    "slope_mib_per_h": round(float(np.polyfit(pick[:, 0], pick[:, 1], 1)[0] * 3600.0), 1),
                    "gallery_end": int(g[-1]) if len(g) else None,
                    "camera_fps": round(float(f.mean()), 2) if len(f) else None})
    return out


def windows_table(rows: list[dict]) -> str:
    """Markdown table of :func:`windows`."""
    lines = ["| minutes | RSS median MiB | min | max | slope MiB/h | gallery at end | camera-frames/s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['from_min']:.0f}-{r['to_min']:.0f} | {r['rss_median_mib']:.0f} | {r['rss_min_mib']:.0f} | "
              f"{r['rss_max_mib']:.0f} | {r['slope_mib_per_h']:+.0f} | {r['gallery_end']} | {r['camera_fps']} |"
              for r in rows]
    return "\n".join(lines)


def summarise(path: Path, window_s: float) -> int:
    """``--summarise rss.json``: the per-window table of a finished soak, also written as windows.md beside it."""
    try:
        res = json.loads(path.read_text(encoding="utf-8"))
        rows = windows(res["samples"], res.get("gallery") or [], res.get("fps") or [], window_s)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"bench_soak: {path}: not a soak's rss.json ({exc})", file=sys.stderr)
        return 2
    text = windows_table(rows)
    (path.parent / "windows.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def plot(samples: list[tuple[float, float]], fps: list[tuple[float, float]], title: str, path: Path,
         gallery: list[tuple[float, int]] | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if gallery:
        fig, (ax, axg) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True, height_ratios=(3, 1.4))
        axg.plot([t / 60 for t, _ in gallery], [g for _, g in gallery], color="tab:green")
        axg.set_ylabel("identities in\nmatcher gallery")
        axg.set_xlabel("minutes since start")
        axg.grid(alpha=0.3)
    else:
        fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot([t / 60 for t, _ in samples], [r for _, r in samples], color="tab:blue", label="RSS (MiB)")
    if not gallery:  # else the gallery panel below carries the time axis
        ax.set_xlabel("minutes since start")
    ax.set_ylabel("RSS (MiB)", color="tab:blue")
    ax.set_ylim(0, max(r for _, r in samples) * 1.15)
    ax.grid(alpha=0.3)
    if fps:
        ax2 = ax.twinx()
        ax2.plot([t / 60 for t, _ in fps], [v for _, v in fps], color="tab:orange", lw=1, label="camera-frames/s")
        ax2.set_ylabel("camera-frames/s processed (all cameras)", color="tab:orange")
        ax2.set_ylim(0, max(v for _, v in fps) * 1.3 + 0.1)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=900.0)
    ap.add_argument("--cameras", type=int, default=8)
    ap.add_argument("--every", type=float, default=5.0, help="RSS sample interval (s)")
    ap.add_argument("--warmup", type=float, default=120.0, help="seconds excluded from the growth figure")
    ap.add_argument("--schedule", default="1", help="schedule.detect_every: 1, 2, 3 or adaptive")
    ap.add_argument("--policy", default="every", choices=["every", "needed"], help="encoder.policy")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--backends", default="plain", choices=["plain", "shipped"],
                    help="plain: the config defaults (onnxruntime detector, torch encoder; the runs in docs/speed.md); "
                         "shipped: configs/cams.example.yaml's detector and encoder keys (tools.bench_speed.NEW_DEFAULT: "
                         "OpenVINO detector with precision auto, rect, 2 streams; OpenVINO encoder)")
    ap.add_argument("--ttl-s", type=float, default=None,
                    help="matching.ttl_s (identities unseen this long leave the in-memory gallery); default: the config's")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="also trace Python allocations from the end of the warm-up and write the 15 source lines "
                         "whose memory grew most by the end (native memory, e.g. onnxruntime's arena, is not traced)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "bench_soak")
    ap.add_argument("--window", type=float, default=900.0,
                    help="seconds per row of the per-window table (rss.json 'windows', windows.md)")
    ap.add_argument("--summarise", type=Path, default=None, metavar="RSS_JSON",
                    help="only print (and write beside it as windows.md) the per-window table of a finished soak")
    args = ap.parse_args(argv)
    if args.summarise is not None:
        return summarise(args.summarise, args.window)

    from pipeline.core.memory import limit_malloc_arenas

    limit_malloc_arenas()  # what `reid-pipeline run` does before it starts its threads
    import torch

    from pipeline.camconfig import CamsConfig
    from pipeline.core.configio import validate
    from pipeline.runner.loop import PipelineRunner
    from pipeline.testing.rtsp import RtspServer, free_port
    from tools.bench_pipeline import detector_settings

    torch.set_num_threads(args.threads)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("identities.sqlite*"):
        old.unlink()
    mounts = tuple(f"cam{i}" for i in range(args.cameras))
    frames = require_shared() / "data" / "MOT15" / "train" / "PETS09-S2L1" / "img1"
    every = args.schedule if args.schedule == "adaptive" else int(args.schedule)
    samples: list[tuple[float, float]] = []
    fps: list[tuple[float, float]] = []
    gallery: list[tuple[float, int]] = []  # identities in the matcher's in-memory gallery
    with RtspServer(frames, free_port(), mounts=mounts) as srv:
        data = {
            "mode": "live",
            "run_key": f"soak-{int(time.time())}",
            "cameras": [{"id": m, "source": srv.url(m)} for m in mounts],
            "detector": detector_settings(),
            "schedule": {"detect_every": every},
            "encoder": {"every": 2 if args.policy == "every" else 1, "policy": args.policy},
            "store": {"path": str(out / "identities.sqlite")},
            "outputs": {"dir": str(out / "outputs"), "timeline_png": False},
            "health": {"log_every_s": 60.0},
        }
        from trackers.config import load_tracker_config

        if args.backends == "shipped":  # the shipped configs' detector and encoder keys (tests hold them equal)
            from tools.bench_speed import NEW_DEFAULT

            data["detector"].update(NEW_DEFAULT["detector"])
            data["encoder"].update(NEW_DEFAULT["encoder"])
        if args.ttl_s is not None:
            data["matching"] = {"ttl_s": args.ttl_s}
        data["tracker"] = load_tracker_config("yolo").model_dump()
        cfg = validate(CamsConfig, data, "<bench_soak>")
        runner = PipelineRunner(cfg, out_dir=out / "outputs", progress=False)
        result: dict = {}

        def work() -> None:
            result["summary"] = runner.run()

        t0 = time.monotonic()
        th = threading.Thread(target=work, daemon=True)
        th.start()
        last_frames, last_t = 0, 0.0
        snap0 = None
        while th.is_alive() and time.monotonic() - t0 < args.seconds:
            time.sleep(args.every)
            t = time.monotonic() - t0
            if args.tracemalloc and snap0 is None and t >= args.warmup:
                import tracemalloc

                tracemalloc.start(1)
                snap0 = tracemalloc.take_snapshot()
            samples.append((round(t, 1), round(rss_mib(), 1)))
            n = sum(st.frames for st in runner.cams.values())
            fps.append((round(t, 1), round((n - last_frames) / (t - last_t), 2)))
            assigner = getattr(runner, "assigner", None)
            if assigner is not None:
                gallery.append((round(t, 1), len(assigner.matcher.gallery)))
            last_frames, last_t = n, t
            if len(samples) % 12 == 0:
                print(f"{t:7.0f} s  RSS {samples[-1][1]:.0f} MiB  {fps[-1][1]:.1f} camera-frames/s  "
                      f"gallery {gallery[-1][1] if gallery else 0}", flush=True)
        python_growth = None
        if snap0 is not None:
            import tracemalloc

            diff = tracemalloc.take_snapshot().compare_to(snap0, "lineno")
            python_growth = [{"where": str(d.traceback[0]), "grew_kib": round(d.size_diff / 1024, 1),
                              "blocks": d.count_diff} for d in diff[:15]]
            tracemalloc.stop()
        runner.request_stop()
        th.join(timeout=120)
    frames_done = sum(st.frames for st in runner.cams.values())
    res = {
        "command": "python -m tools.bench_soak " + " ".join(argv if argv is not None else sys.argv[1:]),
        "cameras": args.cameras, "seconds": args.seconds, "schedule": every, "policy": args.policy,
        "detector_backend": cfg.detector.backend, "encoder_backend": cfg.encoder.backend,
        "rss_start_mib": samples[0][1] if samples else None,
        "rss_after_warmup_mib": next((r for t, r in samples if t >= args.warmup), None),
        "rss_end_mib": samples[-1][1] if samples else None,
        "rss_max_mib": max((r for _, r in samples), default=None),
        "growth_mib_per_hour_after_warmup": growth_per_hour(samples, args.warmup),
        "ttl_s": cfg.matching.ttl_s, "max_gallery": cfg.matching.max_gallery,
        "gallery_end": gallery[-1][1] if gallery else None, "gallery_max": max((g for _, g in gallery), default=None),
        "camera_frames": frames_done,
        "mean_camera_fps": round(frames_done / max(samples[-1][0], 1e-9), 2) if samples else None,
        "note": "shared machine (other jobs running); the RTSP server runs in its own process (not in the RSS)",
        "python_growth_after_warmup": python_growth,
        "windows": windows(samples, gallery, fps, args.window),
        "samples": samples, "fps": fps, "gallery": gallery,
    }
    (out / "rss.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    (out / "windows.md").write_text(windows_table(res["windows"]) + "\n", encoding="utf-8")
    if samples:
        g = res["growth_mib_per_hour_after_warmup"]
        title = (f"live run, {args.cameras} RTSP cameras (PETS looped, 7 fps), {args.seconds / 60:.0f} min: RSS "
                 f"{res['rss_start_mib']:.0f} -> {res['rss_end_mib']:.0f} MiB"
                 + (f", slope after {args.warmup:.0f} s {g:+.0f} MiB/h" if g is not None else ""))
        plot(samples, fps, title, out / "rss.png", gallery)
    print(json.dumps({k: v for k, v in res.items() if k not in ("samples", "fps", "gallery", "windows")}, indent=1))
    print(windows_table(res["windows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
