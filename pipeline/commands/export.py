"""``reid-pipeline export``: a checkpoint's embedding net to ONNX (dynamic batch), with a parity check."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "export a re-id checkpoint to ONNX (checked against PyTorch on real crops), or slim it for shipping"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, nargs="?", default=None,
                   help="training checkpoint (default: the shipped reid_models/weights/default.pt)")
    p.add_argument("--imagenet", action="store_true", help="export the raw ImageNet MobileNetV2 baseline instead")
    p.add_argument("--out", type=Path, required=True, help="output .onnx file (or .pt with --slim)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--slim", action="store_true", help="write a shipping .pt (no optimizer state) instead of ONNX")
    p.add_argument("--half", action="store_true", help="with --slim: store weights as float16")
    p.add_argument("--crops", type=Path, default=None,
                   help="folder of crop images for the parity check (default: PETS09-S2L1 gt crops from ../shared)")
    p.add_argument("--tolerance", type=float, default=1e-3, help="max abs difference allowed in the parity check")


def _parity_batch(args: argparse.Namespace, input_size) -> "object":
    from pipeline.core.errors import DataError
    from pipeline.core.images import read_image
    from reid_models.encoder import preprocess_crops

    if args.crops is not None:
        files = sorted(p for p in args.crops.iterdir() if p.suffix.lower() in (".jpg", ".png", ".jpeg"))[:32]
        crops = [read_image(p) for p in files]
        if not crops or any(c is None for c in crops):
            raise DataError(args.crops, "no readable crop images")
        return preprocess_crops(crops, input_size)
    from pipeline.core.paths import require_shared

    return preprocess_crops(pets_gt_crops(require_shared())[:32], input_size)


def pets_gt_crops(shared: Path, frames: tuple[int, ...] = (1, 200, 400)) -> list:
    """Real BGR person crops: PETS09-S2L1 gt boxes (tlwh) of a few frames."""
    import numpy as np

    from pipeline.core.images import read_image
    from reid_models.encoder import crops_from_boxes

    seq = shared / "data" / "MOT15" / "train" / "PETS09-S2L1"
    gt = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",", ndmin=2)
    crops = []
    for frame in frames:
        image = read_image(seq / "img1" / f"{frame:06d}.jpg")
        crops += crops_from_boxes(image, gt[gt[:, 0] == frame, 2:6])
    return crops


def run(args: argparse.Namespace) -> int:
    """Export (or slim) the checkpoint. The ONNX file is written beside ``--out`` under a temporary name and moved
    into place only when the parity check passes: a failed export leaves no file a script could deploy."""
    import os

    from pipeline.core.errors import ConfigError, ModelError
    from reid_models.checkpoint import load_checkpoint, slim_checkpoint
    from reid_models.encoder import DEFAULT_CHECKPOINT
    from reid_models.export import export_onnx, parity

    ckpt = args.checkpoint or DEFAULT_CHECKPOINT
    if args.half and not args.slim:
        raise ConfigError("--half: only with --slim (the ONNX export is float32)")
    if args.slim:
        if args.out.suffix.lower() != ".pt":
            raise ConfigError(f"--out {args.out}: --slim writes a PyTorch checkpoint; name it .pt")
        print(f"wrote {slim_checkpoint(ckpt, args.out, half=args.half)}")
        return 0
    if args.out.suffix.lower() != ".onnx":
        raise ConfigError(f"--out {args.out}: the export is an ONNX model; name it .onnx (or use --slim for a .pt)")
    if args.imagenet:
        from reid_models.checkpoint import state_hash
        from reid_models.factory import build_model

        model = build_model("mobilenetv2_imagenet", pretrained=True).eval()
        version = "imagenet-" + state_hash(model.state_dict())
    else:
        model, meta = load_checkpoint(ckpt, "cpu")
        version = meta["hash"]
    batch = _parity_batch(args, model.input_size)  # crops checked before anything is written
    tmp = args.out.with_name(args.out.stem + ".part.onnx")
    try:
        export_onnx(model, tmp, opset=args.opset, version=version)
        result = parity(model, tmp, batch)
        diff = float(result["max_abs_diff"])
        if not diff <= args.tolerance:  # NaN fails too
            raise ModelError(f"{args.out}: ONNX output differs from PyTorch by {diff:.2e} > {args.tolerance} "
                             "(not written)" if diff == diff else
                             f"{args.out}: the model's outputs are not finite (NaN): nothing written")
        os.replace(tmp, args.out)
    finally:
        tmp.unlink(missing_ok=True)
    print(json.dumps({"onnx": str(args.out), "version": version, **result}))
    return 0
