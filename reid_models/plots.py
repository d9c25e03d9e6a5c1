"""ROC and CMC figures (PNG) for the re-id evaluation; matplotlib is imported inside each function."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_roc(curves: dict[str, dict[str, Any]], path: Path, max_fpr: float | None = 0.1) -> None:
    """ROC curves (name -> roc_verification result) with the FPR limit marked; writes ``path``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, r in curves.items():
        ax.plot(r["fpr"], r["tpr"], label=f"{name} (AUC {r['auc']:.3f}, TPR@FPR<={r['max_fpr']:g} {r['tpr_at_fpr']:.3f})")
    if max_fpr is not None:
        ax.axvline(max_fpr, color="grey", ls="--", lw=0.8)
    ax.plot([0, 1], [0, 1], color="lightgrey", lw=0.8)
    ax.set(xlabel="FPR", ylabel="TPR", xlim=(0, 1), ylim=(0, 1.01), title="Pair verification ROC")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_cmc(curves: dict[str, dict[str, Any]], path: Path) -> None:
    """CMC curves (name -> cmc_map result, 'cmc' in percent) for ranks 1..20; writes ``path``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, r in curves.items():
        ranks = list(range(1, len(r["cmc"]) + 1))
        ax.plot(ranks, r["cmc"], marker=".", label=f"{name} (r1 {r['rank1']:.1f}, mAP {r['mAP']:.1f})")
    ax.set(xlabel="rank", ylabel="matching rate (%)", ylim=(0, 101), title="CMC")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
