"""Training-only heads on top of an embedding (dropped at test time).

* :class:`IdentificationHead` — linear softmax classifier over training identities (seed 001 Eq. 8, 003, 004);
  with ``bnneck`` a BatchNorm (no shift) sits between the embedding and the classifier (Luo et al.
  "Bag of tricks" BNNeck: the triplet loss sees the embedding, the softmax its normalised copy).
* :class:`VerificationHead` — seed 003 / 004 "Square Layer": (f1 - f2)^2 element-wise -> FC -> 2 logits
  (index 1 = same person, index 0 = different).
* :class:`AttributeHeads` — one 2-way softmax classifier per binary attribute (seed 001 §III-B2).
"""

from __future__ import annotations

import torch
from torch import nn


class IdentificationHead(nn.Module):
    """(N, D) features -> (N, num_classes) logits, with dropout on the features.

    bnneck: BatchNorm1d (scale only, shift frozen at 0) before dropout and a bias-free classifier.
    """

    def __init__(self, dim: int, num_classes: int, dropout: float = 0.0, bnneck: bool = False) -> None:
        super().__init__()
        self.bn: nn.Module = nn.Identity()
        if bnneck:
            bn = nn.BatchNorm1d(dim)
            bn.bias.requires_grad_(False)
            self.bn = bn
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, num_classes, bias=not bnneck)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.bn(feats)))


class VerificationHead(nn.Module):
    """(N, D), (N, D) features -> (N, 2) same/different logits from (f1 - f2)^2."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, 2)

    def forward(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        return self.fc((f1 - f2).pow(2))


class AttributeHeads(nn.Module):
    """(N, D) features -> list of A tensors (N, n_labels[a])."""

    def __init__(self, dim: int, n_labels: list[int]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(dim, n) for n in n_labels)

    def forward(self, feats: torch.Tensor) -> list[torch.Tensor]:
        return [h(feats) for h in self.heads]
