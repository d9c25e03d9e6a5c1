"""``reid-pipeline eval-reid``: CMC/mAP, pair ROC, triplet accuracy and tracklet rank-1 on a dataset's test split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.commands.argtypes import positive_int

HELP = ("evaluate a re-id model on the test split of a make-triplets dataset (CMC, mAP, ROC, triplet accuracy) "
        "or on a Market-1501 / CUHK03-style image folder or one with a sub-folder per camera (CMC, mAP; "
        "video-to-video and image-to-video for per-person sequence folders)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", type=Path, help="dataset folder written by make-triplets (its test split)")
    src.add_argument("--folder", type=Path,
                     help="Market-1501-style (<pid>_c<cam>s<seq>_<frame>_<n>.jpg), CUHK03-style (<pid>_<image>.jpg) "
                          "or one sub-folder per camera (VIPeR cam_a/ cam_b/, PRID2011, GRID: the first number of a file "
                          "name is the person; or one numbered sub-folder per person: PRID2011 multi_shot/, iLIDS-VID "
                          "sequences/), CUHK01-style (<pid><image>.png) or MARS-style (<pid>/<pid>C<cam>T<tracklet>F<frame>.jpg); "
                          "all its identities are test identities (Market query/gallery rule); a "
                          "Market-1501 root with query/ and bounding_box_test/ is scored on its official split")
    p.add_argument("--format", choices=("auto", "market", "cuhk03", "cuhk01", "cameras", "mars"), default="auto",
                   help="--folder layout (auto: market for a Market-1501 root or when the first image name has _c<cam>, "
                        "cuhk03 for <digits>_<digits> names, cuhk01 for 7-digit <pid><image> names with images 001-004, mars "
                        "for per-person "
                        "sub-folders of <pid>C<cam>T<tracklet>F<frame>.jpg "
                        "(MARS bbox_test/), cameras for a folder of per-camera sub-folders)")
    p.add_argument("--protocol-folder", choices=("auto", "market", "single_shot"), default="auto",
                   help="--folder protocol: market (one query per id and camera), single_shot (seed 003's CUHK03 "
                        "protocol; any two-camera folder: one image of the first camera, probe/ or query/ where named so, "
                        "as query, one of the second as gallery) or auto (single_shot for exactly two cameras with at "
                        "most one image per person and camera, as VIPeR, PRID2011 single_shot/, GRID; else market; the "
                        "choice is printed)")
    p.add_argument("--trials", type=positive_int, default=10,
                   help="single_shot and --video-protocol halves: number of seeded trials")
    p.add_argument("--video", choices=("auto", "on", "off"), default="auto",
                   help="--folder: also score per-camera sequences, video-to-video and image-to-video (seed 004), with "
                        "mean pooling and --lstm (auto: on for a folder of per-person sequence folders, as PRID2011 "
                        "multi_shot/ and iLIDS-VID sequences/, and for MARS tracklets; on: also Market-1501 / CUHK03 "
                        "folders, a sequence being an identity's crops in one camera and recording)")
    p.add_argument("--video-protocol", choices=("all", "halves"), default="all",
                   help="--video: all (every sequence queries every other camera's, all people as test people) or "
                        "halves (two cameras: a seeded half of the people both saw per trial, the first camera "
                        "queries the second, --trials trials: McLaughlin et al. 2016 and seed 004 on PRID2011 / "
                        "iLIDS-VID)")
    p.add_argument("--max-frames", type=int, default=0,
                   help="--folder: at most this many evenly spaced frames per sequence (0 = all; bounds the embedding "
                        "time of long sequences)")
    p.add_argument("--common-ids", action="store_true",
                   help="--folder: only identities seen by two or more cameras (PRID2011's 200 of 385 / 749, as the "
                        "literature and seed 004 evaluate); by default the others stay in the gallery as distractors")
    p.add_argument("--checkpoint", default="default",
                   help="checkpoint file, 'default' (shipped model) or 'imagenet' (raw ImageNet MobileNetV2)")
    p.add_argument("--ten-crop", action="store_true", help="average embeddings over 10 crops (seed 001)")
    p.add_argument("--flip", action="store_true", help="test-time flip: each feature = crop + its mirror")
    p.add_argument("--rerank", action="store_true",
                   help="k-reciprocal re-ranking (Zhong et al. 2017; k1 20, k2 6, lambda 0.3) of queries + gallery together, "
                        "and of the pair ROC over all test crops: uses the unlabelled test crops (transductive); "
                        "memory about 24 bytes x N^2 for N crops scored together")
    p.add_argument("--lstm", type=Path, default=None,
                   help="LSTM aggregator checkpoint for tracklet rank-1 (--dataset) and video retrieval (--folder)")
    p.add_argument("--out", type=Path, default=Path("runs/eval_reid"), help="output folder (metrics.json, roc.png, cmc.png)")
    p.add_argument("--protocol", choices=("auto", "camera", "time"), default="auto")
    p.add_argument("--exclude-frames", type=int, default=35, help="time protocol: ignore same-id gallery crops this close")
    p.add_argument("--segments", type=positive_int, default=5, help="time protocol: queries per identity")
    p.add_argument("--chunk-len", type=positive_int, default=8, help="tracklet chunk length (crops)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")


def load_encoder(spec: str, device: str = "auto", batch_size: int = 64, flip: bool = False):
    """AppearanceEncoder for 'default', 'imagenet' or a checkpoint path (``flip``: test-time flip)."""
    from pipeline.core.errors import ModelError
    from reid_models.encoder import AppearanceEncoder

    if spec == "imagenet":
        return AppearanceEncoder.imagenet_baseline(device=device, flip=flip)
    if spec == "default":
        return AppearanceEncoder.from_checkpoint(None, device=device, batch_size=batch_size, flip=flip)
    if not Path(spec).is_file():
        raise ModelError(f"{spec}: no such checkpoint (or use 'default' / 'imagenet')")
    return AppearanceEncoder.from_checkpoint(Path(spec), device=device, batch_size=batch_size, flip=flip)


def build_aggregators(lstm: Path | None, encoder_version: str = "") -> dict:
    """name -> (T, D) -> (D,) callables: always mean pooling, LSTM when a checkpoint is given. An LSTM trained on
    another frame encoder's embeddings than ``encoder_version`` is warned about on stderr (one line)."""
    import sys

    from reid_models.aggregation import build_aggregator

    aggs = {"mean": build_aggregator("mean").aggregate}
    if lstm is not None:
        agg = build_aggregator("lstm", checkpoint=lstm)
        if agg.encoder_version and encoder_version and agg.encoder_version != encoder_version:
            print(f"warning: {lstm}: this LSTM was trained on embeddings of encoder {agg.encoder_version}, not of the "
                  f"evaluated {encoder_version}: its figures say little", file=sys.stderr)
        aggs["lstm"] = agg.aggregate
    return aggs


MARKET_NAME_RE = r"^-?\d+_c\d"  # Market-1501 0002_c1s1_000451_03.jpg, DukeMTMC 0005_c2_f0046985.jpg


def folder_format(folder: Path, fmt: str) -> str:
    """'market', 'cuhk03', 'cuhk01', 'mars' or 'cameras' for an image folder (``auto``: for a folder with ``query/``
    or ``bounding_box_*/`` sub-folders :func:`root_format` decides; market when the first image name has
    ``_c<digit>``, cuhk03 when it is ``<digits>_<digits>``, cuhk01 when it is seven digits and every image number is
    001-004 (else a one-line DataError: CAVIAR4REID's 001-010 are not CUHK01's cameras), cameras for a folder
    without images of its own but with sub-folders (per camera, of images or of per-person sequences;
    ``load_camera_folders`` says what is wrong otherwise), mars when the first image of its first sub-folder with
    images is named ``<pid>C<cam>T<tracklet>F<frame>``; DataError naming the image when it is neither, the folder
    when it has no image, is a MARS root (``bbox_train/``, ``bbox_test/``) or holds per-person sub-folders (MSMT17
    ``test/<pid>/``: ``index.check_not_per_person``))."""
    import re

    from pipeline.core.errors import DataError
    from reid_models.datasets.index import (
        camera_subfolders, check_not_per_person, has_market_subfolders, image_files, is_cuhk01_name, is_mars_name,
        sub_folders,
    )

    if fmt != "auto":
        return fmt
    if not folder.is_dir():
        raise DataError(folder, "no such folder")
    if has_market_subfolders(folder):
        return root_format(folder)
    images = image_files(folder)
    subs = sub_folders(folder)
    mars = [d.name + "/" for d in subs if d.name in ("bbox_train", "bbox_test")]
    if not images and mars:
        raise DataError(folder, f"a MARS root ({', '.join(mars)}): point at bbox_test/ (its test people) or bbox_train/")
    first = next((files[0] for d in subs if (files := image_files(d))), None)
    if not images and first is not None and is_mars_name(first.name):
        return "mars"
    if not images and (len(camera_subfolders(folder)) >= 2 or subs):
        check_not_per_person(folder)  # MSMT17-style test/<pid>/ is no camera layout
        return "cameras"  # its reader names what is wrong with a folder of sub-folders
    if not images:
        raise DataError(folder, "no images in the folder (nor two or more camera sub-folders of images)")
    if re.match(MARKET_NAME_RE, images[0].name):
        return "market"
    if re.match(r"^\d+_\d+$", images[0].stem):
        return "cuhk03"
    if is_cuhk01_name(images[0].name):
        last = max(int(p.stem[4:]) if is_cuhk01_name(p.name) else 0 for p in images)
        if last > 4:  # CUHK01 has images 001-004 per person; CAVIAR4REID's PPPPIII run to 010
            raise DataError(folder, f"7-digit <pid><image> names with image numbers up to {last:03d}: not CUHK01, whose "
                                    "images are 001-004 (001-002 camera A); give --format cuhk01 if it is CUHK01, or lay "
                                    "the crops out as one sub-folder per camera (--format cameras)")
        return "cuhk01"
    raise DataError(images[0], "file name fits neither Market-1501 style <pid>_c<cam>s<seq>_<frame>_<n>.jpg, "
                               "CUHK03 style <pid>_<image 00-09>.jpg nor CUHK01 style <pid 4 digits><image 3 digits>.png; "
                               "one sub-folder per camera is a further layout (--format picks one)")


def root_format(folder: Path) -> str:
    """The format of a folder with a ``query/``, ``bounding_box_test/`` or ``bounding_box_train/`` sub-folder:
    ``market`` when its first image (``query/`` first) has a Market-1501 / DukeMTMC name (a ``query/`` +
    ``gallery/`` pair of such names included: ``index.market_gallery_folder``), ``cameras`` for a ``query/`` +
    ``gallery/`` (or ``probe/``) pair of other names without ``bounding_box_*`` folders (two cameras, ``query/`` the
    queries); else a one-line DataError naming the image and the readers that fit other names."""
    import re

    from pipeline.core.errors import DataError
    from reid_models.datasets.index import camera_subfolders, image_files

    firsts = [files[0] for sub in ("query", "bounding_box_test", "bounding_box_train", "gallery")
              if (folder / sub).is_dir() and (files := image_files(folder / sub))]
    if not firsts or re.match(MARKET_NAME_RE, firsts[0].name):
        return "market"  # its reader names what is wrong with an empty root
    bbox = any((folder / sub).is_dir() for sub in ("bounding_box_test", "bounding_box_train"))
    if not bbox and len(camera_subfolders(folder)) >= 2:
        return "cameras"  # query/ + gallery/ of VIPeR-style names: a two-camera pair, not a Market-1501 root
    raise DataError(firsts[0], "file name is not Market-1501 style <pid>_c<cam>s<seq>_<frame>_<n>.jpg, which a folder "
                               "with query/ or bounding_box_*/ needs (query/ + bounding_box_test/ or gallery/); a "
                               "query/ + gallery/ pair of other names is read as two cameras (--format cameras)")


def query_gallery_split(folder: Path, items: list) -> list:
    """``items`` of a ``--format cameras`` folder whose camera sub-folders are exactly ``query/`` and ``gallery/``
    (any case) with split ``query`` / ``gallery`` by folder (its official split: every ``query/`` image queries
    ``gallery/``, as for a Market-1501 root); other folders' items unchanged."""
    import dataclasses

    from reid_models.datasets.index import camera_subfolders

    names = [d.name.lower() for d in camera_subfolders(folder)]
    if sorted(names) != ["gallery", "query"]:
        return items
    query_cam = names.index("query")  # camid = the camera folder's index in camera_subfolders order
    return [dataclasses.replace(it, split="query" if it.camid == query_cam else "gallery") for it in items]


def folder_test_items(folder: Path, fmt: str) -> list:
    """The crops ``eval-reid --folder`` scores: a Market-1501 root with ``query/`` gives its official split
    (query + ``bounding_box_test/`` gallery, distractors kept, ``bounding_box_train/`` left out); any other
    folder gives all its crops with a valid identity, every identity a test identity. A Market-1501 root whose
    ``query/`` or ``bounding_box_test/`` is missing or holds no image is a one-line DataError (its
    ``bounding_box_train/`` people are never scored as test people). A ``query/`` + ``gallery/`` folder is scored
    on that split too: Market-style names as a Market-1501 root (``gallery/`` for ``bounding_box_test/``), other
    names as two cameras (:func:`query_gallery_split`)."""
    from pipeline.core.errors import DataError
    from reid_models.datasets.index import has_market_subfolders, image_files, load_reid_folder, market_gallery_folder

    if fmt == "market" and folder.is_dir() and has_market_subfolders(folder) and (
            (folder / "query").is_dir() or market_gallery_folder(folder).is_dir()):
        gallery = market_gallery_folder(folder)
        if not gallery.is_dir() or not image_files(gallery):
            raise DataError(folder, "has query/ but no bounding_box_test/ (or gallery/) gallery")
        if not (folder / "query").is_dir() or not image_files(folder / "query"):
            raise DataError(folder, f"a Market-1501 root with no images in query/: its official split scores query/ "
                                    f"against {gallery.name}/ (bounding_box_train/ people are never test people)")
    items = load_reid_folder(folder, fmt, None)
    if fmt == "cameras":
        items = query_gallery_split(folder, items)
    if any(it.split == "query" for it in items):
        items = [it for it in items if it.split in ("query", "gallery")]
        if not any(it.split == "gallery" for it in items):
            raise DataError(folder, "has query/ but no bounding_box_test/ (or gallery/) gallery")
        return items
    if fmt == "market":  # junk (-1) and distractors (0) are not people there; CUHK03's 0000 is a person
        items = [it for it in items if it.pid > 0]
    if not items:
        raise DataError(folder, "no crops with a valid identity")
    return items


def run(args: argparse.Namespace) -> int:
    from pipeline.core.errors import DataError
    from reid_models.evaluate import EvalConfig, evaluate_dataset, evaluate_items, summary_line
    from reid_models.plots import plot_cmc, plot_roc

    cfg = EvalConfig(protocol=args.protocol, segments=args.segments, exclude_frames=args.exclude_frames,
                     chunk_len=args.chunk_len, ten_crop=args.ten_crop, batch_size=args.batch_size, rerank=args.rerank)
    if args.folder is not None:
        from reid_models.datasets.index import has_sequences
        from reid_models.datasets.protocols import (
            choose_folder_protocol, folder_protocol_problem, identities_in_several_cameras, thin_sequences,
        )

        fmt = folder_format(args.folder, args.format)
        items = folder_test_items(args.folder, fmt)
        if args.common_ids:
            items = identities_in_several_cameras(items)
            if not items:
                raise DataError(args.folder, "--common-ids: no identity is seen by two or more cameras")
        items = thin_sequences(items, args.max_frames)
        distractors = fmt != "cuhk03" and fmt != "cuhk01"  # id 0: a distractor there (Market, GRID), a person in CUHK
        protocol = args.protocol_folder
        if protocol == "auto":
            protocol, why = choose_folder_protocol(items, distractors)
            print(f"protocol: {protocol} ({why}; --protocol-folder sets it)")
        problem = folder_protocol_problem(items, protocol, distractors)
        if problem:
            raise DataError(args.folder, problem)
        video = args.video == "on" or (args.video == "auto" and (
            fmt == "mars" or (fmt == "cameras" and has_sequences(args.folder))))
        if video and args.video_protocol == "halves" and any(it.split == "query" for it in items):
            raise DataError(args.folder, "--video-protocol halves draws its own query people and cannot keep this "
                                         "folder's official query/gallery split: use --video-protocol all (the "
                                         "query split's sequences against the gallery split's)")
        enc = load_encoder(args.checkpoint, args.device, args.batch_size, args.flip)
        m = evaluate_items(items, enc.embed_crops, cfg, protocol, args.trials, progress=not args.no_progress,
                           video=build_aggregators(args.lstm, getattr(enc, "version", "")) if video else None,
                           video_protocol=args.video_protocol, distractors=distractors)
        m.update(dataset=str(args.folder), format=fmt, common_ids=args.common_ids, max_frames=args.max_frames,
                 protocol_folder=protocol, video_protocol=args.video_protocol if video else None)
    else:
        enc = load_encoder(args.checkpoint, args.device, args.batch_size, args.flip)
        m = evaluate_dataset(args.dataset, enc.embed_crops, cfg, build_aggregators(args.lstm, getattr(enc, "version", "")),
                             not args.no_progress)
    m["model"] = {"checkpoint": args.checkpoint, "version": getattr(enc, "version", ""), "dim": getattr(enc, "dim", None),
                  "flip": args.flip, "rerank": args.rerank}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(m, indent=1), encoding="utf-8")
    curves = {f"{args.checkpoint} images": m["retrieval"]} if "video" in m else {args.checkpoint: m["retrieval"]}
    for agg, v in m.get("video", {}).items():  # the sequence protocols beside the image one
        curves.update({f"{args.checkpoint} {short} {agg}": v[key] for key, short in
                       (("video_to_video", "video-to-video"), ("image_to_video", "image-to-video"))
                       if v.get(key, {}).get("num_queries")})
    plot_cmc(curves, args.out / "cmc.png")
    if "roc" in m:
        plot_roc({args.checkpoint: m["roc"]}, args.out / "roc.png", m["roc"]["max_fpr"])
    print(summary_line(m))
    print(f"wrote {args.out / 'metrics.json'}, cmc.png" + (", roc.png" if "roc" in m else ""))
    return 0
