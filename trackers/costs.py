"""Association cost functions: each returns an (N, M) float64 array, row = track, column = detection.

Costs are distances (lower is better); ``inf`` marks a forbidden pair.
"""

from __future__ import annotations

import numpy as np

from pipeline.core.types import iou_matrix_tlbr


def iou_cost(tracks_tlbr: np.ndarray, dets_tlbr: np.ndarray) -> np.ndarray:
    """1 - IoU of (N, 4) track boxes and (M, 4) detection boxes, tlbr -> (N, M)."""
    return 1.0 - iou_matrix_tlbr(tracks_tlbr, dets_tlbr)


def fuse_score(cost: np.ndarray, det_scores: np.ndarray) -> np.ndarray:
    """ByteTrack's score fusion: 1 - (1 - cost) * score, with (M,) scores in [0, 1]."""
    if cost.size == 0:
        return cost
    return 1.0 - (1.0 - cost) * np.asarray(det_scores, dtype=np.float64)[None, :]


def cosine_cost(track_features: np.ndarray, det_embeddings: np.ndarray) -> np.ndarray:
    """Cosine distance 1 - <a, b> of L2-normalised (N, D) and (M, D) features -> (N, M) in [0, 2]."""
    a = np.asarray(track_features, dtype=np.float64).reshape(len(track_features), -1)
    b = np.asarray(det_embeddings, dtype=np.float64).reshape(len(det_embeddings), -1)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    return np.clip(1.0 - a @ b.T, 0.0, 2.0)


def gallery_cosine_cost(galleries: list[np.ndarray], det_embeddings: np.ndarray) -> np.ndarray:
    """deep_sort's nearest-neighbour metric: per track the min cosine distance over its (K_i, D) gallery."""
    out = np.zeros((len(galleries), len(det_embeddings)))
    for i, g in enumerate(galleries):
        out[i] = cosine_cost(g, det_embeddings).min(axis=0)
    return out


def gate_mahalanobis(cost: np.ndarray, gating_distances: np.ndarray, threshold: float) -> np.ndarray:
    """Set cost to inf where the (N, M) squared Mahalanobis distance exceeds ``threshold``."""
    out = cost.copy()
    out[gating_distances > threshold] = np.inf
    return out


def fuse_motion_appearance(
    motion_cost: np.ndarray,
    appearance_cost: np.ndarray,
    proximity_thresh: float,
    appearance_thresh: float,
    fusion: str = "min",
    weight: float = 0.5,
    proximity_cost: np.ndarray | None = None,
) -> np.ndarray:
    """Fuse an (N, M) motion cost with an (N, M) cosine distance.

    Appearance only counts for pairs that are spatially plausible
    (proximity_cost <= proximity_thresh) and similar enough (appearance_cost <=
    appearance_thresh); elsewhere it is 1 (no evidence). ``proximity_cost`` is the
    raw (N, M) IoU distance *before* score fusion, as in BoT-SORT (default: motion_cost),
    so a correctly placed but low-score detection can still be matched by appearance.
    ``fusion="min"`` is BoT-SORT's min(motion, appearance); ``"weighted"`` is
    weight * appearance + (1 - weight) * motion.
    """
    emb = appearance_cost.copy()
    emb[emb > appearance_thresh] = 1.0
    emb[(motion_cost if proximity_cost is None else proximity_cost) > proximity_thresh] = 1.0
    if fusion == "min":
        return np.minimum(motion_cost, emb)
    if fusion == "weighted":
        return weight * emb + (1.0 - weight) * motion_cost
    if fusion == "motion":
        return motion_cost.copy()
    raise ValueError(f"unknown fusion {fusion!r}; valid: min, weighted, motion")


def appearance_veto(cost: np.ndarray, appearance_cost: np.ndarray, veto_thresh: float,
                    evidence: np.ndarray) -> np.ndarray:
    """Forbid (inf) the pairs of an (N, M) cost whose (N, M) cosine distance exceeds ``veto_thresh``, where the
    (N, M) bool ``evidence`` says appearance is known (track has a feature, detection is not occluded)."""
    out = cost.copy()
    out[evidence & (appearance_cost > veto_thresh)] = np.inf
    return out


def occluded_detections(dets_tlbr: np.ndarray, iou_thresh: float) -> np.ndarray:
    """(M,) bool: detections whose IoU with another detection of the (M, 4) tlbr set exceeds ``iou_thresh``."""
    m = len(dets_tlbr)
    if m < 2 or iou_thresh >= 1.0:
        return np.zeros(m, dtype=bool)
    iou = iou_matrix_tlbr(dets_tlbr, dets_tlbr)
    np.fill_diagonal(iou, 0.0)
    return iou.max(axis=1) > iou_thresh


def dynamic_ema_alpha(alpha: float, score: float, high_thresh: float) -> float:
    """Deep OC-SORT's confidence-weighted EMA factor: ``alpha + (1 - alpha) * (1 - (s - h) / (1 - h))``.

    A detection at the high threshold ``h`` keeps the feature (1.0), one of score 1 updates it with ``alpha``;
    scores below ``h`` keep it; ``h >= 1`` gives ``alpha``."""
    if high_thresh >= 1.0:
        return alpha
    trust = min(max((score - high_thresh) / (1.0 - high_thresh), 0.0), 1.0)
    return alpha + (1.0 - alpha) * (1.0 - trust)


def direction_consistency(
    track_prev_xy: np.ndarray, track_last_xy: np.ndarray, det_xy: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """OC-SORT momentum term in [-0.5, 0.5] (higher = more consistent), (N, M).

    track_prev_xy / track_last_xy: (N, 2) centres of an older and the last
    observation; det_xy: (M, 2) detection centres; valid: (N,) bool (tracks
    without an older observation get 0). The term is (pi/2 - |angle|) / pi where
    angle is between the track's direction and the direction last -> detection.
    """
    n, m = len(track_last_xy), len(det_xy)
    if n == 0 or m == 0:
        return np.zeros((n, m))
    v_track = track_last_xy - track_prev_xy
    v_track = v_track / np.maximum(np.linalg.norm(v_track, axis=1, keepdims=True), 1e-6)
    v_det = det_xy[None, :, :] - track_last_xy[:, None, :]
    v_det = v_det / np.maximum(np.linalg.norm(v_det, axis=2, keepdims=True), 1e-6)
    cos = np.clip(np.einsum("nk,nmk->nm", v_track, v_det), -1.0, 1.0)
    term = (np.pi / 2.0 - np.abs(np.arccos(cos))) / np.pi
    return term * valid[:, None]
