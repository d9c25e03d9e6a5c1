#!/usr/bin/env python
"""Cross-camera matching quality alone: gt tracklets of virtual cameras -> matcher -> global IDF1.

Tracking is taken from the ground truth (each gt id's run of consecutive
frames in one camera is a tracklet), so the score isolates the appearance
encoder + cross-camera matcher. Per tracklet, every ``--every``-th box is
embedded from the camera video and the embeddings are mean-aggregated; the
tracklets are fed to :class:`pipeline.matching.matcher.CrossCameraMatcher` in batches
of ``--batch-s`` seconds of end time (as the runner would), and the resulting
global ids are scored with ``eval-mc`` (per-camera figures are trivially 100:
gt boxes). Example::

    .venv/bin/python tools/make_virtual_cameras.py ../shared/data/MOT15/train/PETS09-S2L1 --out runs/virtual/pets2
    .venv/bin/python tools/bench_matcher.py --virtual runs/virtual/pets2 --checkpoint imagenet \\
        --thresholds 0.1,0.2,0.3,0.4 --out runs/bench_matcher/imagenet.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np


from pipeline.evaluation.multicam import evaluate_multicam, load_identity_map
from pipeline.matching.matcher import CrossCameraMatcher, MatcherConfig
from pipeline.mot import MOTSequence
from pipeline.core.types import TrackletEmbedding


def gt_tracklets(cam: str, seq: MOTSequence, offset_s: float, max_gap: int) -> list[dict]:
    """Per gt id, runs of frames with gaps <= max_gap -> {cam, key, rows (indices), frames, t0, t1}."""
    gt = seq.gt()
    out = []
    for gid in np.unique(gt.ids):
        idx = np.flatnonzero(gt.ids == gid)
        idx = idx[np.argsort(gt.frame[idx])]
        cuts = np.flatnonzero(np.diff(gt.frame[idx]) > max_gap) + 1
        for part in np.split(idx, cuts):
            frames = gt.frame[part]
            out.append({"cam": cam, "gt_id": int(gid), "rows": part, "frames": frames,
                        "t0": offset_s + (frames[0] - 1) / seq.info.frame_rate,
                        "t1": offset_s + (frames[-1] - 1) / seq.info.frame_rate})
    return out


def embed_tracklets(seq: MOTSequence, tracklets: list[dict], encoder, every: int) -> None:
    """Adds 'vector' (mean of L2-normalised embeddings of every n-th box, renormalised) to each tracklet."""
    gt = seq.gt()
    by_frame: dict[int, list[tuple[int, int]]] = defaultdict(list)  # frame -> [(tracklet index, row)]
    for k, tr in enumerate(tracklets):
        for row in tr["rows"][::every]:
            by_frame[int(gt.frame[row])].append((k, int(row)))
    sums: dict[int, list[np.ndarray]] = defaultdict(list)
    for frame, image in seq.iter_frames(min(by_frame), max(by_frame)):
        todo = by_frame.get(frame)
        if not todo:
            continue
        emb = encoder.embed_boxes(image, np.stack([gt.tlwh[r] for _, r in todo]))
        for (k, _), e in zip(todo, emb):
            sums[k].append(e)
    for k, tr in enumerate(tracklets):
        v = np.mean(sums[k], axis=0)
        tr["vector"] = (v / np.linalg.norm(v)).astype(np.float32)


def run_matcher(tracklets: list[dict], cfg: MatcherConfig, batch_s: float) -> list[int]:
    """Global id per tracklet, feeding batches by end time."""
    order = sorted(range(len(tracklets)), key=lambda k: tracklets[k]["t1"])
    matcher = CrossCameraMatcher(cfg)
    gids = [0] * len(tracklets)
    batch: list[int] = []
    for k in order + [None]:
        if batch and (k is None or tracklets[k]["t1"] - tracklets[batch[0]]["t1"] > batch_s):
            items = [TrackletEmbedding(tracklets[j]["cam"], j, tracklets[j]["t0"], tracklets[j]["t1"],
                                       tracklets[j]["vector"]) for j in batch]
            for j, g in zip(batch, matcher.match(items)):
                gids[j] = g
            batch = []
        if k is not None:
            batch.append(k)
    return gids


def score(virtual: Path, seqs: dict[str, MOTSequence], tracklets: list[dict], gids: list[int]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        rows: dict[str, list[str]] = defaultdict(list)
        for tr, g in zip(tracklets, gids):
            gt = seqs[tr["cam"]].gt()
            for r in tr["rows"]:
                x, y, w, h = gt.tlwh[r]
                rows[tr["cam"]].append(f"{gt.frame[r]},{g},{x:.3f},{y:.3f},{w:.3f},{h:.3f},1,-1,-1,-1\n")
        for cam in seqs:
            (Path(tmp) / f"{cam}.txt").write_text("".join(rows[cam]))
        rep = evaluate_multicam(virtual, Path(tmp))
    return {"global": rep.global_, "per_camera_IDF1": {c: m["IDF1"] for c, m in rep.per_camera.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--virtual", type=Path, required=True, help="output folder of virtual-cameras")
    ap.add_argument("--checkpoint", default="imagenet", help="'imagenet', 'default' or a checkpoint path")
    ap.add_argument("--thresholds", default="0.2,0.3,0.35,0.4", help="comma-separated matcher thresholds")
    ap.add_argument("--every", type=int, default=3, help="embed every n-th box of a tracklet")
    ap.add_argument("--max-gap", type=int, default=5, help="frames: a longer gap in a gt id starts a new tracklet")
    ap.add_argument("--batch-s", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here too")
    ap.add_argument("--cache", type=Path, default=None,
                    help="npz of tracklet vectors: reused when it exists (same encoder/options), written otherwise")
    args = ap.parse_args()

    import torch

    from reid_models.encoder import AppearanceEncoder

    torch.set_num_threads(2)
    if args.checkpoint == "imagenet":
        encoder = AppearanceEncoder.imagenet_baseline(device="auto")
    else:
        encoder = AppearanceEncoder.from_checkpoint(None if args.checkpoint == "default" else Path(args.checkpoint))
    data = json.loads((args.virtual / "identities.json").read_text())
    seqs, tracklets = {}, []
    key = f"{encoder.embedding_key}|every={args.every}|gap={args.max_gap}"
    cached = np.load(args.cache) if args.cache is not None and args.cache.is_file() else None
    use_cache = cached is not None and str(cached["key"]) == key
    for cam in sorted(load_identity_map(args.virtual)):
        seqs[cam] = MOTSequence(args.virtual / cam, video=args.virtual / cam / "video.mp4")
        offset = float(data.get("cuts", {}).get(cam, {}).get("time_offset_s", 0.0))
        cam_tracklets = gt_tracklets(cam, seqs[cam], offset, args.max_gap)
        if not use_cache:
            embed_tracklets(seqs[cam], cam_tracklets, encoder, args.every)
        tracklets += cam_tracklets
    if use_cache:
        for tr, v in zip(tracklets, cached["vectors"]):
            tr["vector"] = v
    elif args.cache is not None:
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.cache, key=key, vectors=np.stack([t["vector"] for t in tracklets]))
    results = {"virtual": str(args.virtual), "encoder": encoder.version, "tracklets": len(tracklets),
               "gt_identities": len({t["gt_id"] for t in tracklets}), "runs": []}
    for thr in (float(t) for t in args.thresholds.split(",")):
        gids = run_matcher(tracklets, MatcherConfig(threshold=thr), args.batch_s)
        res = score(args.virtual, seqs, tracklets, gids)
        res.update(threshold=thr, identities=len(set(gids)))
        results["runs"].append(res)
        print(f"threshold {thr:.2f}: global IDF1 {res['global']['IDF1']:.1f}  identities {len(set(gids))}"
              f" (gt {results['gt_identities']}, tracklets {len(tracklets)})", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
