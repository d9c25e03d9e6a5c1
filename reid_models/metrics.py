"""Re-identification metrics: CMC / mAP, pair-verification ROC, triplet accuracy.

Conventions
-----------
* Features are compared by Euclidean distance (smaller = more similar).
* CMC ranks and mAP are reported in **percent** (0-100), as re-id papers do;
  ROC rates (TPR, FPR, AUC, EER) are **fractions** (0-1), as in seed 000 Table 3.
* Pair verification (seed 000 §5.1): a pair is predicted "same person" when its
  distance is ``<= th``. TPR = TP / (TP + FN), FPR = FP / (FP + TN) (Eqs. 3-4).
* Triplet accuracy (seed 000 Eq. 5): a triplet is correct when
  ``d(a, p) + lambda <= d(a, n)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances of (N, D) and (M, D) features -> (N, M) float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.clip(sq, 0.0, None))


def cmc_map_from_distances(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_cams: np.ndarray | None = None,
    g_cams: np.ndarray | None = None,
    max_rank: int = 20,
    ignore: np.ndarray | None = None,
) -> dict[str, Any]:
    """CMC curve and mAP from a (Q, G) distance matrix.

    Gallery entries with the same pid AND the same camera as the query are
    excluded (Market-1501 protocol) when both camera arrays are given; ``ignore``
    (Q, G) bool excludes further entries (e.g. near-duplicate frames of the same
    track in a single-camera sequence). Queries without any remaining true match
    are skipped and counted in ``num_skipped``. Ties keep gallery order (stable sort).

    Returns ``{"rank1", "rank5", "rank10", "rank20", "mAP"}`` in percent, ``"cmc"``
    (list of ``max_rank`` percentages), ``num_queries`` (valid) and ``num_skipped``, and per valid
    query, in query order: ``per_query`` = ``{"pid": [...], "first_hit": [0-based rank of the first
    true match], "ap": [average precision in percent]}`` (what paired comparisons of two models on the
    same queries need, :func:`paired_difference`).
    """
    distmat = np.asarray(distmat, dtype=np.float64)
    q_pids = np.asarray(q_pids)
    g_pids = np.asarray(g_pids)
    n_q, n_g = distmat.shape
    excl = np.zeros((n_q, n_g), dtype=bool)
    if q_cams is not None and g_cams is not None:
        excl |= (q_pids[:, None] == g_pids[None, :]) & (
            np.asarray(q_cams)[:, None] == np.asarray(g_cams)[None, :]
        )
    if ignore is not None:
        excl |= np.asarray(ignore, dtype=bool)
    cmc_sum = np.zeros(max_rank, dtype=np.float64)
    aps: list[float] = []
    per_pid: list = []
    per_first: list[int] = []
    for i in range(n_q):
        keep = ~excl[i]
        order = np.argsort(distmat[i][keep], kind="stable")
        matches = (g_pids[keep][order] == q_pids[i]).astype(np.float64)
        if matches.sum() == 0:
            continue
        first = int(np.argmax(matches))
        if first < max_rank:
            cmc_sum[first:] += 1.0
        hits = np.cumsum(matches)
        positions = np.nonzero(matches)[0]
        aps.append(float(np.mean(hits[positions] / (positions + 1.0))))
        per_pid.append(q_pids[i].item() if hasattr(q_pids[i], "item") else q_pids[i])
        per_first.append(first)
    n_valid = len(aps)
    cmc = (cmc_sum / max(n_valid, 1) * 100.0).tolist()
    out: dict[str, Any] = {
        f"rank{r}": cmc[r - 1] if r <= max_rank else float("nan") for r in (1, 5, 10, 20)
    }
    out["mAP"] = float(np.mean(aps) * 100.0) if aps else 0.0
    out["cmc"] = cmc
    out["num_queries"] = n_valid
    out["num_skipped"] = n_q - n_valid
    out["per_query"] = {"pid": per_pid, "first_hit": per_first, "ap": [a * 100.0 for a in aps]}
    return out


def paired_difference(a: np.ndarray, b: np.ndarray, groups: np.ndarray, n_boot: int = 10000,
                      seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Mean of ``a - b`` over paired per-query values (e.g. two models' rank-1 hits x 100, or APs, on the
    same queries) with a percentile bootstrap confidence interval that resamples whole ``groups``
    (identities) with replacement: queries of one person are not independent (PETS has 19 people and
    about 5 queries each), so resampling queries alone would understate the uncertainty.
    (scipy.stats.bootstrap resamples observations, not clusters, hence this short loop.)

    a, b: (Q,) float; groups: (Q,) labels. Returns ``diff``, ``lo``, ``hi`` (same unit as a, b),
    ``groups`` and ``queries``.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    groups = np.asarray(groups)
    if a.shape != b.shape or a.shape != groups.shape:
        raise ValueError(f"paired values and groups must have one shape, got {a.shape}, {b.shape}, {groups.shape}")
    if a.size == 0:
        return {"diff": float("nan"), "lo": float("nan"), "hi": float("nan"), "groups": 0, "queries": 0}
    labels, inverse = np.unique(groups, return_inverse=True)
    sums = np.bincount(inverse, weights=a - b, minlength=len(labels))
    counts = np.bincount(inverse, minlength=len(labels)).astype(np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(labels), size=(n_boot, len(labels)))
    boot = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(boot, [tail, 100.0 - tail])
    return {"diff": float((a - b).mean()), "lo": float(lo), "hi": float(hi), "groups": int(len(labels)),
            "queries": int(a.size)}


def cmc_map(
    q_feat: np.ndarray,
    q_pids: np.ndarray,
    q_cams: np.ndarray | None,
    g_feat: np.ndarray,
    g_pids: np.ndarray,
    g_cams: np.ndarray | None,
    max_rank: int = 20,
    ignore: np.ndarray | None = None,
) -> dict[str, Any]:
    """CMC / mAP of (Q, D) query features against (G, D) gallery features (Euclidean).

    See :func:`cmc_map_from_distances` for the exclusion rules and the result keys.
    """
    return cmc_map_from_distances(
        pairwise_distances(q_feat, g_feat), q_pids, g_pids, q_cams, g_cams, max_rank, ignore
    )


def _eer(fpr: np.ndarray, fnr: np.ndarray) -> float:
    """Equal error rate: where FPR and FNR cross, linearly interpolated between ROC points."""
    diff = fpr - fnr  # rises from -1 (th = -inf) to +1 (th = +inf)
    idx = int(np.argmax(diff >= 0))
    if idx == 0:
        return float(fpr[0])
    a0, a1, b0, b1 = fpr[idx - 1], fpr[idx], fnr[idx - 1], fnr[idx]
    denom = (a1 - a0) - (b1 - b0)
    t = 0.0 if denom == 0 else (b0 - a0) / denom
    return float(a0 + t * (a1 - a0))


def roc_verification(
    distances: np.ndarray, same: np.ndarray, max_fpr: float = 0.1
) -> dict[str, Any]:
    """ROC of pair verification: a pair is called "same" when ``distance <= th``.

    distances: (N,) float; same: (N,) bool/int (1 = same identity). One ROC point
    per distinct distance, plus a first point (th below every distance: TPR = FPR = 0).
    Returns lists ``thresholds, tpr, fpr, tp, fp, tn, fn`` (ascending th) and scalars
    ``auc`` (trapezoid), ``eer``, ``tpr_at_fpr`` (best TPR with FPR <= max_fpr),
    ``threshold_at_fpr`` (its threshold), ``fpr_at_that`` and ``max_fpr``.
    """
    d = np.asarray(distances, dtype=np.float64).ravel()
    s = np.asarray(same).astype(bool).ravel()
    n_pos, n_neg = int(s.sum()), int((~s).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_verification needs both positive and negative pairs")
    order = np.argsort(d, kind="stable")
    d_sorted, s_sorted = d[order], s[order]
    tp_c = np.cumsum(s_sorted)
    fp_c = np.cumsum(~s_sorted)
    last = np.r_[np.nonzero(np.diff(d_sorted))[0], len(d_sorted) - 1]  # end of each tie group
    thresholds = np.r_[np.nextafter(d_sorted[0], -np.inf), d_sorted[last]]
    tp = np.r_[0, tp_c[last]].astype(np.int64)
    fp = np.r_[0, fp_c[last]].astype(np.int64)
    tpr, fpr = tp / n_pos, fp / n_neg
    ok = fpr <= max_fpr
    best = int(np.nonzero(ok)[0][np.argmax(tpr[ok])])
    return {
        "thresholds": thresholds.tolist(),
        "tpr": tpr.tolist(),
        "fpr": fpr.tolist(),
        "tp": tp.tolist(),
        "fp": fp.tolist(),
        "fn": (n_pos - tp).tolist(),
        "tn": (n_neg - fp).tolist(),
        "auc": float(np.trapezoid(tpr, fpr)),
        "eer": _eer(fpr, 1.0 - tpr),
        "tpr_at_fpr": float(tpr[best]),
        "threshold_at_fpr": float(thresholds[best]),
        "fpr_at_that": float(fpr[best]),
        "max_fpr": float(max_fpr),
        "num_pos": n_pos,
        "num_neg": n_neg,
    }


def roc_table(distances: np.ndarray, same: np.ndarray, thresholds: np.ndarray) -> list[dict]:
    """Seed 000 Table 3 rows at fixed thresholds: th, TN, FN, TP, FP, TPR, FPR."""
    d = np.asarray(distances, dtype=np.float64).ravel()
    s = np.asarray(same).astype(bool).ravel()
    rows = []
    for th in np.asarray(thresholds, dtype=np.float64):
        pred = d <= th
        tp, fp = int((pred & s).sum()), int((pred & ~s).sum())
        fn, tn = int((~pred & s).sum()), int((~pred & ~s).sum())
        rows.append({
            "th": float(th), "TN": tn, "FN": fn, "TP": tp, "FP": fp,
            "TPR": tp / max(tp + fn, 1), "FPR": fp / max(fp + tn, 1),
        })
    return rows


def triplet_accuracy(d_ap: np.ndarray, d_an: np.ndarray, margin: float = 0.0) -> float:
    """Seed 000 Eq. 5: fraction of triplets with ``d(a,p) + margin <= d(a,n)`` (0-1)."""
    d_ap = np.asarray(d_ap, dtype=np.float64).ravel()
    d_an = np.asarray(d_an, dtype=np.float64).ravel()
    if len(d_ap) != len(d_an):
        raise ValueError(f"triplet_accuracy: {len(d_ap)} positive vs {len(d_an)} negative distances")
    if len(d_ap) == 0:
        return float("nan")
    return float(np.mean(d_ap + margin <= d_an))
