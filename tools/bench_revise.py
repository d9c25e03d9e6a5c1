#!/usr/bin/env python3
"""Revisable online identities on stored tracklets: global IDF1 and the matcher's cost, without re-detecting.

Re-uses a finished ``tools/bench_pipeline.py`` run folder (``cams/`` with the virtual cameras' gt and
``<variant>/identities.sqlite``). The run's stored final tracklets are replayed as the runner would
feed them: every ``--partial-s`` seconds of a tracklet's span a cumulative partial (its span so far,
the final embedding), then the final, all calls in clock order with one matcher call per
``--step-s`` of clock. The final ids (after every revision) are written as ``mot_global`` and scored
with ``evaluate_multicam``. Variants: one-shot (revise off), revise on at several window lengths,
each with ``warmup: threshold`` (the default) and ``no-link``. Because the partials reuse the final
embedding, the figures are close to, not equal to, the online pipeline's (bench_pipeline is the
headline); this tool is for seeing what revision changes, and for the cost:

``--cams 8``: the 2-camera run is replicated 4 times (camera ids suffixed, all at once on the same
clock, so 8 cameras' worth of tracklets per second; each replica's embeddings rotated by its own
random orthogonal matrix, so its people are other people, and they coexist with the others') and the matcher's total time is compared with the pipeline's time for the
same 8 camera-streams (the bench run's per-camera frame time x frames x 8, from its stage_times).

    .venv/bin/python tools/bench_revise.py --run-dir runs/bench_pipeline_final --out runs/revise/replay
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.core.paths import REPO_ROOT


def load_tracklets(store_path: Path) -> list:
    from pipeline.store import IdentityStore

    with IdentityStore(store_path, mode="read") as store:
        tracklets = store.tracklets(run_id=store.runs()[-1]["run_id"], with_frame_embeddings=True)
    return [t for t in tracklets if t.embeddings]


def half_distance(t) -> float | None:
    """Cosine distance between the mean embeddings of the two halves of a tracklet (the runner's
    same-person sample for the link probability), None below 4 embedded frames."""
    e = t.frame_embeddings
    if e is None or len(e) < 4:
        return None
    a, b = (x.mean(axis=0) for x in (e[: len(e) // 2], e[len(e) // 2:]))
    return float(1.0 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def schedule(tracklets: list, partial_s: float, step_s: float, copies: int) -> list[tuple[float, list]]:
    """[(clock, [TrackletEmbedding...])] in clock order: cumulative partials every ``partial_s`` and
    the finals, grouped per ``step_s`` of clock; ``copies`` replicas with camera ids ``cam#k``."""
    from pipeline.core.types import TrackletEmbedding

    events = []
    dim = len(next(iter(tracklets[0].embeddings.values())))
    rng = np.random.default_rng(0)
    # replica k's people are other people: its vectors are rotated by a random orthogonal matrix
    # (distances within a replica kept, across replicas those of unrelated directions)
    rot = [np.eye(dim)] + [np.linalg.qr(rng.standard_normal((dim, dim)))[0] for _ in range(copies - 1)]
    for k in range(copies):
        for n, t in enumerate(tracklets):
            vec = (rot[k] @ np.asarray(next(iter(t.embeddings.values())), np.float64)).astype(np.float32)
            cam = t.cam_id if copies == 1 else f"{t.cam_id}#{k}"
            ends = list(np.arange(t.start_time + partial_s, t.end_time, partial_s)) + [t.end_time]
            for e in ends:
                events.append((float(e), n, TrackletEmbedding(cam, int(t.track_id), t.start_time, float(e), vec)))
            events.append((float(t.end_time), n, half_distance(t)))  # the final's same-track sample
    events.sort(key=lambda x: (x[0], x[1]))
    batches: list[tuple[float, list]] = []
    for e, _, it in events:
        slot = np.floor(e / step_s) * step_s
        if not batches or batches[-1][0] != slot:
            batches.append((slot, []))
        batches[-1][1].append(it)
    return batches  # items: TrackletEmbedding, or a float / None (a same-track distance, after the items)


def replay(tracklets: list, config, partial_s: float, step_s: float, copies: int = 1):
    """Final id per (cam, track), matcher seconds, calls, changes."""
    from pipeline.core.types import TrackletEmbedding
    from pipeline.matching.matcher import CrossCameraMatcher

    matcher = CrossCameraMatcher(config)
    batches = schedule(tracklets, partial_s, step_s, copies)
    changes = []
    t0 = time.perf_counter()
    for _, items in batches:
        matcher.match_detailed([it for it in items if isinstance(it, TrackletEmbedding)])
        matcher.add_same_track_distances([d for d in items if isinstance(d, float)])
        changes += matcher.pop_changes()
    secs = time.perf_counter() - t0
    final = {}
    for k in range(copies):
        for t in tracklets:
            cam = t.cam_id if copies == 1 else f"{t.cam_id}#{k}"
            final[(cam, int(t.track_id))] = matcher.track_global_id(cam, t.track_id)
    return final, secs, len(batches), changes, matcher


def score(tracklets: list, final: dict, cams_dir: Path, out: Path) -> dict:
    from pipeline.evaluation.multicam import evaluate_multicam
    from pipeline.matching.recluster import write_global_mot

    labels = {t.tracklet_id: final[(t.cam_id, int(t.track_id))] for t in tracklets}
    write_global_mot(tracklets, labels, out / "mot_global")
    g = evaluate_multicam(cams_dir, out / "mot_global").global_
    return {k: round(float(g.get(k, 0.0)), 2) for k in ("IDF1", "IDP", "IDR")} | {"identities": len(set(labels.values()))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, default=REPO_ROOT / "runs" / "bench_pipeline_final")
    ap.add_argument("--variant", default="ours")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "revise" / "replay")
    ap.add_argument("--windows", default="30,60,120,240", help="revise.window_s values (comma-separated)")
    ap.add_argument("--partial-s", type=float, default=10.0, help="cumulative partial every n s (the runner's)")
    ap.add_argument("--step-s", type=float, default=1.0, help="one matcher call per n s of clock")
    ap.add_argument("--cams", type=int, choices=[2, 8], default=2, help="8: replicate the run 4x for the cost")
    args = ap.parse_args(argv)
    from pipeline.matching.config import AutoThresholdConfig, MatcherConfig, ReviseConfig

    tracklets = load_tracklets(args.run_dir / args.variant / "identities.sqlite")
    cams_dir = args.run_dir / "cams"
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"command": "python " + " ".join(["tools/bench_revise.py"] + (argv or sys.argv[1:])),
                     "run_dir": str(args.run_dir), "tracklets": len(tracklets), "variants": {}}
    if args.cams == 8:
        timing = json.loads((args.run_dir / "results.json").read_text())["timing_ours"]
        total = float(sum(timing["stage_s"].values()))  # every stage of the pipeline, both cameras
        frames = sum(timing["frames_per_cam"].values())
        per_frame = total / frames
        for window in [float(w) for w in args.windows.split(",")]:
            cfg = MatcherConfig(revise=ReviseConfig(window_s=window))
            _, secs, calls, changes, _ = replay(tracklets, cfg, args.partial_s, args.step_s, copies=4)
            pipeline_s = per_frame * frames * 4  # 8 camera streams = 4 x the 2-camera run's camera-frames
            r = {"matcher_s": round(secs, 3), "calls": calls, "changes": len(changes),
                 "pipeline_s_8cams": round(pipeline_s, 1), "share_pct": round(100 * secs / (pipeline_s + secs), 3)}
            results["variants"][f"8cams_window{window:g}"] = r
            print(f"8 cameras, window {window:g} s: matcher {secs:.2f} s in {calls} calls ({len(changes)} changes),"
                  f" pipeline {pipeline_s:.0f} s -> {r['share_pct']:.2f} % of pipeline time", flush=True)
        (args.out / "cost_8cams.json").write_text(json.dumps(results, indent=1))
        return 0
    variants = {}
    for warm in ("threshold", "no-link"):
        auto = AutoThresholdConfig(warmup=warm)
        variants[f"one-shot, warmup {warm}"] = MatcherConfig(auto_threshold=auto, revise=ReviseConfig(enabled=False))
        for window in [float(w) for w in args.windows.split(",")]:
            variants[f"revise {window:g} s, warmup {warm}"] = MatcherConfig(
                auto_threshold=auto, revise=ReviseConfig(window_s=window))
    for name, cfg in variants.items():
        final, secs, calls, changes, matcher = replay(tracklets, cfg, args.partial_s, args.step_s)
        r = score(tracklets, final, cams_dir, args.out / "work")
        r.update(matcher_s=round(secs, 3), calls=calls, merges=sum(c.kind == "merge" for c in changes),
                 splits=sum(c.kind == "split" for c in changes),
                 threshold=round(matcher.window_threshold or matcher.threshold, 4),
                 p_at_threshold=matcher.link_probability(matcher.window_threshold or matcher.threshold),
                 p_of_changes=[None if c.probability is None else round(c.probability, 3) for c in changes])
        results["variants"][name] = r
        print(f"{name:36s} global IDF1 {r['IDF1']:5.1f} (IDP {r['IDP']:.1f} IDR {r['IDR']:.1f}) ids {r['identities']:3d}"
              f"  merges {r['merges']:3d} splits {r['splits']:3d}  thr {r['threshold']:.4f}"
              f" (p {r['p_at_threshold'] or float('nan'):.2f})  {secs:.2f} s", flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
