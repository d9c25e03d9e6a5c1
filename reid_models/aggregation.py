"""Tracklet aggregation: a tracklet's per-frame embeddings (T, D) -> one embedding.

* :class:`MeanAggregator` — temporal mean of the L2-normalised frame embeddings.
* :class:`LSTMAggregator` — McLaughlin et al.'s recurrent net as used in seed 004:
  an LSTM runs over the frame embeddings (variable lengths handled by packing),
  its outputs are averaged over time (temporal mean pooling). Trained with
  ``reid-pipeline train`` on a ``task: lstm`` config (``reid_models/aggregator_training.py``).
  With ``pooling: attention`` the LSTM instead scores every frame from its context and the
  result is the score-weighted mean of the frame embeddings themselves (temporal attention).

Both return float32, L2-normalised vectors. LSTM checkpoints are dicts with
``format = "reid-pipeline/lstm-aggregator/1"``, ``input_dim``, ``hidden_dim``, ``residual``,
``pooling`` and ``bidirectional`` (absent in older files: ``mean``, False), ``state_dict``, ``encoder_version`` (the frame encoder
they were trained on) and ``metrics``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence

from pipeline.core.errors import ConfigError, ModelError
from reid_models.safe_load import load_weights

LSTM_FORMAT = "reid-pipeline/lstm-aggregator/1"


class Aggregator(Protocol):
    def aggregate(self, seq: np.ndarray) -> np.ndarray:
        """(T, D) frame embeddings -> (D',) float32 L2-normalised."""
        ...


def _l2(x: np.ndarray) -> np.ndarray:
    return (x / max(float(np.linalg.norm(x)), 1e-12)).astype(np.float32)


class MeanAggregator:
    """Mean of the L2-normalised rows, re-normalised."""

    def aggregate(self, seq: np.ndarray) -> np.ndarray:
        seq = np.asarray(seq, dtype=np.float64).reshape(len(seq), -1)
        if len(seq) == 0:
            raise ValueError("cannot aggregate an empty tracklet")
        rows = seq / np.maximum(np.linalg.norm(seq, axis=1, keepdims=True), 1e-12)
        return _l2(rows.mean(axis=0))


class LSTMNet(nn.Module):
    """(B, T_max, D) padded sequences + (B,) lengths -> (B, out_dim).

    ``pooling="mean"`` (seed 004's RCN): the temporal mean of the LSTM outputs, out_dim = H.
    ``residual=True`` (needs H = D) returns ``mean_t(x) + g * mean_t(lstm(x))`` with a learned
    scalar gate g initialised to 0: training starts from mean pooling and the LSTM adds
    temporal corrections (an engineering choice for tiny training sets; False = plain RCN).
    ``pooling="attention"`` (temporal attention, as in Xu et al. 2017 and Gao & Nevatia 2018): a linear
    scorer reads each LSTM output (the frame in its context) and the result is ``sum_t a_t x_t`` with
    ``a = softmax_t(score)``, out_dim = D. The output is a convex combination of the frame embeddings,
    so it stays in the frame encoder's space whatever the LSTM learnt; the scorer starts at zero,
    i.e. training starts from exact mean pooling of the (L2-normalised) rows. ``bidirectional=True``
    (attention only) scores each frame from the frames before and after it: a unidirectional LSTM sees
    nothing before the first frame, so it cannot tell whether that frame is the odd one out.
    """

    def __init__(self, input_dim: int, hidden_dim: int | None = None, residual: bool = False,
                 pooling: str = "mean", bidirectional: bool = False) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim or input_dim
        if residual and self.hidden_dim != input_dim:
            raise ConfigError("aggregator: residual LSTM needs hidden_dim equal to the embedding size")
        if pooling not in ("mean", "attention"):
            raise ConfigError(f"aggregator: unknown pooling {pooling!r}; valid: attention, mean")
        if residual and pooling == "attention":
            raise ConfigError("aggregator: residual and pooling: attention exclude each other")
        if bidirectional and pooling != "attention":
            raise ConfigError("aggregator: bidirectional needs pooling: attention")
        self.residual = residual
        self.pooling = pooling
        self.bidirectional = bidirectional
        self.lstm = nn.LSTM(input_dim, self.hidden_dim, batch_first=True, bidirectional=bidirectional)
        self.gate = nn.Parameter(torch.zeros(1)) if residual else None
        self.scorer: nn.Linear | None = None
        if pooling == "attention":
            self.scorer = nn.Linear(self.hidden_dim * (2 if bidirectional else 1), 1)
            nn.init.zeros_(self.scorer.weight)
            nn.init.zeros_(self.scorer.bias)

    @property
    def out_dim(self) -> int:
        """The size of what :meth:`forward` returns: D with attention pooling, else H."""
        return self.input_dim if self.pooling == "attention" else self.hidden_dim

    def forward(self, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(padded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=padded.shape[1])  # zeros past each length
        n = lengths.to(out.dtype).unsqueeze(1).to(out.device)
        mask = torch.arange(padded.shape[1], device=padded.device)[None, :] < n  # (B, T_max)
        if self.scorer is not None:
            scores = self.scorer(out).squeeze(2).masked_fill(~mask, float("-inf"))
            weights = torch.softmax(scores, dim=1)  # (B, T_max), 0 past each length
            return (weights.unsqueeze(2) * padded).sum(dim=1)
        pooled = out.sum(dim=1) / n
        if self.gate is None:
            return pooled
        return (padded * mask.unsqueeze(2)).sum(dim=1) / n + self.gate * pooled

    @torch.inference_mode()
    def frame_weights(self, seq: torch.Tensor) -> torch.Tensor:
        """(T, D) one sequence -> (T,) the weight of each frame in the result (uniform for mean pooling)."""
        if self.scorer is None:
            return torch.full((len(seq),), 1.0 / len(seq))
        out, _ = self.lstm(seq.unsqueeze(0))
        return torch.softmax(self.scorer(out[0]).squeeze(1), dim=0)

    def forward_list(self, seqs: list[torch.Tensor]) -> torch.Tensor:
        """List of (T_i, D) tensors -> (B, H)."""
        lengths = torch.tensor([len(s) for s in seqs])
        return self(pad_sequence(seqs, batch_first=True), lengths)


class LSTMAggregator:
    """Wraps a trained :class:`LSTMNet`; input rows are L2-normalised first (as in training)."""

    def __init__(self, net: LSTMNet, encoder_version: str = "") -> None:
        self.net = net.eval()
        self.encoder_version = encoder_version
        self.dim = net.out_dim

    @torch.inference_mode()
    def aggregate(self, seq: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(seq, dtype=np.float32)).reshape(len(seq), -1)
        if len(x) == 0:
            raise ValueError("cannot aggregate an empty tracklet")
        x = nn.functional.normalize(x, dim=1)
        return _l2(self.net.forward_list([x])[0].numpy())

    @torch.inference_mode()
    def aggregate_many(self, seqs: list[np.ndarray]) -> np.ndarray:
        """Several tracklets at once -> (N, H) float32, rows L2-normalised."""
        xs = [nn.functional.normalize(torch.as_tensor(np.asarray(s, np.float32)), dim=1) for s in seqs]
        out = nn.functional.normalize(self.net.forward_list(xs), dim=1)
        return out.numpy().astype(np.float32)


def save_lstm(path: str | Path, net: LSTMNet, encoder_version: str, metrics: dict, extra: dict[str, Any] | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"format": LSTM_FORMAT, "input_dim": net.input_dim, "hidden_dim": net.hidden_dim, "residual": net.residual,
            "pooling": net.pooling, "bidirectional": net.bidirectional,
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            "encoder_version": encoder_version, "metrics": metrics, "extra": extra or {}}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def load_lstm(path: str | Path) -> tuple[LSTMNet, dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such LSTM aggregator checkpoint")
    blob = load_weights(path, str(path), "a valid LSTM aggregator checkpoint")
    if not isinstance(blob, dict) or blob.get("format") != LSTM_FORMAT:
        raise ModelError(f"{path}: not an LSTM aggregator checkpoint ({LSTM_FORMAT})")
    net = LSTMNet(int(blob["input_dim"]), int(blob["hidden_dim"]), bool(blob.get("residual", False)),
                  str(blob.get("pooling", "mean")), bool(blob.get("bidirectional", False)))
    net.load_state_dict(blob["state_dict"])
    return net.eval(), blob


def build_aggregator(name: str, checkpoint: Path | None = None) -> MeanAggregator | LSTMAggregator:
    """"mean" or "lstm" (the latter needs a checkpoint trained by ``reid-pipeline train``)."""
    if name == "mean":
        return MeanAggregator()
    if name == "lstm":
        if checkpoint is None:
            raise ModelError("aggregation 'lstm' needs a checkpoint (train one with a task: lstm config)")
        net, blob = load_lstm(checkpoint)
        return LSTMAggregator(net, str(blob.get("encoder_version", "")))
    raise ConfigError(f"unknown aggregator {name!r}; valid: lstm, mean")
