#!/usr/bin/env python
"""Cross-camera tracklet linking on real data: the Market-1501 test identities of the fixed split.

"Tracklets" are one identity's crops in one camera and recording sequence (Market file names
``PPPP_cCsS_FFFFFF_NN.jpg``), over the 250 TEST identities of the project's fixed split
(``reid_models.datasets.protocols.market_split``, 501 / 250, seed 0); the shipped default encoder was
trained on the 501 train identities (+ CUHK03) and never saw them. Each tracklet's crop embeddings are
mean-aggregated (``reid_models.aggregation.MeanAggregator``), timed from its frame numbers at 25 fps
(:func:`pipeline.evaluation.tracklet_links.market_time_spans`), and the cross-camera matcher alone
(``CrossCameraMatcher``, default ``MatcherConfig`` with the matcher's ``cam_id`` = the sequence, all
sequences declared overlapping and no time-to-live:
:func:`pipeline.evaluation.tracklet_links.market_matcher_config`, because the sequences' clocks are not
synchronised) links them, fed one at a time in order of end time; variants with ``warmup: no-link`` and
with every default (cameras c1..c6, one clock) are reported beside it. Scores (:mod:`pipeline.evaluation.tracklet_links`): global IDF1 over the crops,
pairwise link precision / recall / F1 over tracklet pairs, and cross-camera tracklet rank-1, for the
default encoder, ImageNet features and no linking. A sweep of fixed thresholds is reported beside the
headline (calibrated threshold); nothing is tuned on these identities. Crop embeddings are cached in
``--out`` (npz), so a re-run takes seconds::

    .venv/bin/python tools/bench_market_tracklets.py --out runs/bench_market_tracklets

``--ann`` compares the headline (default encoder, calibrated) with the matcher's ANN gallery index forced on
(``matching.index: {kind: faiss, min_gallery: 0}``: candidates proposed by the IVF-PQ index as soon as it can
be trained, i.e. from 256 identities on; docs/gallery.md) and writes ``ann_vs_exact.json``::

    .venv/bin/python tools/bench_market_tracklets.py --out runs/bench_market_tracklets --ann
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from pipeline.core.paths import require_shared

from pipeline.core.types import TrackletEmbedding
from pipeline.evaluation.tracklet_links import (
    MARKET_FPS, link_tracklets, market_matcher_config, market_time_spans, no_link_ids, pairwise_link_scores,
    retrieval_rank1, tracklet_idf1,
)
from pipeline.matching.config import IndexConfig, MatcherConfig

#: fixed thresholds reported beside the headline: 0.1 .. 0.6 by 0.05, and 0.02 .. 0.08 below it, where the
#: calibrated thresholds of compact embeddings fall (reported only: nothing is chosen from them)
SWEEP = [0.02, 0.04, 0.06, 0.08] + [round(0.1 + 0.05 * k, 2) for k in range(11)]


def test_tracklets(market_dir: Path) -> list[dict]:
    """Tracklets (dicts of ``folder_tracklets``) of the 250 test identities of the fixed Market split."""
    from reid_models.datasets.index import load_market_folder
    from reid_models.datasets.protocols import folder_tracklets, market_split

    items = [it for it in market_split(load_market_folder(market_dir)) if it.split == "test"]
    return folder_tracklets(items)


def crop_embeddings(paths: list[Path], name: str, out: Path) -> tuple[np.ndarray, str]:
    """(N, D) embeddings of the crops ``paths`` by encoder ``name`` ("default" | "imagenet"), cached in
    ``out/emb_<name>_<embedding key>.npz`` (keyed by ``AppearanceEncoder.embedding_key`` and the file names)."""
    import cv2
    from reid_models.encoder import AppearanceEncoder

    enc = AppearanceEncoder.from_checkpoint() if name == "default" else AppearanceEncoder.imagenet_baseline()
    cache = out / f"emb_{name}_{enc.embedding_key}.npz"
    names = np.array([p.name for p in paths])
    if cache.is_file():
        z = np.load(cache)
        if z["names"].shape == names.shape and bool((z["names"] == names).all()):
            return z["emb"], enc.version
    t0 = time.perf_counter()
    emb = np.concatenate([enc.embed_crops([cv2.imread(str(p)) for p in paths[s:s + 256]])
                          for s in range(0, len(paths), 256)])
    print(f"{name}: embedded {len(paths)} crops in {time.perf_counter() - t0:.0f} s", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, names=names, emb=emb)
    return emb, enc.version


def tracklet_vectors(tracklets: list[dict], crop_emb: np.ndarray) -> np.ndarray:
    """(T, D) mean-aggregated tracklet embeddings from the (N, D) crop embeddings in tracklet order."""
    from reid_models.aggregation import MeanAggregator

    agg, out, k = MeanAggregator(), [], 0
    for t in tracklets:
        out.append(agg.aggregate(crop_emb[k:k + len(t["paths"])]))
        k += len(t["paths"])
    return np.stack(out)


def pair_distances(vecs: np.ndarray, pids: list[int]) -> dict[str, float]:
    """Cosine-distance percentiles of tracklet pairs of one identity / of two identities (diagnostic:
    where a threshold would have to lie), and the norm of the mean tracklet vector (1 = all alike)."""
    d = 1.0 - vecs @ vecs.T
    iu = np.triu_indices(len(vecs), 1)
    same = (np.asarray(pids)[:, None] == np.asarray(pids)[None, :])[iu]
    pos, neg = d[iu][same], d[iu][~same]
    return {"same_p50": float(np.median(pos)), "same_p90": float(np.percentile(pos, 90)),
            "different_p2": float(np.percentile(neg, 2)), "different_p50": float(np.median(neg)),
            "mean_vector_norm": float(np.linalg.norm(vecs.mean(axis=0)))}


def scores(tracklets: list[dict], pred: list[int]) -> dict:
    """Global IDF1 over crops + pairwise link P/R/F1 + number of predicted identities."""
    true = [t["pid"] for t in tracklets]
    idf = tracklet_idf1(true, pred, [len(t["paths"]) for t in tracklets])
    pw = pairwise_link_scores(true, pred)
    return {"IDF1": idf["IDF1"], "IDTP": idf["IDTP"], "link_precision": pw["precision"],
            "link_recall": pw["recall"], "link_f1": pw["f1"], "linked_pairs": pw["pred_pairs"],
            "true_pairs": pw["true_pairs"], "identities": len(set(pred))}


def run(tracklets: list[dict], feats: dict[str, tuple[np.ndarray, str]], out: Path) -> dict:
    """All measurements -> out/results.json (+ sweep.png); returns the results."""
    spans = market_time_spans(tracklets, MARKET_FPS)
    clocks = [c for c, _, _ in spans]
    headline_cfg = market_matcher_config(clocks)
    res: dict = {
        "data": {"tracklets": len(tracklets), "crops": sum(len(t["paths"]) for t in tracklets),
                 "identities": len({t["pid"] for t in tracklets}), "sequences": len(set(clocks)),
                 "split": "Market-1501 bounding_box_train, fixed split 501 train / 250 test identities (seed 0): test ids only"},
        "timing": {"fps": MARKET_FPS, "clock": "per camera sequence: t = frame / fps; matcher cam_id = sequence",
                   "order": "one tracklet at a time by end time"},
        "matcher_headline": headline_cfg.model_dump(mode="json"),
        "no_linking": scores(tracklets, no_link_ids(len(tracklets))),
        "features": {},
    }
    for name, (emb, version) in feats.items():
        vecs = tracklet_vectors(tracklets, emb)
        r1, nq = retrieval_rank1(vecs, [t["pid"] for t in tracklets], [t["camid"] for t in tracklets])
        items = [TrackletEmbedding(c, k, s, e, v) for k, ((c, s, e), v) in enumerate(zip(spans, vecs))]
        t0 = time.perf_counter()
        gids, cal = link_tracklets(items, headline_cfg)
        f = {"encoder_version": version, "rank1_cross_camera": r1, "rank1_queries": nq,
             "pair_distances": pair_distances(vecs, [t["pid"] for t in tracklets]),
             "calibrated": {**scores(tracklets, gids), "final_threshold": cal["threshold"],
                            "calibrated": cal["calibrated"], "negatives": cal["negatives"],
                            "suspected_overlaps": cal["suspected_overlaps"],
                            "matcher_s": round(time.perf_counter() - t0, 2)}}
        # the matcher with every default, cameras c1..c6 non-overlapping, all sequences on one clock from frame 0
        literal = [TrackletEmbedding(f"c{t['camid']}", k, s, e, v)
                   for k, (t, (_, s, e), v) in enumerate(zip(tracklets, spans, vecs))]
        gl, call = link_tracklets(literal, MatcherConfig())
        f["all_defaults_one_clock"] = {**scores(tracklets, gl), "final_threshold": call["threshold"],
                                       "suspected_overlaps": call["suspected_overlaps"]}
        # the same with ``auto_threshold.warmup: no-link`` (issue 12's candidate default)
        nolink = MatcherConfig().auto_threshold.model_copy(update={"warmup": "no-link"})
        gw, calw = link_tracklets(items, market_matcher_config(clocks, MatcherConfig(auto_threshold=nolink)))
        f["warmup_no_link"] = {**scores(tracklets, gw), "final_threshold": calw["threshold"]}
        f["sweep"] = {}
        for thr in SWEEP:
            cfg = market_matcher_config(clocks, MatcherConfig(auto_threshold=None, threshold=thr))
            f["sweep"][f"{thr:.2f}"] = scores(tracklets, link_tracklets(items, cfg)[0])
        res["features"][name] = f
        print(f"{name}: rank-1 {r1:.1f}, calibrated IDF1 {f['calibrated']['IDF1']:.1f} "
              f"(threshold {cal['threshold']:.3f}), {f['calibrated']['matcher_s']} s", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=2))
    plot(res, out / "sweep.png")
    print(table(res))
    return res


def ann_vs_exact(tracklets: list[dict], emb: np.ndarray, out: Path, window_candidates: int | None = None,
                 index_options: dict | None = None) -> dict:
    """Global IDF1 of the headline matcher (default encoder, calibrated) with the exact gallery search and with
    the ANN index forced on (revision window on and off) -> out/ann_vs_exact.json. ``window_candidates``:
    ``revise.settled_candidates`` of both (a scale option; it acts only where the index is in force);
    ``index_options``: further ``matching.index`` fields of both (e.g. pca_dim, pq_m)."""
    spans = market_time_spans(tracklets, MARKET_FPS)
    vecs = tracklet_vectors(tracklets, emb)
    items = [TrackletEmbedding(c, k, s, e, v) for k, ((c, s, e), v) in enumerate(zip(spans, vecs))]
    res = {}
    for revise in (True, False):
        base = market_matcher_config([c for c, _, _ in spans])
        base = base.model_copy(update={"revise": base.revise.model_copy(
            update={"enabled": revise, "settled_candidates": window_candidates})})
        row = {}
        for kind in ("exact", "faiss"):
            cfg = base.model_copy(update={"index": IndexConfig(kind=kind, min_gallery=0, **(index_options or {}))})
            t0 = time.perf_counter()
            gids, cal = link_tracklets(items, cfg)
            row[kind] = {**scores(tracklets, gids), "final_threshold": cal["threshold"],
                         "matcher_s": round(time.perf_counter() - t0, 2)}
            row[kind]["ids"] = [int(g) for g in gids]
        row["same_ids_fraction"] = float(np.mean(np.array(row["exact"].pop("ids")) == np.array(row["faiss"].pop("ids"))))
        row["IDF1_difference"] = row["faiss"]["IDF1"] - row["exact"]["IDF1"]
        res["revise_on" if revise else "revise_off"] = row
        print(f"revise {'on ' if revise else 'off'}: global IDF1 exact {row['exact']['IDF1']:.2f}, "
              f"ANN {row['faiss']['IDF1']:.2f} (difference {row['IDF1_difference']:+.2f}); same id for "
              f"{100 * row['same_ids_fraction']:.1f} % of tracklets", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ann_vs_exact.json").write_text(json.dumps(res, indent=2))
    return res


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}"


def table(res: dict) -> str:
    """Markdown tables of the headline and the sweep."""
    nl = res["no_linking"]
    lines = ["| features | global IDF1 | link P | link R | link F1 | identities | threshold | rank-1 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|",
             f"| no linking | {_pct(nl['IDF1'])} | — | 0.0 | 0.0 | {nl['identities']} | — | — |"]
    for name, f in res["features"].items():
        c = f["calibrated"]
        lines.append(f"| {name} | {_pct(c['IDF1'])} | {_pct(c['link_precision'])} | {_pct(c['link_recall'])} | "
                     f"{_pct(c['link_f1'])} | {c['identities']} | {c['final_threshold']:.3f} | {f['rank1_cross_camera']:.1f} |")
    for key, label in (("warmup_no_link", "calibrated, warmup no-link"),
                       ("all_defaults_one_clock", "all defaults, cameras c1..c6 on one clock")):
        for name, f in res["features"].items():
            c = f[key]
            lines.append(f"| {name} ({label}) | {_pct(c['IDF1'])} | {_pct(c['link_precision'])} | "
                         f"{_pct(c['link_recall'])} | {_pct(c['link_f1'])} | {c['identities']} | "
                         f"{c['final_threshold']:.3f} | |")
    lines += ["", "| fixed threshold | " + " | ".join(_sweep_keys(res)) + " |",
              "|---|" + "---:|" * len(_sweep_keys(res))]
    for name, f in res["features"].items():
        for key, label in (("IDF1", "IDF1"), ("link_precision", "link P"), ("link_recall", "link R")):
            lines.append(f"| {name} {label} | " + " | ".join(_pct(f["sweep"][k][key]) for k in _sweep_keys(res)) + " |")
    return "\n".join(lines)


def _sweep_keys(res: dict) -> list[str]:
    return list(next(iter(res["features"].values()))["sweep"])


def plot(res: dict, path: Path) -> None:
    """IDF1 and pairwise link P/R vs fixed threshold per feature set; no linking and the calibrated
    (headline) points marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = {"default": "tab:blue", "imagenet": "tab:orange"}
    for name, f in res["features"].items():
        th = [float(k) for k in f["sweep"]]
        col = colors.get(name)
        a.plot(th, [v["IDF1"] for v in f["sweep"].values()], "o-", color=col, label=f"{name} (fixed threshold)")
        c = f["calibrated"]
        a.plot([c["final_threshold"]], [c["IDF1"]], "*", ms=14, color=col, label=f"{name} calibrated (headline)")
        b.plot(th, [v["link_precision"] if v["link_precision"] is not None else np.nan for v in f["sweep"].values()],
               "o-", color=col, label=f"{name} precision")
        b.plot(th, [v["link_recall"] for v in f["sweep"].values()], "s--", color=col, label=f"{name} recall")
    a.axhline(res["no_linking"]["IDF1"], color="gray", ls=":", label="no linking")
    b.axhline(0.0, color="gray", ls=":", label="no linking (recall 0)")
    a.set(xlabel="matcher threshold (cosine distance)", ylabel="global IDF1 over crops (%)",
          title=f"Market-1501 test ids: {res['data']['tracklets']} tracklets, 6 cameras")
    b.set(xlabel="matcher threshold (cosine distance)", ylabel="pairwise link P / R (%)", title="tracklet-pair links")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--market", type=Path, default=None,
                    help="Market-1501 bounding_box_train folder (default ../shared/data/reid/Market-1501/bounding_box_train)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench_market_tracklets"))
    ap.add_argument("--embed-only", action="store_true", help="only fill the embedding cache")
    ap.add_argument("--ann", action="store_true",
                    help="only compare the exact gallery search with the ANN index forced on (ann_vs_exact.json)")
    ap.add_argument("--window-candidates", type=int, default=None,
                    help="with --ann: revise.settled_candidates (settled identities per tentative tracklet)")
    ap.add_argument("--pca-dim", type=int, default=None, help="with --ann: matching.index.pca_dim")
    ap.add_argument("--pq-m", type=int, default=None, help="with --ann: matching.index.pq_m")
    args = ap.parse_args()
    market = args.market or require_shared() / "data" / "reid" / "Market-1501" / "bounding_box_train"
    tracklets = test_tracklets(market)
    paths = [p for t in tracklets for p in t["paths"]]
    if args.ann:
        options = {k: v for k, v in (("pca_dim", args.pca_dim), ("pq_m", args.pq_m)) if v is not None}
        ann_vs_exact(tracklets, crop_embeddings(paths, "default", args.out)[0], args.out, args.window_candidates,
                     options)
        return
    feats = {name: crop_embeddings(paths, name, args.out) for name in ("default", "imagenet")}
    if args.embed_only:
        return
    run(tracklets, feats, args.out)


if __name__ == "__main__":
    main()
