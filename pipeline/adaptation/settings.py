"""The ``adapt:`` section of cams.yaml (also the options of ``reid-pipeline adapt``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.core.configio import StrictModel


class AdaptSettings(StrictModel):
    """Online, practically unsupervised fine-tuning (see docs/adaptation.md).

    enabled: store up to ``crops_per_tracklet`` crops of every finished tracklet (needed by any
    adaptation, online or ``reid-pipeline adapt``). background: also run adaptation rounds in a
    low-priority background process during ``reid-pipeline run`` (every ``interval_s``, once
    ``min_new_tracklets`` new tracklets with crops are stored); the runner hot-swaps every newly
    deployed version. Training: presumed positives ``alpha * min(N1, N2)`` per camera pair
    (``positives: presumed``; with ``mutual_nearest`` only pairs that are each other's nearest
    tracklet in the other camera; with ``pair_budget: pooled`` the same number of pairs in all, but the
    closest over all camera pairs together instead of ``alpha * min(N1, N2)`` within each; ``mining_distance: k_reciprocal`` ranks the pairs by the k-reciprocal
    distance of Zhong et al. with ``k1`` / ``k2`` instead of the cosine distance), each tracklet's own crops (``tracklets``: certain positives,
    intra-camera tracklet discrimination) or both; with ``bn_stats: target`` the round first
    re-estimates the base model's BatchNorm statistics on its training crops (AdaBN), then mines
    and fine-tunes from that model; ``camera`` does that and also keeps one set of statistics per
    camera (camera-based BN), re-estimated on each camera's crops for mining and for the candidate,
    so every camera's crops are embedded with their own camera's statistics (torch backend);
    ``negatives`` negative tracklets per positive, P x K batches, RMSProp ``lr`` -> ``final_lr``,
    within ``budget_s`` seconds and ``max_steps`` steps on ``device`` with ``threads`` torch
    threads. Guardrail: a candidate is deployed only when its continuity AUC on held-out
    tracklets (``holdout_fraction`` of them, never trained on) is >= the current one + ``min_gain``.
    A round reads the ``max_tracklets`` most recent tracklets with crops (bounded memory).
    """

    enabled: bool = False
    crops_per_tracklet: int = Field(16, ge=2, le=256)
    background: bool = False
    interval_s: float = Field(600.0, gt=0)
    min_new_tracklets: int = Field(20, ge=1)
    poll_s: float = Field(5.0, gt=0)
    budget_s: float = Field(120.0, gt=0)
    max_steps: int = Field(500, ge=1)
    threads: int = Field(1, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    nice: int = Field(10, ge=0, le=19)
    alpha: float = Field(0.1, gt=0, le=1)
    positives: Literal["presumed", "tracklets", "both"] = "presumed"
    mutual_nearest: bool = False
    pair_budget: Literal["camera_pair", "pooled"] = "camera_pair"
    mining_distance: Literal["cosine", "k_reciprocal"] = "cosine"
    k1: int = Field(20, ge=1)
    k2: int = Field(6, ge=1)
    bn_stats: Literal["source", "target", "camera"] = "source"
    negatives: int = Field(10, ge=1)
    k: int = Field(4, ge=2)
    p: int = Field(4, ge=2)
    lr: float = Field(1e-5, gt=0)
    final_lr: float = Field(1e-6, gt=0)
    holdout_fraction: float = Field(0.25, gt=0, lt=1)
    min_gain: float = 0.0
    min_tracklets_per_camera: int = Field(3, ge=1)
    max_tracklets: int = Field(2000, ge=4)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> AdaptSettings:
        if self.background and not self.enabled:
            raise ValueError("background adaptation needs enabled: true (crops must be stored)")
        if self.final_lr > self.lr:
            raise ValueError(f"final_lr {self.final_lr} must not exceed lr {self.lr}")
        return self
