"""Scoring cross-camera tracklet linking without boxes: identity F1 over crops, pairwise link P/R, rank-1.

Used by ``tools/bench_market_tracklets.py`` (the Market-1501 tracklet benchmark, docs/pipeline.md).
A *tracklet* here is one identity's crops in one camera recording sequence; each is linked to a
global id by the cross-camera matcher, and

* :func:`tracklet_idf1` treats every crop as one detection carrying its tracklet's true and predicted
  id: IDF1 with motmetrics' ID-measure definition (Ristani et al. 2016): the one-to-one mapping of
  predicted to true ids that maximises the matched crops (``linear_sum_assignment``) gives IDTP, and
  IDF1 = IDTP / (IDTP + (IDFP + IDFN) / 2);
* :func:`pairwise_link_scores` counts unordered tracklet pairs: predicted linked (same predicted id)
  vs truly linked (same true id);
* :func:`retrieval_rank1` is the sanity check of the embeddings alone: each tracklet's nearest
  tracklet of another camera has its identity.

Market-1501 timing (:func:`market_time_spans`): frame numbers count per camera sequence at 25 fps
(the data set's README), and sequences of different cameras are not synchronised, so a tracklet's
span is (first frame, last frame) / 25 s on its *own sequence's* clock. Only two tracklets of the same
sequence can then be compared in time; :func:`market_matcher_config` says so to the matcher.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.core.types import TrackletEmbedding
from pipeline.matching.config import MatcherConfig

#: Market-1501's frame rate (its README: "The frame rate is 25 fps")
MARKET_FPS = 25.0


def _codes(ids: Sequence) -> np.ndarray:
    """Labels of any hashable type -> (N,) int codes 0..K-1 (order of first appearance)."""
    index: dict = {}
    return np.array([index.setdefault(x, len(index)) for x in ids], dtype=np.int64)


def _contingency(true_ids: Sequence, pred_ids: Sequence, weights: Sequence[float] | None) -> np.ndarray:
    """(K_true, K_pred) float64 summed weights of items with each (true, predicted) id pair."""
    if len(true_ids) != len(pred_ids):
        raise ValueError(f"{len(true_ids)} true ids but {len(pred_ids)} predicted ids")
    t, p = _codes(true_ids), _codes(pred_ids)
    w = np.ones(len(t)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != t.shape:
        raise ValueError(f"weights shape {w.shape}, expected ({len(t)},)")
    c = np.zeros((int(t.max(initial=-1)) + 1, int(p.max(initial=-1)) + 1))
    np.add.at(c, (t, p), w)
    return c


def tracklet_idf1(true_ids: Sequence, pred_ids: Sequence, weights: Sequence[float] | None = None) -> dict[str, float]:
    """ID measures of tracklets whose ``weights[i]`` crops (default 1) all carry true id ``true_ids[i]``
    and predicted id ``pred_ids[i]``.

    Returns {IDF1, IDP, IDR} in percent and {IDTP, IDFP, IDFN} in crops. Every crop is both a ground
    truth and a prediction here, so IDFP = IDFN and IDF1 = IDP = IDR = IDTP / crops.
    """
    c = _contingency(true_ids, pred_ids, weights)
    total = float(c.sum())
    if total == 0:
        return {"IDF1": 0.0, "IDP": 0.0, "IDR": 0.0, "IDTP": 0.0, "IDFP": 0.0, "IDFN": 0.0}
    rows, cols = linear_sum_assignment(c, maximize=True)
    idtp = float(c[rows, cols].sum())
    idfn, idfp = float(c.sum(axis=1).sum()) - idtp, float(c.sum(axis=0).sum()) - idtp
    return {"IDF1": 100.0 * idtp / (idtp + 0.5 * (idfp + idfn)), "IDP": 100.0 * idtp / (idtp + idfp),
            "IDR": 100.0 * idtp / (idtp + idfn), "IDTP": idtp, "IDFP": idfp, "IDFN": idfn}


def _pairs(n: np.ndarray) -> int:
    return int((n * (n - 1) // 2).sum())


def pairwise_link_scores(true_ids: Sequence, pred_ids: Sequence) -> dict[str, float | int | None]:
    """Link precision / recall / F1 (percent) over the unordered pairs of N tracklets.

    pred_pairs: pairs with the same predicted id; true_pairs: with the same true id; tp: both.
    precision is None when nothing is linked (no predicted pair); f1 is 0 when tp is 0.
    """
    c = _contingency(true_ids, pred_ids, None).astype(np.int64)
    tp, pred, true = _pairs(c), _pairs(c.sum(axis=0)), _pairs(c.sum(axis=1))
    precision = 100.0 * tp / pred if pred else None
    recall = 100.0 * tp / true if true else None
    f1 = 2.0 * precision * recall / (precision + recall) if tp and precision and recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "pred_pairs": pred, "true_pairs": true}


def retrieval_rank1(vectors: np.ndarray, pids: Sequence[int], cams: Sequence) -> tuple[float, int]:
    """(rank-1 in percent, queries): each tracklet (row of (N, D) ``vectors``) queries the tracklets of
    the *other* cameras by cosine similarity; queries without a same-id tracklet there are skipped."""
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    pid, cam = np.asarray(pids), np.asarray(cams)
    sim = v @ v.T
    hits = n = 0
    for i in range(len(v)):
        other = cam != cam[i]
        if not (other & (pid == pid[i])).any():
            continue
        j = np.flatnonzero(other)[int(np.argmax(sim[i, other]))]
        hits += int(pid[j] == pid[i])
        n += 1
    return (100.0 * hits / n if n else 0.0), n


def market_time_spans(tracklets: Sequence[Mapping], fps: float = MARKET_FPS) -> list[tuple[str, float, float]]:
    """(clock, start_s, end_s) per tracklet dict (``seq`` e.g. "c1s1", ``frames`` sorted frame numbers):
    the clock is the camera sequence, times are frame / ``fps`` on it."""
    return [(str(t["seq"]), float(t["frames"][0]) / fps, float(t["frames"][-1]) / fps) for t in tracklets]


def market_matcher_config(clocks: Sequence[str], base: MatcherConfig | None = None) -> MatcherConfig:
    """``base`` (default: the default MatcherConfig) for tracklets whose ``cam_id`` is their sequence
    (one clock each, not synchronised with each other):

    * ``overlapping_cameras``: all sequences in one group, so the "not in two places at once" rule never
      compares times of two different clocks (both cannot-link rules then apply within one sequence
      only: two identities seen at the same time by one camera);
    * ``ttl_s`` None: on clocks that all start near 0, gallery ageing by time would drop identities for
      the arbitrary alignment of the sequences, not for being long unseen.
    """
    base = base or MatcherConfig()
    return base.model_copy(update={"overlapping_cameras": [sorted(set(clocks))], "ttl_s": None})


def link_tracklets(items: Sequence[TrackletEmbedding], config: MatcherConfig) -> tuple[list[int], dict]:
    """Global id per item from a fresh CrossCameraMatcher(``config``) fed one tracklet at a time in
    order of end time (the order they would finish online; ties keep the item order), and the matcher's
    final calibration state {threshold, calibrated, negatives} plus ``suspected_overlaps``: the camera pairs
    whose tracklets seen at once look like the same people (:mod:`pipeline.matching.overlap_check`)."""
    from pipeline.matching.matcher import CrossCameraMatcher

    matcher = CrossCameraMatcher(config)
    gids = [0] * len(items)
    for i in sorted(range(len(items)), key=lambda k: items[k].end_time):
        gids[i] = matcher.match([items[i]])[0]
    # with revision (matching.revise) an id may change after it was returned: score the final ones
    gids = [matcher.track_global_id(it.cam_id, it.track_id) or g for it, g in zip(items, gids)]
    return gids, {**matcher.calibration, "suspected_overlaps": [list(o.cams) for o in matcher.suspected_overlaps()]}


def no_link_ids(n: int) -> list[int]:
    """Every tracklet its own identity (the floor any linking must beat)."""
    return list(range(1, n + 1))
