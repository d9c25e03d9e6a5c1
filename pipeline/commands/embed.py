"""``reid-pipeline embed``: batch feature extraction with a re-id model (torchreid FeatureExtractor convention).

Writes ``--out`` (``.npy`` added when missing) as an (N, D) float32 array, one L2-normalised row per
input image in input order, and ``emb.files.txt`` beside ``emb.npy`` with the N image paths in the same
order (one per line, the names' own bytes). ``--out`` naming an existing folder writes ``emb.npy`` and
``emb.files.txt`` inside it.
Inputs: ``--list FILE`` (one image path per line, UTF-8 with or without a byte-order mark; blank lines and ``#``
comments skipped; relative paths are relative to the list file's folder; a missing image is one line naming the
list file, its line and the path) or ``--folder DIR`` (every image in it, sorted by name; a folder
without images of its own but with sub-folders of images, one per camera as VIPeR's ``cam_a/ cam_b/``, or one per
camera holding one sub-folder per person as PRID2011's ``multi_shot/cam_a/person_0001/``: those, camera by camera
and person by person).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "embed person crops with a re-id model: (N, D) float32 .npy in input order + the file list beside it"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from pipeline.commands.argtypes import positive_int

    p.add_argument("--model", default="default", help="'default' (shipped model), 'imagenet' or a checkpoint / .onnx path")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--list", type=Path, help="text file with one image path per line")
    src.add_argument("--folder", type=Path,
                     help="folder of images (sorted by file name), or of per-camera sub-folders of images or of "
                          "per-person sequence folders (each in turn)")
    p.add_argument("--out", type=Path, required=True,
                   help="output .npy (the file list goes to <out>.files.txt); an existing folder: emb.npy and "
                        "emb.files.txt inside it")
    p.add_argument("--ten-crop", action="store_true", help="average embeddings over 10 crops (seed 001)")
    p.add_argument("--flip", action="store_true", help="test-time flip: each feature = crop + its mirror")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")


def read_list(path: Path) -> list[tuple[Path, int]]:
    """(image path, line number) of each entry of a list file, in order (relative paths resolved against the
    list's folder; a UTF-8 byte-order mark, as Windows Notepad and PowerShell write, is skipped)."""
    from pipeline.core.errors import DataError

    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise DataError(path, "no such file") from None
    except UnicodeDecodeError:
        raise DataError(path, "not a UTF-8 text file of image paths") from None
    out = []
    for number, line in enumerate(lines, 1):
        s = line.strip()
        if s and not s.startswith("#"):
            p = Path(s)
            out.append((p if p.is_absolute() else path.parent / p, number))
    if not out:
        raise DataError(path, "no image paths in the list")
    return out


def folder_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; when it has none, those of its camera sub-folders
    (sorted by camera, then person sub-folder where a camera has them, then name: the per-camera layouts of
    ``eval-reid --folder``)."""
    from pipeline.core.errors import DataError
    from reid_models.datasets.index import IMAGE_EXTS, camera_images, camera_subfolders, image_files

    if not folder.is_dir():
        raise DataError(folder, "no such folder")
    out = image_files(folder) or [p for sub in camera_subfolders(folder) for p in camera_images(sub)]
    if not out:
        raise DataError(folder, f"no images ({', '.join(IMAGE_EXTS)}) in the folder or its sub-folders")
    return out


def output_path(out: Path) -> Path:
    """The .npy file ``--out`` names: ``out`` itself when it ends in .npy, ``<out>/emb.npy`` when ``out`` is an
    existing folder (what a folder argument means to torchreid-style tools), else ``out`` with .npy added."""
    if out.is_dir():
        return out / "emb.npy"
    return out if out.suffix == ".npy" else out.with_name(out.name + ".npy")


def run(args: argparse.Namespace) -> int:
    """Run the command with owner-only outputs (``reid_models.run_report.private_umask``: 0600 / 0700)."""
    from reid_models.run_report import private_umask

    with private_umask():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from pipeline.commands.eval_reid import load_encoder
    from pipeline.core.errors import DataError, ModelError
    from reid_models.evaluate import EvalConfig, embed_paths

    if args.list:
        listed = read_list(args.list)
        paths = [p for p, _ in listed]
        missing = next(((p, n) for p, n in listed if not p.is_file()), None)
        if missing is not None:
            raise DataError(args.list, f"{missing[0]}: no such image file (listed in {args.list})", line=missing[1])
    else:
        paths = folder_images(args.folder)
        missing = next((p for p in paths if not p.is_file()), None)
        if missing is not None:
            raise DataError(missing, "no such image file")
    out = output_path(args.out)
    enc = load_encoder(args.model, args.device, args.batch_size, args.flip)
    feats = embed_paths(enc.embed_crops, paths, EvalConfig(ten_crop=args.ten_crop, batch_size=args.batch_size),
                        not args.no_progress).astype(np.float32)
    bad = ~np.isfinite(feats).all(axis=1)
    if bad.any():  # a broken checkpoint (trained to NaN): nothing written that a user could take for features
        raise ModelError(f"{args.model}: gives non-finite (NaN/inf) embeddings for {int(bad.sum())} of {len(paths)} "
                         f"images, e.g. {paths[int(np.argmax(bad))]}; nothing written")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, feats)
    files = out.with_suffix(".files.txt")
    # a name that is not UTF-8 is written back as its own bytes (surrogateescape), as the folder holds it
    files.write_text("".join(f"{p}\n" for p in paths), encoding="utf-8", errors="surrogateescape")
    print(f"embedded {len(paths)} images with {args.model} ({feats.shape[1]}-d): wrote {out} and {files}")
    return 0
