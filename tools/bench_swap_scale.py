#!/usr/bin/env python
"""Time a hot swap's prototype refresh at scale: bench_scale's pre-filled store (10^5 identities, most of
them paged out) after every stored tracklet was re-embedded by a new model version.

The "new model's" embedding of a tracklet is here its identity's stored prototype (the figures are about
time, not accuracy). Measured: the foreground part of ``refresh_prototypes`` (read the new embeddings, write
every identity's new prototype to the store, refresh the in-memory ones, gather every prototype for the new
index), during which the matcher does not run, and when the index built on a thread is back in force.

Run after ``tools/bench_scale.py --sizes 100000`` (which builds the store and the index)::

    .venv/bin/python tools/bench_swap_scale.py --store runs/bench_scale/store_100000.sqlite \
        --index runs/bench_scale/index_100000_pq64.faiss --out runs/bench_swap_scale

(with the scale profile's index: ``--index runs/bench_scale/index_100000_pq32_pca256.faiss``)
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import time
from pathlib import Path

from pipeline.adaptation.live import refresh_prototypes
from pipeline.matching.config import IndexConfig, MatcherConfig, ReviseConfig
from pipeline.matching.gallery_index import GalleryIndex
from pipeline.matching.matcher import CrossCameraMatcher
from pipeline.store import IdentityStore
from pipeline.store.prototypes import PrototypeTable
from pipeline.store.records import from_blob

VERSION = "swap-bench-v2"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True, help="bench_scale's pre-filled store (copied, not changed)")
    ap.add_argument("--index", type=Path, required=True, help="bench_scale's saved index for that store")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--hot", type=int, default=5000, help="identities in memory (matching.max_gallery)")
    ap.add_argument("--cache", type=int, default=150000, help="the pager's LRU (matching.index.cache_size)")
    args = ap.parse_args()
    for path in (args.store, args.index):
        if not path.exists():
            ap.error(f"{path}: not found (run tools/bench_scale.py --sizes 100000 first)")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "store.sqlite"
    shutil.copy(args.store, path)
    with IdentityStore(path) as store:
        dim = len(from_blob(store.db.query("SELECT prototype FROM identities LIMIT 1")[0][0]))
        with store.db.transaction() as c:  # every stored tracklet re-embedded by the "new" version
            c.execute("INSERT INTO embeddings (tracklet_id, model_version, dim, vector) SELECT a.tracklet_id, ?, ?,"
                      " i.prototype FROM assignments a JOIN identities i ON i.global_id = a.global_id", (VERSION, dim))
        n_emb = store.db.query("SELECT COUNT(*) FROM embeddings WHERE model_version = ?", (VERSION,))[0][0]
        n_ids = store.db.query("SELECT COUNT(*) FROM identities")[0][0]
        pager = PrototypeTable(store, cache_size=args.cache)
        index = GalleryIndex.load(args.index, nprobe=8)
        # the rebuild after the swap trains an index of the loaded one's kind (PCA or not, same PQ size)
        cfg = MatcherConfig(max_gallery=args.hot, revise=ReviseConfig(enabled=False),
                            index=IndexConfig(kind="faiss", candidates=16, nprobe=8, cache_size=args.cache,
                                              pq_m=index.pq_m, pca_dim=index.pca_dim))
        hot = [int(r[0]) for r in store.db.query(
            "SELECT global_id FROM identities ORDER BY last_seen DESC LIMIT ?", (args.hot,))]
        matcher = CrossCameraMatcher(cfg, pager.load(hot, cfg.max_spans), next_id=n_ids + 1, pager=pager,
                                     index=index)
        importlib.import_module("reid_models.adaptation.trainer")  # loaded in a running pipeline (torch)
        t0 = time.perf_counter()
        refreshed = refresh_prototypes(store, matcher, VERSION)
        t1 = time.perf_counter()
        searching_old = matcher.index_active
        done = matcher.wait_index(3600)
        t2 = time.perf_counter()
    res = {"identities": n_ids, "tracklets_re_embedded": n_emb, "in_memory": args.hot, **refreshed,
           "foreground_s": round(t1 - t0, 1), "index_back_after_s": round(t2 - t0, 1),
           "index_searched_during_build": searching_old, "index_installed": done}
    (args.out / "results.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
