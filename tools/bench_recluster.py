#!/usr/bin/env python3
"""Batch re-clustering on a finished ``tools/bench_pipeline.py`` run: global IDF1 before / after.

Re-uses a bench run folder (default runs/bench_pipeline_i10: ``cams/`` with the virtual cameras'
gt, and per variant ``<variant>/identities.sqlite`` + ``mot_global/``); nothing is re-detected or
re-embedded. For each variant (``ours``, ``baseline_auto``), on a copy of its store:

* online: the run's own ``mot_global`` as written (global IDF1 of ``evaluate_multicam``);
* no linking: every stored tracklet its own id (the floor any linking must beat);
* perfect linking: every tracklet under the gt id most of its boxes overlap (the ceiling);
* re-clustering (:func:`pipeline.matching.recluster.recluster_run`) with the threshold the
  pipeline uses by default ("calibrated": the false_match_rate quantile of the run's cannot-link
  pairs), with the run's final online calibrated threshold ("online"), with the fixed
  ``MatcherConfig.threshold`` default (0.35), and a sweep of fixed thresholds. The sweep is
  reported only: it is measured on the one benchmark that exists, so no value is chosen from it.

Writes ``results.json`` and ``idf1_vs_threshold.png`` under ``--out`` (default runs/bench_recluster)::

    .venv/bin/python tools/bench_recluster.py [--run-dir runs/bench_pipeline_i10] [--out runs/bench_recluster]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from pipeline.core.paths import REPO_ROOT

SWEEP = [0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5]


def _idf1(cams_dir: Path, mot_dir: Path) -> dict:
    from pipeline.evaluation.multicam import evaluate_multicam

    g = evaluate_multicam(cams_dir, mot_dir).global_
    return {k: round(float(g.get(k, 0.0)), 2) for k in ("IDF1", "IDP", "IDR")}


def _recluster(src_store: Path, work: Path, config, threshold: float | None) -> tuple[dict, dict]:
    from pipeline.matching.recluster import recluster_run
    from pipeline.store import IdentityStore

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    shutil.copy(src_store, work / "identities.sqlite")
    with IdentityStore(work / "identities.sqlite") as store:
        run_id = store.runs()[-1]["run_id"]
        res = recluster_run(store, run_id, config, threshold=threshold, out_dir=work)
    return res.summary(), res


def _no_link(src_store: Path, work: Path) -> None:
    from pipeline.matching.recluster import write_global_mot
    from pipeline.store import IdentityStore

    with IdentityStore(src_store, mode="read") as store:
        tracklets = store.tracklets()
    write_global_mot(tracklets, {t.tracklet_id: t.tracklet_id for t in tracklets}, work / "mot_global")


def _oracle(src_store: Path, cams_dir: Path, work: Path) -> None:
    """Perfect cross-camera linking of these tracklets: each takes the virtual-camera gt id that most
    of its boxes overlap (IoU > 0.5; none: its own id). The ceiling of any re-clustering of them."""
    from pipeline.evaluation.multicam import perfect_linking_labels
    from pipeline.matching.recluster import write_global_mot
    from pipeline.store import IdentityStore

    with IdentityStore(src_store, mode="read") as store:
        tracklets = store.tracklets()
    write_global_mot(tracklets, perfect_linking_labels(tracklets, cams_dir), work / "mot_global")


def bench_variant(name: str, run_dir: Path, cams_dir: Path, out: Path, online_thr: float | None) -> dict:
    from pipeline.matching.config import MatcherConfig

    src = run_dir / name / "identities.sqlite"
    config = MatcherConfig()  # the bench runs use the default matcher (calibrated)
    res: dict = {"online": _idf1(cams_dir, run_dir / name / "mot_global")}
    _no_link(src, out / name / "no_link")
    res["no_link"] = _idf1(cams_dir, out / name / "no_link" / "mot_global")
    _oracle(src, cams_dir, out / name / "oracle")
    res["oracle"] = _idf1(cams_dir, out / name / "oracle" / "mot_global")
    runs = {"calibrated": None, "online_threshold": online_thr, "fixed_default": MatcherConfig().threshold}
    for label, thr in runs.items():
        if label == "online_threshold" and thr is None:
            continue
        summary, _ = _recluster(src, out / name / label, config, thr)
        res[label] = {**_idf1(cams_dir, out / name / label / "mot_global"), "recluster": summary}
    # idempotence on the real store: a second pass over the calibrated result changes nothing
    from pipeline.matching.recluster import recluster_run
    from pipeline.store import IdentityStore

    with IdentityStore(out / name / "calibrated" / "identities.sqlite") as store:
        again = recluster_run(store, store.runs()[-1]["run_id"], config, out_dir=out / name / "calibrated")
    res["calibrated"]["second_pass_changed"] = again.changed
    res["sweep"] = {}
    for thr in SWEEP:
        _recluster(src, out / name / "sweep", config, thr)
        res["sweep"][f"{thr:.3f}"] = _idf1(cams_dir, out / name / "sweep" / "mot_global")["IDF1"]
    shutil.rmtree(out / name / "sweep")
    return res


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results["variants"]), figsize=(6 * len(results["variants"]), 4.2), squeeze=False)
    for ax, (name, r) in zip(axes[0], results["variants"].items()):
        xs = [float(k) for k in r["sweep"]]
        ax.plot(xs, list(r["sweep"].values()), "o-", color="tab:blue", label="re-clustering, fixed threshold")
        ax.axhline(r["online"]["IDF1"], color="tab:orange", ls="--", label=f"online {r['online']['IDF1']:.1f}")
        ax.axhline(r["no_link"]["IDF1"], color="gray", ls=":", label=f"no linking {r['no_link']['IDF1']:.1f}")
        c = r["calibrated"]
        ax.plot([c["recluster"]["threshold"]], [c["IDF1"]], "*", ms=14, color="tab:red",
                label=f"calibrated thr {c['recluster']['threshold']:.3f}: {c['IDF1']:.1f}")
        if "online_threshold" in r:
            o = r["online_threshold"]
            ax.plot([o["recluster"]["threshold"]], [o["IDF1"]], "s", ms=9, color="tab:green",
                    label=f"online final thr {o['recluster']['threshold']:.3f}: {o['IDF1']:.1f}")
        ax.axhline(r["oracle"]["IDF1"], color="tab:purple", ls="-.",
                   label=f"perfect linking of these tracklets {r['oracle']['IDF1']:.1f}")
        ax.axhline(80, color="k", lw=0.6, alpha=0.4)
        ax.set_title(f"{name}: global IDF1 vs re-clustering threshold")
        ax.set_xlabel("average-linkage cosine-distance threshold")
        ax.set_ylabel("global IDF1")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, default=REPO_ROOT / "runs" / "bench_pipeline_i10")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "bench_recluster")
    ap.add_argument("--variants", nargs="+", default=["ours", "baseline_auto"])
    args = ap.parse_args(argv)
    t0 = time.time()
    cams_dir = args.run_dir / "cams"
    bench = {}
    if (args.run_dir / "results.json").is_file():
        bench = json.loads((args.run_dir / "results.json").read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + (argv or sys.argv[1:])),
               "run_dir": str(args.run_dir), "variants": {}}
    for name in args.variants:
        online_thr = (bench.get(name, {}).get("summary", {}).get("matcher_calibration") or {}).get("threshold")
        r = bench_variant(name, args.run_dir, cams_dir, args.out, online_thr)
        results["variants"][name] = r
        print(f"[{name}] global IDF1: online {r['online']['IDF1']}, no linking {r['no_link']['IDF1']}, "
              f"perfect linking {r['oracle']['IDF1']}, "
              f"re-clustered (calibrated thr {r['calibrated']['recluster']['threshold']:.3f}) {r['calibrated']['IDF1']}"
              + (f", at the online final thr {r['online_threshold']['recluster']['threshold']:.3f}: "
                 f"{r['online_threshold']['IDF1']}" if "online_threshold" in r else "")
              + f", at the fixed default {r['fixed_default']['IDF1']}; second pass changed "
              f"{r['calibrated']['second_pass_changed']} tracklets")
        print(f"[{name}] sweep: " + ", ".join(f"{k}: {v}" for k, v in r["sweep"].items()))
    results["total_s"] = round(time.time() - t0, 1)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    plot(results, args.out / "idf1_vs_threshold.png")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'idf1_vs_threshold.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
