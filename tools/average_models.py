"""Average the weights of re-id checkpoints fine-tuned from the same pre-trained weights (a "model soup",
reid_models/soup.py), re-estimate BatchNorm statistics on training batches, and write a checkpoint.

The training batches come from a training config (its data, sampler and augmentation, so the statistics are
estimated on what the ingredients' statistics were estimated on: BH-switch batches of one dataset each,
flipped, cropped and erased as in training); the config's seed fixes them. The result is an ordinary
checkpoint (``reid_models.checkpoint`` format) with the first ingredient's architecture and config, scored like
any other (``tools/bench_reid.py --extra soup=OUT``) and shipped like any other (``tools/ship_default_model.py``).
``extra["soup"]`` records the ingredients (path, sha256, weight) and the batches used.

Usage::

    .venv/bin/python tools/average_models.py reid_models/weights/default.pt runs/reid/market_cuhk03_mixstyle/last.pt \
        --config configs/reid/market_cuhk03_long.yaml --bn-batches 100 --out runs/reid/soup_default_mixstyle/last.pt
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def training_batches(config_path: Path, input_size: tuple[int, int], n_batches: int):
    """The first ``n_batches`` image batches (B, 3, H, W) of ``config_path``'s training loader."""
    from pipeline.core.configio import load_config
    from reid_models.config import TrainConfig
    from reid_models.schedule import seed_everything
    from reid_models.train_data import build_image_data, build_train_loader

    cfg = load_config(TrainConfig, config_path)
    seed_everything(cfg.seed)
    data = build_image_data(cfg.data, cfg.loss.attributes, cfg.seed)
    loader = build_train_loader(data, cfg.data, cfg.sampler, input_size, cfg.seed)
    for i, batch in enumerate(loader):
        if i >= n_batches:
            break
        yield batch[0]


def main(argv: list[str] | None = None) -> int:
    import torch
    from tqdm import tqdm

    from pipeline.core.errors import ModelError, ReidPipelineError
    from reid_models.checkpoint import file_hash, model_from_blob, read_checkpoint, save_checkpoint
    from reid_models.soup import average_state_dicts, recalibrated

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoints", type=Path, nargs="+", help="two or more checkpoints of one architecture")
    ap.add_argument("--weights", type=float, nargs="+", default=None, help="one weight per checkpoint (default: equal)")
    ap.add_argument("--config", type=Path, required=True, help="training config whose loader gives the BatchNorm batches")
    ap.add_argument("--bn-batches", type=int, default=100, help="training batches for the BatchNorm statistics")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        blobs = [read_checkpoint(p) for p in args.checkpoints]
        for p, b in zip(args.checkpoints[1:], blobs[1:]):
            if b["model_name"] != blobs[0]["model_name"]:
                raise ModelError(f"{p}: model {b['model_name']!r}, {args.checkpoints[0]} is {blobs[0]['model_name']!r}")
        state = average_state_dicts([b["state_dict"] for b in blobs], args.weights, [str(p) for p in args.checkpoints])
        base = dict(blobs[0], state_dict=state)
        model = model_from_blob(base, str(args.checkpoints[0]))
        t0 = time.time()
        batches = training_batches(args.config, tuple(model.input_size), args.bn_batches)
        model, used = recalibrated(model, tqdm(batches, total=args.bn_batches, desc="BatchNorm statistics"))
    except ReidPipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    weights = args.weights or [1.0] * len(blobs)
    soup = {"ingredients": [{"path": str(p), "sha256_12": file_hash(p), "weight": w / sum(weights)}
                            for p, w in zip(args.checkpoints, weights)],
            "bn_config": str(args.config), "bn_batches": used, "bn_seconds": round(time.time() - t0, 1)}
    extra = {"history": (blobs[0].get("extra") or {}).get("history", []), "soup": soup}
    save_checkpoint(args.out, model, blobs[0]["config"], {"soup": soup}, int(blobs[0]["epoch"]), extra=extra)
    print(json.dumps({"out": str(args.out), "sha256_12": file_hash(args.out), **soup}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
