"""``reid-pipeline detect``: run a person detector over a sequence's frames, write a MOTChallenge det file."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "detect persons in a MOTChallenge sequence's frames; write frame,-1,x,y,w,h,score,-1,-1,-1 rows"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("seq_dir", type=Path, metavar="SEQ_DIR", help="sequence folder (seqinfo.ini + img1/ or video)")
    parser.add_argument("--weights", required=True, help="ONNX file, Ultralytics .pt / name / model YAML")
    parser.add_argument("--out", type=Path, required=True, help="det file to write")
    parser.add_argument("--kind", choices=["auto", "onnx", "ultralytics"], default="auto",
                        help="detector kind (auto: onnx for a .onnx file, else ultralytics)")
    parser.add_argument("--backend", choices=["onnxruntime", "opencv"], default="onnxruntime", help="ONNX backend")
    parser.add_argument("--conf", type=float, default=0.1, help="confidence threshold (default 0.1)")
    parser.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold")
    parser.add_argument("--imgsz", type=int, default=640, help="network input size")
    parser.add_argument("--batch", type=int, default=4, help="frames per detect() call")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-frames", type=int, default=None, help="only the first N frames")


#: DetectorConfig field -> the option that sets it
_OPTION_OF = {"kind": "--kind", "weights": "--weights", "conf": "--conf", "iou": "--iou", "imgsz": "--imgsz",
              "device": "--device", "backend": "--backend"}


def detector_config(args: argparse.Namespace):
    """The DetectorConfig of the options; a value out of range is a one-line ConfigError naming its option
    (``--imgsz: Input should be greater than or equal to 32, got 0``)."""
    from pydantic import ValidationError

    from pipeline.core.errors import ConfigError
    from pipeline.detectors import DetectorConfig

    for name, value in (("--batch", args.batch), ("--max-frames", args.max_frames)):
        if value is not None and value < 1:
            raise ConfigError(f"{name}: must be a positive whole number, got {value}")
    kind = args.kind if args.kind != "auto" else ("onnx" if str(args.weights).endswith(".onnx") else "ultralytics")
    fields = {"kind": kind, "weights": str(args.weights), "conf": args.conf, "iou": args.iou, "imgsz": args.imgsz,
              "device": args.device, "backend": args.backend}
    try:
        return DetectorConfig(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else ""
        if key in _OPTION_OF:
            raise ConfigError(f"{_OPTION_OF[key]}: {first['msg']}, got {fields[key]!r}") from None
        raise ConfigError(f"detect options: {first['msg'].removeprefix('Value error, ')}") from None


def write_det_rows(fh, frame: int, dets) -> None:
    """Append one frame's detections as MOTChallenge det rows."""
    for d in dets:
        x, y, w, h = (float(v) for v in d.tlwh)
        fh.write(f"{frame},-1,{x:.2f},{y:.2f},{w:.2f},{h:.2f},{d.score:.5f},-1,-1,-1\n")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pipeline.detectors import build_detector
    from pipeline.mot import MOTSequence

    cfg = detector_config(args)
    seq = MOTSequence(args.seq_dir)
    detector = build_detector(cfg)
    n = seq.info.seq_length if args.max_frames is None else min(args.max_frames, seq.info.seq_length)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".part")
    done = 0  # frames whose rows are in ``tmp`` (1..done)
    try:
        with open(tmp, "w") as fh, tqdm(total=n, desc=f"detect {seq.name}", unit="fr") as bar:
            frames: list[int] = []
            images = []
            for frame, image in seq.iter_frames(1, n):
                frames.append(frame)
                images.append(image)
                if len(frames) == args.batch or frame == n:
                    for f, dets in zip(frames, detector.detect(images)):
                        write_det_rows(fh, f, dets)
                    done = frames[-1]
                    bar.update(len(frames))
                    frames, images = [], []
            if frames:
                for f, dets in zip(frames, detector.detect(images)):
                    write_det_rows(fh, f, dets)
                done = frames[-1]
                bar.update(len(frames))
    except BaseException:
        keep_partial(tmp, args.out, done)
        raise
    tmp.replace(args.out)
    print(f"wrote {args.out} ({n} frames)")
    return 0


def keep_partial(tmp: Path, out: Path, done: int) -> Path | None:
    """After a failed ``detect``: the unfinished ``tmp`` is removed when it holds no frame, else renamed to
    ``<out>.frames-1-<done>.partial`` (what was computed is kept, under a name no tool reads as a finished det
    file) and a warning says where. Returns the kept file, or None."""
    import logging

    if done <= 0:
        tmp.unlink(missing_ok=True)
        return None
    kept = out.with_name(f"{out.name}.frames-1-{done}.partial")
    tmp.replace(kept)
    logging.getLogger(__name__).warning("detect stopped: the rows of frames 1-%d are kept in %s", done, kept)
    return kept
