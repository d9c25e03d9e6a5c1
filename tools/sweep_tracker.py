#!/usr/bin/env python
"""Sweep one tracker setting on the PETS09-S2L1 detection sets of tools/bench_mot.py.

Each detection set is tracked with its own shipped config (``bench_mot.CONFIG_BY_DET``) and the
default re-id encoder; the encoder runs once per set (embeddings cached in memory keyed by the
box), then every value of ``--param`` is tried. Prints MOTA / IDF1 / IDSW per set and value, and
the mean IDF1 over the sets: a setting shared by all detector configs should be chosen on that.

    .venv/bin/python tools/sweep_tracker.py --param appearance.appearance_thresh \\
        --values 0.2 0.3 0.4 0.5 0.6 [--dets frcnn det yolov5n] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


from pipeline.mot.bench_sets import BoxCachedEncoder, emb_cache_path, ours_config, yolov5n_sequence

from pipeline.core.paths import REPO_ROOT, require_shared


def set_param(config, dotted: str, value: float):
    section, key = dotted.split(".")
    return config.model_copy(update={section: getattr(config, section).model_copy(update={key: value})})


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from pipeline.evaluation import evaluate
    from pipeline.mot.tracking import load_encoder, track_sequence
    from pipeline.mot import MOTSequence

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--param", required=True, help="section.key of TrackerConfig, e.g. appearance.appearance_thresh")
    ap.add_argument("--values", type=float, nargs="+", required=True)
    ap.add_argument("--dets", nargs="+", default=["frcnn", "det", "yolov5n"])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    pets = require_shared() / "data" / "MOT15" / "train" / "PETS09-S2L1"
    inner = load_encoder("default", "cpu")
    encoder = BoxCachedEncoder(inner, emb_cache_path(inner))
    results: dict[str, dict[str, list[float]]] = {}
    for det in args.dets:
        seq_dir = yolov5n_sequence(pets, REPO_ROOT / "runs" / "bench_mot") if det == "yolov5n" else pets
        seq = MOTSequence(seq_dir)
        base, cfg_path = ours_config("ours_reid", det)
        for value in tqdm(args.values, desc=f"{det} ({cfg_path.name})", unit="value"):
            run = track_sequence(seq, det, set_param(base, args.param, value), encoder)
            encoder.save()
            from pipeline.mot import read_mot_file, write_mot_results

            tmp = REPO_ROOT / "runs" / "sweep_tracker" / det / f"{value}.txt"
            tmp.parent.mkdir(parents=True, exist_ok=True)
            write_mot_results(tmp, run.outputs)
            o = evaluate([(seq.name, seq.gt(), read_mot_file(tmp, "result"))], benchmark="MOT15",
                         workers=1, hota=False).overall
            results.setdefault(det, {})[f"{value:g}"] = [round(o["MOTA"], 1), round(o["IDF1"], 1), int(o["IDSW"])]
    print(f"\n{args.param} (encoder {encoder.version}): MOTA / IDF1 / IDSW per set")
    print("| value | " + " | ".join(args.dets) + " | mean IDF1 |")
    print("|---|" + "---|" * (len(args.dets) + 1))
    for value in args.values:
        v = f"{value:g}"
        cells = [f"{results[d][v][0]} / {results[d][v][1]} / {results[d][v][2]}" for d in args.dets]
        mean = np.mean([results[d][v][1] for d in args.dets])
        print(f"| {v} | " + " | ".join(cells) + f" | {mean:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"param": args.param, "encoder": encoder.version, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
