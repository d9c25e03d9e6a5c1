"""Training the LSTM tracklet aggregator (``task: lstm``) on precomputed frame embeddings.

1. Every crop of the datasets' tracklets (``tracklets.json``) is embedded once
   by the frame encoder (``aggregator.encoder_checkpoint``; null = the shipped
   default); the result is cached in ``<out>/frame_embeddings.npz``.
2. Tracklets are cut into chunks of at most ``max_len`` frames.
3. Each training step takes a batch of chunks (videos) and, for each, one
   single frame (image) of the same identity from another chunk (positive, half
   the time) or of another identity (negative): the image-to-video pairs of seed
   004. The image feature is the LSTM over a length-1 sequence, the video
   feature the LSTM over the chunk, and the loss is seed 004 Eq. 4:
   ``L = Lv + 1/2 Lii + 1/2 Liv`` (verification = Square Layer + 2-way softmax).
   Options (``aggregator``): P x K batches of chunks (``chunks_per_id``, :func:`pk_batches`) and a batch-hard
   soft-margin triplet term on the L2-normalised video and image features (``triplet_weight``), which trains
   the Euclidean space that retrieval uses.
4. Validation: tracklet-to-tracklet rank-1 / mAP over validation chunks for the
   LSTM and for mean pooling (chunks of the same track closer than
   ``data.val_min_gap`` frames are ignored as matches).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.core.errors import ConfigError, DataError
from reid_models.aggregation import LSTMAggregator, LSTMNet, MeanAggregator, save_lstm
from reid_models.config import TrainConfig
from reid_models.heads import IdentificationHead, VerificationHead
from reid_models.losses import batch_hard_triplet, video_loss
from reid_models.run_report import write_run_report


def _chunks(tracklets: list[dict], max_len: int, min_len: int) -> list[dict]:
    out = []
    for t_idx, t in enumerate(tracklets):
        for s in range(0, len(t["paths"]), max_len):
            paths = t["paths"][s:s + max_len]
            if len(paths) >= min_len:
                out.append({"pid": t["pid"], "seq": t["seq"], "track": t_idx, "paths": paths,
                            "frames": t["frames"][s:s + max_len]})
    return out


def _embed_paths(paths: list[Path], encoder_ckpt: str | None, device: str, cache: Path) -> tuple[dict[Path, np.ndarray], str]:
    from pipeline.core.images import read_image

    from reid_models.encoder import AppearanceEncoder

    enc = AppearanceEncoder.from_checkpoint(Path(encoder_ckpt) if encoder_ckpt else None, device=device)
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        if str(data["version"]) == enc.version and len(data["paths"]) == len(paths):
            return {Path(p): f for p, f in zip(data["paths"], data["feats"])}, enc.version
    from pipeline.core.progress import progress

    feats = []
    for s in progress(range(0, len(paths), 256), desc="embedding tracklet frames", leave=False):
        crops = []
        for p in paths[s:s + 256]:
            img = read_image(p)
            if img is None:
                raise DataError(p, "cannot read image")
            crops.append(img)
        feats.append(enc.embed_crops(crops))
    arr = np.concatenate(feats) if feats else np.zeros((0, enc.dim), np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, paths=np.array([str(p) for p in paths]), feats=arr, version=np.array(enc.version))
    return dict(zip(paths, arr)), enc.version


def _load_chunks(cfg: TrainConfig, split: str | None) -> list[dict]:
    """Chunks of every dataset's tracklets in ``split`` (:func:`_load_tracklets`), ``aggregator.max_len`` frames at
    most and ``aggregator.min_len`` at least."""
    a = cfg.aggregator
    return _chunks(_load_tracklets(cfg, split), a.max_len, a.min_len)


def _load_tracklets(cfg: TrainConfig, split: str | None) -> list[dict]:
    """Every dataset's tracklets in ``split``: ``tracklets.json`` of make-triplets folders, the
    per-camera sequences (``protocols.folder_tracklets``) of Market-1501 / CUHK03 folders."""
    from reid_models.datasets import load_tracklets
    from reid_models.datasets.protocols import folder_tracklets
    from reid_models.train_data import load_items

    if split is None:
        return []
    out = []
    for d, entry in enumerate(cfg.data.entries()):
        if entry.format == "index":
            tr = load_tracklets(Path(entry.path), split)
        else:
            tr = folder_tracklets(load_items(entry, split))
        for t in tr:
            t["pid"] = d * 1_000_000 + int(t["pid"])
        out += tr
    return out


def tracklet_rank1(feats: np.ndarray, chunks: list[dict], min_gap: int) -> dict[str, float]:
    """All-vs-all tracklet retrieval; a chunk never matches itself or same-track chunks within min_gap frames."""
    from reid_models.metrics import cmc_map

    pids = np.array([c["pid"] for c in chunks])
    track = np.array([c["track"] for c in chunks])
    start = np.array([min(c["frames"]) for c in chunks])
    end = np.array([max(c["frames"]) for c in chunks])
    gap = np.maximum(start[:, None] - end[None, :], start[None, :] - end[:, None])
    ignore = (track[:, None] == track[None, :]) & (gap < max(min_gap, 1))
    res = cmc_map(feats, pids, None, feats, pids, None, ignore=ignore)
    return {"rank1": float(res["rank1"]), "mAP": float(res["mAP"]), "queries": int(res["num_queries"])}


def _pairs(chunks: list[dict], batch: list[int], rng: np.random.Generator) -> tuple[list[int], list[int], list[bool]]:
    """For each video chunk in ``batch``: (chunk giving the image, frame index in it, same?)."""
    by_pid: dict[int, list[int]] = {}
    for i, c in enumerate(chunks):
        by_pid.setdefault(c["pid"], []).append(i)
    src, pos, same = [], [], []
    for v in batch:
        want_same = bool(rng.random() < 0.5)
        if want_same:
            pool = [i for i in by_pid[chunks[v]["pid"]] if i != v] or [v]
        else:
            pool = [i for i in range(len(chunks)) if chunks[i]["pid"] != chunks[v]["pid"]]
        j = int(rng.choice(pool))
        src.append(j)
        pos.append(int(rng.integers(len(chunks[j]["paths"]))))
        same.append(want_same)
    return src, pos, same


def contaminate(videos: list[torch.Tensor], pids: list[int], share: float, rng: np.random.Generator,
                where: str = "tail") -> tuple[list[torch.Tensor], list[int]]:
    """A batch's (T_i, D) video sequences with a tracker's identity switches simulated: each sequence of 3 frames
    or more is, with probability ``share``, given m frames of another identity (m uniform in 1..T_i // 3), taken in
    order from a random other sequence of the batch with a different identity in ``pids`` (its end repeated when
    it is shorter). ``where="tail"``: they replace the last m frames; ``"anywhere"``: m consecutive frames at a
    uniform start, so that the position of a frame says nothing about whether it is an intruder. Returns (the
    sequences, the number of frames replaced in each)."""
    out, replaced = [], []
    for i, v in enumerate(videos):
        others = [j for j in range(len(videos)) if pids[j] != pids[i]]
        if len(v) < 3 or not others or share <= 0.0 or rng.random() >= share:
            out.append(v)
            replaced.append(0)
            continue
        m = int(rng.integers(1, len(v) // 3 + 1))
        donor = videos[others[int(rng.integers(len(others)))]]
        take = donor[np.minimum(np.arange(m), len(donor) - 1)]
        start = len(v) - m if where == "tail" else int(rng.integers(0, len(v) - m + 1))
        out.append(torch.cat([v[:start], take, v[start + m:]]))
        replaced.append(m)
    return out, replaced


def pk_batches(chunks: list[dict], batch_size: int, k: int, rng: np.random.Generator) -> list[list[int]]:
    """One epoch of P x K batches of chunk indices: identities in a random order, ``batch_size // k`` of them per
    batch, ``k`` of each identity's chunks (drawn without replacement when it has k or more, else with), as many
    batches as the epoch's random batching would make (``len(chunks) // batch_size``, at least one); identities
    with one chunk only are left out (a batch-hard loss needs a positive)."""
    by_pid: dict[int, list[int]] = {}
    for i, c in enumerate(chunks):
        by_pid.setdefault(c["pid"], []).append(i)
    pids = [p for p, idx in sorted(by_pid.items()) if len(idx) > 1]
    p_per_batch = max(1, batch_size // k)
    if len(pids) < 2:
        raise DataError("<training chunks>", "chunks_per_id needs two or more identities with two chunks or more")
    out: list[list[int]] = []
    order: list[int] = []
    for _ in range(max(1, len(chunks) // batch_size)):
        if len(order) < p_per_batch:
            order += [pids[int(i)] for i in rng.permutation(len(pids))]
        batch_pids, order = order[:p_per_batch], order[p_per_batch:]
        batch = []
        for pid in batch_pids:
            idx = by_pid[pid]
            batch += [idx[int(j)] for j in rng.choice(len(idx), size=k, replace=len(idx) < k)]
        out.append(batch)
    return out


def train_aggregator(cfg: TrainConfig, device: str, out: Path, resume: str | Path | None = None) -> dict[str, Any]:
    """Train the LSTM aggregator; writes ``last.pt`` / ``best.pt`` (LSTM checkpoints) and metrics.json."""
    from pipeline.core.progress import progress

    if resume is not None:
        raise ConfigError("--resume is not supported for task: lstm (training takes seconds; start again)")
    a = cfg.aggregator
    train_tracklets = _load_tracklets(cfg, cfg.data.train_split)
    train, val = _chunks(train_tracklets, a.max_len, a.min_len), _load_chunks(cfg, cfg.data.val_split)
    if len({c["pid"] for c in train}) < 2:
        if len({t["pid"] for t in train_tracklets}) >= 2:  # the identities are there, their tracklets too short
            longest = max(len(t["paths"]) for t in train_tracklets)
            raise ConfigError(f"aggregator.min_len {a.min_len}: tracklets of at least 2 identities must reach it, "
                              f"{len({c['pid'] for c in train})} do (the longest training tracklet has {longest} "
                              "frames); lower aggregator.min_len")
        raise DataError(cfg.data.entries()[0].path, "need tracklets of at least 2 identities in the training split")
    paths = sorted({p for c in train + val for p in c["paths"]})
    table, enc_version = _embed_paths(paths, cfg.aggregator.encoder_checkpoint, device, out / "frame_embeddings.npz")
    seq = lambda c: torch.from_numpy(np.stack([table[p] for p in c["paths"]]))  # noqa: E731
    train_x = [seq(c) for c in train]
    labels = {pid: i for i, pid in enumerate(sorted({c["pid"] for c in train}))}
    y = torch.tensor([labels[c["pid"]] for c in train])
    dim = train_x[0].shape[1]
    net = LSTMNet(dim, cfg.aggregator.hidden_dim, cfg.aggregator.residual, cfg.aggregator.pooling,
                  cfg.aggregator.bidirectional).to(device)
    heads = nn.ModuleDict({"ident": IdentificationHead(net.out_dim, len(labels)),
                           "verif": VerificationHead(net.out_dim)}).to(device)
    opt = torch.optim.Adam(list(net.parameters()) + list(heads.parameters()), lr=cfg.optim.lr)
    history: list[dict] = []
    summary = {"history": history, "out_dir": str(out), "encoder_version": enc_version}  # history grows in place
    best = -1.0
    for epoch in range(cfg.epochs):
        rng = np.random.default_rng([cfg.seed, epoch])
        torch.manual_seed(cfg.seed * 1000 + epoch)
        net.train()
        bs, a = cfg.aggregator.batch_size, cfg.aggregator
        if a.chunks_per_id:
            batches = pk_batches(train, bs, a.chunks_per_id, rng)
        else:
            order = rng.permutation(len(train))
            batches = [[int(i) for i in order[s:s + bs]] for s in range(0, len(order), bs)]
        total, n = 0.0, 0
        for batch in progress(batches, desc=f"lstm epoch {epoch + 1}/{cfg.epochs}", leave=False):
            src, pos, same = _pairs(train, batch, rng)
            videos = [train_x[i] for i in batch]
            if a.contaminate:
                videos, _ = contaminate(videos, [train[i]["pid"] for i in batch], a.contaminate, rng,
                                        a.contaminate_where)
            fv = net.forward_list([v.to(device) for v in videos])
            fi = net.forward_list([train_x[j][k:k + 1].to(device) for j, k in zip(src, pos)])
            loss = video_loss(heads["verif"](fi, fv), torch.tensor(same, device=device),
                              heads["ident"](fi), y[src].to(device), heads["ident"](fv), y[batch].to(device))
            if a.triplet_weight:
                feats = nn.functional.normalize(torch.cat([fv, fi]), dim=1)
                loss = loss + a.triplet_weight * batch_hard_triplet(feats, torch.cat([y[batch], y[src]]).to(device))
            if not bool(torch.isfinite(loss.detach())):  # as the image engine: stop before the step, keep last.pt
                from reid_models.engine import TrainingDiverged

                raise TrainingDiverged(f"LSTM training diverged: loss {float(loss.detach())} in epoch {epoch + 1} "
                                       f"batch {n + 1}; {out / 'last.pt'} keeps the last finished epoch "
                                       "(try a lower optim.lr)")
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + float(loss.detach()), n + 1
        row: dict[str, Any] = {"epoch": epoch, "loss": total / max(n, 1)}
        if val:
            row.update(_validate(net.cpu(), val, table, cfg.data.val_min_gap))
            net.to(device)
        history.append(row)
        print(json.dumps(row), flush=True)
        metrics = {**row, "history": history}
        save_lstm(out / "last.pt", net, enc_version, metrics)
        if row.get("val_rank1_lstm", 0.0) >= best:
            best = row.get("val_rank1_lstm", 0.0)
            save_lstm(out / "best.pt", net, enc_version, metrics)
        # every epoch (a finished run is one whose metrics.json holds all epochs: train --resume auto)
        write_run_report(out, summary)
    return summary


def _validate(net: LSTMNet, chunks: list[dict], table: dict, min_gap: int) -> dict[str, float]:
    seqs = [np.stack([table[p] for p in c["paths"]]) for c in chunks]
    lstm = LSTMAggregator(net.eval()).aggregate_many(seqs)
    mean = np.stack([MeanAggregator().aggregate(s) for s in seqs])
    a, b = tracklet_rank1(lstm, chunks, min_gap), tracklet_rank1(mean, chunks, min_gap)
    return {"val_rank1_lstm": a["rank1"], "val_mAP_lstm": a["mAP"], "val_rank1_mean": b["rank1"],
            "val_mAP_mean": b["mAP"], "val_tracklets": len(chunks)}
