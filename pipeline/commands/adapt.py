"""``reid-pipeline adapt --store FILE``: one offline adaptation round on stored tracklets (seed 002 §3.2)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "fine-tune the re-id model on a store's tracklets without labels (guarded, versioned, re-embeds the gallery)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, required=True, help="identity store written with adapt.enabled: true")
    parser.add_argument("--config", type=Path, default=None,
                        help="cams.yaml whose adapt: section gives the defaults (flags below override it)")
    parser.add_argument("--checkpoint", default=None,
                        help="base model when the store has no deployed version (default: the shipped model)")
    parser.add_argument("--budget-s", type=float, default=None, help="training time budget in seconds")
    parser.add_argument("--max-steps", type=int, default=None, help="training step budget")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default 1)")
    parser.add_argument("--alpha", type=float, default=None, help="presumed positives = alpha * min(N1, N2)")
    parser.add_argument("--lr", type=float, default=None, help="RMSProp learning rate (decays to --final-lr)")
    parser.add_argument("--final-lr", type=float, default=None)
    parser.add_argument("--min-gain", type=float, default=None, help="hold-out AUC gain required to deploy")
    parser.add_argument("--overlapping", action="store_true",
                        help="the cameras' views overlap: no cross-camera co-occurrence negatives"
                             " (also implied by --config's matching.overlapping_cameras)")
    parser.add_argument("--rollback", action="store_true", help="deploy the parent of the deployed version and exit")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the round's report here")
    parser.add_argument("--no-progress", action="store_true")


def _settings(args: argparse.Namespace):
    """(AdaptSettings from --config's adapt: section + flags, whether the cameras' views overlap)."""
    from pipeline.adaptation.settings import AdaptSettings
    from pipeline.core.configio import validate

    base, overlapping = {}, bool(args.overlapping)
    if args.config is not None:
        from pipeline.camconfig import load_cams_config

        cfg = load_cams_config(args.config)
        base = cfg.adapt.model_dump()
        overlapping = overlapping or bool(cfg.matching.overlapping_cameras)
    flags = {"budget_s": args.budget_s, "max_steps": args.max_steps, "device": args.device,
             "threads": args.threads, "alpha": args.alpha, "lr": args.lr, "final_lr": args.final_lr,
             "min_gain": args.min_gain}
    base.update({k: v for k, v in flags.items() if v is not None})
    base["background"] = False
    return validate(AdaptSettings, base, "adapt options"), overlapping


def run(args: argparse.Namespace) -> int:
    from pipeline.core.errors import DataError

    if not args.store.is_file():
        raise DataError(args.store, "no such identity store")
    settings, overlapping = _settings(args)
    import torch

    from pipeline.adaptation.worker import adapt_once, rollback
    from pipeline.store import IdentityStore

    torch.set_num_threads(settings.threads)
    with IdentityStore(args.store, mode="shared") as store:  # works beside a running pipeline (no writer lock)
        if args.rollback:
            old, new = rollback(store)
            print(f"rolled back: deployed {new} (was {old})")
            return 0
        rep = adapt_once(store, settings, args.checkpoint, non_overlapping=not overlapping,
                         progress=not args.no_progress)
    data = rep.to_json()
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=1, default=float) + "\n", encoding="utf-8")
    print(f"tracklets {rep.tracklets} ({', '.join(f'{c}: {n}' for c, n in rep.cameras.items())}), "
          f"train {rep.train_tracklets}, hold-out {rep.holdout_tracklets}, presumed positives {len(rep.positives)}"
          f" (mean {rep.mean_negatives:.1f} negatives)")
    print(f"trained {rep.steps} steps in {rep.train_s:.1f} s on {rep.device} ({rep.stopped_by}); "
          f"hold-out continuity AUC {rep.holdout_auc_base:.4f} -> {rep.holdout_auc_candidate:.4f}"
          f" ({rep.holdout_pairs.get('positives', 0)} positive / {rep.holdout_pairs.get('negatives', 0)} negative pairs)")
    verdict = "deployed" if rep.deployed else "not deployed"
    print(f"candidate {rep.candidate_version}: {verdict} ({rep.reason}); deployed version {rep.deployed_version};"
          f" re-embedded {rep.reembedded} tracklets ({rep.not_reembedded} without crops keep the old version only)")
    return 0
