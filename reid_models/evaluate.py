"""Re-id evaluation of an embedding function on a generator dataset's test split.

Protocols (stated in the metrics JSON under ``"protocol"``):

* **Image query/gallery.** ``camera`` protocol when test identities are seen by
  >= 2 cameras (sequences): per (identity, camera) the median-frame crop is a
  query; the gallery is every other test crop; same-identity-same-camera gallery
  entries are excluded (Market-1501). ``time`` protocol for a single camera
  (PETS09-S2L1): each identity's crops are cut into ``segments`` time segments of
  equal size, the median-frame crop of each is a query; the gallery is every
  other test crop, except crops of the same identity within ``exclude_frames``
  frames of the query (near-duplicates of the same track moment).
* **Pair verification**: ROC over ``pairs_test.csv`` (balanced), Euclidean
  distance of L2-normalised embeddings, "same" when distance <= th.
* **Re-ranking** (``EvalConfig.rerank``, off by default): every distance above replaced by the k-reciprocal
  distance of Zhong et al. (CVPR 2017, :mod:`reid_models.rerank`) computed over the items scored together
  (queries + gallery; for the pair ROC, every test crop), with the paper's k1 20, k2 6, lambda 0.3. It uses
  the unlabelled test crops themselves (transductive), as torchreid's ``rerank=True`` and FastReID's
  ``TEST.RERANK`` do; results with it are reported beside, never instead of, the plain ones.
* **Triplet accuracy** (seed 000 Eq. 5) over ``triplets_test.csv``.
* **Video** (image folders with per-camera sequences, :func:`video_retrieval`): each sequence's aggregate
  queries every other (video-to-video), and its middle frame queries the same gallery (image-to-video, seed
  004); same-identity same-camera sequences excluded.
* **Tracklet-to-tracklet**: test tracklets cut into chunks of ``chunk_len``
  crops, aggregated (mean / LSTM); every chunk queries all others, same-identity
  chunks within ``exclude_frames`` frames of the query's span are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.errors import ConfigError, DataError
from reid_models.datasets.index import DISTRACTOR_PID, CropItem, load_index, load_pairs, load_tracklets, load_triplets
from reid_models.metrics import cmc_map_from_distances, pairwise_distances, roc_table, roc_verification, triplet_accuracy
from reid_models.rerank import k_reciprocal_bytes, k_reciprocal_distance

PROTOCOL_NOTE = (
    "image query/gallery: camera protocol (per identity and camera the median-frame crop is a query, "
    "same-id-same-camera gallery excluded) when test ids span >= 2 cameras, else time protocol (per identity "
    "{cfg.segments} time segments, median-frame crop of each is a query, same-id gallery crops within "
    "{cfg.exclude_frames} frames of the query ignored); euclidean distance of L2-normalised embeddings; "
    "tracklets: chunks of {cfg.chunk_len} crops, same-id chunks within {cfg.exclude_frames} frames ignored"
)
EmbedFn = Callable[[list[np.ndarray]], np.ndarray]  # list of BGR crops -> (N, D)


@dataclass(frozen=True)
class EvalConfig:
    protocol: str = "auto"  # auto | camera | time
    segments: int = 5
    exclude_frames: int = 35
    chunk_len: int = 8
    ten_crop: bool = False
    batch_size: int = 64
    max_fpr: float = 0.1
    triplet_margin: float = 0.0
    rerank: bool = False  # k-reciprocal re-ranking of the items scored together (module docstring)
    rerank_k1: int = 20
    rerank_k2: int = 6
    rerank_lambda: float = 0.3
    rerank_max_bytes: float = 8e9  # refuse (one line) a re-ranking whose working set would exceed this


def ten_crop_images(img: np.ndarray, scale: float = 0.875) -> list[np.ndarray]:
    """10 variants of an (H, W, 3) crop (4 corners, centre, and their flips), each resized to (H, W)."""
    import cv2

    h, w = img.shape[:2]
    ch, cw = max(1, round(h * scale)), max(1, round(w * scale))
    origins = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), ((h - ch) // 2, (w - cw) // 2)]
    crops = [cv2.resize(img[t:t + ch, l:l + cw], (w, h), interpolation=cv2.INTER_LINEAR) for t, l in origins]
    return crops + [np.ascontiguousarray(c[:, ::-1]) for c in crops]


def _l2n(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


#: unreadable images warned about one line each when skipped; the rest are counted in one line at the end
MAX_WARNED = 5


def warn_unreadable(path: Path, problem: str, skipped: int) -> None:
    """The one-line stderr warning for the ``skipped``-th (1-based) unreadable image that :func:`embed_paths` leaves
    out: the first :data:`MAX_WARNED` name their file; later ones are only counted (:func:`warn_unreadable_total`)."""
    import sys

    if skipped <= MAX_WARNED:
        print(f"warning: {path}: {problem}; skipped", file=sys.stderr)


def warn_unreadable_total(skipped: Sequence[Path], total: int) -> None:
    """The closing stderr line when more images were skipped than :func:`warn_unreadable` named."""
    import sys

    if len(skipped) > MAX_WARNED:
        print(f"warning: {len(skipped)} of {total} images could not be read and were skipped ({MAX_WARNED} named "
              f"above)", file=sys.stderr)


def embed_paths(embed: EmbedFn, paths: Sequence[Path], cfg: EvalConfig, progress: bool = True,
                skipped: list[int] | None = None) -> np.ndarray:
    """(N, D) float32 L2-normalised embeddings of image files (10-crop averaged when cfg.ten_crop). An image that
    cannot be read (``pipeline.core.images.image_problem``: a truncated JPEG, a 0-byte file, not an image) is a
    one-line DataError naming it, or, when ``skipped`` is a list, left out of the rows with a one-line warning
    (:func:`warn_unreadable`) and its index appended to ``skipped``."""
    from pipeline.core.images import image_problem, read_image
    from pipeline.core.progress import progress as progress_bar

    if cfg.batch_size < 1:
        raise ConfigError(f"batch size must be a positive number, got {cfg.batch_size}")
    out = []
    for s in progress_bar(range(0, len(paths), cfg.batch_size), desc="embed", unit="batch", disable=not progress):
        imgs = []
        for k, p in enumerate(paths[s:s + cfg.batch_size], s):
            img = read_image(p)
            if img is None:
                if skipped is None:
                    raise DataError(p, image_problem(p))
                skipped.append(k)
                warn_unreadable(p, image_problem(p), len(skipped))
                continue
            imgs.append(img)
        if not imgs:
            continue
        if cfg.ten_crop:
            many = [c for img in imgs for c in ten_crop_images(img)]
            f = _l2n(np.asarray(embed(many), dtype=np.float32)).reshape(len(imgs), 10, -1).mean(1)
        else:
            f = np.asarray(embed(imgs), dtype=np.float32)
        out.append(_l2n(f))
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


def retrieval_distances(feats: np.ndarray, q: np.ndarray, g: np.ndarray, cfg: EvalConfig) -> np.ndarray:
    """(Q, G) float64 distances of the queries ``feats[q]`` to the gallery ``feats[g]`` ((N, D) L2-normalised rows,
    q and g disjoint index arrays): Euclidean, or with ``cfg.rerank`` the k-reciprocal distance computed over the
    Q + G items together."""
    if not cfg.rerank:
        return pairwise_distances(feats[q], feats[g])
    d = reranked(feats[np.concatenate([q, g])], cfg)
    return d[:len(q), len(q):].astype(np.float64)


def reranked(feats: np.ndarray, cfg: EvalConfig) -> np.ndarray:
    """(N, N) k-reciprocal distance of (N, D) L2-normalised rows with ``cfg``'s parameters; a set whose working
    memory (:func:`reid_models.rerank.k_reciprocal_bytes`) exceeds ``cfg.rerank_max_bytes`` is refused in one line."""
    need = k_reciprocal_bytes(len(feats))
    if need > cfg.rerank_max_bytes:
        raise ConfigError(f"--rerank over {len(feats)} crops needs about {need / 1e9:.1f} GB (limit "
                          f"{cfg.rerank_max_bytes / 1e9:.1f} GB): score a smaller set or without --rerank")
    return k_reciprocal_distance(feats, cfg.rerank_k1, cfg.rerank_k2, cfg.rerank_lambda)


def query_gallery(items: Sequence[CropItem], cfg: EvalConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
    """Indices of queries and gallery, the (Q, G) ignore mask (time protocol) and the protocol name."""
    pids = np.array([it.pid for it in items])
    cams = np.array([it.camid for it in items])
    frames = np.array([it.frame for it in items])
    multi = any(len(np.unique(cams[pids == p])) > 1 for p in np.unique(pids))
    protocol = cfg.protocol if cfg.protocol != "auto" else ("camera" if multi else "time")
    queries = []
    for p in np.unique(pids):
        idx = np.nonzero(pids == p)[0]
        groups = [idx[cams[idx] == c] for c in np.unique(cams[idx])] if protocol == "camera" else [idx]
        for g in groups:
            g = g[np.argsort(frames[g], kind="stable")]
            parts = [g] if protocol == "camera" else np.array_split(g, min(cfg.segments, len(g)))
            queries += [int(part[len(part) // 2]) for part in parts if len(part)]
    q = np.array(sorted(queries))
    g = np.setdiff1d(np.arange(len(items)), q)
    ignore = None
    if protocol == "time":
        same = pids[q][:, None] == pids[g][None, :]
        near = np.abs(frames[q][:, None] - frames[g][None, :]) < cfg.exclude_frames
        ignore = same & near & (cams[q][:, None] == cams[g][None, :])
    return q, g, ignore, protocol


def image_retrieval(items: Sequence[CropItem], feats: np.ndarray, cfg: EvalConfig,
                    joint: np.ndarray | None = None) -> dict[str, Any]:
    """CMC / mAP under the protocol of :func:`query_gallery`. ``joint``: with ``cfg.rerank``, the re-ranked
    (Q + G, Q + G) matrix of ``feats[concat(q, g)]`` when the caller already has it (else computed here)."""
    q, g, ignore, protocol = query_gallery(items, cfg)
    pids = np.array([it.pid for it in items])
    cams = np.array([it.camid for it in items])
    if joint is not None:
        dist = joint[:len(q), len(q):].astype(np.float64)
    else:
        dist = retrieval_distances(feats, q, g, cfg)
    use_cams = protocol == "camera"
    res = cmc_map_from_distances(dist, pids[q], pids[g], cams[q] if use_cams else None,
                                 cams[g] if use_cams else None, 20, ignore)
    res.update(protocol=protocol, num_gallery=int(len(g)))
    return res


def tracklet_retrieval(
    tracklets: list[dict], feat_of: dict[Path, np.ndarray], aggregate: Callable[[np.ndarray], np.ndarray],
    cfg: EvalConfig,
) -> dict[str, Any]:
    """Tracklet-to-tracklet CMC / mAP: chunks of ``chunk_len`` crops, each chunk a query against the rest."""
    vecs, pids, spans = [], [], []
    for t in tracklets:
        for s in range(0, len(t["paths"]) - cfg.chunk_len + 1, cfg.chunk_len):
            seq = np.stack([feat_of[p] for p in t["paths"][s:s + cfg.chunk_len]])
            vecs.append(np.asarray(aggregate(seq), dtype=np.float32))
            pids.append(t["pid"])
            spans.append((t["camid"], t["frames"][s], t["frames"][s + cfg.chunk_len - 1]))
    if len(vecs) < 2:
        return {"num_queries": 0}
    pids_a = np.array(pids)
    sp = np.array(spans)
    gap = np.maximum(sp[:, 1][:, None] - sp[:, 2][None, :], sp[:, 1][None, :] - sp[:, 2][:, None])
    ignore = (pids_a[:, None] == pids_a[None, :]) & (sp[:, 0][:, None] == sp[:, 0][None, :]) & (gap < cfg.exclude_frames)
    np.fill_diagonal(ignore, True)
    res = cmc_map_from_distances(pairwise_distances(np.stack(vecs), np.stack(vecs)), pids_a, pids_a, ignore=ignore)
    res["num_chunks"] = len(vecs)
    return res


def evaluate_dataset(
    dataset_dir: Path, embed: EmbedFn, cfg: EvalConfig,
    aggregators: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None, progress: bool = True,
) -> dict[str, Any]:
    """All re-id metrics of ``embed`` on the test split of a make-triplets dataset."""
    dataset_dir = Path(dataset_dir)
    items = load_index(dataset_dir, "test")
    if not items:
        raise DataError(dataset_dir / "index.csv", "no crops in the test split")
    feats = embed_paths(embed, [it.path for it in items], cfg, progress)
    feat_of = {it.path: feats[i] for i, it in enumerate(items)}
    out: dict[str, Any] = {"dataset": str(dataset_dir), "config": asdict(cfg),
                           "num_test_crops": len(items), "num_test_ids": len({it.pid for it in items})}
    joint, row = None, {}
    if cfg.rerank:  # queries + gallery are every test crop: one re-ranked matrix serves retrieval and the ROC
        q, g = query_gallery(items, cfg)[:2]
        order = np.concatenate([q, g])
        joint = reranked(feats[order], cfg)
        row = {items[i].path: r for r, i in enumerate(order)}
    out["retrieval"] = image_retrieval(items, feats, cfg, joint)
    out["protocol_note"] = PROTOCOL_NOTE.format(cfg=cfg)
    pairs = load_pairs(dataset_dir)
    if pairs:
        if joint is not None:
            d = np.array([float(joint[row[a], row[b]]) for a, b, _ in pairs])
        else:
            d = np.array([np.linalg.norm(feat_of[a] - feat_of[b]) for a, b, _ in pairs])
        same = np.array([s for _, _, s in pairs])
        out["roc"] = roc_verification(d, same, cfg.max_fpr)
        out["roc_table"] = roc_table(d, same, np.round(np.arange(0, 2.01, 0.1), 2))
    if (dataset_dir / "triplets_test.csv").is_file():
        trip = load_triplets(dataset_dir, "triplets_test.csv")
        if trip:
            d_ap = np.array([np.linalg.norm(feat_of[a] - feat_of[p]) for a, p, _ in trip])
            d_an = np.array([np.linalg.norm(feat_of[a] - feat_of[n]) for a, _, n in trip])
            out["triplet_accuracy"] = triplet_accuracy(d_ap, d_an, cfg.triplet_margin)
            out["num_triplets"] = len(trip)
    tracklets = load_tracklets(dataset_dir, "test") if (dataset_dir / "tracklets.json").is_file() else []
    out["tracklets"] = {name: tracklet_retrieval(tracklets, feat_of, agg, cfg)
                        for name, agg in (aggregators or {"mean": mean_pool}).items()}
    return out


def mean_pool(seq: np.ndarray) -> np.ndarray:
    """(T, D) -> (D,) mean of the embeddings, L2-normalised."""
    m = np.asarray(seq, dtype=np.float64).mean(0)
    return (m / max(np.linalg.norm(m), 1e-12)).astype(np.float32)


def summary_line(m: dict[str, Any]) -> str:
    """One line with the headline figures of :func:`evaluate_dataset`'s result."""
    r = m["retrieval"]
    s = f"rank1 {r['rank1']:.1f}  rank5 {r['rank5']:.1f}  mAP {r['mAP']:.1f}"
    if "roc" in m:
        s += f"  TPR@FPR<={m['roc']['max_fpr']:g} {m['roc']['tpr_at_fpr']:.3f}  AUC {m['roc']['auc']:.3f}  EER {m['roc']['eer']:.3f}"
    if "triplet_accuracy" in m:
        s += f"  triplet-acc {m['triplet_accuracy']:.3f}"
    for name, t in m.get("tracklets", {}).items():
        if t.get("num_queries"):
            s += f"  tracklet-rank1[{name}] {t['rank1']:.1f}"
    for name, v in m.get("video", {}).items():
        for key, short in (("video_to_video", "v2v"), ("image_to_video", "i2v")):
            if v.get(key, {}).get("num_queries"):
                s += f"  {short}[{name}] rank1 {v[key]['rank1']:.1f} mAP {v[key]['mAP']:.1f}"
    return s


def market_retrieval(items: Sequence[CropItem], feats: np.ndarray, seed: int = 0,
                     cfg: EvalConfig | None = None, distractors: bool = False) -> dict[str, Any]:
    """CMC / mAP under the Market-1501 rule, same-identity same-camera gallery items excluded.

    Items with split ``query`` (a Market-1501 root's ``query/`` folder): the official split, those queries
    against the ``gallery`` items (``bounding_box_test/``, distractors included); ``train`` items are ignored.
    Otherwise every identity is a test identity (``protocols.market_query_indices``): one seeded query per
    identity and camera, all other items as gallery. feats: (N, D) L2-normalised embeddings of ``items`` in order;
    ``cfg.rerank``: k-reciprocal re-ranking of queries + gallery (:func:`retrieval_distances`); ``distractors``:
    distractor-id items (0) are never queries (``protocols.market_query_indices``)."""
    from reid_models.datasets.protocols import market_query_indices

    if any(it.split == "query" for it in items):
        q = np.array([i for i, it in enumerate(items) if it.split == "query"], dtype=np.int64)
        g = np.array([i for i, it in enumerate(items) if it.split == "gallery"], dtype=np.int64)
        if not len(g):
            raise DataError("<items>", "query crops but no gallery crops (a Market-1501 root needs bounding_box_test/)")
        protocol = ("market official: query/ against bounding_box_test/ (distractors kept), "
                    "same-id same-camera gallery excluded")
    else:
        q, g = market_query_indices(items, seed, distractors)
        protocol = "market: one seeded query per identity and camera, rest gallery, same-id same-camera gallery excluded"
    pids = np.array([it.pid for it in items])
    cams = np.array([it.camid for it in items])
    dist = retrieval_distances(feats, q, g, cfg or EvalConfig())
    res = cmc_map_from_distances(dist, pids[q], pids[g], cams[q], cams[g], 20)
    res.update(protocol=protocol, num_gallery=int(len(g)))
    return res


def single_shot_retrieval(items: Sequence[CropItem], feats: np.ndarray, trials: int, seed: int = 0,
                          cfg: EvalConfig | None = None, distractors: bool = False) -> dict[str, Any]:
    """Seed 003's CUHK03 single-shot CMC / mAP, averaged over ``trials`` (>= 1) seeded draws of one camera-0
    query and one camera-1 gallery image per identity (``protocols.cuhk03_single_shot_trials``, people only camera
    1 saw and, with ``distractors``, every distractor crop in the gallery too); ``cfg.rerank``: each trial's
    queries + gallery re-ranked together."""
    from reid_models.datasets.protocols import cuhk03_single_shot_trials

    if trials < 1:
        raise ConfigError(f"trials must be a positive number, got {trials}")
    pids = np.array([it.pid for it in items])
    runs = []
    for q, g in cuhk03_single_shot_trials(items, trials, seed, distractors):
        q_a, g_a = np.array(q), np.array(g)
        dist = retrieval_distances(feats, q_a, g_a, cfg or EvalConfig())
        runs.append(cmc_map_from_distances(dist, pids[q_a], pids[g_a], max_rank=20))
    if not runs:
        return {"num_queries": 0}
    out: dict[str, Any] = {k: float(np.mean([r[k] for r in runs])) for k in ("rank1", "rank5", "rank10", "rank20", "mAP")}
    out["cmc"] = [float(v) for v in np.mean([r["cmc"] for r in runs], axis=0)]
    out["rank1_std"] = float(np.std([r["rank1"] for r in runs]))
    out["per_query"] = {k: [v for r in runs for v in r["per_query"][k]] for k in ("pid", "first_hit", "ap")}
    n_gallery = len(cuhk03_single_shot_trials(items, 1, seed, distractors)[0][1])
    out.update(num_queries=int(runs[0]["num_queries"]), num_gallery=n_gallery, trials=len(runs),
               protocol=f"single shot: one camera-A query per identity seen by both cameras, one camera-B gallery "
                        f"image per identity camera B saw, {len(runs)} trials")
    return out


@dataclass(frozen=True)
class _Sequences:
    """Per sequence (``protocols.folder_tracklets`` order): pids, camids, splits, lengths (S,); gallery (S, D') the
    aggregates of its frames; probes (S, D') its middle frame aggregated alone."""

    pids: np.ndarray
    cams: np.ndarray
    splits: np.ndarray
    lengths: np.ndarray
    gallery: np.ndarray
    probes: np.ndarray


def _sequences(items: Sequence[CropItem], feats: np.ndarray, aggregate: Callable[[np.ndarray], np.ndarray]) -> _Sequences:
    from reid_models.datasets.protocols import folder_tracklets

    row = {it.path: i for i, it in enumerate(items)}
    tracks = folder_tracklets(items)
    idx = [np.array([row[p] for p in t["paths"]]) for t in tracks]
    dim = feats.shape[1] if feats.ndim == 2 else 0
    stack = lambda vs: np.stack(vs) if vs else np.zeros((0, dim), np.float32)  # noqa: E731
    return _Sequences(np.array([t["pid"] for t in tracks]), np.array([t["camid"] for t in tracks]),
                      np.array([t["split"] for t in tracks]), np.array([len(i) for i in idx]),
                      stack([np.asarray(aggregate(feats[i]), np.float32) for i in idx]),
                      stack([np.asarray(aggregate(feats[i[len(i) // 2]][None]), np.float32) for i in idx]))


def video_retrieval(items: Sequence[CropItem], feats: np.ndarray, aggregate: Callable[[np.ndarray], np.ndarray],
                    distractors: bool = False) -> dict[str, Any]:
    """Video re-id over per-camera sequences, every identity a test identity (the PRID2011 / iLIDS-VID / MARS
    setting without a training half): one sequence per (identity, camera, sequence),
    ``protocols.folder_tracklets``, frames in order.

    * ``video_to_video``: every sequence's aggregate (``aggregate``: (T, D) -> (D',)) queries all the others;
    * ``image_to_video`` (seed 004): every sequence's middle frame, aggregated alone (a one-frame sequence, so an
      LSTM maps it into the same space), queries the same gallery of sequence aggregates.

    Gallery sequences of the query's identity *and* camera are excluded (the Market / MARS rule), so a query is
    matched across cameras only; queries whose identity no other camera saw are skipped (``num_skipped``), their
    sequences stay in the gallery as distractors. ``distractors``: sequences of the distractor id (0: Market-1501's
    0000) are gallery negatives only, never queries. Items with an official split (split ``query``: a Market-1501
    root's ``query/``, a ``query/`` + ``gallery/`` folder) keep it: the sequences of the query split query those of
    the gallery split only (a query crop never joins or meets a gallery sequence, as MARS / DukeMTMC-VideoReID
    score query tracklets against gallery tracklets). feats: (N, D) embeddings of ``items`` in order."""
    seqs = _sequences(items, feats, aggregate)
    if len(seqs.pids) < 2:
        return {"num_sequences": len(seqs.pids)}
    pids, cams, gallery, probes = seqs.pids, seqs.cams, seqs.gallery, seqs.probes
    official = bool((seqs.splits == "query").any())
    q = np.nonzero(seqs.splits == "query")[0] if official else np.arange(len(pids))
    g = np.nonzero(seqs.splits == "gallery")[0] if official else np.arange(len(pids))
    if distractors:
        q = q[pids[q] != DISTRACTOR_PID]
    out: dict[str, Any] = {
        key: cmc_map_from_distances(pairwise_distances(feats_q[q], gallery[g]), pids[q], pids[g], cams[q], cams[g], 20)
        for key, feats_q in (("video_to_video", gallery), ("image_to_video", probes))
    }
    lengths = seqs.lengths
    out.update(num_sequences=len(pids), frames_per_sequence={"min": int(lengths.min()), "median": float(np.median(lengths)),
                                                             "max": int(lengths.max())},
               protocol=("official split: the query split's sequences (per identity, camera, sequence) query the "
                         "gallery split's; video-to-video: a query sequence's aggregate, image-to-video: its middle "
                         "frame; same-id same-camera gallery sequences excluded" if official else
                         "sequences per (identity, camera, sequence); video-to-video: every sequence's aggregate "
                         "queries every other; image-to-video: its middle frame queries the same gallery; same-id "
                         "same-camera gallery sequences excluded"))
    if official:
        out.update(num_query_sequences=int(len(q)), num_gallery_sequences=int(len(g)))
    return out


def video_halves_retrieval(items: Sequence[CropItem], feats: np.ndarray, aggregate: Callable[[np.ndarray], np.ndarray],
                           trials: int = 10, seed: int = 0, fraction: float = 0.5,
                           distractors: bool = False) -> dict[str, Any]:
    """The two-camera video protocol of McLaughlin et al. (CVPR 2016) that seed 004 follows on PRID2011 and
    iLIDS-VID: of the people seen by both cameras, a seeded ``fraction`` (the test half) per trial; the first
    camera's sequences (video-to-video) or their middle frames (image-to-video) query the second camera's
    sequences of the same people; CMC and mAP averaged over ``trials``. A model trained elsewhere is simply scored
    on each half (what seed 004's Table 1 compares with). DataError when the items do not span exactly two
    cameras or fewer than two people are in both, or when they have an official query / gallery split (the halves
    draw their own); ConfigError when ``trials`` < 1. ``distractors``: the distractor id (0) is nobody's person here
    (not one of the people both cameras saw)."""
    if trials < 1:
        raise ConfigError(f"trials must be a positive number, got {trials}")
    if any(it.split == "query" for it in items):
        raise DataError("<items>", "the halves protocol draws its own query people and cannot keep an official "
                                   "query/ gallery split: use --video-protocol all")
    cams = sorted({it.camid for it in items})
    if len(cams) != 2:
        raise DataError("<items>", f"the halves protocol needs exactly two cameras, found {len(cams)}")
    seqs = _sequences(items, feats, aggregate)
    pids, cam, gallery, probes = seqs.pids, seqs.cams, seqs.gallery, seqs.probes
    nobody = {DISTRACTOR_PID} if distractors else set()
    common = sorted(set(pids[cam == cams[0]].tolist()) & set(pids[cam == cams[1]].tolist()) - nobody)
    if len(common) < 2:
        raise DataError("<items>", f"the halves protocol needs two or more people seen by both cameras, found {len(common)}")
    rng = np.random.default_rng(seed)
    n_test = max(2, int(round(fraction * len(common))))
    runs: dict[str, list[dict]] = {"video_to_video": [], "image_to_video": []}
    for _ in range(trials):
        chosen = np.isin(pids, rng.choice(common, size=n_test, replace=False))
        q, g = np.nonzero(chosen & (cam == cams[0]))[0], np.nonzero(chosen & (cam == cams[1]))[0]
        for key, feats_q in (("video_to_video", gallery), ("image_to_video", probes)):
            runs[key].append(cmc_map_from_distances(pairwise_distances(feats_q[q], gallery[g]), pids[q], pids[g]))
    out: dict[str, Any] = {}
    for key, rs in runs.items():
        out[key] = {k: float(np.mean([r[k] for r in rs])) for k in ("rank1", "rank5", "rank10", "rank20", "mAP")}
        out[key].update(cmc=[float(v) for v in np.mean([r["cmc"] for r in rs], axis=0)],
                        rank1_std=float(np.std([r["rank1"] for r in rs])), num_queries=int(rs[0]["num_queries"]))
    out.update(num_sequences=len(pids), people_in_both=len(common), test_people=n_test, trials=trials,
               protocol=f"halves: {n_test} of the {len(common)} people both cameras saw per trial, camera {cams[0]} "
                        f"queries camera {cams[1]}, {trials} seeded trials (McLaughlin et al. 2016, seed 004)")
    return out


def evaluate_items(items: Sequence[CropItem], embed: EmbedFn, cfg: EvalConfig, protocol: str = "market",
                   trials: int = 10, seed: int = 0, progress: bool = True,
                   video: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None,
                   video_protocol: str = "all", distractors: bool = False) -> dict[str, Any]:
    """Retrieval metrics of ``embed`` on a list of crops: ``protocol`` "market" (all identities as test
    identities, Market-1501 query/gallery rule) or "single_shot" (CUHK03, seed 003); ``video`` (name ->
    aggregator), when given, adds :func:`video_retrieval` (``video_protocol`` "all") or
    :func:`video_halves_retrieval` ("halves", ``trials`` trials) per aggregator under ``"video"``.
    ``distractors``: id 0 is a distractor (Market-1501, camera folders), never a query; False where 0 is a person
    (CUHK03). A protocol with no valid query is a one-line DataError (callers with a folder name check first:
    ``protocols.folder_protocol_problem``). Crops that cannot be read (a truncated JPEG: :func:`embed_paths`) are
    warned about on stderr, one line each naming the file (a count at the end when more than :data:`MAX_WARNED`),
    left out of the scoring and listed under ``"unreadable"``."""
    if not items:
        raise DataError("<items>", "no crops to evaluate")
    if protocol == "single_shot" and trials < 1:
        raise ConfigError(f"trials must be a positive number, got {trials}")
    skipped: list[int] = []
    feats = embed_paths(embed, [it.path for it in items], cfg, progress, skipped)
    unreadable = [items[i].path for i in skipped]
    if skipped:  # scored without them, said on stderr and in the metrics
        warn_unreadable_total(unreadable, len(items))
        gone = set(skipped)
        items = [it for i, it in enumerate(items) if i not in gone]
        if not items:
            raise DataError("<items>", "no crop could be read")
    if protocol == "single_shot":
        ret = single_shot_retrieval(items, feats, trials, seed, cfg, distractors)
    else:
        ret = market_retrieval(items, feats, seed, cfg, distractors)
    if not ret.get("num_queries"):
        raise DataError("<items>", f"0 valid queries under the {protocol} protocol (no query person has a gallery "
                                   "image from another camera)")
    out = {"config": asdict(cfg), "num_test_crops": len(items), "num_test_ids": len({it.pid for it in items}),
           "num_cameras": len({it.camid for it in items}), "retrieval": ret,
           "unreadable": [str(p) for p in unreadable]}
    if video:
        out["video"] = {name: video_retrieval(items, feats, agg, distractors) if video_protocol == "all"
                        else video_halves_retrieval(items, feats, agg, trials, seed, distractors=distractors)
                        for name, agg in video.items()}
    return out
