#!/usr/bin/env python
"""The encoder's RSS vs the batch shapes it sees, and the CPU cost of power-of-two batches (issue 16).

``--mode any``: one forward per call of whatever crop count comes (the encoder before the fix,
``pow2_batches=False``); ``pow2``: power-of-two batches (:func:`reid_models.encoder.batch_spans`, the
default); ``pad8``: ``any`` with the crop count padded up to a multiple of 8. The crop count per call is
uniform in 1..64 (seeded); RSS is sampled every 50 calls. ``--cost``: CPU time of power-of-two vs one
forward per call on the same random crop counts, alternating, in one run. Shared-machine figures are
indicative; quote the ratio. Writes ``encoder_shapes_<mode>.json`` / ``encoder_cost.json`` under ``--out``::

    .venv/bin/python -m tools.bench_encoder_shapes --mode any --calls 300
    .venv/bin/python -m tools.bench_encoder_shapes --cost
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.core.paths import REPO_ROOT


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def random_crops(rng: np.random.Generator, n: int = 64) -> list[np.ndarray]:
    """``n`` random BGR uint8 crops of person-like sizes (60-300 x 25-120 pixels)."""
    return [rng.integers(0, 255, (int(h), int(w), 3), dtype=np.uint8)
            for h, w in zip(rng.integers(60, 300, n), rng.integers(25, 120, n))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["any", "pow2", "pad8"], default="any")
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--cost", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "bench_encoder_shapes")
    args = ap.parse_args(argv)

    import torch

    from reid_models.encoder import AppearanceEncoder

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    enc = AppearanceEncoder.from_checkpoint(device="cpu")
    if args.cost:
        rng = np.random.default_rng(1)
        crops = random_crops(rng)
        for n in (1, 2, 4, 8, 16, 32, 64):  # the power-of-two shapes, warmed
            enc.embed_crops(crops[:n])
        sizes = [int(n) for n in rng.integers(1, 41, 60)]
        tot = {True: 0.0, False: 0.0}
        for n in sizes:
            for pow2 in (True, False):
                enc.pow2_batches = pow2
                t = time.process_time()
                enc.embed_crops(crops[:n])
                tot[pow2] += time.process_time() - t
        res = {"crops": sum(sizes), "cpu_s_pow2": round(tot[True], 2), "cpu_s_one_forward": round(tot[False], 2),
               "ratio": round(tot[True] / tot[False], 3), "note": "shared machine: indicative"}
        (args.out / "encoder_cost.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
        print(json.dumps(res))
        return 0
    rng = np.random.default_rng(0)
    crops = random_crops(rng)
    enc.pow2_batches = args.mode == "pow2"
    samples = []
    for i in range(args.calls):
        n = int(rng.integers(1, 65))
        if args.mode == "pad8":
            n = -(-n // 8) * 8
        enc.embed_crops(crops[:n])
        if i % 50 == 0:
            samples.append((i, round(rss_mib(), 1)))
            print(args.mode, *samples[-1], flush=True)
    res = {"mode": args.mode, "calls": args.calls, "rss_every_50_calls": samples,
           "env_onednn_cache": os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY")}
    (args.out / f"encoder_shapes_{args.mode}.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
