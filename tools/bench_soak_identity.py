#!/usr/bin/env python
"""The identity layer alone over a long live run: RSS and Python allocations per 1,000 final tracklets (issue 16).

Replays the final tracklets of a finished live run's store (e.g. ``runs/bench_soak_1h/identities.sqlite``:
real per-frame embeddings, frame counts and live timestamps) through what the runner does with them, as
it does it in live mode: :class:`~pipeline.runner.identity.IdentityAssigner` with the matcher of
:func:`~pipeline.runner.components.build_identity_parts` (shipped config, revision window on), a fresh
store, the events / timeline / global-MOT sinks, a cumulative partial every ``--partial-s`` seconds of a
track, one matcher call per ``--step-s`` of clock, ``rewrite_global_mot(force=False)`` every
``--rewrite-s`` of clock (the runner's ``store.checkpoint_every_s``) and ``forget_written_before``.
The input is looped ``--loops`` times (times shifted by the input's span, track ids renumbered) so the
run is as long as wanted without waiting for it. Writes ``identity_rss.json`` (per 1,000 finals: RSS,
traced Python memory, the sizes of the long-lived containers, and with ``--tracemalloc`` the source
lines that grew most) under ``--out``::

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


def schedule(finals: list, loops: int, partial_s: float, step_s: float):
    """Yield (clock, partials, finals) in clock order over ``loops`` copies of ``finals``."""
    from pipeline.core.types import Tracklet

    t0 = min(float(t.timestamps[0]) for t in finals)
    span = max(float(t.timestamps[-1]) for t in finals) - t0 + step_s
    frame_span = max(int(t.frames[-1]) for t in finals) + 1
    events: list[tuple[float, int, object, bool]] = []
    seq = 0
    for k in range(loops):
        for t in finals:
            c = Tracklet(t.cam_id, t.track_id + k * 1_000_000, t.frames + k * frame_span,
                         t.timestamps + k * span, t.boxes_tlwh, t.embeddings,
                         None if t.embedding_frames is None else t.embedding_frames + k * frame_span)
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
    }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=REPO_ROOT / "runs" / "bench_soak_1h" / "identities.sqlite")
    ap.add_argument("--loops", type=int, default=4)
    ap.add_argument("--partial-s", type=float, default=10.0, help="tracklets.partial_every_s")
    ap.add_argument("--step-s", type=float, default=1.0, help="clock seconds per matcher call")
    ap.add_argument("--rewrite-s", type=float, default=10.0, help="store.checkpoint_every_s (live global-MOT rewrite)")
    ap.add_argument("--every", type=int, default=1000, help="report every this many finals")
    ap.add_argument("--tracemalloc", action="store_true")
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
    cams = sorted({t.cam_id for t in finals})
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("identities.sqlite*"):
        old.unlink()
    cfg = validate(CamsConfig, {"mode": "live", "cameras": [{"id": c, "source": "rtsp://127.0.0.1/x"} for c in cams],
                                "store": {"path": str(out / "identities.sqlite")}}, "<bench_soak_identity>")
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start(1)
    rows = []
    snap0 = None
    with IdentityStore(out / "identities.sqlite") as store:
        aggregator, matcher = build_identity_parts(cfg, store, "replay")
        run_id = store.begin_run(f"replay-{int(time.time())}", "{}")
        (out / "mot_global").mkdir(exist_ok=True)
        assigner = IdentityAssigner(store, matcher, aggregator, run_id, "replay", EventSink(out / "events.jsonl"),
                                    TimelineRecorder(),
                                    {c: MOTWriter(out / "mot_global" / f"{c}.txt") for c in cams})
        done, last_rewrite, w0 = 0, None, time.monotonic()
        for clock, partials, fin in schedule(finals, args.loops, args.partial_s, args.step_s):
            assigner.process(partials, fin)
            if last_rewrite is None or clock - last_rewrite >= args.rewrite_s:
                last_rewrite = clock
                assigner.rewrite_global_mot(force=False)
            for t in fin:  # the runner prunes per camera to the oldest open frame; here: to the final's start
                assigner.forget_written_before(t.cam_id, int(t.frames[0]))
            before = done
            done += len(fin)
            if done // args.every != before // args.every:
                row = {"finals": done, "clock_s": round(clock - schedule_t0(finals), 1),
                       "rss_mib": round(rss_mib(), 1), "wall_s": round(time.monotonic() - w0, 1), **sizes(assigner)}
                if args.tracemalloc:
                    import tracemalloc

                    row["traced_mib"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
                    if snap0 is None:
                        snap0 = tracemalloc.take_snapshot()
                rows.append(row)
                print(json.dumps(row), flush=True)
        top = None
        if snap0 is not None:
            import tracemalloc

            diff = tracemalloc.take_snapshot().compare_to(snap0, "lineno")
            top = [{"where": str(d.traceback[0]), "grew_kib": round(d.size_diff / 1024, 1), "blocks": d.count_diff}
                   for d in diff[:20]]
        assigner.events.close()
    res = {"command": "python -m tools.bench_soak_identity " + " ".join(argv if argv is not None else sys.argv[1:]),
           "source_finals": len(finals), "rows": rows, "python_growth_after_first_report": top}
    (out / "identity_rss.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    if top:
        for d in top[:12]:
            print(d)
    return 0


def schedule_t0(finals: list) -> float:
    return min(float(t.timestamps[0]) for t in finals)


if __name__ == "__main__":
    sys.exit(main())
