"""Re-id benchmark (issue 17): the shipped default vs raw ImageNet MobileNetV2 on three fixed protocols.

Protocols (reid_models/datasets/protocols.py; docs/reid_data_eval.md):

* **Market test split**: the 250 test identities of the seeded (seed 0) 501 / 250 identity split of
  Market-1501 ``bounding_box_train``; one query per identity and camera, the rest gallery, same-id
  same-camera gallery excluded. CMC rank-1/5/10 and mAP. (The default is trained on the 501 others.)
* **CUHK03 val** (100 identities never trained on): seed 003 single shot, 10 seeded trials.
* **PETS09-S2L1, all 19 identities as test identities** (cross-domain: nothing of PETS in training):
  ``make-triplets PETS09-S2L1 --stride 2 --min-vis 0 --split 0,0,1 --seed 0``; CMC/mAP (time protocol),
  the balanced-pair ROC of seed 000 (TPR at FPR <= 0.10), tracklet-to-tracklet rank-1 (mean / LSTM).
* **Sequences** of the Market test split and of CUHK03 val (an identity's crops in one camera and recording):
  video-to-video and image-to-video rank-1 (seed 004; ``reid_models.evaluate.video_retrieval``), mean pooling
  and, with --lstm, the LSTM.

Targets: Market rank-1 >= 85 and mAP >= 65; CUHK03 rank-1 >= 80; PETS TPR >= 0.90 at FPR <= 0.10;
PETS rank-1 and mAP >= ImageNet + 15 points each; LSTM tracklet rank-1 >= mean pooling. Every other model
is also compared with ``default`` on the same queries (rank-1 / mAP difference with a 95 % interval from a
bootstrap over identities), the figure a decision to replace the default rests on. ``NAME+rerank`` scores a
model with k-reciprocal re-ranking (``EvalConfig.rerank``); the targets are then also judged for
``default+rerank`` against ``imagenet+rerank`` (``verdict_rerank``), beside the plain verdict. Also the
embedding throughput of every backbone (torch and ONNX, batch 64) and, from the training checkpoint's
history, the training wall time and crops/s.

Usage::

    .venv/bin/python tools/bench_reid.py [--models default imagenet] [--extra NAME=CKPT ...]
        [--lstm runs/reid/market_lstm/last.pt] [--models imagenet default default+flip default+rerank]
        [--train-checkpoint runs/reid/market_cuhk03_default/last.pt]
        [--out runs/bench_reid] [--threads 2] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.evaluation.pets_reid_set import PETS_TEST_ARGS, TARGET_FPR, ensure_pets_set

TARGETS = {"market_rank1": 85.0, "market_mAP": 65.0, "cuhk03_rank1": 80.0, "pets_tpr": 0.90,
           "pets_gain_points": 15.0}
def protocol_items(shared: Path) -> dict[str, list]:
    """Test crops of the Market split and of CUHK03 val."""
    from reid_models.datasets.index import load_cuhk03_folder, load_market_folder
    from reid_models.datasets.protocols import market_split

    reid = shared / "data" / "reid"
    market = [it for it in market_split(load_market_folder(reid / "Market-1501" / "bounding_box_train"))
              if it.split == "test"]
    return {"market": market, "cuhk03": load_cuhk03_folder(reid / "CUHK03" / "detected" / "val", "test")}


def split_spec(spec: str) -> tuple[str, bool, bool]:
    """``NAME[+flip][+rerank]`` (either order) -> (NAME, flip, rerank)."""
    flip = rerank = False
    while True:
        if spec.endswith("+flip"):
            spec, flip = spec[:-len("+flip")], True
        elif spec.endswith("+rerank"):
            spec, rerank = spec[:-len("+rerank")], True
        else:
            return spec, flip, rerank


def evaluate_model(spec: str, enc, items: dict[str, list], pets: Path, lstm: Path | None,
                   rerank: bool = False) -> dict:
    """All three protocols for one model (``enc``: its AppearanceEncoder, ``spec`` as given; ``rerank``:
    k-reciprocal re-ranking of every protocol's queries + gallery and of the PETS pair ROC, ``EvalConfig.rerank``)."""
    from pipeline.commands.eval_reid import build_aggregators
    from reid_models.evaluate import EvalConfig, evaluate_dataset, evaluate_items

    cfg = EvalConfig(rerank=rerank)
    aggs = build_aggregators(lstm, enc.version)  # mean pooling, and the LSTM when given: PETS tracklets, sequences
    t0 = time.perf_counter()
    out = {"model": {"spec": spec, "version": enc.version, "dim": enc.dim, "flip": enc.flip, "rerank": rerank,
                     "crop_resize": enc.interpolation},
           "market": evaluate_items(items["market"], enc.embed_crops, cfg, "market", progress=False, video=aggs),
           "cuhk03": evaluate_items(items["cuhk03"], enc.embed_crops, cfg, "single_shot", trials=10, progress=False,
                                    video=aggs),
           "pets": evaluate_dataset(pets, enc.embed_crops, cfg, aggs, progress=False)}
    out["eval_seconds"] = time.perf_counter() - t0
    return out


def reuse_or_evaluate(spec: str, items: dict[str, list], pets: Path, lstm: Path | None,
                      earlier: dict[str, dict]) -> dict:
    """An earlier result of the same weights, flip and re-ranking setting (no LSTM involved) or a fresh
    evaluation. A spec ending in ``+flip`` is that model with test-time flip (``AppearanceEncoder.flip``), one
    ending in ``+rerank`` that model's embeddings scored with k-reciprocal re-ranking (both may be given)."""
    from pipeline.commands.eval_reid import load_encoder

    base, flip, rerank = split_spec(spec)
    enc = load_encoder(base, "auto", flip=flip)
    prev = earlier.get(reuse_key(enc.version, flip, rerank, enc.interpolation)) if lstm is None else None
    if prev is not None and "lstm" not in prev["pets"]["tracklets"]:
        print(f"{spec}: reusing the earlier result of version {prev['model']['version']}", flush=True)
        return prev
    return evaluate_model(spec, enc, items, pets, lstm, rerank)


def headline(m: dict) -> dict:
    """The figures the targets speak of, flat."""
    t = m["pets"]["tracklets"]
    return {
        "market_rank1": m["market"]["retrieval"]["rank1"], "market_rank5": m["market"]["retrieval"]["rank5"],
        "market_rank10": m["market"]["retrieval"]["rank10"], "market_mAP": m["market"]["retrieval"]["mAP"],
        "cuhk03_rank1": m["cuhk03"]["retrieval"]["rank1"], "cuhk03_rank5": m["cuhk03"]["retrieval"]["rank5"],
        "cuhk03_mAP": m["cuhk03"]["retrieval"]["mAP"],
        "pets_rank1": m["pets"]["retrieval"]["rank1"], "pets_mAP": m["pets"]["retrieval"]["mAP"],
        "pets_tpr": m["pets"]["roc"]["tpr_at_fpr"], "pets_fpr": m["pets"]["roc"]["fpr_at_that"],
        "pets_auc": m["pets"]["roc"]["auc"],
        "pets_tracklet_mean": t["mean"].get("rank1", float("nan")),
        "pets_tracklet_lstm": t["lstm"]["rank1"] if t.get("lstm", {}).get("num_queries") else None,
        **{f"{ds}_{short}_{agg}": _sequence_rank1(m, ds, agg, key) for ds in ("market", "cuhk03")
           for short, key in (("v2v", "video_to_video"), ("i2v", "image_to_video")) for agg in ("mean", "lstm")},
    }


def _sequence_rank1(m: dict, dataset: str, agg: str, key: str) -> float | None:
    """Rank-1 of the per-camera sequences of ``dataset`` (``evaluate_items``' "video"), None when not scored
    (an earlier result, or no LSTM)."""
    r = m[dataset].get("video", {}).get(agg, {}).get(key, {})
    return r["rank1"] if r.get("num_queries") else None


def verdict(rows: dict[str, dict], suffix: str = "") -> dict:
    """The targets for ``default<suffix>`` against ``imagenet<suffix>`` (suffix "" or "+rerank": both scored the
    same way)."""
    d, base = rows["default" + suffix], rows["imagenet" + suffix]
    v = {"market_rank1_met": d["market_rank1"] >= TARGETS["market_rank1"],
         "market_mAP_met": d["market_mAP"] >= TARGETS["market_mAP"],
         "cuhk03_rank1_met": d["cuhk03_rank1"] >= TARGETS["cuhk03_rank1"],
         "pets_tpr_met": d["pets_tpr"] >= TARGETS["pets_tpr"],
         "pets_rank1_gain": d["pets_rank1"] - base["pets_rank1"], "pets_mAP_gain": d["pets_mAP"] - base["pets_mAP"]}
    v["pets_gain_met"] = min(v["pets_rank1_gain"], v["pets_mAP_gain"]) >= TARGETS["pets_gain_points"]
    if d["pets_tracklet_lstm"] is not None:
        v["lstm_ge_mean_met"] = d["pets_tracklet_lstm"] >= d["pets_tracklet_mean"]
    return v


def paired_vs_default(res: dict[str, dict]) -> dict[str, dict]:
    """Every other model against ``default`` on the same queries: rank-1 and mAP differences (points) with
    95 % intervals from a bootstrap over identities (``reid_models.metrics.paired_difference``). A protocol
    is left out when either result has no per-query figures (an earlier ``--reuse``) or other queries."""
    from reid_models.metrics import paired_difference

    out: dict[str, dict] = {}
    base = res.get("default")
    for name, m in res.items():
        if base is None or name == "default":
            continue
        for proto in ("market", "cuhk03", "pets"):
            qa, qb = m[proto]["retrieval"].get("per_query"), base[proto]["retrieval"].get("per_query")
            if not qa or not qb or qa["pid"] != qb["pid"]:
                continue
            pids = np.asarray(qa["pid"])
            hits = [np.asarray(q["first_hit"]) == 0 for q in (qa, qb)]
            out.setdefault(name, {})[proto] = {
                "rank1": paired_difference(hits[0] * 100.0, hits[1] * 100.0, pids),
                "mAP": paired_difference(np.asarray(qa["ap"]), np.asarray(qb["ap"]), pids)}
    return out


def paired_table(paired: dict[str, dict]) -> list[str]:
    """Markdown rows of :func:`paired_vs_default`: difference [95 % interval] in points."""
    if not paired:
        return []
    cols = [(p, k) for p in ("market", "cuhk03", "pets") for k in ("rank1", "mAP")]
    lines = ["", "| vs default (points, 95 % interval over identities) | " + " | ".join(f"{p} {k}" for p, k in cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for name, by in paired.items():
        cells = [(f"{by[p][k]['diff']:+.1f} [{by[p][k]['lo']:+.1f}, {by[p][k]['hi']:+.1f}]" if p in by else "-")
                 for p, k in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def training_figures(ckpt: Path | None) -> dict | None:
    """Wall time and crops/s of a training run from its checkpoint's per-epoch history."""
    if ckpt is None or not ckpt.is_file():
        return None
    from reid_models.checkpoint import read_checkpoint

    blob = read_checkpoint(ckpt)
    hist = blob.get("extra", {}).get("history", [])
    secs = [h["seconds"] for h in hist if "seconds" in h]
    rates = [h["crops_per_s"] for h in hist if "crops_per_s" in h]
    cfg = blob.get("config", {})
    return {"checkpoint": str(ckpt), "epochs": len(hist), "device": cfg.get("device"),
            "batches_per_epoch": cfg.get("sampler", {}).get("batches_per_epoch"),
            "train_seconds": float(sum(secs)) if secs else None,
            "epochs_timed": len(secs), "crops_per_s_mean": float(np.mean(rates)) if rates else None}


def throughput(pets: Path, reps: int = 2) -> list[dict]:
    """crops/s of AppearanceEncoder.embed_crops on one batch of 64 real crops, per backbone and backend."""
    import cv2

    from reid_models.factory import available_models, build_model
    from reid_models.datasets import load_index
    from reid_models.encoder import AppearanceEncoder
    from reid_models.export import export_onnx

    crops = [cv2.imread(str(it.path)) for it in load_index(pets)[:64]]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in available_models():
            for last_stride in ((2, 1) if name == "mobilenetv2_pool" else (2,)):
                kw = {"last_stride": last_stride} if name.startswith("mobilenetv2") else {}
                model = build_model(name, pretrained=None, **kw).eval()
                onnx = export_onnx(model, Path(tmp) / f"{name}_{last_stride}.onnx")
                for backend in ("torch", "onnx"):
                    interp = "linear" if name == "mobilenetv2_imagenet" else "auto"
                    enc = AppearanceEncoder(model, name, "cpu", backend, 64, onnx if backend == "onnx" else None, interp)
                    enc.embed_crops(crops)  # warm-up
                    best = min(_timed(enc.embed_crops, crops) for _ in range(reps))
                    rows.append({"model": name, "last_stride": last_stride, "backend": backend,
                                 "input_hw": list(model.input_size), "dim": model.embedding_dim,
                                 "batch": len(crops), "crops_per_s": len(crops) / best})
                    print(f"throughput {name:>22} s{last_stride} {backend:>5}: {len(crops) / best:8.1f} crops/s", flush=True)
    return rows


def _timed(fn, arg) -> float:
    t0 = time.perf_counter()
    fn(arg)
    return time.perf_counter() - t0


def verdict_line(v: dict, label: str) -> str:
    ok = {True: "met", False: "MISSED"}
    return (f"{label}: Market r1 >= 85 {ok[v['market_rank1_met']]}, mAP >= 65 {ok[v['market_mAP_met']]}; "
            f"CUHK03 r1 >= 80 {ok[v['cuhk03_rank1_met']]}; PETS TPR >= 0.90 {ok[v['pets_tpr_met']]}; "
            f"PETS gain over ImageNet r1 {v['pets_rank1_gain']:+.1f} / mAP {v['pets_mAP_gain']:+.1f} "
            f"(>= +15 each: {ok[v['pets_gain_met']]})"
            + (f"; LSTM >= mean {ok[v['lstm_ge_mean_met']]}" if "lstm_ge_mean_met" in v else ""))


def table(rows: dict[str, dict], v: dict | None, train: dict | None, thr: list[dict], paired: dict | None = None,
          v_rerank: dict | None = None) -> str:
    def f(x, p=1):
        return "-" if x is None else f"{x:.{p}f}"

    lines = ["| model | Market r1 | r5 | r10 | mAP | CUHK03 r1 | r5 | PETS r1 | PETS mAP | PETS TPR@FPR<=0.1 | AUC "
             "| tracklet r1 mean | lstm |", "|---" * 13 + "|"]
    for name, h in rows.items():
        lines.append(f"| {name} | {f(h['market_rank1'])} | {f(h['market_rank5'])} | {f(h['market_rank10'])} "
                     f"| {f(h['market_mAP'])} | {f(h['cuhk03_rank1'])} | {f(h['cuhk03_rank5'])} | {f(h['pets_rank1'])} "
                     f"| {f(h['pets_mAP'])} | {f(h['pets_tpr'], 3)} | {f(h['pets_auc'], 3)} "
                     f"| {f(h['pets_tracklet_mean'])} | {f(h['pets_tracklet_lstm'])} |")
    lines += ["", "Per-camera sequences (an identity's crops in one camera and recording; eval-reid --video): rank-1, "
              "video-to-video / image-to-video (seed 004), mean pooling / LSTM", "",
              "| model | Market v2v mean | lstm | Market i2v mean | lstm | CUHK03 v2v mean | lstm | CUHK03 i2v mean | lstm |",
              "|---" * 9 + "|"]
    for name, h in rows.items():
        lines.append(f"| {name} | " + " | ".join(f(h.get(f"{ds}_{k}_{a}")) for ds in ("market", "cuhk03")
                                                 for k in ("v2v", "i2v") for a in ("mean", "lstm")) + " |")
    if v is None:
        lines += ["", "targets: not judged (they compare the rows 'default' and 'imagenet'; run both)"]
    else:
        lines += ["", verdict_line(v, "targets")]
    if v_rerank is not None:
        lines += ["", verdict_line(v_rerank, "with re-ranking (default+rerank against imagenet+rerank)")]
    lines += paired_table(paired or {})
    if train:
        lines.append(f"training: {train['epochs']} epochs, {f(train['train_seconds'], 0)} s "
                     f"({train['epochs_timed']} timed), {f(train['crops_per_s_mean'])} crops/s on {train['device']}")
    if thr:
        lines += ["", "| backbone | last stride | backend | input HxW | dim | crops/s (batch 64) |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['last_stride']} | {r['backend']} | {r['input_hw'][0]}x{r['input_hw'][1]} "
                  f"| {r['dim']} | {r['crops_per_s']:.1f} |" for r in thr]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["imagenet", "default"],
                    help="default | imagenet | a checkpoint; NAME+flip scores it with test-time flip, NAME+rerank with "
                         "k-reciprocal re-ranking (k1 20, k2 6, lambda 0.3) of queries + gallery")
    ap.add_argument("--extra", nargs="*", default=[], help="NAME=CHECKPOINT further models to score")
    ap.add_argument("--pets", type=Path, default=Path("runs/reid_data/pets_all"))
    ap.add_argument("--lstm", type=Path, default=None, help="LSTM aggregator checkpoint (tracklet rank-1)")
    ap.add_argument("--train-checkpoint", type=Path, default=Path("runs/reid/market_cuhk03_default/last.pt"))
    ap.add_argument("--out", type=Path, default=Path("runs/bench_reid"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--reuse", type=Path, default=None,
                    help="results.json of an earlier run: models whose spec and weights version match are not re-scored")
    return ap.parse_args(argv)


def reuse_key(version: str, flip: bool, rerank: bool = False, crop_resize: str = "auto") -> str:
    return version + ("+flip" if flip else "") + ("+rerank" if rerank else "") + f"+resize:{crop_resize}"


def reusable(path: Path | None) -> dict[str, dict]:
    """Reuse key -> per-model results of an earlier results.json (same protocols; nothing when absent). A result
    without ``crop_resize`` predates the crop-resize fix (2026-12-07) and is keyed as ``area``, so it is not
    reused for today's encoders."""
    if path is None or not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    return {reuse_key(m["model"]["version"], m["model"].get("flip", False), m["model"].get("rerank", False),
                      m["model"].get("crop_resize", "area")): m
            for m in doc.get("results", {}).values()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from pipeline.core.errors import ReidPipelineError
    from pipeline.core.paths import require_shared
    from reid_models.plots import plot_cmc, plot_roc

    torch.set_num_threads(args.threads)
    try:
        shared = require_shared()
        ensure_pets_set(args.pets, shared)
        items = protocol_items(shared)
        specs = {m: m for m in args.models} | dict(e.split("=", 1) for e in args.extra)
        earlier = reusable(args.reuse)
        res = {}
        for name, spec in specs.items():
            lstm = args.lstm if spec == "default" else None
            res[name] = reuse_or_evaluate(spec, items, args.pets, lstm, earlier)
            print(f"{name:>12}: {json.dumps({k: round(x, 3) for k, x in headline(res[name]).items() if x is not None})}",
                  flush=True)
    except ReidPipelineError as exc:
        print(f"bench_reid: error: {exc}", file=sys.stderr)
        return 2
    rows = {k: headline(m) for k, m in res.items()}
    v = verdict(rows) if {"default", "imagenet"} <= set(rows) else None  # the targets compare these two
    v_rerank = verdict(rows, "+rerank") if {"default+rerank", "imagenet+rerank"} <= set(rows) else None
    paired = paired_vs_default(res)
    train = training_figures(args.train_checkpoint)
    thr = [] if args.skip_throughput else throughput(args.pets)
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {"protocols": {"market": {"test_ids": len({it.pid for it in items["market"]}),
                                    "test_crops": len(items["market"]), "split_seed": 0},
                         "cuhk03": {"test_ids": len({it.pid for it in items["cuhk03"]}), "trials": 10},
                         "pets": {"dataset": str(args.pets), "make_triplets_args": PETS_TEST_ARGS}},
           "targets": TARGETS, "headline": rows, "verdict": v, "verdict_rerank": v_rerank, "paired_vs_default": paired, "training": train, "results": res, "throughput": thr,
           "machine": {"cpu_threads": args.threads, "platform": platform.platform(), "torch": torch.__version__,
                       "cuda": torch.cuda.is_available()}}
    (args.out / "results.json").write_text(json.dumps(doc, indent=1))
    text = table(rows, v, train, thr, paired, v_rerank)
    (args.out / "table.md").write_text(text + "\n")
    plot_roc({k: m["pets"]["roc"] for k, m in res.items()}, args.out / "roc_pets.png", TARGET_FPR)
    for proto in ("market", "cuhk03", "pets"):
        plot_cmc({k: m[proto]["retrieval"] for k, m in res.items()}, args.out / f"cmc_{proto}.png")
    print(text)
    print(f"wrote {args.out}/results.json, table.md, roc_pets.png, cmc_market.png, cmc_cuhk03.png, cmc_pets.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
