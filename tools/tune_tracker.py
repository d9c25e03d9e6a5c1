"""Score tracker config variants on every benchmark detection set (PETS09 variants + MOT15 train frcnn).

    .venv/bin/python tools/tune_tracker.py --family yolo --variant base \\
        --variant hi45 detection.high_thresh=0.45 [--reid] [--json runs/tune/out.json]

Each ``--variant NAME [section.key=value ...]`` is the family's shipped config (trackers/presets/<family>.yaml)
with those overrides; the pseudo-override ``score_quantile=Q`` sets each set's ``detection.score_range`` to [0, the
Q quantile of its own scores], as ``--config auto`` does for scores that are not probabilities
(``trackers.presets.NON_PROBABILITY_QUANTILE``). ``--family yolo`` scores the yolov5n sets (tools/make_det_sets.py), ``frcnn`` PETS frcnn
+ MOT15 train frcnn (7 sequences), ``acf`` PETS det.txt + the MOT15 train det.txt sequences. Appearance off
unless ``--reid`` (then PETS sets only, the default re-id encoder, each box embedded once). Prints MOTA / IDF1
per set and the means: a family's config is chosen on the mean over its sets, never on one file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from pipeline.core.paths import REPO_ROOT, require_shared
from pipeline.mot.bench_sets import (YOLO_SETS, BoxCachedEncoder, det_sequence, emb_cache_path, make_yolo_sets,
                                     ours_config)


def override(config, assignments: list[str]):
    """``section.key=value`` strings -> a validated copy of ``config``."""
    from trackers.config import TrackerConfig

    data = config.model_dump()
    for a in assignments:
        dotted, _, raw = a.partition("=")
        section, key = dotted.split(".")
        data[section][key] = yaml.safe_load(raw)
    return TrackerConfig.model_validate(data)


def split_quantile(assignments: list[str]) -> tuple[float | None, list[str]]:
    """(the ``score_quantile=Q`` pseudo-override's Q or None, the other assignments)."""
    quantiles = [float(a.partition("=")[2]) for a in assignments if a.startswith("score_quantile=")]
    return (quantiles[-1] if quantiles else None), [a for a in assignments if not a.startswith("score_quantile=")]


def with_score_quantile(config, scores, quantile: float | None):
    """``config`` with ``detection.score_range`` = [0, the ``quantile`` quantile of ``scores``] (None: as it is)."""
    import numpy as np

    if quantile is None:
        return config
    top = float(np.quantile(np.asarray(scores, dtype=np.float64), quantile))
    return override(config, [f"detection.score_range=[0.0, {top!r}]"])


def family_sets(family: str, reid: bool) -> list[tuple[str, Path, str]]:
    """[(set key, sequence dir, det name)]."""
    from pipeline.mot import find_sequences

    shared = require_shared()
    root = shared / "data" / "MOT15" / "train"
    pets = root / "PETS09-S2L1"
    out_root = REPO_ROOT / "runs" / "bench_mot"
    if family == "yolo":
        files = make_yolo_sets(pets, shared / "weights" / "yolov5n.onnx", YOLO_SETS)
        return [(f"PETS/{n}", det_sequence(pets, out_root, n, f), n) for n, f in files.items()]
    det = "frcnn" if family == "frcnn" else "det"
    sets = [(f"PETS/{det}", pets, det)]
    if not reid:
        sets += [(f"MOT15/{s.name}/{det}", s.seq_dir, det) for s in find_sequences(root, det=det)
                 if s.name != "PETS09-S2L1"]
    return sets


def detection_frames(seq, det: str, encoder) -> dict[int, list]:
    """{frame: [Detection]} of ``det/<det>.txt``, each with its embedding when ``encoder`` is given (computed once
    per set, so variants only re-run the tracker)."""
    import numpy as np

    from pipeline.mot import detections_by_frame

    by_frame = detections_by_frame(seq.det(det))
    if encoder is not None:
        for frame, dets in by_frame.items():
            emb = encoder.embed_boxes(seq.frame_image(frame), np.stack([d.tlwh for d in dets]))
            for d, e in zip(dets, emb):
                d.embedding = e
    return by_frame


def track_frames(seq, by_frame: dict[int, list], config):
    """Track frames 1..seqLength of ``seq`` -> pipeline.mot.tracking.SequenceRun (no CMC: no frames here)."""
    from pipeline.mot.tracking import SequenceRun
    from trackers.tracker import Tracker

    if config.cmc.method != "none":
        raise SystemExit("tune_tracker: cmc needs frames; not supported here")
    tracker = Tracker(config, cam_id=seq.name, frame_rate=seq.info.frame_rate)
    outputs = []
    for frame in range(1, seq.info.seq_length + 1):
        outputs.extend(tracker.update(by_frame.get(frame, []), None))
    return SequenceRun(seq.name, outputs, seq.info.seq_length, 0.0)


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from pipeline.evaluation import evaluate
    from pipeline.mot import MOTSequence, read_mot_file, write_mot_results
    from pipeline.mot.tracking import load_encoder

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", choices=["yolo", "frcnn", "acf"], required=True)
    p.add_argument("--variant", nargs="+", action="append", required=True, metavar="NAME [k=v ...]")
    p.add_argument("--reid", action="store_true")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    sets = family_sets(a.family, a.reid)
    encoder = None
    if a.reid:
        inner = load_encoder("default", "cpu")
        encoder = BoxCachedEncoder(inner, emb_cache_path(inner))
    base, _ = ours_config("ours_reid" if a.reid else "ours_motion", sets[0][2])
    results: dict[str, dict] = {}
    seqs = {k: MOTSequence(d) for k, d, _ in sets}
    frames = {key: detection_frames(seqs[key], det, encoder) for key, _, det in tqdm(sets, desc="sets")}
    if encoder is not None:
        encoder.save()
    for name, *assign in tqdm(a.variant, desc="variants"):
        quantile, assign = split_quantile(assign)
        cfg = override(base, assign)
        pairs_by_group: dict[str, list] = {}
        for key, _, det in sets:
            seq = seqs[key]
            run = track_frames(seq, frames[key], with_score_quantile(cfg, seq.det(det).conf, quantile))
            res_path = REPO_ROOT / "runs" / "tune_tracker" / a.family / name / f"{key.replace('/', '_')}.txt"
            res_path.parent.mkdir(parents=True, exist_ok=True)
            write_mot_results(res_path, run.outputs)
            group = "MOT15" if key.startswith("MOT15/") else key
            pairs_by_group.setdefault(group, []).append((seq.name, seq.gt(), read_mot_file(res_path, "result")))
        res = {}
        for group, pairs in pairs_by_group.items():
            scored = evaluate(pairs, benchmark="MOT15",
                              workers=1, hota=False)
            res[group] = {k: scored.overall[k] for k in ("MOTA", "IDF1", "IDSW")}
        pets = [v for g, v in res.items() if g.startswith("PETS/")]
        res["mean_PETS"] = {k: sum(v[k] for v in pets) / len(pets) for k in ("MOTA", "IDF1")}
        res["min_PETS"] = {k: min(v[k] for v in pets) for k in ("MOTA", "IDF1")}
        results[name] = {"overrides": assign + ([f"score_quantile={quantile}"] if quantile is not None else []),
                         "scores": res}
        line = " | ".join(f"{g} {v['MOTA']:.1f}/{v['IDF1']:.1f}" for g, v in res.items())
        tqdm.write(f"{name}: {line}")
        if a.json:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
