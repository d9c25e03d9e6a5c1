"""Ours vs PyPI peer trackers on the same detections, all scored by the project's evaluator.

    .venv/bin/python tools/bench_mot.py [--sets mot15 pets] [--trackers ours_motion boxmot_bytetrack ...] [--force]
    .venv/bin/python tools/bench_mot.py --sets mot15 --trackers ours_motion norfair ... --repeats 3   # timing only

Sets: ``mot15`` = the 7 MOT15 train sequences with det/frcnn.txt (motion only: no frames for most);
``pets`` = PETS09-S2L1 with frcnn, the official det.txt (ACF scores / 100) and yolov5n detections made
by ``reid-pipeline detect`` (cached in runs/dets/), appearance on (ours_reid + re-id encoder, deep-sort-realtime).
Ours: one config per detector type (CONFIG_BY_DET: frcnn -> default.yaml, det -> acf.yaml, yolov5n ->
yolo.yaml); ``ours_motion`` is that config with appearance off, ``ours_reid`` adds the default re-id encoder.
Peers run in ``.venv-peers`` (created on demand from tools/peers/requirements.txt) through
tools/peers/run_peer.py; result files are cached under runs/bench_mot/results/<set>/<tracker>/.
Writes runs/bench_mot/results.json (updated after every run) and results.md; prints the table.
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

from pipeline.mot.bench_sets import ours_config, yolov5n_sequence

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


def bench_sets(shared: Path, out_root: Path, which: list[str]) -> dict[str, dict]:
    """set key -> {seq_dirs, det, score_scale, appearance}."""
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
        sets["PETS09-S2L1/yolov5n"] = dict(seq_dirs=[yolov5n_sequence(pets, out_root)], det="yolov5n",
                                           score_scale=1.0, appearance=True)
    return sets


def run_peer(py: Path, tracker: str, seq, det: str, scale: float, out: Path, force: bool) -> dict:
    """Run one peer on one sequence (cached); -> timing/settings JSON."""
    meta = out.with_suffix(".json")
    if out.exists() and meta.exists() and not force:
        return json.loads(meta.read_text())
    cmd = [str(py), str(REPO / "tools" / "peers" / "run_peer.py"), "--tracker", tracker,
           "--det", str(seq.seq_dir / "det" / f"{det}.txt"), "--frames", str(seq.info.seq_length),
           "--fps", str(seq.info.frame_rate), "--width", str(seq.info.im_width), "--height", str(seq.info.im_height),
           "--score-scale", str(scale), "--out", str(out)]
    if tracker in PEERS_APPEARANCE:
        cmd += ["--img-dir", str(seq.seq_dir / seq.info.im_dir), "--img-ext", seq.info.im_ext]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"{tracker} on {seq.name} failed: {tail}")
    return json.loads(meta.read_text())


#: one tracker config per detector type (configs/tracker/<name>.yaml), used by both of our variants
def run_ours(variant: str, seq, det: str, out: Path, force: bool, encoder_cache: dict) -> dict:
    """Our tracker (pipeline.mot.tracking.track_sequence) on one sequence (cached) -> timing/settings JSON."""
    from pipeline.mot import write_mot_results
    from pipeline.mot.tracking import load_encoder, track_sequence

    import hashlib

    config, cfg_path = ours_config(variant, det)
    encoder = None
    if variant == "ours_reid":
        if "default" not in encoder_cache:
            encoder_cache["default"] = load_encoder("default", "cpu")
        encoder = encoder_cache["default"]
    # a changed tracker config or a newly shipped re-id checkpoint is re-run
    key = config.model_dump_json() + (encoder.version if encoder is not None else "")
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    meta = out.with_suffix(".json")
    if out.exists() and meta.exists() and not force:
        cached = json.loads(meta.read_text())
        if cached.get("settings", {}).get("config_sha1") == digest:
            return cached
    run = track_sequence(seq, det, config, encoder)
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


def tables(results: dict) -> str:
    """Markdown tables: per set, overall rows (one per tracker), then per-sequence rows when > 1 sequence."""
    lines: list[str] = []
    for set_key, by_tracker in results["sets"].items():
        lines += [f"### {set_key}", "", "| tracker | " + " | ".join(METRICS) + " | FPS |",
                  "|---" * (len(METRICS) + 2) + "|"]
        for tr, r in by_tracker.items():
            cells = [fmt(r["overall"].get(k), k) for k in METRICS] + [fmt(r.get("fps"), "FPS")]
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


def save(results: dict, out_root: Path) -> None:
    out_root.mkdir(parents=True, exist_ok=True)
    tmp = out_root / "results.json.part"
    tmp.write_text(json.dumps(results, indent=1, default=str))
    tmp.replace(out_root / "results.json")
    (out_root / "results.md").write_text(tables(results))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="+", choices=["mot15", "pets"], default=["mot15", "pets"])
    p.add_argument("--trackers", nargs="+", default=None, help=f"subset of {OURS + PEERS_MOTION + PEERS_APPEARANCE}")
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
    sets = bench_sets(shared, a.out, a.sets)
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
            if (t not in PEERS_APPEARANCE and t != "ours_reid") or s["appearance"]]
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
        save(results, a.out)
    print(tables(results))
    print(f"wrote {a.out / 'results.json'} and {a.out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
