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


def plot_training(runs: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Training curves of one or more runs (name -> metric history, one dict per epoch); writes ``path``.

    Panels, each drawn only when some run has the keys: the losses (every key ending in ``loss``), the
    learning rate (``lr``, log scale) and the validation figures (keys starting with ``val_`` that name a
    rank-1 or mAP, in percent). The x axis is the epoch, counted from 1.
    """
    keys = sorted({k for hist in runs.values() for row in hist for k in row})
    # the total loss first, so that it is drawn solid in every run (its terms dashed, dotted, ...)
    panels = [("loss", sorted((k for k in keys if k.endswith("loss")), key=lambda k: (k != "loss", k))),
              ("learning rate", [k for k in keys if k == "lr"]),
              ("validation (%)", [k for k in keys if k.startswith("val_") and ("rank1" in k or "mAP" in k)])]
    panels = [(title, ks) for title, ks in panels if ks]
    plt = _plt()
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(4.2 * max(len(panels), 1), 3.4), squeeze=False)
    styles = ["-", "--", ":", "-."]
    for ax, (title, ks) in zip(axes[0], panels):
        for ci, (name, hist) in enumerate(runs.items()):
            for si, k in enumerate(ks):
                pts = [(int(r["epoch"]) + 1, float(r[k])) for r in hist if k in r and r[k] is not None]
                if pts:
                    x, y = zip(*pts)
                    ax.plot(x, y, styles[si % len(styles)], color=f"C{ci % 10}", marker=".",
                            label=f"{name} {k}" if len(runs) > 1 or len(ks) > 1 else name)
        if title == "learning rate":
            ax.set_yscale("log")
        ax.set(xlabel="epoch", title=title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
