#!/usr/bin/env python
"""The identity layer alone over a long live run: RSS and Python allocations per 1,000 final tracklets (issue 16).

Replays the final tracklets of a finished live run's store (e.g. ``runs/bench_soak_1h/identities.sqlite``:
real per-frame embeddings, frame counts and live timestamps) through what the runner does with them, as
it does it in live mode: :class:`~pipeline.runner.identity.IdentityAssigner` with the matcher of
:func:`~pipeline.runner.components.build_identity_parts` (shipped config, revision window on), a fresh
store, the events / timeline / global-MOT sinks, a cumulative partial every ``--partial-s`` seconds of a
track, one matcher call per ``--step-s`` of clock, ``rewrite_global_mot(force=False)`` every
``--rewrite-s`` of clock (the runner's ``store.checkpoint_every_s``) and ``forget_written_before`` with
the runner's bound (per camera, the first frame of the oldest track whose final is still to come).
The input is looped ``--loops`` times (times shifted by the input's span, track ids renumbered) so the
run is as long as wanted without waiting for it. Writes ``identity_rss.json`` (per ``--every`` finals: RSS,
the sizes of the long-lived containers, the global-MOT rewrites' count and CPU seconds since the last row;
with ``--tracemalloc`` traced Python memory, its peak since the last row, and the allocations that grew
between the end of the first loop and the end, by traceback) and ``identity_rss.png`` under ``--out``.
Each row also has glibc's heap in use / free-but-kept (``mallinfo2``) and SQLite's own memory;
``--malloc-trim`` returns glibc's free heap memory to the system after each RSS reading and records the RSS
after it (is the growth freed-but-kept heap or live memory?). At the end ``mot_global/`` is rewritten as at the end of a run and
compared with a full rewrite from the store (``mot_global_equal_full``)::

    .venv/bin/python -m tools.bench_soak_identity --source runs/bench_soak_1h/identities.sqlite --loops 6
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.core.paths import REPO_ROOT


def rss_mib() -> float:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def load_finals(path: Path) -> list:
    """The source store's last run's tracklets with per-frame embeddings, as pipeline Tracklets."""
    from pipeline.core.types import Tracklet
    from pipeline.store import IdentityStore

    with IdentityStore(path, mode="read") as store:
        rows = store.tracklets(run_id=store.runs()[-1]["run_id"], with_frame_embeddings=True)
    out = []
    for t in rows:
        if t.frame_embeddings is None or not len(t.frame_embeddings):
            continue
        out.append(Tracklet(t.cam_id, int(t.track_id), np.asarray(t.frames), np.asarray(t.timestamps),
                            np.asarray(t.boxes_tlwh), np.asarray(t.frame_embeddings, dtype=np.float32),
                            None if t.embedding_frames is None else np.asarray(t.embedding_frames)))
    return out


def _cut(t, end: float):
    """The cumulative partial of tracklet ``t`` up to time ``end``: its frames with timestamp <= end."""
    from pipeline.core.types import Tracklet

    n = int(np.searchsorted(t.timestamps, end, side="right"))
    ef = t.embedding_frames
    if ef is not None:
        k = int(np.searchsorted(ef, t.frames[n - 1], side="right"))
        emb, ef = t.embeddings[:k], ef[:k]
    else:
        emb = t.embeddings[:n]
    return Tracklet(t.cam_id, t.track_id, t.frames[:n], t.timestamps[:n], t.boxes_tlwh[:n], emb, ef)


def copies(finals: list, loops: int, step_s: float):
    """``loops`` copies of ``finals``, each shifted by the input's span in time and frames (track ids + k * 1e6)."""
    from pipeline.core.types import Tracklet

    t0 = min(float(t.timestamps[0]) for t in finals)
    span = max(float(t.timestamps[-1]) for t in finals) - t0 + step_s
    frame_span = max(int(t.frames[-1]) for t in finals) + 1
    for k in range(loops):
        for t in finals:
            yield Tracklet(t.cam_id, t.track_id + k * 1_000_000, t.frames + k * frame_span,
                           t.timestamps + k * span, t.boxes_tlwh, t.embeddings,
                           None if t.embedding_frames is None else t.embedding_frames + k * frame_span)


class OpenBound:
    """Per camera, the runner's ``forget_written_before`` bound: the first frame of the oldest track whose final
    tracklet has not been processed yet (the runner's ``oldest_open_frame``; tracks not started yet start later)."""

    def __init__(self, tracklets: list) -> None:
        self._starts: dict[str, list[tuple[int, int]]] = {}
        for t in tracklets:
            self._starts.setdefault(t.cam_id, []).append((int(t.frames[0]), int(t.track_id)))
        for v in self._starts.values():
            v.sort()
        self._pos = {c: 0 for c in self._starts}
        self._done: set[tuple[str, int]] = set()

    def finished(self, cam_id: str, track_id: int) -> None:
        self._done.add((cam_id, int(track_id)))

    def bound(self, cam_id: str, latest_frame: int) -> int:
        starts, i = self._starts[cam_id], self._pos[cam_id]
        while i < len(starts) and (cam_id, starts[i][1]) in self._done:
            self._done.discard((cam_id, starts[i][1]))
            i += 1
        self._pos[cam_id] = i
        return starts[i][0] if i < len(starts) else latest_frame + 1


def schedule(tracklets: list, partial_s: float, step_s: float):
    """Yield (clock, partials, finals) in clock order over ``tracklets`` (:func:`copies`)."""
    t0 = min(float(t.timestamps[0]) for t in tracklets)
    events: list[tuple[float, int, object, bool]] = []
    seq = 0
    for c in tracklets:
        s, e = float(c.timestamps[0]), float(c.timestamps[-1])
        at = s + partial_s
        while at < e and len(c.embeddings):
            events.append((at, seq, _cut(c, at), False))
            seq += 1
            at += partial_s
        events.append((e, seq, c, True))
        seq += 1
    events.sort(key=lambda ev: (ev[0], ev[1]))
    batch_p, batch_f, clock = [], [], None
    for at, _, tr, final in events:
        step = int((at - t0) // step_s)
        if clock is not None and step != clock and (batch_p or batch_f):
            yield t0 + (clock + 1) * step_s, batch_p, batch_f
            batch_p, batch_f = [], []
        clock = step
        (batch_f if final else batch_p).append(tr)
    if batch_p or batch_f:
        yield t0 + (clock + 1) * step_s, batch_p, batch_f


def sizes(assigner) -> dict:
    """Lengths of the long-lived containers of the identity layer (what a live run keeps)."""
    m = assigner.matcher
    out = {
        "gallery": len(m._gallery), "settled": len(getattr(m, "_settled", {})), "window": len(getattr(m, "_window", {})),
        "track_gid": len(m._track_gid), "pair_neg": len(getattr(m, "_pair_neg", {})),
        "pair_settled": len(getattr(m, "_pair_settled", ())), "changes": len(getattr(m, "_changes", ())),
        "spans": sum(len(g.spans) for g in m._gallery.values()),
        "announced": len(assigner.announced), "open_tracks": len(assigner.open_tracks),
        "written_frames": sum(len(v) for v in assigner._written.values()),
        "timeline": sum(len(v) for v in getattr(assigner.timeline, "_spans", {}).values())
        if assigner.timeline is not None else 0,
        "confidence_positives": len(getattr(m.confidence, "_pos", ()) or ()),
        "gmot_live_tracklets": sum(len(f.live) for f in getattr(assigner, "_gmot", {}).values()),
        "gmot_live_frames": sum(f.live_rows() for f in getattr(assigner, "_gmot", {}).values()),
    }
    return out


def native_memory() -> dict:
    """glibc's heap (``mallinfo2``, all arenas): MiB in use, free but kept by the allocator, mmapped blocks; and
    SQLite's own memory (``sqlite3_memory_used``: page caches, prepared statements). Empty where unavailable."""
    import ctypes
    import ctypes.util

    out: dict = {}
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is not None and hasattr(libc, "mallinfo2"):
        class MallInfo2(ctypes.Structure):
            _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                        "fsmblks", "uordblks", "fordblks", "keepcost")]

        libc.mallinfo2.restype = MallInfo2
        mi = libc.mallinfo2()
        out.update(heap_used_mib=round(mi.uordblks / 2**20, 1), heap_free_mib=round(mi.fordblks / 2**20, 1),
                   mmap_mib=round(mi.hblkhd / 2**20, 1))
    try:
        import _sqlite3

        used = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used
        used.restype = ctypes.c_int64
        out["sqlite_mib"] = round(used() / 2**20, 1)
    except (OSError, AttributeError):
        pass
    return out


def malloc_trim() -> None:
    """glibc's ``malloc_trim(0)``: give free heap pages back to the system (no-op elsewhere)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name:
        ctypes.CDLL(name).malloc_trim(0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=REPO_ROOT / "runs" / "bench_soak_1h" / "identities.sqlite")
    ap.add_argument("--loops", type=int, default=4)
    ap.add_argument("--partial-s", type=float, default=10.0, help="tracklets.partial_every_s")
    ap.add_argument("--step-s", type=float, default=1.0, help="clock seconds per matcher call")
    ap.add_argument("--rewrite-s", type=float, default=10.0, help="store.checkpoint_every_s (live global-MOT rewrite)")
    ap.add_argument("--every", type=int, default=1000, help="report every this many finals")
    ap.add_argument("--limit", type=int, default=None, help="only the source's first N final tracklets (a smoke test)")
    ap.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                    help="trace Python allocations with this many frames per traceback (0: off)")
    ap.add_argument("--malloc-trim", action="store_true", help="malloc_trim(0) before each RSS reading")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "bench_soak_identity")
    args = ap.parse_args(argv)

    from pipeline.camconfig import CamsConfig
    from pipeline.core.configio import validate
    from pipeline.runner.components import build_identity_parts
    from pipeline.runner.identity import IdentityAssigner
    from pipeline.sinks import EventSink, MOTWriter, TimelineRecorder
    from pipeline.store import IdentityStore

    if not args.source.is_file():
        print(f"bench_soak_identity: no store at {args.source} (run tools/bench_soak first)", file=sys.stderr)
        return 2
    finals = load_finals(args.source)
    if args.limit is not None:
        finals = sorted(finals, key=lambda t: float(t.timestamps[0]))[:args.limit]
    cams = sorted({t.cam_id for t in finals})
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("identities.sqlite*"):
        old.unlink()
    cfg = validate(CamsConfig, {"mode": "live", "cameras": [{"id": c, "source": "rtsp://127.0.0.1/x"} for c in cams],
                                "store": {"path": str(out / "identities.sqlite")}}, "<bench_soak_identity>")
    tracklets = list(copies(finals, args.loops, args.step_s))
    bounds = OpenBound(tracklets)
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start(args.tracemalloc)
    rows: list[dict] = []
    snaps: dict[str, object] = {}
    with IdentityStore(out / "identities.sqlite") as store:
        aggregator, matcher = build_identity_parts(cfg, store, "replay")
        run_id = store.begin_run(f"replay-{int(time.time())}", "{}")
        (out / "mot_global").mkdir(exist_ok=True)
        assigner = IdentityAssigner(store, matcher, aggregator, run_id, "replay", EventSink(out / "events.jsonl"),
                                    TimelineRecorder(),
                                    {c: MOTWriter(out / "mot_global" / f"{c}.txt") for c in cams})
        done, last_rewrite, w0 = 0, None, time.monotonic()
        latest: dict[str, int] = {c: 0 for c in cams}
        rw = {"n": 0, "cpu_s": 0.0, "max_ms": 0.0}
        for clock, partials, fin in schedule(tracklets, args.partial_s, args.step_s):
            assigner.process(partials, fin)
            for t in partials + fin:
                latest[t.cam_id] = max(latest[t.cam_id], int(t.frames[-1]))
            for t in fin:
                bounds.finished(t.cam_id, t.track_id)
            for c in {t.cam_id for t in fin}:  # the runner: every 256 frames per camera; here: when a track ends
                assigner.forget_written_before(c, bounds.bound(c, latest[c]))
            if last_rewrite is None or clock - last_rewrite >= args.rewrite_s:
                last_rewrite = clock
                c0 = time.process_time()
                written = assigner.rewrite_global_mot(force=False)
                if written:
                    dt = time.process_time() - c0
                    rw["n"] += 1
                    rw["cpu_s"] += dt
                    rw["max_ms"] = max(rw["max_ms"], 1000 * dt)
            before = done
            done += len(fin)
            if done // args.every != before // args.every or (before < len(finals) <= done):
                rows.append(_row(args, assigner, done, clock - tracklets_t0(tracklets), w0, rw, snaps, len(finals)))
                rw = {"n": 0, "cpu_s": 0.0, "max_ms": 0.0}
        c0 = time.process_time()
        assigner.rewrite_global_mot()  # the end of a run
        end_rewrite_s = time.process_time() - c0
        same = _equal_to_full(store, run_id, out / "mot_global", out / "mot_global_full")
        top = _growth(snaps, "lineno") if args.tracemalloc else None
        top_tb = _growth(snaps, "traceback") if args.tracemalloc else None
        assigner.events.close()
    res = {"command": "python -m tools.bench_soak_identity " + " ".join(argv if argv is not None else sys.argv[1:]),
           "source_finals": len(finals), "rows": rows, "end_rewrite_cpu_s": round(end_rewrite_s, 3),
           "mot_global_equal_full": same, "stats": {k: v for k, v in vars(assigner.stats).items() if k != "global_ids"},
           "python_growth_loop1_to_end": top, "python_growth_loop1_to_end_tracebacks": top_tb}
    (out / "identity_rss.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    plot(rows, out / "identity_rss.png", res["command"])
    print(f"mot_global equal to a full rewrite: {same}; end-of-run rewrite {end_rewrite_s:.3f} CPU s")
    for d in (top or [])[:15]:
        print(d)
    return 0


def tracklets_t0(tracklets: list) -> float:
    return min(float(t.timestamps[0]) for t in tracklets)


def _row(args, assigner, done: int, clock_s: float, w0: float, rw: dict, snaps: dict, per_loop: int) -> dict:
    """One report row (see the module docstring); takes the tracemalloc snapshots at the end of loop 1 and now."""
    rss_trimmed = None
    if args.malloc_trim:
        before = rss_mib()
        malloc_trim()
        rss_trimmed, rss = rss_mib(), before
    else:
        rss = rss_mib()
    row = {"finals": done, "clock_s": round(clock_s, 1), "rss_mib": round(rss, 1),
           **({"rss_after_trim_mib": round(rss_trimmed, 1)} if rss_trimmed is not None else {}), **native_memory(),
           "wall_s": round(time.monotonic() - w0, 1), "rewrites": rw["n"], "rewrite_cpu_s": round(rw["cpu_s"], 3),
           "rewrite_ms_mean": round(1000 * rw["cpu_s"] / rw["n"], 2) if rw["n"] else None,
           "rewrite_ms_max": round(rw["max_ms"], 2), **sizes(assigner)}
    if args.tracemalloc:
        import tracemalloc

        cur, peak = tracemalloc.get_traced_memory()
        row["traced_mib"], row["traced_peak_mib"] = round(cur / 2**20, 1), round(peak / 2**20, 1)
        tracemalloc.reset_peak()
        if done >= per_loop and "loop1" not in snaps:
            snaps["loop1"] = tracemalloc.take_snapshot()
        snaps["end"] = tracemalloc.take_snapshot()
    print(json.dumps(row), flush=True)
    return row


def _growth(snaps: dict, key: str) -> list[dict] | None:
    """The allocations that grew most from the end of loop 1 to the end (``key``: "lineno" or "traceback")."""
    if "loop1" not in snaps or "end" not in snaps:
        return None
    diff = snaps["end"].compare_to(snaps["loop1"], key)
    return [{"where": str(d.traceback[0]) if key == "lineno" else " <- ".join(str(f) for f in d.traceback),
             "grew_kib": round(d.size_diff / 1024, 1), "blocks": d.count_diff} for d in diff[:20]]


def _equal_to_full(store, run_id: int, mot_dir: Path, ref_dir: Path) -> bool:
    """The run's mot_global files equal a full rewrite from the store (the code before the incremental rewrite)."""
    from pipeline.matching.recluster import write_global_mot

    ts = [t for t in store.tracklets(run_id=run_id) if t.global_id is not None]
    paths = write_global_mot(ts, {t.tracklet_id: t.global_id for t in ts}, ref_dir)
    return all((mot_dir / p.name).read_bytes() == p.read_bytes() for p in paths)


def plot(rows: list[dict], path: Path, title: str) -> None:
    """RSS and the mean CPU ms per global-MOT rewrite vs final tracklets processed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    x = [r["finals"] for r in rows]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    a1.plot(x, [r["rss_mib"] for r in rows], "o-")
    a1.set_ylabel("RSS (MiB)")
    a1.grid(alpha=0.3)
    a2.plot(x, [r["rewrite_ms_mean"] or 0 for r in rows], "o-", label="mean")
    a2.plot(x, [r["rewrite_ms_max"] for r in rows], "x--", label="max")
    a2.set_ylabel("CPU ms per mot_global rewrite")
    a2.set_xlabel("final tracklets processed")
    a2.legend()
    a2.grid(alpha=0.3)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
