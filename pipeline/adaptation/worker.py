"""One adaptation round on the identity store: mine, fine-tune, guardrail, version, re-embed, deploy.

1. The base model is the store's deployed version (else the given checkpoint,
   registered and marked deployed under its file hash, the version the
   pipeline stored its embeddings under).
2. Every tracklet with stored crops is embedded by the base model (tracklets
   lacking an embedding of the base version get one).
3. Hold-out tracklets (see :func:`~pipeline.adaptation.data.split_holdout`) are
   set aside; with ``bn_stats: target`` or ``camera`` the base model's BatchNorm
   statistics are re-estimated on the rest's crops (AdaBN; ``camera``: also one set per
   camera) and that model is the starting point; on the rest, presumed positives
   (``alpha * min(N1, N2)`` closest cross-camera pairs per camera pair) and up to ``negatives`` co-occurrence
   negatives per positive are mined (seed 002 §3.2.1-3.2.2).
4. A copy of the base model is fine-tuned (§3.2.3, :func:`reid_models.adaptation.trainer.fine_tune`).
5. Guardrail: continuity AUC of the hold-out halves, candidate vs base; a
   candidate that scores lower (or cannot be checked) is recorded with its
   metrics but no weights, and is not deployed.
6. A deployed candidate (version = content hash of its weights, parent = the
   base) gets the embedding of every tracklet with crops first, then becomes
   the deployed version: a runner polling the store hot-swaps it.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from pipeline.adaptation.data import (CropSet, check_sets, half_tracklets, load_crop_sets, set_cooccurrence, sets_cooccur,
                                      split_holdout)
from pipeline.adaptation.settings import AdaptSettings
from pipeline.core.errors import ConfigError, ModelError
from pipeline.core.types import TrackletEmbedding
from reid_models.adaptation.holdout import continuity_auc, continuity_pairs, decide_deploy
from reid_models.adaptation.mining import pair_negatives, presumed_positives, tracklet_positives
from reid_models.adaptation.trainer import FineTuneSettings, embed_sets, fine_tune, mean_vector, tensors_from_crops
from reid_models.checkpoint import cpu_state
from reid_models.rerank import k_reciprocal_bytes, k_reciprocal_distance

log = logging.getLogger(__name__)


@dataclass
class AdaptReport:
    """What one round did (JSON-ready via :meth:`to_json`)."""

    base_version: str
    candidate_version: str | None = None
    deployed_version: str | None = None
    deployed: bool = False
    reason: str = ""
    holdout_auc_base: float = float("nan")
    holdout_auc_candidate: float = float("nan")
    holdout_pairs: dict[str, int] = field(default_factory=dict)  # continuity positives / negatives checked
    tracklets: int = 0
    cameras: dict[str, int] = field(default_factory=dict)
    train_tracklets: int = 0
    holdout_tracklets: int = 0
    positives: list[dict] = field(default_factory=list)
    mean_negatives: float = 0.0
    steps: int = 0
    train_s: float = 0.0
    stopped_by: str = ""
    losses: list[float] = field(default_factory=list)
    reembedded: int = 0
    not_reembedded: int = 0
    reembed_s: float = 0.0  # embedding every tracklet's crops with the candidate (all of them when reembed)
    reembed_store_s: float = 0.0  # writing those embeddings to the store (deployed candidates only)
    bn_s: float = 0.0  # re-estimating BatchNorm statistics on the training crops (bn_stats: target)
    device: str = "cpu"
    total_s: float = 0.0
    candidate_state: dict | None = field(default=None, repr=False)  # the fine-tuned weights (not in JSON)
    candidate_camera_bn: dict | None = field(default=None, repr=False)  # its per-camera BN statistics (not in JSON)

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("candidate_state", "candidate_camera_bn")}


def load_base_model(store, checkpoint: str | Path | None = None):
    """(version, EmbeddingNet) of the deployed version, else of ``checkpoint`` (registered as deployed)."""
    from reid_models.adaptation.weights import model_from_weights
    from reid_models.checkpoint import load_checkpoint
    from reid_models.encoder import DEFAULT_CHECKPOINT

    version = store.deployed_version()
    if version is not None:
        weights = store.model_weights(version)
        if weights is None:
            raise ModelError(f"{store.path}: deployed model version {version!r} has no stored weights")
        return version, model_from_weights(weights, f"{store.path}:{version}")
    path = Path(checkpoint) if checkpoint not in (None, "default") else DEFAULT_CHECKPOINT
    model, meta = load_checkpoint(path, "cpu")
    store.add_model_version(meta["hash"], weights=path.read_bytes(), metrics={"source": path.name}, deployed=True)
    return meta["hash"], model


def rollback(store) -> tuple[str, str]:
    """Deploy the parent of the deployed version; returns (from, to)."""
    current = store.deployed_version()
    rows = {v.version: v for v in store.model_versions()}
    parent = rows[current].parent if current in rows else None
    if parent is None:
        raise ModelError(f"{store.path}: deployed version {current!r} has no parent to roll back to")
    store.set_deployed(parent)
    return current, parent


#: the largest k-reciprocal working set a round may allocate (a folder round has no max_tracklets cap)
K_RECIPROCAL_MAX_BYTES = 8e9


def _mine(sets: list[CropSet], train: list[int], vectors: list[np.ndarray], settings: AdaptSettings,
          non_overlapping: bool):
    """Presumed-positive pairs and their negatives, as indices into ``train`` (local)."""
    items = [TrackletEmbedding(sets[i].cam_id, sets[i].track_id, sets[i].start_time, sets[i].end_time,
                               mean_vector(vectors[i])) for i in train]
    cooccur = set_cooccurrence(sets, train)
    distance = None
    if settings.mining_distance == "k_reciprocal" and settings.positives != "tracklets":
        need = k_reciprocal_bytes(len(items))
        if need > K_RECIPROCAL_MAX_BYTES:
            raise ConfigError(f"adapt.mining_distance: k_reciprocal over {len(items)} tracklets needs about "
                              f"{need / 1e9:.0f} GB (limit {K_RECIPROCAL_MAX_BYTES / 1e9:.0f} GB): lower adapt.max_tracklets, "
                              "adapt a smaller folder, or use mining_distance: cosine")
        distance = k_reciprocal_distance(np.stack([it.vector for it in items]), settings.k1, settings.k2)
    pairs = [] if settings.positives == "tracklets" else presumed_positives(
        items, alpha=settings.alpha, mutual_nearest=settings.mutual_nearest, cooccur=cooccur, distance=distance,
        pooled=settings.pair_budget == "pooled")
    if settings.positives in ("tracklets", "both"):
        pairs += tracklet_positives(items)
    rng = np.random.default_rng(settings.seed)
    negs = [pair_negatives(p, items, settings.negatives, non_overlapping, rng, cooccur=cooccur) for p in pairs]
    return pairs, negs


def _store_embeddings(store, sets: list[CropSet], vectors: list[np.ndarray], version: str, only_missing: bool) -> int:
    missing = set(store.tracklets_missing_version(version)) if only_missing else None
    n = 0
    with store.transaction():
        for s, v in zip(sets, vectors):
            if missing is None or s.tracklet_id in missing:
                store.put_embedding(s.tracklet_id, version, mean_vector(v))
                n += 1
    return n


def adapt_once(store, settings: AdaptSettings, checkpoint: str | Path | None = None,
               non_overlapping: bool = True, should_stop=None, progress: bool = False) -> AdaptReport:
    """Run one round on the store's tracklets (module docstring). Raises DataError when the store cannot be used."""
    from pipeline.core.device import resolve_device

    t0 = time.monotonic()
    device = resolve_device(settings.device)
    sets = load_crop_sets(store, settings.max_tracklets)
    cams = check_sets(sets, settings.min_tracklets_per_camera, store.path)
    base_version, base = load_base_model(store, checkpoint)
    base = base.to(device)
    images = [tensors_from_crops(s.crops, base.input_size, base.pixel_mean, base.pixel_std) for s in sets]
    base_vecs = embed_sets(base, images, device, cams=[s.cam_id for s in sets])
    _store_embeddings(store, sets, base_vecs, base_version, only_missing=True)
    rep = AdaptReport(base_version=base_version, tracklets=len(sets), cameras=cams, device=device)
    run_round(store, rep, base, sets, images, base_vecs, settings, device, non_overlapping=non_overlapping,
              should_stop=should_stop, progress=progress, reembed=True)
    rep.total_s = round(time.monotonic() - t0, 2)
    return rep


def run_round(store, rep: AdaptReport, base, sets: list[CropSet], images: list, base_vecs: list[np.ndarray],
              settings: AdaptSettings, device: str, non_overlapping: bool = True, should_stop=None,
              progress: bool = False, reembed: bool = True, holdout_min_crops: int = 4) -> AdaptReport:
    """Steps 3-6 of the module docstring on crop sets already embedded by the base model: the one path of
    stored-tracklet rounds (:func:`adapt_once`) and folder rounds (:mod:`pipeline.adaptation.folder`).

    ``images[i]``: (n_i, 3, H, W) tensors of ``sets[i]``; ``base_vecs[i]``: (n_i, D) base embeddings.
    ``reembed``: store every set's new-version embedding before deploying (stored tracklets; folder
    groups are not in the store). Fills and returns ``rep``.
    """
    train, hold = split_holdout(sets, settings.holdout_fraction, settings.seed, min_crops=holdout_min_crops)
    rep.train_tracklets, rep.holdout_tracklets = len(train), len(hold)
    start, start_vecs = base, base_vecs
    cams = [s.cam_id for s in sets]
    by_cam: dict[str, list] = {}
    for i in train:
        by_cam.setdefault(cams[i], []).append(images[i])
    if settings.bn_stats in ("target", "camera"):  # AdaBN on the training crops only (the hold-out judges the result)
        from reid_models.adaptation.bn import camera_statistics, reestimate_batchnorm

        t0 = time.monotonic()
        start = reestimate_batchnorm(base, [images[i] for i in train], seed=settings.seed, device=device)
        start.camera_bn = (camera_statistics(start, by_cam, settings.seed, device) if settings.bn_stats == "camera"
                           else None)
        start_vecs = list(base_vecs)
        for i, v in zip(train, embed_sets(start, [images[i] for i in train], device, cams=[cams[i] for i in train])):
            start_vecs[i] = v
        rep.bn_s = round(time.monotonic() - t0, 2)
    pairs, negs = _mine(sets, train, start_vecs, settings, non_overlapping)
    rep.positives = [{"tracklet_a": sets[train[p.a]].tracklet_id, "tracklet_b": sets[train[p.b]].tracklet_id,
                      "distance": round(p.distance, 5), "negatives": len(n),
                      "kind": "tracklet" if p.a == p.b else "presumed"} for p, n in zip(pairs, negs)]
    rep.mean_negatives = float(np.mean([len(n) for n in negs])) if negs else 0.0
    together = _holdout_rule(sets)
    halves = half_tracklets(sets, hold, base_vecs)
    pos, neg = continuity_pairs(halves, together)
    rep.holdout_pairs = {"positives": len(pos), "negatives": len(neg)}
    rep.holdout_auc_base = continuity_auc(halves, together)
    ft = FineTuneSettings(k=settings.k, p=settings.p, lr=settings.lr, final_lr=settings.final_lr,
                          budget_s=settings.budget_s, max_steps=settings.max_steps, seed=settings.seed, device=device)
    with _progress(progress, settings.max_steps) as bar:
        result = fine_tune(start, [images[i] for i in train], [(p.a, p.b) for p in pairs], negs, ft, should_stop,
                           on_step=lambda _s, loss: bar.update(1))
    rep.steps, rep.train_s, rep.stopped_by = result.steps, round(result.seconds, 2), result.stopped_by
    rep.losses = [round(x, 5) for x in result.losses]
    # no step but re-estimated statistics: those statistics are a candidate of their own
    stats_only = result.steps == 0 and start is not base and result.stopped_by != "stop_request"
    if result.steps == 0 and not stats_only:
        rep.reason = ("nothing to train on (no presumed positive with negatives)" if result.stopped_by == "no_data"
                      else "stopped before the first step")
    else:
        _judge_and_deploy(store, rep, base, cpu_state(start) if stats_only else result.state_dict, sets, images,
                          hold, settings, device, len(pairs), reembed, together,
                          camera_images=by_cam if settings.bn_stats == "camera" else None)
    rep.deployed_version = store.deployed_version()
    return rep


def _holdout_rule(sets: list[CropSet]):
    """cooccur(tracklet_a, tracklet_b) for the hold-out negatives of folder groups (None: time overlap)."""
    if not sets or any(s.keys is None for s in sets):
        return None
    by_id = {s.tracklet_id: s for s in sets}
    return lambda a, b: sets_cooccur(by_id[a], by_id[b])


def _judge_and_deploy(store, rep: AdaptReport, base, state: dict, sets: list[CropSet], images: list,
                      hold: list[int], settings: AdaptSettings, device: str, n_pairs: int, reembed: bool = True,
                      together=None, camera_images: dict | None = None) -> None:
    """Guardrail, versioning, re-embedding and deployment of a fine-tuned state (fills ``rep``).

    ``camera_images``: camera id -> its training crops (``bn_stats: camera``): the candidate's per-camera
    BatchNorm statistics are estimated on them for its weights; they are part of its version (hash) and of
    its stored weights. None drops any statistics the base carried."""
    from reid_models.adaptation.bn import camera_statistics, statistics_items
    from reid_models.adaptation.weights import checkpoint_bytes
    from reid_models.checkpoint import state_hash

    candidate = copy.deepcopy(base)
    candidate.load_state_dict(state)
    camera_bn = camera_statistics(candidate, camera_images, settings.seed, device) if camera_images else None
    candidate.camera_bn = camera_bn
    rep.candidate_state = state
    rep.candidate_camera_bn = camera_bn
    cams = [s.cam_id for s in sets]
    t0 = time.monotonic()
    if reembed:
        cand_vecs = embed_sets(candidate, images, device, cams=cams)
    else:  # only the hold-out is needed
        held = embed_sets(candidate, [images[i] for i in hold], device, cams=[cams[i] for i in hold])
        cand_vecs = [np.zeros((0,), np.float32)] * len(sets)
        for i, v in zip(hold, held):
            cand_vecs[i] = v
    rep.reembed_s = round(time.monotonic() - t0, 3)
    rep.holdout_auc_candidate = continuity_auc(half_tracklets(sets, hold, cand_vecs), together)
    decision = decide_deploy(rep.holdout_auc_base, rep.holdout_auc_candidate, settings.min_gain)
    rep.candidate_version = state_hash({**state, **statistics_items(camera_bn)})
    rep.deployed, rep.reason = decision.deploy, decision.reason
    metrics = {"holdout_auc": rep.holdout_auc_candidate, "parent_holdout_auc": rep.holdout_auc_base,
               "steps": rep.steps, "positives": n_pairs, "deployed": decision.deploy, "reason": decision.reason,
               "created_by": "adaptation", "train_s": rep.train_s, "reembed_s": rep.reembed_s}
    weights = checkpoint_bytes(candidate, state, metrics, rep.base_version, camera_bn) if decision.deploy else None
    store.add_model_version(rep.candidate_version, weights=weights, metrics=metrics, parent=rep.base_version)
    if decision.deploy:
        if reembed:
            t0 = time.monotonic()
            rep.reembedded = _store_embeddings(store, sets, cand_vecs, rep.candidate_version, only_missing=False)
            rep.reembed_store_s = round(time.monotonic() - t0, 3)
            rep.not_reembedded = len(store.tracklets_missing_version(rep.candidate_version))
        store.set_deployed(rep.candidate_version)
    log.debug("adaptation: %s", rep.reason)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def _progress(enabled: bool, total: int):
    """A tqdm bar over the training steps (a no-op object when disabled)."""
    if not enabled:
        return _NoBar()
    from pipeline.core.progress import progress

    return progress(total=total, desc="adapt", unit="step")
