#!/usr/bin/env python
"""Load generator for the identity layer (matcher + identity store) far beyond what one machine can decode.

For each gallery size (default 10^4, 10^5, 10^6 identities) it pre-fills an identity store, builds the
matcher's ANN index over it (``matching.index``, docs/gallery.md), then feeds a stream of synthetic
tracklet embeddings to ``CrossCameraMatcher.match_detailed`` + ``IdentityStore.record_tracklet`` at a
chosen rate (``--rate``; 0 = as fast as possible, in batches of ``--batch``) and measures the sustained
tracklets/s, the per-tracklet latency from its arrival to its store write (p50 / p99; queueing included when
the rate is not kept up; with ``--rate 0`` the time of its batch), the process's CPU time per batch and per
tracklet (on a shared machine, tracklets per CPU-second is the rate one dedicated core would sustain) and
the process RSS. Results: ``<out>/results.json``, ``results.md``, ``latency.png``, and per gallery size
``timeline_<size>.png`` (each call's latency over stream time, full garbage collections shaded).

Embeddings: REAL, from the re-id data sets, embedded once with the shipped default model and cached
under ``<out>`` (``reid-pipeline embed --model default --folder ... --out <out>/emb_<set>.npy``: the
Market-1501 ``bounding_box_train`` folder and CUHK03 ``detected/train``). There are ~1,600 real people
there; more identities are synthesised, reproducibly (``Synthesiser``):

* identity j is based on real person ``a = j mod R``: centre ``c_j = unit(c_a + spread * s * z_j)``,
  where ``c_a`` is the mean of a's crop embeddings (unit), ``s`` the per-dimension standard deviation of
  the R real centres and ``z_j`` standard normal noise seeded by (seed, j): new people scattered around
  real ones as far as real people are from each other (``--spread`` 1: the noise has the per-dimension
  spread of the real centres, so two identities based on one real person are, before normalisation, as far
  apart as two random real people);
* a tracklet of identity j is ``unit(c_j + mean of k random real within-person deviations of a)``
  (k in 1..8 crops of a, each minus ``c_a``): real appearance variation around the synthetic centre.

Timestamps come from a simulated camera graph: ``--cameras`` cameras on a ring, each linked to its two
neighbours with transit times in [5, 60] s (``matching.topology``, outside the window / non-adjacent:
penalised, so people returning hours later can still be matched). The pre-filled identities were last
seen at a random camera 1 min .. 24 h before the stream starts. In the stream each tracklet (2 .. 15 s
long, end times ``1 / rate`` apart) is a person walking on from a neighbouring camera (50 %: someone who
ended a tracklet 5 .. 60 s before its start), a pre-filled identity returning (20 %) or a new person
(30 %). ``ttl_s`` is off (identities are kept for days), everything else is the matcher's default
(revision window on, label-free threshold calibration).

Run (indicative: timings depend on the machine's load)::

    nice -n 10 .venv/bin/python tools/bench_scale.py --out runs/bench_scale
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import gc
import json
import math
import os
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.core.gcpauses import GcFreezer
from pipeline.core.paths import require_shared
from pipeline.core.types import Tracklet, TrackletEmbedding
from pipeline.matching.config import IndexConfig, MatcherConfig, ReviseConfig, TopologyConfig, TransitLink
from pipeline.matching.gallery_index import GalleryIndex, default_nlist
from pipeline.matching.matcher import CrossCameraMatcher
from pipeline.store import IdentityStore
from pipeline.store.prototypes import PrototypeTable
from pipeline.store.records import TrackletRecord, to_blob

#: the real embedding sets: name -> folder under ../shared/data/reid
REAL_SETS = {"market_train": "Market-1501/bounding_box_train", "cuhk03_train": "CUHK03/detected/train"}
VERSION = "bench-scale"
TRANSIT = (5.0, 60.0)


# ---------------------------------------------------------------------------------------------- data
def real_embeddings(out: Path, sets: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) unit crop embeddings and (N,) person labels of the real ``sets`` (embedded once, cached)."""
    import subprocess

    vecs, labels, offset = [], [], 0
    for name in sets:
        folder = REAL_SETS[name]
        npy = out / f"emb_{name}.npy"
        if not npy.is_file():
            src = require_shared() / "data" / "reid" / folder
            print(f"embedding {src} -> {npy} (once)", flush=True)
            subprocess.run([str(Path(os.sys.executable).parent / "reid-pipeline"), "embed", "--model", "default",
                            "--folder", str(src), "--out", str(npy)], check=True)
        files = npy.with_suffix(".files.txt").read_text().split()
        pid = np.array([int(Path(f).name.split("_")[0]) for f in files])
        emb = np.load(npy).astype(np.float32)
        keep = pid >= 0  # Market's junk label -1 (none in bounding_box_train)
        _, lab = np.unique(pid[keep], return_inverse=True)
        vecs.append(emb[keep])
        labels.append(lab + offset)
        offset += int(lab.max()) + 1
    x = np.concatenate(vecs)
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.concatenate(labels)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class Synthesiser:
    """Synthetic identities and tracklets around real people (see the module docstring)."""

    def __init__(self, crops: np.ndarray, labels: np.ndarray, spread: float = 1.0, seed: int = 0) -> None:
        self.real = int(labels.max()) + 1
        self.centres = _unit(np.stack([crops[labels == r].mean(axis=0) for r in range(self.real)])).astype(np.float32)
        self.scale = (spread * self.centres.std(axis=0)).astype(np.float32)
        self.dev = (crops - self.centres[labels]).astype(np.float32)  # (N, D) real within-person deviations
        order = np.argsort(labels, kind="stable")
        self.dev = self.dev[order]
        self.start = np.searchsorted(labels[order], np.arange(self.real + 1))
        self.seed = seed
        self.dim = crops.shape[1]

    def centre(self, j: int) -> np.ndarray:
        z = np.random.default_rng([self.seed, int(j)]).standard_normal(self.dim, dtype=np.float32)
        return _unit(self.centres[j % self.real] + self.scale * z)

    def tracklet(self, j: int, rng: np.random.Generator, centre: np.ndarray | None = None) -> np.ndarray:
        a = j % self.real
        lo, hi = self.start[a], self.start[a + 1]
        k = rng.integers(1, min(8, hi - lo) + 1)
        dev = self.dev[rng.choice(np.arange(lo, hi), size=k, replace=False)].mean(axis=0)
        return _unit((self.centre(j) if centre is None else centre) + dev).astype(np.float32)


def matcher_config(args) -> MatcherConfig:
    """The matcher's defaults + the ring topology (penalised, not forbidden), no time-to-live, the index."""
    c = args.cameras
    links = [TransitLink(a=f"cam{i:03d}", b=f"cam{(i + 1) % c:03d}", min_s=TRANSIT[0], max_s=TRANSIT[1]) for i in range(c)]
    return MatcherConfig(
        ttl_s=None, max_gallery=args.max_gallery,
        topology=TopologyConfig(links=links, non_adjacent="penalize", outside_window="penalize"),
        revise=ReviseConfig(enabled=not args.no_revise, incremental=not args.full_window,
                            settled_candidates=args.window_candidates),
        index=IndexConfig(kind=args.index, min_gallery=0, candidates=args.candidates, nprobe=args.nprobe,
                          pq_m=args.pq_m, pca_dim=args.pca_dim, train_size=args.train_size,
                          cache_size=args.cache))


# ---------------------------------------------------------------------------------------------- pre-fill
def prefill(store: IdentityStore, synth: Synthesiser, n: int, cameras: int, batch: int = 4096) -> None:
    """Identities 1..n in the store (prototype, one tracklet, its assignment), resumable; batch inserts."""
    have = int(store.db.query("SELECT COALESCE(MAX(global_id), 0) FROM identities")[0][0])
    if have >= n:
        return
    run_id = store.begin_run("prefill")
    for c in range(cameras):
        store.ensure_camera(f"cam{c:03d}")
    rng = np.random.default_rng([1, have])
    bar = tqdm(total=n, initial=have, desc="pre-fill store", unit="id")
    for lo in range(have + 1, n + 1, batch):
        gids = np.arange(lo, min(n, lo + batch - 1) + 1)
        ends = -rng.uniform(60.0, 86400.0, len(gids))
        durs = rng.uniform(2.0, 15.0, len(gids))
        ident_rows, trk_rows, asg_rows = [], [], []
        for g, e, d in zip(gids.tolist(), ends.tolist(), durs.tolist()):
            j = g - 1
            proto = synth.tracklet(j, rng)
            cam = f"cam{j % cameras:03d}"
            ident_rows.append((g, to_blob(proto), VERSION, e - d, e, cam, cam))
            trk_rows.append((g, run_id, cam, -g, 0, 1, e - d, e, 2, to_blob(np.array([0, 1], np.int64)),
                             to_blob(np.array([e - d, e])), to_blob(np.zeros((2, 4)))))
            asg_rows.append((g, g, time.time()))
        with store.db.transaction() as c:
            c.executemany("INSERT INTO identities (global_id, prototype, model_version, first_seen, last_seen,"
                          " first_cam, last_cam) VALUES (?, ?, ?, ?, ?, ?, ?)", ident_rows)
            c.executemany("INSERT INTO tracklets (tracklet_id, run_id, cam_id, track_id, start_frame, end_frame,"
                          " start_time, end_time, n_frames, frames, timestamps, boxes_tlwh)"
                          " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", trk_rows)
            c.executemany("INSERT INTO assignments (tracklet_id, global_id, assigned_at) VALUES (?, ?, ?)", asg_rows)
        bar.update(len(gids))
    bar.close()
    store.end_run(run_id, "complete")


def build_index(pager: PrototypeTable, n: int, cfg: IndexConfig, path: Path) -> tuple[GalleryIndex, float]:
    """The IVF-PQ index over the store's n identities: trained on the first ``train_size`` (the ids are
    in random order of people), then every prototype added in batches; cached in ``path``."""
    if path.is_file():
        idx = GalleryIndex.load(path, nprobe=cfg.nprobe)
        if len(idx) == n:
            return idx, 0.0
    t0 = time.perf_counter()
    sample, idx = [], None
    bar = tqdm(total=n, desc="build index", unit="id")
    for ids, vecs in pager.iter_prototypes(8192):
        if idx is None:
            sample.append((ids, vecs))
            if sum(len(i) for i, _ in sample) < min(cfg.train_size, n):
                continue
            x = np.concatenate([v for _, v in sample])[: cfg.train_size]
            idx = GalleryIndex(x.shape[1], cfg.nlist or default_nlist(n, len(x)), cfg.pq_m, cfg.nprobe,
                               pca_dim=cfg.pca_dim)
            idx.train(x)
            for i, v in sample:
                idx.upsert(i, v)
                bar.update(len(i))
            continue
        idx.upsert(ids, vecs)
        bar.update(len(ids))
    bar.close()
    idx.save(path)
    return idx, time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------- stream
@dataclass
class Event:
    """One tracklet of the stream: person (synthetic identity index), camera, times, its kind."""

    person: int
    cam: int
    start: float
    end: float
    kind: str  # walk | return | new
    track: int = 0


@dataclass
class Stream:
    """Tracklet events in end-time order at ``rate`` per second (see the module docstring)."""

    n_gallery: int
    cameras: int
    rate: float
    seed: int = 0
    active: list = field(default_factory=list)  # (end, person, cam) sorted by end
    next_new: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng([2, self.seed])
        self.next_new = self.n_gallery

    def event(self, k: int) -> Event:
        end = k / self.rate
        start = end - float(self.rng.uniform(2.0, 15.0))
        u = self.rng.random()
        ev = None
        if u < 0.5:  # walk on from a neighbouring camera: someone who ended 5 .. 60 s before this start
            lo = bisect.bisect_left(self.active, (start - TRANSIT[1],))
            hi = bisect.bisect_right(self.active, (start - TRANSIT[0], math.inf))
            if hi > lo:
                e, person, cam = self.active.pop(int(self.rng.integers(lo, hi)))
                ev = Event(person, (cam + (1 if self.rng.random() < 0.5 else -1)) % self.cameras, start, end, "walk")
        if ev is None and u < 0.7:
            person = int(self.rng.integers(0, self.n_gallery))
            ev = Event(person, int(self.rng.integers(0, self.cameras)), start, end, "return")
        if ev is None:
            ev = Event(self.next_new, int(self.rng.integers(0, self.cameras)), start, end, "new")
            self.next_new += 1
        ev.track = k + 1
        bisect.insort(self.active, (end, ev.person, ev.cam))
        if len(self.active) > 50000:
            del self.active[: len(self.active) - 50000]
        return ev


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_size(n: int, args, synth: Synthesiser) -> dict:
    """Pre-fill to n identities, build the index, stream, measure."""
    out: Path = args.out
    path = out / f"store_{n}.sqlite"
    cfg = matcher_config(args)
    res: dict = {"gallery": n}
    if path.is_file():  # rows of an earlier stream (an interrupted run) would be newer than this stream
        reset_stream_rows(path, n)
    t0 = time.perf_counter()
    with IdentityStore(path) as store:  # raw batch inserts: the store is re-opened to know their ids
        prefill(store, synth, n, args.cameras)
    res["prefill_s"] = round(time.perf_counter() - t0, 1)
    with IdentityStore(path) as store:
        pager = PrototypeTable(store, cache_size=args.cache)
        index = None
        if cfg.index.kind != "exact":
            index, res["index_build_s"] = build_index(pager, n, cfg.index, out / (f"index_{n}_pq{args.pq_m}"
                                                                   + (f"_pca{args.pca_dim}" if args.pca_dim else "")
                                                                   + ".faiss"))
            res["index_build_s"] = round(res["index_build_s"], 1)
            res["index_memory_mb"] = round(index.memory_bytes() / 2**20, 1)
            res["index_nlist"] = index.nlist
        hot = [int(r[0]) for r in store.db.query(
            "SELECT global_id FROM identities ORDER BY last_seen DESC LIMIT ?", (cfg.max_gallery,))]
        gallery = pager.load(hot, cfg.max_spans)
        if args.warm_cache:  # a deployment pre-loads the pager's LRU at start (PrototypeTable.warm)
            t1 = time.perf_counter()
            res["warmed"] = pager.warm(cfg.max_spans, skip=hot)
            res["warm_s"] = round(time.perf_counter() - t1, 1)
        next_id = int(store.db.query("SELECT MAX(global_id) FROM identities")[0][0]) + 1
        matcher = CrossCameraMatcher(cfg, gallery, next_id=next_id, pager=pager if index is not None else None,
                                     index=index)
        res["rss_before_stream_mb"] = round(_rss_mb(), 0)
        if args.profile:  # cProfile of the stream alone (not the pre-fill, the index load or the hot set's load)
            import cProfile
            import pstats

            prof = cProfile.Profile(time.process_time)  # CPU time: the machine is shared
            res.update(prof.runcall(stream, store, matcher, synth, n, args))
            prof.dump_stats(out / f"prof{args.tag}_{n}.pstats")
            pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
        else:
            res.update(stream(store, matcher, synth, n, args))
        res["paging"] = dict(matcher.paging_stats, pager_reads=pager.reads, pager_cache_hits=pager.hits,
                             identity_reads=pager.identity_reads, identity_hits=pager.identity_hits)
        # revision window: calls re-solving the whole window / a part, tentative tracklets re-solved / held
        res["window"] = getattr(matcher, "window_stats", None)
        res["rss_after_stream_mb"] = round(_rss_mb(), 0)
        res["maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)
        res["store_mb"] = round(path.stat().st_size / 2**20, 0)
    if not args.keep_stream_rows:  # the next run of this size starts from the same pre-filled store
        reset_stream_rows(path, n)
    return res


def reset_stream_rows(path: Path, n: int) -> None:
    """Delete what a stream wrote (tracklets with track id > 0, identities above n, events, revisions)."""
    with IdentityStore(path) as store, store.db.transaction() as c:
        c.execute("DELETE FROM embeddings WHERE tracklet_id IN (SELECT tracklet_id FROM tracklets WHERE track_id > 0)")
        c.execute("DELETE FROM events")
        c.execute("DELETE FROM assignments WHERE tracklet_id IN (SELECT tracklet_id FROM tracklets WHERE track_id > 0)")
        c.execute("DELETE FROM tracklets WHERE track_id > 0")
        c.execute("DELETE FROM identities WHERE global_id > ?", (n,))
        c.execute("DELETE FROM identity_changes")
        c.execute("DELETE FROM identity_aliases")


@contextlib.contextmanager
def _gc_watch(freeze: bool) -> Iterator[tuple[GcFreezer | None, list[tuple[float, float]]]]:
    """For the stream: a :class:`GcFreezer` when ``freeze`` (ticked after each call, as the pipeline's loop does;
    None: CPython's default collector) and the list of every full collection as (perf_counter at its start,
    seconds), filled while the block runs. Both are undone on the way out, error or not."""
    full: list[tuple[float, float]] = []
    start = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            start[0] = time.perf_counter()
        elif info["generation"] == 2:
            full.append((start[0], time.perf_counter() - start[0]))

    freezer = GcFreezer() if freeze else None
    gc.callbacks.append(on_gc)
    try:
        yield freezer, full
    finally:
        gc.callbacks.remove(on_gc)
        if freezer is not None:
            freezer.close()


def stream(store: IdentityStore, matcher: CrossCameraMatcher, synth: Synthesiser, n: int, args) -> dict:
    """Feed the stream at args.rate (0: as fast as possible, batches of args.batch) for args.duration s of
    stream time; latency per tracklet = store write done - arrival (its end time on the stream clock)."""
    gen = Stream(n, args.cameras, args.rate or args.nominal_rate, seed=args.seed)
    rng = np.random.default_rng([3, args.seed])
    run_id = store.begin_run(f"stream-{time.time()}")
    total = int(args.duration * (args.rate or args.nominal_rate))
    warm = int(args.warmup * (args.rate or args.nominal_rate))
    events = [gen.event(k) for k in range(total)]
    # the stream starts after every sighting already in the store (a re-run continues from a used gallery)
    base = max(0.0, float(store.db.query("SELECT COALESCE(MAX(last_seen), 0) FROM identities")[0][0])) + 1.0
    for ev in events:
        ev.start += base
        ev.end += base
    ends = np.array([ev.end for ev in events]) - base
    vecs = [synth.tracklet(ev.person, rng) for ev in tqdm(events, desc="synthesise stream", unit="trk", leave=False)]
    gid_of: dict[int, int] = {}  # stream person -> the id its first tracklet got (pre-filled: person + 1)
    tid_of: dict[tuple[str, int], int] = {}
    lat = np.full(total, np.nan)
    cpu = np.full(total, np.nan)  # CPU seconds of this process for the tracklet's batch (match + store write)
    correct = {"return": [0, 0], "walk": [0, 0]}
    ids = np.zeros(total, dtype=np.int64)  # the id each tracklet got (--ids-out: to compare code versions)
    k = 0
    bar = tqdm(total=total, desc=f"stream {n}", unit="trk")
    # per call: done (s), latency of its oldest tracklet (s), size, wall (s), main-thread CPU (s) of match + write
    batch_rows: list[tuple[float, float, int, float, float]] = []
    t0 = time.perf_counter()
    t_warm = None
    with _gc_watch(args.gc_freeze) as (gc_pauses, full_gc_abs):
        while k < total:
            now = time.perf_counter() - t0
            if args.rate:
                hi = min(int(np.searchsorted(ends, now, side="right")), total, k + args.max_batch)
                if hi == k:
                    time.sleep(max(0.0, min(events[k].end - now, 0.005)))
                    continue
            else:
                hi = min(k + args.batch, total)
            batch = events[k:hi]
            items = [TrackletEmbedding(f"cam{ev.cam:03d}", ev.track, ev.start, ev.end, vecs[k + i])
                     for i, ev in enumerate(batch)]
            arrive = time.perf_counter() - t0
            cpu0, th0 = time.process_time(), time.thread_time()
            results = matcher.match_detailed(items)
            with store.transaction():
                records = [TrackletRecord(Tracklet(it.cam_id, it.track_id, np.array([0, 1]),
                                                   np.array([it.start_time, it.end_time]), np.zeros((2, 4)),
                                                   np.zeros((0, synth.dim), np.float32)),
                                          it.vector, VERSION, matcher.identity(r.global_id), r.distance,
                                          [("appear", {})] if r.is_new else [], r.probability)
                           for it, r in zip(items, results)]
                if args.per_tracklet_writes:  # the store's one-tracklet-at-a-time path (for comparison)
                    tids = [store.record_tracklet(run_id, rec.tracklet, rec.embedding, rec.model_version, rec.identity,
                                                  rec.distance, rec.events, rec.probability) for rec in records]
                else:
                    tids = store.record_tracklets(run_id, records)
                for it, tid in zip(items, tids):
                    tid_of[(it.cam_id, it.track_id)] = tid
                for ch in matcher.pop_changes():  # revisions: prototypes refreshed, moved tracklets re-assigned
                    for g in (ch.into, ch.source):
                        ident = matcher.identity(g)
                        if ident is not None:
                            store.new_identity(ident.prototype, ident.last_seen, ident.last_cam, g, VERSION)
                    for key in ch.moved:
                        if key in tid_of:
                            store.assign(tid_of[key], ch.into)
            done = time.perf_counter() - t0
            cpu[k:hi] = time.process_time() - cpu0
            batch_rows.append((done, done - (events[k].end - base if args.rate else arrive), hi - k,
                               done - arrive, time.thread_time() - th0))
            for i, (ev, r) in enumerate(zip(batch, results)):
                ids[k + i] = r.global_id
                lat[k + i] = done - (ev.end - base if args.rate else arrive)
                if ev.kind in correct:
                    want = ev.person + 1 if ev.person < n else gid_of.get(ev.person)
                    correct[ev.kind][0] += int(r.global_id == want)
                    correct[ev.kind][1] += 1
                gid_of.setdefault(ev.person, r.global_id)
            if t_warm is None and hi >= warm:
                t_warm, k_warm, c_warm = time.perf_counter(), hi, time.process_time()
            bar.update(hi - k)
            k = hi
            if gc_pauses is not None:
                gc_pauses.tick()
    gc_counts = gc_pauses.counts if gc_pauses is not None else {"young": 0, "full": 0}
    full_gc = [(start - t0, sec) for start, sec in full_gc_abs]  # (stream time, seconds) of each full collection
    wall = time.perf_counter() - (t_warm or t0)
    cpu_s = time.process_time() - c_warm if t_warm else float("nan")
    bar.close()
    store.end_run(run_id, "complete")
    if args.ids_out is not None:
        np.save(args.ids_out.with_name(f"{args.ids_out.stem}_{n}.npy"), ids)
    m = lat[warm:] * 1000
    return {"tracklets": total - warm, "warmup_tracklets": warm, "rate_target": args.rate or None,
            "tracklets_per_s": round((total - (k_warm if t_warm else 0)) / wall, 1),
            # the machine is shared: the process's own CPU time gives the rate one dedicated core would sustain
            "tracklets_per_cpu_s": round((total - (k_warm if t_warm else 0)) / cpu_s, 1),
            "cpu_share": round(cpu_s / wall, 2),
            "batch_cpu_ms": {"p50": round(float(np.percentile(cpu[warm:], 50)) * 1000, 2),
                             "p99": round(float(np.percentile(cpu[warm:], 99)) * 1000, 2)},
            "latency_ms": {"p50": round(float(np.percentile(m, 50)), 2), "p90": round(float(np.percentile(m, 90)), 2),
                           "p99": round(float(np.percentile(m, 99)), 2), "max": round(float(m.max()), 2)},
            "same_identity_rate": {kd: round(100 * a / b, 1) if b else None for kd, (a, b) in correct.items()},
            "identities_after": matcher.gallery_size(), "threshold": round(matcher.threshold, 4),
            "window_threshold": matcher.window_threshold,
            "gc": {"freeze": bool(args.gc_freeze), **gc_counts, "full_collections": len(full_gc),
                   "full_ms_max": round(max((d for _, d in full_gc), default=0.0) * 1000, 1)},
            # the calls' main thread off CPU (wall - its CPU time): descheduled, or blocked (I/O, locks)
            "call_off_cpu_ms": _off_cpu(batch_rows, t_warm - t0 if t_warm else 0.0),
            "_timeline": {"batches": batch_rows, "full_gc": full_gc, "warm_s": (t_warm - t0) if t_warm else 0.0}}


def _off_cpu(batch_rows: list[tuple], after: float) -> dict:
    """p50 / p99 / max (ms) of the calls' wall time minus their main thread's CPU time, and its share of
    the calls' wall time (%), over the calls done after ``after`` (stream seconds)."""
    rows = [b for b in batch_rows if b[0] >= after]
    if not rows:
        return {}
    off = np.array([max(0.0, b[3] - b[4]) for b in rows]) * 1000
    wall = sum(b[3] for b in rows) * 1000
    return {"p50": round(float(np.percentile(off, 50)), 2), "p99": round(float(np.percentile(off, 99)), 2),
            "max": round(float(off.max()), 2), "share_pct": round(100 * float(off.sum()) / max(wall, 1e-9), 1)}


# ---------------------------------------------------------------------------------------------- report
def table(rows: list[dict], args) -> str:
    lines = [f"index `{args.index}` ({f'PCA{args.pca_dim},' if args.pca_dim else ''}IVF-PQ{args.pq_m}, nprobe {args.nprobe}, {args.candidates} candidates), "
             f"max_gallery {args.max_gallery} in memory, revision window {'off' if args.no_revise else 'on'}, "
             f"rate {args.rate or 'max'} tracklets/s, {args.cameras} cameras, gc freeze {'on' if args.gc_freeze else 'off'}; "
             "machine shared (indicative timings)", "",
             "| gallery | tracklets/s (wall) | CPU share | tracklets per CPU-s | p50 ms | p99 ms | max ms | batch CPU p50 / p99 ms | "
             "RSS MB | index MB | store MB | paged in | paged out | returns matched % | walks matched % |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lm, pg = r["latency_ms"], r["paging"]
        bc = r["batch_cpu_ms"]
        lines.append(f"| {r['gallery']:,} | {r['tracklets_per_s']:.0f} | {r['cpu_share']:.2f} | {r['tracklets_per_cpu_s']:.0f} | "
                     f"{lm['p50']:.1f} | {lm['p99']:.1f} | {lm['max']:.0f} | {bc['p50']:.0f} / {bc['p99']:.0f} | "
                     f"{r['maxrss_mb']:.0f} | {r.get('index_memory_mb', 0):.0f} | {r['store_mb']:.0f} | {pg['paged_in']} | "
                     f"{pg['paged_out']} | {r['same_identity_rate']['return']} | {r['same_identity_rate']['walk']} |")
    return "\n".join(lines)


def plot_timeline(r: dict, path: Path, args) -> None:
    """Latency of each matcher call's oldest tracklet over stream time, full garbage collections shaded."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tl = r["_timeline"]
    done, lat, _, wall, th = (np.array([b[i] for b in tl["batches"]]) for i in range(5))
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(13, 5.6), sharex=True, height_ratios=(2, 1))
    ax.plot(done, lat * 1000, ".", ms=3, label="oldest tracklet of each call: arrival -> stored")
    bx.plot(done, th * 1000, ".", ms=2, color="tab:green", label="call: main-thread CPU")
    bx.plot(done, np.maximum(wall - th, 0) * 1000, ".", ms=2, color="tab:red",
            label="call: main thread off CPU\n(wall - its CPU: descheduled\nor blocked)")
    bx.set(xlabel="stream time (s)", ylabel="per call (ms)")
    bx.grid(alpha=0.3)
    bx.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    for start, sec in tl["full_gc"]:
        ax.axvspan(start, start + max(sec, 0.004), color="red", alpha=0.35)
        if sec >= 0.005:  # the short ones are only shaded (a freezer's run has one a second)
            ax.annotate(f"full GC {sec * 1000:.0f} ms", (start, ax.get_ylim()[1] * 0.92), fontsize=7, color="red")
    ax.axvspan(0, tl["warm_s"], color="gray", alpha=0.12, label="warm-up (left out of the figures)")
    ax.axhline(50, color="k", ls="--", lw=0.8, label="50 ms")
    ax.set(ylabel="latency (ms)",
           title=f"gallery {r['gallery']:,}, rate {args.rate or 'max'}/s, gc freeze {'on' if args.gc_freeze else 'off'}: "
                 f"p99 {r['latency_ms']['p99']:.0f} ms, {r['gc']['full_collections']} full collections "
                 f"(longest {r['gc']['full_ms_max']:.0f} ms)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot(rows: list[dict], path: Path, args) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    n = [r["gallery"] for r in rows]
    for key, style in (("p50", "o-"), ("p99", "s-"), ("max", "^:")):
        a.plot(n, [r["latency_ms"][key] for r in rows], style, label=f"{key} (wall)")
    for key, style in (("p50", "o--"), ("p99", "s--")):
        a.plot(n, [r["batch_cpu_ms"][key] for r in rows], style, alpha=0.6, label=f"batch CPU {key}")
    a.axhline(50, color="red", ls="--", lw=1, label="target p99 50 ms")
    a.set(xscale="log", yscale="log", xlabel="gallery (identities)", ylabel="latency per tracklet (ms)",
          title="match + store write latency")
    b.plot(n, [r["tracklets_per_s"] for r in rows], "o-", label="tracklets/s (wall, shared machine)")
    b.plot(n, [r["tracklets_per_cpu_s"] for r in rows], "d-", label="tracklets per CPU-second")
    b.axhline(1000, color="red", ls="--", lw=1, label="target 1,000/s")
    b2 = b.twinx()
    b2.plot(n, [r["maxrss_mb"] for r in rows], "s--", color="gray", label="RSS MB")
    b2.set_ylabel("max RSS (MB)")
    b.set(xscale="log", xlabel="gallery (identities)", ylabel="tracklets/s",
          title=f"rate {args.rate or 'max'}/s, {args.cameras} cameras")
    for ax in (a, b):
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="lower left", fontsize=8)
    b2.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_scale"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--rate", type=float, default=1000.0, help="tracklets/s offered (0: as fast as possible)")
    ap.add_argument("--nominal-rate", type=float, default=1000.0, help="stream clock with --rate 0 (tracklets/s)")
    ap.add_argument("--batch", type=int, default=16, help="tracklets per matcher call with --rate 0")
    ap.add_argument("--max-batch", type=int, default=256, help="most tracklets per matcher call with --rate")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of stream per size")
    ap.add_argument("--warmup", type=float, default=5.0, help="first seconds of stream left out of the figures")
    ap.add_argument("--cameras", type=int, default=64)
    ap.add_argument("--index", choices=["auto", "exact", "faiss"], default="faiss")
    ap.add_argument("--candidates", type=int, default=IndexConfig().candidates)
    ap.add_argument("--nprobe", type=int, default=IndexConfig().nprobe)
    ap.add_argument("--pq-m", type=int, default=IndexConfig().pq_m)
    ap.add_argument("--pca-dim", type=int, default=IndexConfig().pca_dim,
                    help="PCA before the IVF-PQ (matching.index.pca_dim; default: none)")
    ap.add_argument("--train-size", type=int, default=IndexConfig().train_size)
    ap.add_argument("--max-gallery", type=int, default=MatcherConfig().max_gallery)
    ap.add_argument("--cache", type=int, default=IndexConfig().cache_size,
                    help="identities (and prototypes) in the pager's LRUs (matching.index.cache_size)")
    ap.add_argument("--no-revise", action="store_true", help="the one-shot matcher (revision window off)")
    ap.add_argument("--sets", nargs="+", choices=list(REAL_SETS), default=list(REAL_SETS),
                    help="real embedding sets the synthetic identities are drawn from")
    ap.add_argument("--spread", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-stream-rows", action="store_true", help="leave the stream's rows in the stores")
    ap.add_argument("--per-tracklet-writes", action="store_true",
                    help="record each tracklet with its own statements (IdentityStore.record_tracklet) instead of "
                         "one executemany per statement and batch (record_tracklets)")
    ap.add_argument("--full-window", action="store_true",
                    help="re-solve the whole revision window every call (revise.incremental: false)")
    ap.add_argument("--window-candidates", type=int, default=None,
                    help="revise.settled_candidates: settled identities each tentative tracklet brings into the "
                         "revision window's re-solve (its nearest within the threshold; default: all)")
    ap.add_argument("--gc-freeze", action=argparse.BooleanOptionalAction, default=True,
                    help="young collection + gc.freeze once a second, as the pipeline's loop (pipeline/core/gcpauses.py);"
                         " --no-gc-freeze: CPython's default collector, for comparison")
    ap.add_argument("--tag", default="", help="results file suffix (results<tag>.json)")
    ap.add_argument("--warm-cache", action="store_true",
                    help="pre-load the pager's identity LRU (the --cache most recent identities beyond the hot set) "
                         "before the stream, as a deployment would (PrototypeTable.warm): no SQLite reads for "
                         "candidates once it holds the gallery; the load time is reported as warm_s")
    ap.add_argument("--ids-out", type=Path, default=None,
                    help="save the global id of every stream tracklet to <ids-out stem>_<size>.npy (with --rate 0 "
                         "the stream and its batches are the same from run to run: compare code versions)")
    ap.add_argument("--profile", action="store_true",
                    help="cProfile (CPU time) the stream of each size: <out>/prof<tag>_<size>.pstats, top lines printed")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    crops, labels = real_embeddings(args.out, args.sets)
    synth = Synthesiser(crops, labels, spread=args.spread, seed=args.seed)
    rows = []
    res_path = args.out / f"results{args.tag}.json"
    from threadpoolctl import threadpool_limits

    for n in args.sizes:
        # one BLAS thread: the matcher's products are small, and a multi-threaded BLAS on a busy CPU spends its
        # time waking threads (the revision window's re-solve does the same: pipeline/matching/revise.py)
        with threadpool_limits(limits=1, user_api="blas"):
            r = run_size(n, args, synth)
        plot_timeline(r, args.out / f"timeline{args.tag}_{n}.png", args)
        r.pop("_timeline")
        print(json.dumps(r), flush=True)
        rows.append(r)
        meta = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "real_embeddings": {"crops": int(len(crops)), "people": int(synth.real), "sets": args.sets},
                "results": rows}
        res_path.write_text(json.dumps(meta, indent=2))
        (args.out / f"results{args.tag}.md").write_text(table(rows, args) + "\n")
        plot(rows, args.out / f"latency{args.tag}.png", args)
    print(table(rows, args))


if __name__ == "__main__":
    main()
