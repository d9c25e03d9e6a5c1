#!/usr/bin/env python
"""Seed 002 Table 2 on real cross-domain data (issue 13): pre-train elsewhere, adapt on Market-1501
crops WITHOUT labels, measure the Market split's test protocol before and after.

Models (pre-trained by ``reid-pipeline train``, nothing of Market-1501 in them):
``cuhk03`` = configs/reid/adapt_pre_cuhk03.yaml (CUHK03 detected train/ only), ``multi`` =
configs/reid/adapt_pre_multi.yaml (CUHK03 train/ + the PETS-derived set, BH-switch).

For every model and adaptation set, ONE folder round (``pipeline.adaptation.folder.adapt_folder``,
the code path of ``reid-pipeline adapt --folder``) on the set's crops, which sees only the files'
camera / sequence / frame; the identities serve only to score:

* ``test``: the crops of the 250 test identities of the Market split (seed 0);
* ``all``: all 751 identities' crops (train + test, as the paper adapted on all of MARS);
* ``--validate``: instead, the adaptation-validation set used to choose alpha / lr / steps / the
  grouping: 250 of the 501 TRAIN identities (seeded), adapted on AND scored on (the Market rule over
  those identities); the test identities are not touched.

Scored: rank-1 / mAP of the Market rule (test identities; ``--validate``: the validation ones) with the
base model and with the round's candidate (whether or not the guardrail deployed it); the fraction of
true positives among the presumed positives (a pair of groups is true when their majority identities
agree), overall and per camera pair; group purity; the share of mined negatives that are truly other
people; the guardrail's hold-out AUCs and verdict.

    .venv/bin/python tools/bench_adapt_market.py [--validate] [--rows cuhk03:test,cuhk03:all,multi:test,multi:all]
        [--alpha 0.1] [--lr 1e-5 --final-lr 1e-6] [--max-steps 500] [--link-quantile 0.02] [--window-frames 100]
        [--threads 1] [--jobs 2] [--out runs/adapt_market/bench] [--resume] [--mining-grid]

Writes ``results.json`` (one JSON, rows added as they finish; ``--resume`` skips rows already there
with the same settings), ``results.md`` and ``results.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.core.paths import require_shared

MODELS = {"cuhk03": "runs/adapt_market/pre_cuhk03/last.pt", "multi": "runs/adapt_market/pre_multi/last.pt"}
TARGETS = {"rank1_gain": 6.0, "map_gain": 0.0, "tp_fraction": 0.80}
VALIDATION_IDS = 250  # of the 501 train identities


def market_items():
    from reid_models.datasets.index import load_market_folder
    from reid_models.datasets.protocols import market_split

    return market_split(load_market_folder(require_shared() / "data" / "reid" / "Market-1501" / "bounding_box_train"))


def validation_pids(items, seed: int = 0, size: int = VALIDATION_IDS) -> set[int]:
    """``size`` of the 501 train identities (seeded; all of them with 501): never seen by the CUHK03 / PETS base
    models, so every one is a fair adaptation-validation identity."""
    train = sorted({it.pid for it in items if it.split == "train"})
    rng = np.random.default_rng(seed)
    return {int(p) for p in rng.choice(train, size=min(size, len(train)), replace=False)}


def embed_items(model, items, device: str, cache: Path | None) -> np.ndarray:
    """(N, D) L2-normalised embeddings of the items' crops (cached by checkpoint hash + file list)."""
    from pipeline.adaptation.folder import parse_crop_name, read_crops
    from reid_models.adaptation.trainer import tensors_from_crops
    from tqdm import tqdm

    if cache is not None and cache.is_file():
        return np.load(cache)
    from reid_models.adaptation.trainer import embed_sets

    crops = [parse_crop_name(it.path) for it in items]
    out = []
    for s in tqdm(range(0, len(crops), 256), desc="embed", unit="x256"):
        part = crops[s:s + 256]
        t = tensors_from_crops(read_crops(part), model.input_size, model.pixel_mean, model.pixel_std)
        # one set per crop: a model with per-camera BatchNorm statistics embeds each crop by its camera
        out.append(np.concatenate(embed_sets(model, [t[i:i + 1] for i in range(len(part))], device,
                                             cams=[f"c{c.cam}" for c in part])))
    feats = np.concatenate(out)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, feats)
    return feats


def retrieval(items, feats) -> dict:
    from reid_models.evaluate import market_retrieval

    r = market_retrieval(items, feats)
    return {"rank1": float(r["rank1"]), "rank5": float(r["rank5"]), "mAP": float(r["mAP"]),
            "queries": int(r["num_queries"])}


def bn_diagnostics(base, adapt_items, eval_items, device: str) -> dict:
    """Label-free BatchNorm re-estimation alone (no fine-tuning), scored by the Market rule on ``eval_items``:

    * ``adabn``: one set of statistics from all adaptation crops (what ``--bn-stats target`` starts from);
    * ``camera_bn``: one set per camera, from that camera's adaptation crops, each eval crop embedded with its
      own camera's statistics (camera-based BN, Zhuang et al. ECCV 2020). NOT in the product path yet: the
      encoder holds one set of statistics (docs/adaptation.md).
    """
    from pipeline.adaptation.folder import parse_crop_name, read_crops
    from reid_models.adaptation.bn import reestimate_batchnorm
    from reid_models.adaptation.trainer import tensors_from_crops

    def tensors(its):
        return tensors_from_crops(read_crops([parse_crop_name(it.path) for it in its]), base.input_size,
                                  base.pixel_mean, base.pixel_std)

    cam_of = lambda it: parse_crop_name(it.path).cam  # noqa: E731
    out = {"adabn": retrieval(eval_items, embed_items(reestimate_batchnorm(base, [tensors(adapt_items)], device=device),
                                                      eval_items, device, None))}
    feats = None
    for cam in sorted({cam_of(it) for it in eval_items}):
        src = [it for it in adapt_items if cam_of(it) == cam]
        idx = [i for i, it in enumerate(eval_items) if cam_of(it) == cam]
        f = embed_items(reestimate_batchnorm(base, [tensors(src)], device=device), [eval_items[i] for i in idx],
                        device, None)
        feats = np.zeros((len(eval_items), f.shape[1]), np.float32) if feats is None else feats
        feats[idx] = f
    out["camera_bn"] = retrieval(eval_items, feats)
    return out


def score_round(res, pid_of: dict[str, int]) -> dict:
    """Label-only scoring of a folder round: pseudo-label precision, group purity, negatives."""
    sets = res.sets
    major = []
    pure = 0
    for s in sets:
        c = Counter(pid_of[p] for p in s.sources)
        pid, n = c.most_common(1)[0]
        major.append(pid)
        pure += n
    rep = res.report
    per_pair: dict[str, list[int]] = {}
    for p in rep.positives:
        if p.get("kind", "presumed") != "presumed":
            continue  # a group with itself (--positives tracklets / both): not a mined pair
        a, b = sets[p["tracklet_a"]], sets[p["tracklet_b"]]
        key = "-".join(sorted((a.cam_id, b.cam_id)))
        per_pair.setdefault(key, []).append(int(major[p["tracklet_a"]] == major[p["tracklet_b"]]))
    allv = [v for vs in per_pair.values() for v in vs]
    return {
        "groups": len(sets), "groups_multi": sum(len(s.crops) > 1 for s in sets),
        "group_purity": pure / max(1, sum(len(s.crops) for s in sets)),
        "positives": len(allv), "tp_fraction": float(np.mean(allv)) if allv else float("nan"),
        "tp_per_camera_pair": {k: {"pairs": len(v), "tp_fraction": float(np.mean(v))} for k, v in sorted(per_pair.items())},
        "positives_with_negatives": sum(1 for p in rep.positives if p["negatives"] > 0),
        "tracklet_positives_with_negatives": sum(1 for p in rep.positives
                                                 if p.get("kind") == "tracklet" and p["negatives"] > 0),
    }


def mining_grid(name: str, ckpt: Path, items, args, out: Path) -> list[dict]:
    """No training: grouping and presumed positives of the base model over a grid of link quantile,
    window and alpha, on the adaptation-validation identities (--validate) or the test ones, scored
    with the labels (group purity, true-positive fraction). What alpha / grouping were chosen from."""
    from pipeline.adaptation.folder import crop_sets, group_crops, link_threshold, parse_crop_name
    from pipeline.core.device import resolve_device
    from pipeline.core.types import TrackletEmbedding
    from reid_models.adaptation.mining import presumed_positives, shared_key_cooccurrence
    from reid_models.adaptation.trainer import mean_vector
    from reid_models.checkpoint import load_checkpoint
    from reid_models.rerank import k_reciprocal_distance

    device = resolve_device(args.device)
    base, meta = load_checkpoint(ckpt, "cpu")
    feats = embed_items(base.to(device).eval(), items, device, args.cache / f"{meta['hash'][:12]}_{len(items)}.npy")
    pool = validation_pids(items, size=args.validation_ids) if args.validate else {it.pid for it in items if it.split == "test"}
    idx = np.array([i for i, it in enumerate(items) if it.pid in pool])
    crops = [parse_crop_name(items[i].path) for i in idx]
    pids = np.array([items[i].pid for i in idx])
    v = feats[idx]
    rows = []
    for q in (0.005, 0.02, 0.05, 0.1):
        th = link_threshold(crops, v, q)
        for w in (50, 100, 200):
            groups = group_crops(crops, v, w, th)
            sets = crop_sets(crops, [None] * len(crops), groups)
            major = [np.bincount(pids[g]).argmax() for g in groups]
            purity = sum(np.bincount(pids[g]).max() for g in groups) / len(crops)
            emb = [TrackletEmbedding(s.cam_id, s.track_id, 0.0, 0.0, mean_vector(v[g])) for s, g in zip(sets, groups)]
            rule = shared_key_cooccurrence([s.keys for s in sets])
            with_neg = np.array([rule([i], range(len(sets)))[0].any() for i in range(len(sets))])
            dist = (k_reciprocal_distance(np.stack([e.vector for e in emb]))
                    if args.mining_distance == "k_reciprocal" else None)
            for alpha in (0.05, 0.1, 0.2, 0.3):
                pos = presumed_positives(emb, alpha=alpha, cooccur=rule, distance=dist,
                                         pooled=args.pair_budget == "pooled")
                tp = [major[p.a] == major[p.b] for p in pos]
                usable = [with_neg[p.a] or with_neg[p.b] for p in pos]
                rows.append({"model": name, "mining_distance": args.mining_distance, "pair_budget": args.pair_budget,
                             "link_quantile": q, "threshold": round(th, 4), "window_frames": w,
                             "groups": len(groups), "purity": round(purity, 4), "alpha": alpha, "positives": len(pos),
                             "tp_fraction": round(float(np.mean(tp)), 4),
                             "usable_positives": int(np.sum(usable)),
                             "tp_fraction_usable": round(float(np.mean([t for t, u in zip(tp, usable) if u])), 4)
                             if any(usable) else None})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def oracle_row(name: str, ckpt: Path, items, args) -> dict:
    """DIAGNOSTIC, not the method (labels used for training): the round of --validate with the presumed
    positives filtered to the true ones (group majority identities agree), everything else unchanged
    (same grouping, hold-out split, negatives, fine-tuning). Tells whether the fine-tuning gains at this
    budget when the pseudo-labels are right, i.e. whether pseudo-label precision is what limits it."""
    import copy

    from pipeline.adaptation.data import split_holdout
    from pipeline.adaptation.folder import crop_sets, group_crops, link_threshold, parse_crop_name, read_crops
    from pipeline.adaptation.worker import _mine
    from pipeline.core.device import resolve_device
    from reid_models.adaptation.trainer import FineTuneSettings, fine_tune, tensors_from_crops
    from reid_models.checkpoint import load_checkpoint

    device = resolve_device(args.device)
    base, meta = load_checkpoint(ckpt, "cpu")
    base = base.to(device).eval()
    feats = embed_items(base, items, device, args.cache / f"{meta['hash'][:12]}_{len(items)}.npy")
    val = validation_pids(items, size=args.validation_ids)
    idx = np.array([i for i, it in enumerate(items) if it.pid in val])
    sub = [items[i] for i in idx]
    crops = [parse_crop_name(it.path) for it in sub]
    pids = np.array([it.pid for it in sub])
    v = feats[idx]
    groups = group_crops(crops, v, args.window_frames, link_threshold(crops, v, args.link_quantile))
    images = read_crops(crops)
    sets = crop_sets(crops, images, groups)
    t = tensors_from_crops(images, base.input_size, base.pixel_mean, base.pixel_std)
    settings = adapt_settings(args)
    train, _ = split_holdout(sets, settings.holdout_fraction, settings.seed, min_crops=2)
    pairs, negs = _mine(sets, train, [v[g] for g in groups], settings, True)
    major = [np.bincount(pids[g]).argmax() for g in groups]
    keep = [(p, n) for p, n in zip(pairs, negs) if major[train[p.a]] == major[train[p.b]]]
    ft = FineTuneSettings(k=settings.k, p=settings.p, lr=settings.lr, final_lr=settings.final_lr,
                          budget_s=settings.budget_s, max_steps=settings.max_steps, seed=settings.seed, device=device)
    res = fine_tune(base, [t[groups[i]] for i in train], [(p.a, p.b) for p, _ in keep], [n for _, n in keep], ft)
    cand = copy.deepcopy(base).cpu()
    cand.load_state_dict(res.state_dict)
    before = retrieval(sub, v)
    after = retrieval(sub, embed_items(cand.to(device).eval(), sub, device, None))
    row = {"model": name, "diagnostic": "oracle positives (labels used for training)", "positives": len(pairs),
           "true_positives_kept": len(keep), "with_negatives": sum(1 for _, n in keep if n), "steps": res.steps,
           "before": before, "after": after, "gain": {k: after[k] - before[k] for k in ("rank1", "rank5", "mAP")},
           "settings": settings_key(args)}
    print(json.dumps(row), flush=True)
    return row


def adapt_settings(args, **more):
    """The round's AdaptSettings from the bench flags (``more``: the keys one caller adds)."""
    from pipeline.adaptation.settings import AdaptSettings

    return AdaptSettings(alpha=args.alpha, positives=args.positives, bn_stats=args.bn_stats,
                         mutual_nearest=args.mutual_nearest, pair_budget=args.pair_budget,
                         mining_distance=args.mining_distance, lr=args.lr,
                         final_lr=args.final_lr, max_steps=args.max_steps, budget_s=args.budget_s, k=args.k, p=args.p,
                         negatives=args.negatives, seed=args.seed, **more)


def settings_key(args) -> dict:
    return {"alpha": args.alpha, "lr": args.lr, "final_lr": args.final_lr, "max_steps": args.max_steps,
            "k": args.k, "p": args.p, "negatives": args.negatives, "link_quantile": args.link_quantile,
            "window_frames": args.window_frames, "min_gain": args.min_gain, "seed": args.seed,
            "validate": args.validate, "models": args.models,
            **({"validation_ids": args.validation_ids} if args.validate and args.validation_ids != VALIDATION_IDS else {}),
            **({"positives": args.positives} if args.positives != "presumed" else {}),
            **({"bn_stats": args.bn_stats} if args.bn_stats != "source" else {}),
            **({"mutual_nearest": True} if args.mutual_nearest else {}),
            **({"pair_budget": args.pair_budget} if args.pair_budget != "camera_pair" else {}),
            **({"mining_distance": args.mining_distance} if args.mining_distance != "cosine" else {}),
            **({"rounds": args.rounds} if args.rounds != 1 else {})}


def model_paths(spec: str) -> dict[str, str]:
    """``--models`` "cuhk03=PATH,multi=PATH" (either may be left out) over the default checkpoints."""
    out = dict(MODELS)
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, path = part.partition("=")
        if not sep or name not in MODELS or not path:
            raise SystemExit(f"--models: {part!r} is not NAME=PATH with NAME one of {', '.join(MODELS)}")
        out[name] = path
    return out


def run_row(name: str, ckpt: Path, set_name: str, items, args, out: Path) -> dict:
    import copy

    import torch

    from pipeline.adaptation.folder import adapt_folder, parse_crop_name
    from pipeline.adaptation.worker import load_base_model
    from pipeline.core.device import resolve_device
    from pipeline.store import IdentityStore
    from reid_models.checkpoint import load_checkpoint

    device = resolve_device(args.device)
    base, meta = load_checkpoint(ckpt, "cpu")
    base = base.to(device).eval()
    if args.validate:
        val = validation_pids(items, size=args.validation_ids)
        adapt_items = [it for it in items if it.pid in val]
        eval_items = adapt_items
    else:
        adapt_items = [it for it in items if it.split == "test"] if set_name == "test" else list(items)
        eval_items = [it for it in items if it.split == "test"]
    all_feats = embed_items(base, items, device, args.cache / f"{meta['hash'][:12]}_{len(items)}.npy")
    index = {str(it.path): i for i, it in enumerate(items)}
    ev_idx = np.array([index[str(it.path)] for it in eval_items])
    before = retrieval(eval_items, all_feats[ev_idx])
    ad_idx = np.array([index[str(it.path)] for it in adapt_items])
    settings = adapt_settings(args, min_gain=args.min_gain, device=args.device, threads=args.threads)
    store_path = out / "stores" / f"{name}_{set_name}{'_val' if args.validate else ''}.sqlite"
    store_path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(store_path) + suffix).unlink(missing_ok=True)
    crops = [parse_crop_name(it.path) for it in adapt_items]
    pid_of = {str(parse_crop_name(it.path).path): it.pid for it in adapt_items}
    t0 = time.monotonic()
    history = []
    with IdentityStore(store_path, mode="write") as store:
        # round r starts from the store's deployed version (the previous rounds' outcome), as the live worker
        # does round after round; it re-groups and re-mines with that model; seed + r varies the hold-out split
        for r in range(args.rounds):
            res = adapt_folder(crops, store, settings.model_copy(update={"seed": settings.seed + r}), ckpt,
                               args.window_frames, args.link_quantile,
                               base_vectors=all_feats[ad_idx] if r == 0 else None, progress=True,
                               source=f"{set_name} crops")
            rr = res.report
            history.append({"round": r + 1, "base_version": rr.base_version, "deployed": rr.deployed,
                            "holdout_auc_base": rr.holdout_auc_base, "holdout_auc_candidate": rr.holdout_auc_candidate,
                            "steps": rr.steps, "pseudo_labels": {k: v for k, v in score_round(res, pid_of).items()
                                                                 if k != "tp_per_camera_pair"}})
            print(json.dumps({"round": history[-1]}, default=float), flush=True)
        deployed_version, deployed_model = load_base_model(store, ckpt)
    round_s = time.monotonic() - t0
    rep = res.report
    after = None
    if args.rounds > 1:  # what the rounds leave deployed (the guardrail's outcome), not the last candidate
        after = (before if deployed_version == meta["hash"] else
                 retrieval(eval_items, embed_items(deployed_model.to(device).eval(), eval_items, device, None)))
    elif rep.candidate_state is not None:
        cand = copy.deepcopy(base).cpu()
        cand.load_state_dict(rep.candidate_state)
        cand.camera_bn = rep.candidate_camera_bn
        after = retrieval(eval_items, embed_items(cand.to(device).eval(), eval_items, device, None))
    row = {
        "model": name, "checkpoint": str(ckpt), "checkpoint_sha256": meta["hash"], "adapt_set": set_name,
        "adapt_crops": len(adapt_items), "adapt_ids": len({it.pid for it in adapt_items}),
        "eval_ids": len({it.pid for it in eval_items}), "eval_crops": len(eval_items),
        "before": before, "after": after,
        "gain": ({k: after[k] - before[k] for k in ("rank1", "rank5", "mAP")} if after else None),
        "link_threshold": res.link_threshold, "pseudo_labels": score_round(res, pid_of),
        "guardrail": {"deployed": rep.deployed, "reason": rep.reason, "holdout_auc_base": rep.holdout_auc_base,
                      "holdout_auc_candidate": rep.holdout_auc_candidate, "holdout_pairs": rep.holdout_pairs,
                      "holdout_groups": rep.holdout_tracklets, "candidate_version": rep.candidate_version},
        "steps": rep.steps, "train_s": rep.train_s, "stopped_by": rep.stopped_by, "round_s": round(round_s, 1),
        "losses": rep.losses, "train_groups": rep.train_tracklets, "mean_negatives": rep.mean_negatives,
        "device": rep.device, "settings": settings_key(args), "rounds": history,
        "after_is": "the version deployed after all rounds" if args.rounds > 1 else "the round's candidate",
    }
    if args.bn_diagnostics:
        row["bn_only"] = bn_diagnostics(base, adapt_items, eval_items, device)
    print(json.dumps({k: row[k] for k in ("model", "adapt_set", "before", "after", "gain", "steps")}), flush=True)
    print(json.dumps({"pseudo_labels": {k: v for k, v in row["pseudo_labels"].items() if k != "tp_per_camera_pair"},
                      "guardrail": row["guardrail"]}, default=float), flush=True)
    return row


def write_md(doc: dict, out: Path) -> None:
    f = lambda x: "-" if x is None else f"{x:.1f}"  # noqa: E731
    lines = ["| model | adapted on | groups (purity) | presumed pos. | TP fraction | guardrail (hold-out AUC) | steps "
             "| rank-1 before -> after | mAP before -> after |", "|---|---|---|---|---|---|---|---|---|"]
    for r in doc["rows"].values():
        pl, g, b, a = r["pseudo_labels"], r["guardrail"], r["before"], r["after"] or {}
        verdict = "deployed" if g["deployed"] else "refused"
        lines.append(f"| {r['model']} | {r['adapt_set']} ({r['adapt_crops']} crops) | {pl['groups']} ({pl['group_purity']:.3f}) "
                     f"| {pl['positives']} | {pl['tp_fraction']:.3f} | {verdict} ({g['holdout_auc_base']:.4f} -> "
                     f"{g['holdout_auc_candidate']:.4f}) | {r['steps']} | {f(b['rank1'])} -> {f(a.get('rank1'))} "
                     f"| {f(b['mAP'])} -> {f(a.get('mAP'))} |")
    bn = [(k, r) for k, r in doc["rows"].items() if r.get("bn_only")]
    if bn:
        lines += ["", "BatchNorm statistics re-estimated on the adaptation crops, no fine-tuning (rank-1 / mAP):", ""]
        lines += [f"- {k}: before {r['before']['rank1']:.1f} / {r['before']['mAP']:.1f}; AdaBN "
                  f"{r['bn_only']['adabn']['rank1']:.1f} / {r['bn_only']['adabn']['mAP']:.1f}; per-camera BN "
                  f"{r['bn_only']['camera_bn']['rank1']:.1f} / {r['bn_only']['camera_bn']['mAP']:.1f}" for k, r in bn]
    lines += ["", "TP fraction per camera pair:", ""]
    for key, r in doc["rows"].items():
        per = r["pseudo_labels"]["tp_per_camera_pair"]
        lines.append(f"- {key}: " + ", ".join(f"{k} {v['tp_fraction']:.2f} ({v['pairs']})" for k, v in per.items()))
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_png(doc: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(doc["rows"].items())
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    x = np.arange(len(rows))
    for ax, metric in zip(axes[:2], ("rank1", "mAP")):
        b = [r["before"][metric] for _, r in rows]
        a = [(r["after"] or {}).get(metric, np.nan) for _, r in rows]
        cam = [((r.get("bn_only") or {}).get("camera_bn") or {}).get(metric, np.nan) for _, r in rows]
        w = 0.27 if np.isfinite(cam).any() else 0.4
        ax.bar(x - w / 2 - (w / 2 if w < 0.4 else 0), b, w, label="before (pre-trained)")
        ax.bar(x + (0 if w < 0.4 else w / 2), a, w, label="after the round(s)")
        if w < 0.4:
            ax.bar(x + w, cam, w, label="per-camera BN only, no fine-tuning")
        ax.set_xticks(x, [k for k, _ in rows], rotation=15)
        ax.set_title(f"Market rule {metric} (%), {'validation' if doc.get('validate') else 'test'} identities")
        ax.set_ylim(0, 1.45 * np.nanmax(b + a + cam))  # room for the legend above the bars
        ax.legend(loc="upper left", fontsize=8)
    ax = axes[2]
    for i, (k, r) in enumerate(rows):
        per = r["pseudo_labels"]["tp_per_camera_pair"]
        ax.plot(range(len(per)), [v["tp_fraction"] for v in per.values()], "o-", label=k)
        if i == 0:
            ax.set_xticks(range(len(per)), list(per), rotation=60, fontsize=7)
    ax.axhline(TARGETS["tp_fraction"], color="k", ls="--", lw=0.8)
    ax.set_ylim(0, 1.02)
    ax.set_title("true positives among presumed positives, per camera pair")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "results.png", dpi=110)
    plt.close(fig)


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default="cuhk03:test,cuhk03:all,multi:test,multi:all")
    ap.add_argument("--models", default="", help="pre-trained checkpoints other than the defaults: "
                    "cuhk03=PATH,multi=PATH (e.g. the 4x-budget configs/reid/adapt_pre_*_long.yaml)")
    ap.add_argument("--validate", action="store_true", help="adapt and score on 250 of the 501 train identities")
    ap.add_argument("--validation-ids", type=int, default=VALIDATION_IDS,
                    help="with --validate: how many of the 501 train identities (501: all of them, the largest pool"
                         " that holds no test identity)")
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--positives", choices=["presumed", "tracklets", "both"], default="presumed")
    ap.add_argument("--bn-stats", choices=["source", "target", "camera"], default="source",
                    help="target: AdaBN on the round's training crops before mining and fine-tuning; camera: also"
                         " per-camera statistics (camera-based BN)")
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--final-lr", type=float, default=1e-6)
    ap.add_argument("--max-steps", type=int, default=500)
    ap.add_argument("--mutual-nearest", action="store_true",
                    help="presumed positives only among mutual nearest cross-camera pairs (adapt.mutual_nearest)")
    ap.add_argument("--pair-budget", choices=["camera_pair", "pooled"], default="camera_pair",
                    help="adapt.pair_budget: alpha * min(N1, N2) per camera pair, or that many in all, pooled")
    ap.add_argument("--mining-distance", choices=["cosine", "k_reciprocal"], default="cosine",
                    help="what ranks the presumed positives (adapt.mining_distance)")
    ap.add_argument("--bn-diagnostics", action="store_true",
                    help="also score BatchNorm statistics re-estimated on the adaptation crops without any fine-tuning:"
                         " one set (AdaBN) and one per camera (camera-based BN), as row['bn_only']")
    ap.add_argument("--rounds", type=int, default=1,
                    help="rounds in a row, each from the version the previous ones left deployed (default 1); with"
                         " more than 1, 'after' scores the finally deployed version")
    ap.add_argument("--budget-s", type=float, default=7200.0)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--p", type=int, default=4)
    ap.add_argument("--negatives", type=int, default=10)
    ap.add_argument("--min-gain", type=float, default=0.0)
    ap.add_argument("--link-quantile", type=float, default=0.02)
    ap.add_argument("--window-frames", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per row process")
    ap.add_argument("--jobs", type=int, default=2, help="rows run in this many processes at once")
    ap.add_argument("--out", type=Path, default=Path("runs/adapt_market/bench"))
    ap.add_argument("--cache", type=Path, default=Path("runs/adapt_market/cache"),
                    help="base-model embeddings of all crops, by checkpoint hash (reused by every run)")
    ap.add_argument("--resume", action="store_true", help="keep rows of results.json run with the same settings")
    ap.add_argument("--oracle", action="store_true",
                    help="DIAGNOSTIC on the validation ids: train on the true presumed positives only (oracle_val.json)")
    ap.add_argument("--mining-grid", action="store_true",
                    help="no training: grouping / presumed-positive precision over a grid (writes mining_grid.json)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    doc = json.loads(path.read_text()) if args.resume and path.is_file() else {"rows": {}}
    doc.update(validate=args.validate, split="Market-1501 bounding_box_train, 501 / 250 identity split seed 0",
               targets=TARGETS, command="tools/bench_adapt_market.py " + " ".join(
                   f"--{k.replace('_', '-')}" + ("" if isinstance(v, bool) else f" {v}")
                   for k, v in sorted(settings_key(args).items()) if v is not False and v != ""))
    models = model_paths(args.models)
    names = sorted({spec.split(":")[0] for spec in args.rows.split(",")})
    for name in names:
        if name not in models:
            raise SystemExit(f"--rows: unknown model {name!r} (one of {', '.join(models)})")
        if not Path(models[name]).is_file():
            raise SystemExit(f"{models[name]}: no such checkpoint (pre-train it: configs/reid/adapt_pre_{name}*.yaml)")
    items = market_items()
    if args.oracle:
        rows = {n: oracle_row(n, Path(models[n]), items, args) for n in names}
        (args.out / "oracle_val.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
        return 0
    if args.mining_grid:
        grid = [r for n in names for r in mining_grid(n, Path(models[n]), items, args, args.out)]
        gpath = args.out / f"mining_grid{'_val' if args.validate else '_test'}.json"
        gpath.write_text(json.dumps(grid, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {gpath}")
        return 0
    todo = []
    for spec in args.rows.split(","):
        name, set_name = spec.split(":")
        set_name = "val" if args.validate else set_name
        key = f"{name}:{set_name}"
        old = doc["rows"].get(key)
        if old is not None and old.get("settings") == settings_key(args):
            print(f"{key}: kept from {path}")
            continue
        todo.append((key, name, set_name))
    # rows in parallel processes of --threads torch threads each (on a loaded CPU, 2 processes x 1 thread
    # train several times faster than 1 process x 2 threads)
    from concurrent.futures import ProcessPoolExecutor, as_completed
    import multiprocessing as mp

    with ProcessPoolExecutor(max_workers=max(1, min(args.jobs, len(todo) or 1)), mp_context=mp.get_context("spawn"),
                             initializer=_init_worker, initargs=(args.threads,)) as pool:
        futures = {pool.submit(run_row, name, Path(models[name]), set_name, items, args, args.out): key
                   for key, name, set_name in todo}
        for fut in as_completed(futures):
            doc["rows"][futures[fut]] = fut.result()
            doc["rows"] = {k: doc["rows"][k] for k in sorted(doc["rows"])}
            path.write_text(json.dumps(doc, indent=1, default=float) + "\n", encoding="utf-8")
    write_md(doc, args.out)
    write_png(doc, args.out)
    print((args.out / "results.md").read_text())
    print(f"wrote {path}, results.md, results.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
