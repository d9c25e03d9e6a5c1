"""Ours vs PyPI peer trackers on the same detections, all scored by the project's evaluator.

    .venv/bin/python tools/bench_mot.py [--sets mot15 pets] [--trackers ours_motion boxmot_bytetrack ...] [--force]
    .venv/bin/python tools/bench_mot.py --sets pets --det-sets yolov5n-480-c50-n60 frcnn   # some PETS sets only
    .venv/bin/python tools/bench_mot.py --sets mot15 --trackers ours_motion norfair ... --repeats 3   # timing only

Sets: ``mot15`` = the 7 MOT15 train sequences with det/frcnn.txt (motion only: no frames for most);
``pets`` = PETS09-S2L1 with frcnn, the official det.txt (ACF scores / 100) and the 13 yolov5n sets of
pipeline.mot.bench_sets.YOLO_SETS (score 0.25 / 0.4 / 0.5 x NMS 0.45 / 0.6 x input 640 / 480, plus the original
conf 0.1 set ``yolov5n``; built and cached under runs/dets/ by tools/make_det_sets.py on first use), appearance
on (ours_reid + re-id encoder, each box embedded once over all sets; deep-sort-realtime only on frcnn, det and
yolov5n unless --deepsort-all: its CPU embedder runs at ~2 frames/s).
Ours: one config per detector family (pipeline.mot.bench_sets.config_name: frcnn -> default.yaml, det ->
acf.yaml, yolov5n* -> yolo.yaml; a set of another name: the preset its scores call for, as
``benchmark mot --config auto``); ``ours_motion`` is that config with appearance off, ``ours_reid`` adds the
default re-id encoder. Peers run in ``.venv-peers`` (created on demand from tools/peers/requirements.txt) through
tools/peers/run_peer.py, one process per peer for all its uncached sequences; result files are cached under
runs/bench_mot/results/<set>/<tracker>/ (ours: re-run when its config or re-id checkpoint changed).
Writes runs/bench_mot/results.json (updated after every run), results.md (first a per-set "who leads" table:
ours_reid where it ran, else ours_motion, against the best peer on MOTA and on IDF1; ``*`` marks each set's
best) and leads.png (the same as bars); prints the tables.
FPS = frames / seconds inside the tracker's update (ours excludes the encoder; deep-sort-realtime's
update includes its embedder).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.mot.bench_sets import (YOLO_SETS, BoxCachedEncoder, det_sequence, emb_cache_path, make_yolo_sets,
                                     ours_config)

REPO = Path(__file__).resolve().parents[1]

PEERS_MOTION = ["boxmot_bytetrack", "boxmot_ocsort", "boxmot_botsort", "supervision_bytetrack", "norfair"]
PEERS_APPEARANCE = ["deepsort"]
OURS = ["ours_motion", "ours_reid"]
METRICS = ["MOTA", "IDF1", "IDSW", "FP", "FN"]


def ensure_peers_venv(venv: Path) -> Path:
    """The peers' Python, creating the venv from tools/peers/requirements.txt when missing."""
    py = venv / "bin" / "python"
    if py.exists():
        return py
    print(f"creating {venv} (peer trackers, own NumPy) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    req = REPO / "tools" / "peers" / "requirements.txt"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(req)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "norfair==2.3.0", "rich"], check=True)
    return py


#: deep-sort-realtime embeds every box with MobileNetV2 on the CPU (~2 frames/s): only on these PETS sets
DEEPSORT_SETS = ("PETS09-S2L1/frcnn", "PETS09-S2L1/det", "PETS09-S2L1/yolov5n")


def bench_sets(shared: Path, out_root: Path, which: list[str], only: list[str] | None = None) -> dict[str, dict]:
    """set key -> {seq_dirs, det, score_scale, appearance}; ``only``: keep these PETS det names."""
    from pipeline.mot import find_sequences

    root = shared / "data" / "MOT15" / "train"
    sets: dict[str, dict] = {}
    if "mot15" in which:
        seqs = [s.seq_dir for s in find_sequences(root, det="frcnn")]
        sets["MOT15-frcnn"] = dict(seq_dirs=seqs, det="frcnn", score_scale=1.0, appearance=False)
    if "pets" in which:
        pets = root / "PETS09-S2L1"
        sets["PETS09-S2L1/frcnn"] = dict(seq_dirs=[pets], det="frcnn", score_scale=1.0, appearance=True)
        sets["PETS09-S2L1/det"] = dict(seq_dirs=[pets], det="det", score_scale=100.0, appearance=True)
        yolo = [s for s in YOLO_SETS if only is None or s.name in only]
        files = make_yolo_sets(pets, shared / "weights" / "yolov5n.onnx", tuple(yolo)) if yolo else {}
        for name, det_file in files.items():
            sets[f"PETS09-S2L1/{name}"] = dict(seq_dirs=[det_sequence(pets, out_root, name, det_file)], det=name,
                                               score_scale=1.0, appearance=True)
        if only is not None:
            sets = {k: v for k, v in sets.items() if k == "MOT15-frcnn" or v["det"] in only}
    return sets


def peer_argv(tracker: str, seq, det: str, scale: float, out: Path) -> list[str]:
    """tools/peers/run_peer.py arguments for one sequence."""
    argv = ["--tracker", tracker, "--det", str(seq.seq_dir / "det" / f"{det}.txt"), "--frames", str(seq.info.seq_length),
            "--fps", str(seq.info.frame_rate), "--width", str(seq.info.im_width), "--height", str(seq.info.im_height),
            "--score-scale", str(scale), "--out", str(out)]
    if tracker in PEERS_APPEARANCE:
        argv += ["--img-dir", str(seq.seq_dir / seq.info.im_dir), "--img-ext", seq.info.im_ext]
    return argv


def _peer_proc(py: Path, args: list[str]) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run([str(py), str(REPO / "tools" / "peers" / "run_peer.py"), *args], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"{args[1] if args[0] == '--tracker' else 'peer batch'} failed: {tail}")


def run_peer(py: Path, tracker: str, seq, det: str, scale: float, out: Path, force: bool) -> dict:
    """Run one peer on one sequence (cached); -> timing/settings JSON."""
    meta = out.with_suffix(".json")
    if out.exists() and meta.exists() and not force:
        return json.loads(meta.read_text())
    _peer_proc(py, peer_argv(tracker, seq, det, scale, out))
    return json.loads(meta.read_text())


def prefetch_peers(py: Path, jobs: list[tuple], out_root: Path) -> None:
    """Run every uncached (tracker, seq, det, scale, out) job, one process per tracker (imports paid once)."""
    by_tracker: dict[str, list[list[str]]] = {}
    for tracker, seq, det, scale, out in jobs:
        if not (out.exists() and out.with_suffix(".json").exists()):
            by_tracker.setdefault(tracker, []).append(peer_argv(tracker, seq, det, scale, out))
    for tracker, argvs in by_tracker.items():
        print(f"[bench] {tracker}: {len(argvs)} sequences in one process", flush=True)
        jobs_file = out_root / f"peer_jobs_{tracker}.json"
        jobs_file.parent.mkdir(parents=True, exist_ok=True)
        jobs_file.write_text(json.dumps(argvs))
        try:
            _peer_proc(py, ["--jobs", str(jobs_file)])
        except RuntimeError as exc:  # the per-sequence loop retries (and reports) what is still missing
            print(f"[bench] {tracker} batch: {exc}", file=sys.stderr)


#: one tracker config per detector type (trackers/presets/<name>.yaml), used by both of our variants
def run_ours(variant: str, seq, det: str, out: Path, force: bool, encoder_cache: dict) -> dict:
    """Our tracker (pipeline.mot.tracking.track_sequence) on one sequence (cached) -> timing/settings JSON."""
    from pipeline.mot import write_mot_results
    from pipeline.mot.tracking import load_encoder, track_sequence

    import hashlib

    config, cfg_path = ours_config(variant, det, seq)
    encoder = None
    if variant == "ours_reid":
        if "default" not in encoder_cache:
            inner = load_encoder("default", "cpu")
            encoder_cache["default"] = BoxCachedEncoder(inner, emb_cache_path(inner))
        encoder = encoder_cache["default"]
    # a changed tracker config or a newly shipped re-id checkpoint is re-run
    key = config.model_dump_json() + (encoder.key if encoder is not None else "")  # weights + crop resize + flip
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    meta = out.with_suffix(".json")
    if out.exists() and meta.exists() and not force:
        cached = json.loads(meta.read_text())
        if cached.get("settings", {}).get("config_sha1") == digest:
            return cached
    run = track_sequence(seq, det, config, encoder)
    if encoder is not None:
        encoder.save()  # box embeddings on disk: the next run (any tool) replays them
    out.parent.mkdir(parents=True, exist_ok=True)
    write_mot_results(out, run.outputs)
    info = {"tracker": variant, "frames": run.n_frames, "tracker_seconds": run.tracker_seconds, "fps": run.fps,
            "settings": {"config": str(cfg_path.relative_to(REPO)), "config_sha1": digest, "appearance": variant == "ours_reid",
                         "reid": f"default checkpoint {encoder.version}" if encoder else "none"}}
    meta.write_text(json.dumps(info, indent=1))
    return info


def score(seqs, det_results: dict[str, Path], metas: list[dict]) -> dict:
    """Evaluate one tracker's result files on one set with the project's evaluator."""
    from pipeline.evaluation import evaluate
    from pipeline.mot import read_mot_file

    pairs = [(s.name, s.gt(), read_mot_file(det_results[s.name], "result")) for s in seqs]
    report = evaluate(pairs, benchmark="MOT15", workers=1, hota=False)
    frames = sum(m["frames"] for m in metas)
    secs = sum(m["tracker_seconds"] for m in metas)
    keep = METRICS + ["MOTP", "Rcll", "Prcn", "MT", "ML"]
    return {"overall": {k: report.overall.get(k) for k in keep},
            "per_sequence": {n: {k: v.get(k) for k in keep} for n, v in report.per_sequence.items()},
            "fps": frames / secs if secs > 0 else None, "frames": frames, "settings": metas[0].get("settings")}


def fmt(v, key: str) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if key in ("MOTA", "IDF1", "FPS") else f"{int(round(v))}"


def leads(results: dict, variant: str = "ours_motion") -> list[dict]:
    """Per set: our ``variant`` row against the best peer on MOTA and on IDF1; margin > 0 = ours leads.
    ``ours_motion`` is the like-for-like comparison (the peers but deep-sort-realtime use no appearance)."""
    rows = []
    for set_key, by_tracker in results["sets"].items():
        peers = {t: r for t, r in by_tracker.items() if t not in OURS}
        if variant not in by_tracker or not peers:
            continue
        row = {"set": set_key, "ours": variant}
        for k in ("MOTA", "IDF1"):
            best = max(peers, key=lambda t: peers[t]["overall"][k])
            row[k] = by_tracker[variant]["overall"][k]
            row[f"peer_{k}"] = peers[best]["overall"][k]
            row[f"peer_{k}_who"] = best
            row[f"margin_{k}"] = row[k] - row[f"peer_{k}"]
        rows.append(row)
    return rows


def tables(results: dict) -> str:
    """Markdown: the per-set lead summary, then per set overall rows (one per tracker; ``*`` marks the set's
    best MOTA / IDF1), then per-sequence rows when > 1 sequence."""
    lines: list[str] = ["### Who leads (margin = ours - best peer; ours_reid: PETS sets only)", "",
                        "| set | ours | MOTA | best peer MOTA | margin | IDF1 | best peer IDF1 | margin |",
                        "|---|---|---|---|---|---|---|---|"]
    for r in sorted(leads(results) + leads(results, "ours_reid"), key=lambda r: list(results["sets"]).index(r["set"])):
        lines.append(f"| {r['set']} | {r['ours']} | {r['MOTA']:.1f} | {r['peer_MOTA']:.1f} ({r['peer_MOTA_who']}) | "
                     f"{r['margin_MOTA']:+.1f} | {r['IDF1']:.1f} | {r['peer_IDF1']:.1f} ({r['peer_IDF1_who']}) | "
                     f"{r['margin_IDF1']:+.1f} |")
    lines.append("")
    for set_key, by_tracker in results["sets"].items():
        lines += [f"### {set_key}", "", "| tracker | " + " | ".join(METRICS) + " | FPS |",
                  "|---" * (len(METRICS) + 2) + "|"]
        best = {k: max(r["overall"][k] for r in by_tracker.values()) for k in ("MOTA", "IDF1")}
        for tr, r in by_tracker.items():
            cells = [fmt(r["overall"].get(k), k) + ("*" if k in best and r["overall"][k] == best[k] else "")
                     for k in METRICS] + [fmt(r.get("fps"), "FPS")]
            lines.append(f"| {tr} | " + " | ".join(cells) + " |")
        seq_names = sorted({s for r in by_tracker.values() for s in r["per_sequence"]})
        if len(seq_names) > 1:
            lines += ["", "| sequence | tracker | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 2) + "|"]
            for s in seq_names:
                for tr, r in by_tracker.items():
                    m = r["per_sequence"].get(s, {})
                    lines.append(f"| {s} | {tr} | " + " | ".join(fmt(m.get(k), k) for k in METRICS) + " |")
        lines.append("")
    return "\n".join(lines)


def plot_leads(results: dict, path: Path) -> None:
    """PNG: per set, ours vs the best peer on IDF1 (left) and MOTA (right); ours = ours_reid (the shipped
    config, appearance on) where it ran, else ours_motion (each bar is labelled with which)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reid = {r["set"]: r for r in leads(results, "ours_reid")}
    motion = {r["set"]: r for r in leads(results)}
    rows = [reid.get(k) or motion[k] for k in results["sets"] if k in reid or k in motion]
    if not rows:
        return
    fig, axes = plt.subplots(1, 2, figsize=(14, 0.42 * len(rows) + 1.6), sharey=True)
    y = np.arange(len(rows))
    for ax, k in zip(axes, ("IDF1", "MOTA")):
        ax.barh(y - 0.2, [r[k] for r in rows], 0.4, label="ours", color="tab:blue")
        ax.barh(y + 0.2, [r[f"peer_{k}"] for r in rows], 0.4, label="best peer", color="tab:orange")
        for i, r in enumerate(rows):
            ax.text(max(r[k], r[f"peer_{k}"]) + 0.5, i, f"{r[f'margin_{k}']:+.1f} vs {r[f'peer_{k}_who']}",
                    va="center", fontsize=7)
        ax.set_title(f"{k}: ours vs best peer")
        ax.set_xlim(min(min(r[k], r[f"peer_{k}"]) for r in rows) - 5, 100)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, [f"{r['set'].replace('PETS09-S2L1/', 'PETS ')} ({r['ours'].replace('ours_', '')})"
                           for r in rows], fontsize=8)
    axes[0].invert_yaxis()
    axes[0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save(results: dict, out_root: Path, plot: bool = True) -> None:
    """results.json and results.md; leads.png too unless ``plot`` is False (matplotlib takes ~20 s on a loaded
    CPU: after every run only the JSON and tables are refreshed, the bars once at the end)."""
    out_root.mkdir(parents=True, exist_ok=True)
    tmp = out_root / "results.json.part"
    tmp.write_text(json.dumps(results, indent=1, default=str))
    tmp.replace(out_root / "results.json")
    (out_root / "results.md").write_text(tables(results))
    if plot:
        plot_leads(results, out_root / "leads.png")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="+", choices=["mot15", "pets"], default=["mot15", "pets"])
    p.add_argument("--trackers", nargs="+", default=None, help=f"subset of {OURS + PEERS_MOTION + PEERS_APPEARANCE}")
    p.add_argument("--det-sets", nargs="+", default=None, metavar="NAME",
                   help="only these PETS detection sets (frcnn, det, yolov5n, yolov5n-480-c25-n60, ...; "
                        "tools/make_det_sets.py --list)")
    p.add_argument("--deepsort-all", action="store_true",
                   help=f"run deep-sort-realtime (slow: its CPU embedder) on every PETS set, not only {DEEPSORT_SETS}")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "bench_mot")
    p.add_argument("--peers-venv", type=Path, default=REPO / ".venv-peers")
    p.add_argument("--force", action="store_true", help="recompute cached result files")
    p.add_argument("--repeats", type=int, default=1,
                   help="run each tracker N times per sequence (recomputed) and report the fastest: for FPS on a busy CPU")
    a = p.parse_args(argv)
    from tqdm import tqdm

    from pipeline.mot import MOTSequence
    from pipeline.core.paths import require_shared

    shared = require_shared()
    sets = bench_sets(shared, a.out, a.sets, a.det_sets)
    wanted = a.trackers or (OURS + PEERS_MOTION + PEERS_APPEARANCE)
    results_path = a.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results.setdefault("sets", {})
    known = set(OURS + PEERS_MOTION + PEERS_APPEARANCE)
    for by_tracker in results["sets"].values():  # drop rows of trackers this script no longer runs
        for stale in set(by_tracker) - known:
            by_tracker.pop(stale)
    results["note"] = "FPS: frames / seconds inside the tracker update (ours without the encoder; deepsort with its embedder)"
    py = None
    encoders: dict = {}
    jobs = [(k, t) for k, s in sets.items() for t in wanted
            if ((t not in PEERS_APPEARANCE and t != "ours_reid") or s["appearance"])
            and (t not in PEERS_APPEARANCE or a.deepsort_all or k in DEEPSORT_SETS)]
    if a.repeats == 1 and not a.force:
        seqs_of = {k: [MOTSequence(d) for d in s["seq_dirs"]] for k, s in sets.items()}
        peer_jobs = [(t, q, sets[k]["det"], sets[k]["score_scale"],
                      a.out / "results" / k.replace("/", "_") / t / f"{q.name}.txt")
                     for k, t in jobs if t not in OURS for q in seqs_of[k]]
        if peer_jobs:
            py = ensure_peers_venv(a.peers_venv)
            prefetch_peers(py, peer_jobs, a.out)
    for set_key, tracker in tqdm(jobs, desc="bench", unit="run"):
        spec = sets[set_key]
        seqs = [MOTSequence(d) for d in spec["seq_dirs"]]
        res_dir = a.out / "results" / set_key.replace("/", "_") / tracker
        paths, metas = {}, []
        t0 = time.time()
        try:
            for seq in seqs:
                out = res_dir / f"{seq.name}.txt"
                runs = []
                for rep in range(a.repeats):  # timing: keep the fastest of the repeats (outputs are deterministic)
                    force = a.force or rep > 0
                    if tracker in OURS:
                        runs.append(run_ours(tracker, seq, spec["det"], out, force, encoders))
                    else:
                        py = py or ensure_peers_venv(a.peers_venv)
                        runs.append(run_peer(py, tracker, seq, spec["det"], spec["score_scale"], out, force))
                best = min(runs, key=lambda m: m["tracker_seconds"])
                metas.append(dict(best, repeats=len(runs)))
                paths[seq.name] = out
            scored = score(seqs, paths, metas)
        except Exception as exc:  # one broken tracker must not lose the others' results
            print(f"[bench] {set_key} {tracker}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                  file=sys.stderr)
            results["sets"].setdefault(set_key, {}).pop(tracker, None)
            continue
        results["sets"].setdefault(set_key, {})[tracker] = scored
        results["sets"][set_key][tracker]["wall_s"] = round(time.time() - t0, 1)
        save(results, a.out, plot=False)
    save(results, a.out)
    print(tables(results))
    print(f"wrote {a.out / 'results.json'}, {a.out / 'results.md'} and {a.out / 'leads.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
