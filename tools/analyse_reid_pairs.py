"""Where pair verification fails, and what post-hoc changes to the embedding do, on the bench_reid split.

For the positive test pairs that a checkpoint misses at the threshold of FPR = 0.10 (the
``tools/bench_reid.py`` operating point) this reports the miss rate by the pair's smaller estimated
visibility (``pipeline.core.types.estimate_visibility``: MOT15 has no visibility column),
by frame gap and by identity, the most confused identity pairs among the false positives, and
writes ``worst_pairs.png`` (the 24 positive pairs with the largest distance).

It then scores post-hoc variants of the same network's final feature map without retraining:
average / max / GeM (p = 3) pooling, horizontal-flip averaging, centring and PCA(-whitening) fitted
on the train identities' crops, and horizontal-stripe pooling (PCB-style parts).

Usage::

    .venv/bin/python tools/analyse_reid_pairs.py [--checkpoint reid_models/weights/default.pt]
        [--dataset runs/reid_data/pets] [--out runs/analyse_reid_pairs]

The checkpoint must be a MobileNetV2 one (``mobilenetv2_pool`` / ``_fc`` / ``_imagenet``).
Writes ``analysis.json``, ``table.md`` and ``worst_pairs.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np


from pipeline.core.paths import require_shared
from pipeline.evaluation.pets_reid_set import PETS_SPLIT_ARGS, TARGET_FPR, ensure_pets_set


def l2n(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def feature_maps(net, items, flip: bool, batch: int = 64):
    """(N, C, h, w) final MobileNetV2 feature maps of the crops (optionally mirrored)."""
    import cv2
    import torch

    from reid_models.encoder import preprocess_crops

    out = []
    for s in range(0, len(items), batch):
        imgs = [cv2.imread(str(it.path)) for it in items[s:s + batch]]
        if flip:
            imgs = [np.ascontiguousarray(i[:, ::-1]) for i in imgs]
        with torch.no_grad():
            out.append(net.features(torch.from_numpy(preprocess_crops(imgs, net.input_size))))
    return torch.cat(out)


def pool(fmap, kind: str) -> np.ndarray:
    """(N, C, h, w) -> (N, C): 'avg', 'max' or 'gem' (p = 3)."""
    if kind == "avg":
        return fmap.mean((2, 3)).numpy()
    if kind == "max":
        return fmap.amax((2, 3)).numpy()
    return fmap.clamp(min=1e-6).pow(3).mean((2, 3)).pow(1 / 3).numpy()


class PairScorer:
    """rank-1 / mAP (bench_reid protocol) and TPR at FPR <= 0.1 of test-crop features."""

    def __init__(self, items, pairs) -> None:
        idx = {it.path: i for i, it in enumerate(items)}
        self.items = items
        self.a = np.array([idx[p] for p, _, _ in pairs])
        self.b = np.array([idx[q] for _, q, _ in pairs])
        self.same = np.array([s for *_, s in pairs], dtype=bool)

    def distances(self, feats: np.ndarray) -> np.ndarray:
        f = l2n(feats.astype(np.float64))
        return np.linalg.norm(f[self.a] - f[self.b], axis=1)

    def score(self, feats: np.ndarray) -> dict:
        from reid_models.evaluate import EvalConfig, image_retrieval
        from reid_models.metrics import roc_verification

        roc = roc_verification(self.distances(feats), self.same, TARGET_FPR)
        ret = image_retrieval(self.items, l2n(feats.astype(np.float64)).astype(np.float32), EvalConfig())
        return {"rank1": ret["rank1"], "mAP": ret["mAP"], "tpr": roc["tpr_at_fpr"], "auc": roc["auc"]}


def failure_breakdown(scorer: PairScorer, feats: np.ndarray, gt_path: Path) -> dict:
    """Miss rates of the positive pairs at the FPR = 0.1 threshold, by visibility, gap, identity."""
    from pipeline.core.types import estimate_visibility

    gt = np.loadtxt(gt_path, delimiter=",", ndmin=2)
    vis = estimate_visibility(gt[:, 0].astype(int), gt[:, 2:6])
    vis_of = {(int(r[0]), int(r[1])): float(v) for r, v in zip(gt, vis)}
    items = scorer.items
    d = scorer.distances(feats)
    neg = np.sort(d[~scorer.same])
    th = float(neg[int(TARGET_FPR * len(neg))])
    pos, miss = scorer.same, scorer.same & (d > th)
    # make-triplets pids are gt ids - 1 for a single sequence (index.csv keeps local_id too)
    v_a = np.array([vis_of.get((items[i].frame, items[i].pid + 1), np.nan) for i in scorer.a])
    v_b = np.array([vis_of.get((items[i].frame, items[i].pid + 1), np.nan) for i in scorer.b])
    vmin = np.fmin(v_a, v_b)
    gap = np.abs(np.array([items[i].frame for i in scorer.a]) - np.array([items[i].frame for i in scorer.b]))
    pid_a = np.array([items[i].pid for i in scorer.a])
    pid_b = np.array([items[i].pid for i in scorer.b])

    def rate(mask: np.ndarray) -> dict:
        return {"positives": int(mask.sum()), "miss_rate": float((miss & mask).sum() / max(int(mask.sum()), 1))}

    fp = ~scorer.same & (d <= th)
    return {
        "threshold": th, "positives": int(pos.sum()), "missed": int(miss.sum()),
        "by_min_visibility": {f"[{lo},{hi})": rate(pos & (vmin >= lo) & (vmin < hi))
                              for lo, hi in ((0, .25), (.25, .5), (.5, .75), (.75, 1.01))},
        "by_frame_gap": {f"[{lo},{hi})": rate(pos & (gap >= lo) & (gap < hi))
                         for lo, hi in ((0, 100), (100, 200), (200, 400), (400, 10**6))},
        "by_identity": {int(p): rate(pos & (pid_a == p)) for p in np.unique(pid_a[pos])},
        "confused_identity_pairs": [[list(map(int, k)), n] for k, n in
                                    Counter(tuple(sorted(x)) for x in zip(pid_a[fp], pid_b[fp])).most_common(5)],
    }


def worst_pairs_png(scorer: PairScorer, feats: np.ndarray, path: Path, n: int = 24) -> None:
    import cv2

    d = scorer.distances(feats)
    order = np.argsort(-np.where(scorer.same, d, -1.0))[:n]
    tiles = []
    for i in order:
        pair = np.concatenate([cv2.imread(str(scorer.items[scorer.a[i]].path)),
                               cv2.imread(str(scorer.items[scorer.b[i]].path))], 1)
        cv2.putText(pair, f"{d[i]:.2f}", (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1)
        tiles.append(pair)
    while len(tiles) % 8:
        tiles.append(np.zeros_like(tiles[0]))
    grid = np.concatenate([np.concatenate(tiles[j:j + 8], 1) for j in range(0, len(tiles), 8)], 0)
    cv2.imwrite(str(path), grid)


def posthoc_variants(net, scorer: PairScorer, train_items, test_maps, test_maps_flip) -> dict[str, dict]:
    import torch

    train_maps, train_maps_flip = feature_maps(net, train_items, False), feature_maps(net, train_items, True)
    out = {}
    for kind in ("avg", "max", "gem"):
        te, tef = pool(test_maps, kind), pool(test_maps_flip, kind)
        out[kind] = scorer.score(te)
        out[f"{kind} + flip"] = scorer.score(l2n(te) + l2n(tef))
        train = np.concatenate([pool(train_maps, kind), pool(train_maps_flip, kind)])
        mu = train.mean(0)
        out[f"{kind} + flip + centred"] = scorer.score(l2n(te - mu) + l2n(tef - mu))
        _, sv, vt = np.linalg.svd(train - mu, full_matrices=False)
        for k in (128, 256):
            for white in (False, True):
                proj = vt[:k].T / (sv[:k] if white else 1.0)
                name = f"{kind} + flip + PCA{k}" + (" whitened" if white else "")
                out[name] = scorer.score(l2n((te - mu) @ proj) + l2n((tef - mu) @ proj))
    for n in (2, 4):
        parts = [l2n(p.mean((2, 3)).numpy()) for p in torch.chunk(test_maps, n, dim=2)]
        out[f"{n} horizontal stripes"] = scorer.score(np.concatenate(parts, 1))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped default encoder")
    ap.add_argument("--dataset", type=Path, default=Path("runs/reid_data/pets"))
    ap.add_argument("--out", type=Path, default=Path("runs/analyse_reid_pairs"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import torch

    from reid_models.checkpoint import model_from_blob, pooled_trunk_blob, read_checkpoint
    from reid_models.datasets.index import load_index, load_pairs
    from reid_models.encoder import DEFAULT_CHECKPOINT

    torch.set_num_threads(args.threads)
    ensure_pets_set(args.dataset, require_shared(), PETS_SPLIT_ARGS)
    ckpt = args.checkpoint or DEFAULT_CHECKPOINT
    blob = read_checkpoint(ckpt)
    if blob["model_name"] == "mobilenetv2_fc":
        blob = pooled_trunk_blob(blob, str(ckpt))
    net = model_from_blob(blob, str(ckpt)).eval()
    if not hasattr(net, "features"):
        raise SystemExit(f"{ckpt}: not a MobileNetV2 checkpoint ({blob['model_name']})")
    test, train = load_index(args.dataset, "test"), load_index(args.dataset, "train")
    seqs = {it.seq for it in test}
    if seqs != {"PETS09-S2L1"}:
        raise SystemExit(f"{args.dataset}: the visibility breakdown expects the PETS09-S2L1 dataset, got {sorted(seqs)}")
    scorer = PairScorer(test, load_pairs(args.dataset))
    maps, maps_flip = feature_maps(net, test, False), feature_maps(net, test, True)
    shipped = pool(maps, "avg")
    gt = require_shared() / "data" / "MOT15" / "train" / "PETS09-S2L1" / "gt" / "gt.txt"
    breakdown = failure_breakdown(scorer, shipped, gt)
    args.out.mkdir(parents=True, exist_ok=True)
    worst_pairs_png(scorer, shipped, args.out / "worst_pairs.png")
    variants = posthoc_variants(net, scorer, train, maps, maps_flip)
    doc = {"checkpoint": str(ckpt), "dataset": str(args.dataset), "failures": breakdown, "posthoc": variants}
    (args.out / "analysis.json").write_text(json.dumps(doc, indent=1))
    lines = [f"missed positives at FPR {TARGET_FPR:g} (threshold {breakdown['threshold']:.3f}): "
             f"{breakdown['missed']} of {breakdown['positives']}", "",
             "| pairs by | bin | positives | miss rate |", "|---|---|---|---|"]
    for group in ("by_min_visibility", "by_frame_gap", "by_identity"):
        lines += [f"| {group[3:]} | {k} | {v['positives']} | {v['miss_rate']:.3f} |" for k, v in breakdown[group].items()]
    lines += ["", f"most confused identity pairs (false positives): {breakdown['confused_identity_pairs']}", "",
              "| post-hoc variant | rank-1 | mAP | TPR@FPR<=0.1 | AUC |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {v['rank1']:.1f} | {v['mAP']:.1f} | {v['tpr']:.3f} | {v['auc']:.3f} |" for k, v in variants.items()]
    text = "\n".join(lines)
    (args.out / "table.md").write_text(text + "\n")
    print(text)
    print(f"wrote {args.out}/analysis.json, table.md, worst_pairs.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
