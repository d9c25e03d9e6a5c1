"""``reid-pipeline export``: a checkpoint's embedding net to ONNX (dynamic batch), with a parity check.

Refused in one line before any work (2026-12-08): ``--out`` naming the checkpoint itself, an existing ``--out``
without ``--force``, ``--imagenet`` with ``--slim`` or with a checkpoint, ``--slim`` with the ONNX-only options
(``--opset``, ``--crops``, ``--tolerance``), a negative ``--tolerance``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "export a re-id checkpoint to ONNX (checked against PyTorch on real crops), or slim it for shipping"


DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-3


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not 0.0 <= value < float("inf"):  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    from pipeline.commands.argtypes import positive_int

    p.add_argument("checkpoint", type=Path, nargs="?", default=None,
                   help="training checkpoint (default: the shipped reid_models/weights/default.pt)")
    p.add_argument("--imagenet", action="store_true",
                   help="export the raw ImageNet MobileNetV2 baseline instead (no checkpoint, ONNX only)")
    p.add_argument("--out", type=Path, required=True,
                   help="output .onnx file (or .pt with --slim); never the checkpoint itself")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--opset", type=positive_int, default=None, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--slim", action="store_true", help="write a shipping .pt (no optimizer state) instead of ONNX")
    p.add_argument("--half", action="store_true", help="with --slim: store weights as float16")
    p.add_argument("--crops", type=Path, default=None,
                   help="folder of crop images for the parity check (default: PETS09-S2L1 gt crops from ../shared)")
    p.add_argument("--tolerance", type=non_negative_float, default=None,
                   help=f"max abs difference allowed in the parity check (default {DEFAULT_TOLERANCE})")


def check_options(args: argparse.Namespace) -> None:
    """Refuse option combinations where one option would be ignored, in one ConfigError line."""
    from pipeline.core.errors import ConfigError

    if args.imagenet and args.slim:
        raise ConfigError("--imagenet with --slim: the ImageNet baseline has no checkpoint to slim; drop --slim to "
                          "export it to ONNX, or drop --imagenet to slim a checkpoint")
    if args.imagenet and args.checkpoint is not None:
        raise ConfigError(f"--imagenet exports the ImageNet MobileNetV2 baseline and takes no checkpoint (got "
                          f"{args.checkpoint}): drop one of them")
    if args.half and not args.slim:
        raise ConfigError("--half: only with --slim (the ONNX export is float32)")
    if args.slim:
        onnx_only = [name for name, value in (("--opset", args.opset), ("--crops", args.crops),
                                              ("--tolerance", args.tolerance)) if value is not None]
        if onnx_only:
            raise ConfigError(f"{', '.join(onnx_only)}: ONNX export options; --slim copies the checkpoint's weights "
                              "(no ONNX, no parity check): drop them or drop --slim")
        if args.out.suffix.lower() != ".pt":
            raise ConfigError(f"--out {args.out}: --slim writes a PyTorch checkpoint; name it .pt")
    elif args.out.suffix.lower() != ".onnx":
        raise ConfigError(f"--out {args.out}: the export is an ONNX model; name it .onnx (or use --slim for a .pt)")


def check_out(out: Path, src: Path | None, force: bool) -> None:
    """``--out`` must not be the input file (ever) and must not exist yet unless ``force``: one ConfigError line."""
    import os

    from pipeline.core.errors import ConfigError
    from reid_models.checkpoint import same_file

    real = Path(os.path.realpath(out))  # also through folders that do not exist yet: "new/../ckpt.pt"
    if src is not None and (same_file(src, out) or same_file(src, real) or real == Path(os.path.realpath(src))):
        raise ConfigError(f"--out {out}: is the checkpoint being exported ({src}); write to another file "
                          "(a training checkpoint would lose its optimizer and heads)")
    if out.is_dir() or real.is_dir():
        raise ConfigError(f"--out {out}: is a folder; name the output file")
    if (out.exists() or out.is_symlink() or real.exists()) and not force:
        raise ConfigError(f"--out {out}: already exists; pass --force to replace it, or choose another name")


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
    """Export (or slim) the checkpoint. The ONNX file is written beside ``--out`` under a private temporary name
    and moved into place only when the parity check passes: a failed export leaves no file a script could deploy.
    Every message names ``--out``, never the temporary file."""
    from pipeline.core.errors import ModelError
    from reid_models.checkpoint import load_checkpoint, slim_checkpoint
    from reid_models.encoder import DEFAULT_CHECKPOINT
    from reid_models.export import export_onnx, parity

    check_options(args)
    ckpt = None if args.imagenet else (args.checkpoint or DEFAULT_CHECKPOINT)
    check_out(args.out, ckpt, args.force)
    if args.slim:
        print(f"wrote {slim_checkpoint(ckpt, args.out, half=args.half)}")
        return 0
    tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    if args.imagenet:
        from reid_models.checkpoint import state_hash
        from reid_models.factory import build_model

        model = build_model("mobilenetv2_imagenet", pretrained=True).eval()
        version = "imagenet-" + state_hash(model.state_dict())
    else:
        model, meta = load_checkpoint(ckpt, "cpu")
        version = meta["hash"]
    batch = _parity_batch(args, model.input_size)  # crops checked before anything is written
    result: dict = {}

    def check(tmp: Path) -> None:  # on the written temporary file, before it is moved to --out
        result.update(parity(model, tmp, batch, label=str(args.out)))
        diff = float(result["max_abs_diff"])
        if not diff <= tolerance:  # NaN fails too
            raise ModelError(f"{args.out}: ONNX output differs from PyTorch by {diff:.2e} > {tolerance} "
                             "(not written)" if diff == diff else
                             f"{args.out}: the model's outputs are not finite (NaN): nothing written")

    export_onnx(model, args.out, opset=args.opset or DEFAULT_OPSET, version=version, before_replace=check)
    print(json.dumps({"onnx": str(args.out), "version": version, **result}))
    return 0
