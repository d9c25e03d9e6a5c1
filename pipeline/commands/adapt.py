"""``reid-pipeline adapt``: one offline adaptation round (seed 002 §3.2), without labels.

``--store FILE``: on the tracklets a pipeline run stored with their crops (the store's own versions).
``--folder DIR --out FILE``: on a folder of Market-1501-style crops from several cameras
(:mod:`pipeline.adaptation.folder`); the versions go to the identity store ``FILE`` (created when
missing), whose deployed version is the next round's base.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "fine-tune the re-id model on a store's tracklets without labels (guarded, versioned, re-embeds the gallery)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--store", type=Path, help="identity store written with adapt.enabled: true")
    src.add_argument("--folder", type=Path,
                     help="folder of <id>_c<cam>s<seq>_<frame>_<box>.jpg crops (the id field is never read)")
    parser.add_argument("--out", type=Path, default=None,
                        help="with --folder: identity store file for the model versions (created when missing)")
    parser.add_argument("--window-frames", type=int, default=100,
                        help="with --folder: a crop may join a group whose last crop is at most this many frames back")
    parser.add_argument("--link-quantile", type=float, default=0.02,
                        help="with --folder: link threshold = this quantile of same-frame (certain negative) distances")
    parser.add_argument("--config", type=Path, default=None,
                        help="cams.yaml whose adapt: section gives the defaults (flags below override it)")
    parser.add_argument("--checkpoint", default=None,
                        help="base model when the store has no deployed version (default: the shipped model)")
    parser.add_argument("--budget-s", type=float, default=None, help="training time budget in seconds")
    parser.add_argument("--max-steps", type=int, default=None, help="training step budget")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default 1)")
    parser.add_argument("--alpha", type=float, default=None, help="presumed positives = alpha * min(N1, N2)")
    parser.add_argument("--positives", choices=["presumed", "tracklets", "both"], default=None,
                        help="what the round trains on: presumed cross-camera pairs (seed 002), each tracklet's own"
                             " crops against the tracklets seen with it, or both")
    parser.add_argument("--mutual-nearest", action="store_true", default=None,
                        help="presumed positives only among mutual nearest cross-camera pairs")
    parser.add_argument("--pair-budget", choices=["camera_pair", "pooled"], default=None,
                        help="camera_pair: alpha * min(N1, N2) closest pairs within each camera pair (seed 002);"
                             " pooled: as many pairs in all, the closest over all camera pairs together")
    parser.add_argument("--mining-distance", choices=["cosine", "k_reciprocal"], default=None,
                        help="what ranks the presumed positives: the cosine distance (seed 002) or the k-reciprocal"
                             " distance (Zhong et al. 2017: neighbourhoods compared, hubs drop back)")
    parser.add_argument("--bn-stats", choices=["source", "target", "camera"], default=None,
                        help="target: re-estimate the base model's BatchNorm statistics on the round's crops first"
                             " (AdaBN; no labels, forward passes only); camera: also one set per camera")
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
             "threads": args.threads, "alpha": args.alpha, "positives": args.positives,
             "mutual_nearest": args.mutual_nearest, "pair_budget": args.pair_budget,
             "mining_distance": args.mining_distance, "bn_stats": args.bn_stats, "lr": args.lr, "final_lr": args.final_lr,
             "min_gain": args.min_gain}
    base.update({k: v for k, v in flags.items() if v is not None})
    base["background"] = False
    return validate(AdaptSettings, base, "adapt options"), overlapping


def _run_folder(args: argparse.Namespace, settings) -> tuple:
    """(report, JSON dict) of a folder round."""
    from pipeline.adaptation.folder import adapt_folder, list_folder
    from pipeline.core.errors import ConfigError
    from pipeline.store import IdentityStore

    if args.out is None:
        raise ConfigError("--folder needs --out FILE (the identity store that keeps the model versions)")
    if args.rollback:
        raise ConfigError("--rollback works on a store: reid-pipeline adapt --store FILE --rollback")
    if args.window_frames < 0 or not 0.0 <= args.link_quantile <= 1.0:
        raise ConfigError("--window-frames must be >= 0 and --link-quantile in [0, 1]")
    crops = list_folder(args.folder)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with IdentityStore(args.out, mode="write") as store:
        res = adapt_folder(crops, store, settings, args.checkpoint, args.window_frames, args.link_quantile,
                           progress=not args.no_progress, source=args.folder)
    sizes = [len(s.crops) for s in res.sets]
    print(f"{res.crops} crops -> {len(res.sets)} groups (window {args.window_frames} frames, link distance"
          f" < {res.link_threshold:.4f}; {sum(n > 1 for n in sizes)} with >= 2 crops, largest {max(sizes)})")
    data = res.report.to_json()
    data.update(folder=str(args.folder), crops=res.crops, groups=len(res.sets), link_threshold=res.link_threshold,
                window_frames=args.window_frames, link_quantile=args.link_quantile, out=str(args.out))
    return res.report, data


def _check_json_out(path: Path | None) -> None:
    """DataError naming ``--json``'s path when the report could not be written there: checked before the round,
    which may deploy a model (a report lost after that would read as a failed round)."""
    from pipeline.core.errors import DataError

    if path is None:
        return
    if path.is_dir():
        raise DataError(path, "is a folder: --json names the report file")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise DataError(path, f"cannot write the --json report ({exc.strerror or exc})") from None
    if not existed:
        path.unlink()


def _check_checkpoint(args: argparse.Namespace, store) -> None:
    """--checkpoint: a missing file is refused; one line when the store's deployed version is the base instead."""
    import sys

    from pipeline.core.errors import ConfigError, DataError

    if args.checkpoint in (None, "default"):
        return
    if args.checkpoint == "imagenet":  # query / serve / eval-reid take it; it is no re-id network to fine-tune
        raise ConfigError("--checkpoint imagenet: ImageNet features are not a re-id model to adapt; give 'default'"
                          " or a re-id checkpoint file (reid-pipeline train writes them)")
    if not Path(args.checkpoint).is_file():
        raise DataError(Path(args.checkpoint), "no such checkpoint")
    deployed = store.deployed_version()
    if deployed is not None:
        print(f"note: --checkpoint {args.checkpoint} not used: the store's deployed model version {deployed} is"
              " the base of the round (--checkpoint applies to a store without a deployed version)", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from pipeline.core.errors import DataError

    settings, overlapping = _settings(args)
    _check_json_out(args.json)
    import torch

    from pipeline.adaptation.worker import adapt_once, rollback
    from pipeline.store import IdentityStore

    torch.set_num_threads(settings.threads)
    if args.folder is not None:
        rep, data = _run_folder(args, settings)
    else:
        if not args.store.is_file():
            raise DataError(args.store, "no such identity store")
        with IdentityStore(args.store, mode="shared") as store:  # works beside a running pipeline (no writer lock)
            if args.rollback:
                old, new = rollback(store)
                print(f"rolled back: deployed {new} (was {old})")
                return 0
            _check_checkpoint(args, store)
            rep = adapt_once(store, settings, args.checkpoint, non_overlapping=not overlapping,
                             progress=not args.no_progress)
        data = rep.to_json()
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=1, default=float) + "\n", encoding="utf-8")
    print(f"tracklets {rep.tracklets} ({', '.join(f'{c}: {n}' for c, n in rep.cameras.items())}), "
          f"train {rep.train_tracklets}, hold-out {rep.holdout_tracklets}, positives {len(rep.positives)}"
          f" ({sum(p['kind'] == 'presumed' for p in rep.positives)} presumed)"
          f" (mean {rep.mean_negatives:.1f} negatives)")
    print(f"trained {rep.steps} steps in {rep.train_s:.1f} s on {rep.device} ({rep.stopped_by}); "
          f"hold-out continuity AUC {rep.holdout_auc_base:.4f} -> {rep.holdout_auc_candidate:.4f}"
          f" ({rep.holdout_pairs.get('positives', 0)} positive / {rep.holdout_pairs.get('negatives', 0)} negative pairs)")
    verdict = "deployed" if rep.deployed else "not deployed"
    print(f"candidate {rep.candidate_version}: {verdict} ({rep.reason}); deployed version {rep.deployed_version};"
          f" re-embedded {rep.reembedded} tracklets ({rep.not_reembedded} without crops keep the old version only)")
    return 0
