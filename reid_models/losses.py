"""Metric-learning and classification losses of the five papers.

All distances are Euclidean. Shapes: embeddings (N, D) float; pids (N,) int64;
logits (N, C). Every function returns a scalar tensor (mean over its items
unless stated otherwise).

* :func:`triplet` — seed 000 / 002 Eq. 1: ``[m + D_ap - D_an]_+`` or, with
  ``margin="soft"``, ``softplus(D_ap - D_an)``.
* :func:`batch_hard_triplet` — seed 002 (Hermans et al.): over a P x K batch,
  each anchor's hardest positive and hardest negative.
* :func:`contrastive` — seed 001 Eqs. 2-4: ``V_S = D^2 / 2`` for a same pair,
  ``V_D = max(0, m - D)^2 / 2`` for a different pair. (Eq. 4 as printed
  swaps the two terms against its own definition of y; we follow Eqs. 2-3.)
* :func:`identification` — softmax cross-entropy over identities (seed 001 Eq. 8), optional label smoothing.
* :func:`entropy_weights` / :func:`multitask_entropy_weighted` — seed 001 Eq. 6
  with attribute tasks weighted proportionally to the Shannon entropy of their
  label distribution, weights normalised to sum to one (§V-E3); identification
  weight 1.
* :func:`verification_identification_fusion` — seed 003:
  ``lambda * L_verif + L_ident(x1) + L_ident(x2)`` with lambda = 3, the
  verification being a 2-way softmax on the squared feature difference.
* :func:`video_loss` — seed 004 Eq. 4: ``L = Lv + 1/2 Lii + 1/2 Liv``.
* :func:`distillation` — knowledge distillation from a frozen teacher's embeddings of the same images:
  ``feature``: mean cosine distance ``1 - cos(s_i, t_i)`` (same dimension); ``relation``: mean squared
  difference of the in-batch cosine-similarity matrices (any dimensions; Park et al. 2019, "Relational
  knowledge distillation", FastReID's distillation project).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

Margin = float | str


def euclidean(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Row-wise Euclidean distance of (N, D) and (N, D) -> (N,), with a safe gradient at 0."""
    return ((a - b).pow(2).sum(dim=1) + eps).sqrt()


def pairwise_euclidean(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """(N, D) -> (N, N) Euclidean distances (diagonal ~ sqrt(eps))."""
    diff = x.unsqueeze(1) - x.unsqueeze(0)
    return (diff.pow(2).sum(dim=2) + eps).sqrt()


def _margin_loss(gap: torch.Tensor, margin: Margin) -> torch.Tensor:
    """gap = D_ap - D_an (any shape) -> per-item loss, hinge or soft-margin."""
    if margin == "soft":
        return F.softplus(gap)
    if isinstance(margin, str):
        raise ValueError(f"margin must be a number or 'soft', got {margin!r}")
    return F.relu(float(margin) + gap)


def triplet(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: Margin = 0.2) -> torch.Tensor:
    """Mean triplet loss of (N, D) anchors, positives and negatives."""
    gap = euclidean(anchor, positive) - euclidean(anchor, negative)
    return _margin_loss(gap, margin).mean()


def batch_hard_triplet(embeddings: torch.Tensor, pids: torch.Tensor, margin: Margin = "soft") -> torch.Tensor:
    """Batch-hard triplet loss over (N, D) embeddings with (N,) identity labels.

    For each anchor: D_ap = max distance to another sample of its identity,
    D_an = min distance to a sample of another identity; anchors with no
    positive or no negative in the batch are skipped. Mean over the anchors used.
    """
    dist = pairwise_euclidean(embeddings)
    same = pids.unsqueeze(0) == pids.unsqueeze(1)
    eye = torch.eye(len(pids), dtype=torch.bool, device=embeddings.device)
    pos_mask = same & ~eye
    neg_mask = ~same
    valid = pos_mask.any(dim=1) & neg_mask.any(dim=1)
    if not bool(valid.any()):
        return embeddings.sum() * 0.0
    hardest_pos = dist.masked_fill(~pos_mask, float("-inf")).max(dim=1).values
    hardest_neg = dist.masked_fill(~neg_mask, float("inf")).min(dim=1).values
    gap = (hardest_pos - hardest_neg)[valid]
    return _margin_loss(gap, margin).mean()


def contrastive(x1: torch.Tensor, x2: torch.Tensor, same: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Seed 001 Siamese cost, mean over pairs: same -> D^2/2, different -> max(0, m - D)^2/2."""
    d = euclidean(x1, x2)
    same_f = same.to(d.dtype)
    v_same = 0.5 * d.pow(2)
    v_diff = 0.5 * F.relu(margin - d).pow(2)
    return (same_f * v_same + (1.0 - same_f) * v_diff).mean()


def identification(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Softmax cross-entropy, mean over samples. logits (N, C), labels (N,) in [0, C).

    ``label_smoothing`` eps: the target is (1 - eps) on the label plus eps / C on every class
    (Szegedy et al.; Luo et al. "Bag of tricks" use eps = 0.1 for re-id).
    """
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


def entropy_weights(attribute_labels: torch.Tensor) -> torch.Tensor:
    """(N, A) integer attribute labels (-1 = unknown) -> (A,) weights summing to 1.

    w_a is the Shannon entropy (natural log) of attribute a's label distribution over
    the known labels; weights are normalised to sum to one. If every attribute has
    zero entropy the weights are uniform (1/A).
    """
    labels = attribute_labels.long()
    n_attr = labels.shape[1]
    ent = torch.zeros(n_attr, dtype=torch.float64)
    for a in range(n_attr):
        col = labels[:, a]
        col = col[col >= 0]
        if col.numel() == 0:
            continue
        p = torch.bincount(col).double() / col.numel()
        p = p[p > 0]
        ent[a] = -(p * p.log()).sum()
    if float(ent.sum()) <= 0.0:
        return torch.full((n_attr,), 1.0 / n_attr, dtype=torch.float32)
    return (ent / ent.sum()).float()


def multitask_entropy_weighted(
    verification: torch.Tensor,
    id_logits: torch.Tensor | None = None,
    id_labels: torch.Tensor | None = None,
    attr_logits: Sequence[torch.Tensor] = (),
    attr_labels: torch.Tensor | None = None,
    attr_weights: torch.Tensor | None = None,
    id_weight: float = 1.0,
) -> torch.Tensor:
    """Seed 001 Eq. 6: verification + alpha_I * T_I + sum_a alpha_a * T_a.

    verification: the scalar Siamese cost; id_logits (N, C) / id_labels (N,);
    attr_logits: A tensors (N, L_a); attr_labels (N, A) with -1 = unknown (ignored);
    attr_weights (A,) — by default :func:`entropy_weights` of ``attr_labels``.
    With no attribute labels the attribute terms are simply absent.
    """
    total = verification
    if id_logits is not None and id_labels is not None:
        total = total + id_weight * identification(id_logits, id_labels)
    if attr_labels is not None and len(attr_logits) > 0:
        weights = attr_weights if attr_weights is not None else entropy_weights(attr_labels)
        for a, logits in enumerate(attr_logits):
            target = attr_labels[:, a].long()
            if bool((target >= 0).any()):
                total = total + weights[a].to(logits.dtype) * F.cross_entropy(logits, target, ignore_index=-1)
    return total


def verification_identification_fusion(
    verif_logits: torch.Tensor,
    same: torch.Tensor,
    id_logits_1: torch.Tensor,
    labels_1: torch.Tensor,
    id_logits_2: torch.Tensor,
    labels_2: torch.Tensor,
    lam: float = 3.0,
) -> torch.Tensor:
    """Seed 003: lam * CE(verif_logits (N, 2), same) + CE(id 1) + CE(id 2).

    verif_logits come from :class:`reid_models.heads.VerificationHead` (2-way
    softmax on the squared difference of the two dropout features); class 1 = same.
    """
    l_verif = F.cross_entropy(verif_logits, same.long())
    return lam * l_verif + identification(id_logits_1, labels_1) + identification(id_logits_2, labels_2)


def video_loss(
    verif_logits: torch.Tensor,
    same: torch.Tensor,
    id_logits_image: torch.Tensor,
    labels_image: torch.Tensor,
    id_logits_video: torch.Tensor,
    labels_video: torch.Tensor,
) -> torch.Tensor:
    """Seed 004 Eq. 4: L = Lv + 1/2 Lii + 1/2 Liv (image-to-video pairs; class 1 = same)."""
    l_v = F.cross_entropy(verif_logits, same.long())
    return l_v + 0.5 * identification(id_logits_image, labels_image) + 0.5 * identification(id_logits_video, labels_video)


def distillation(student: torch.Tensor, teacher: torch.Tensor, kind: str = "feature") -> torch.Tensor:
    """(N, D_s) student and (N, D_t) teacher embeddings of the same N images -> scalar.

    ``feature`` (D_s == D_t): mean over i of ``1 - cos(s_i, t_i)``, 0 when the directions agree, 1 when
    orthogonal. ``relation``: mean over (i, j) of ``(cos(s_i, s_j) - cos(t_i, t_j))^2``. The teacher gets no
    gradient.
    """
    t = F.normalize(teacher.detach().float(), dim=1)
    s = F.normalize(student.float(), dim=1)
    if kind == "feature":
        if s.shape != t.shape:
            raise ValueError(f"feature distillation needs equal shapes, got student {tuple(s.shape)} "
                             f"and teacher {tuple(t.shape)}")
        return (1.0 - (s * t).sum(dim=1)).mean()
    if kind == "relation":
        return ((s @ s.T - t @ t.T) ** 2).mean()
    raise ValueError(f"unknown distillation kind {kind!r} (feature or relation)")
