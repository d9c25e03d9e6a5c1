"""The PETS09-S2L1 detection sets and per-detector tracker configs of the tracking benchmarks
(tools/bench_mot.py, tools/sweep_tracker.py, tools/make_det_sets.py).

The yolov5n family: the ONNX network runs ONCE per input size at a low score floor with NMS
deferred (``OnnxYoloDetector.candidates``), the per-frame candidates are cached
(``runs/dets/<seq>/raw_yolov5n_<imgsz>.npz``), and every (score threshold, NMS IoU) variant is derived
from them by ``Candidates.select`` -- exactly what ``reid-pipeline detect --conf C --iou N --imgsz S``
writes, without running the network again.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.paths import REPO_ROOT as REPO

#: the raw candidates keep every person box scoring at least this (the lowest threshold of any set)
RAW_CONF_FLOOR = 0.1


@dataclass(frozen=True)
class YoloSet:
    """One yolov5n detection set: score threshold, NMS IoU, input size; ``name`` is its det file stem."""

    conf: float
    iou: float
    imgsz: int

    @property
    def name(self) -> str:
        if (self.conf, self.iou, self.imgsz) == (0.1, 0.45, 640):
            return "yolov5n"  # the original set (`reid-pipeline detect --conf 0.1`), kept under its name
        return f"yolov5n-{self.imgsz}-c{round(self.conf * 100):02d}-n{round(self.iou * 100):02d}"


#: the issue's grid (score 0.25 / 0.4 / 0.5 x NMS IoU 0.45 / 0.6 x input 640 / 480) plus the original set
YOLO_SETS: tuple[YoloSet, ...] = (YoloSet(0.1, 0.45, 640),) + tuple(
    YoloSet(c, n, s) for s in (640, 480) for c in (0.25, 0.4, 0.5) for n in (0.45, 0.6))


def raw_candidates_path(seq_name: str, imgsz: int, root: Path | None = None) -> Path:
    return (root or REPO / "runs" / "dets") / seq_name / f"raw_yolov5n_{imgsz}.npz"


def save_candidates(path: Path, frames: list[int], cands: list) -> None:
    """Per-frame ``Candidates`` (one image size, one letterbox) -> one .npz (atomic write).

    Arrays: frame (K,) int64, tlbr (K, 4) network pixels, scores (K,), class_ids (K,), and the letterbox
    (scale, pad_x, pad_y) and image (width, height) shared by all frames; ``frames`` lists every frame run
    (also those without candidates)."""
    if not cands:
        raise ValueError("no frames to save")
    lb = cands[0].letterbox
    counts = [len(c.scores) for c in cands]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.npz")
    np.savez_compressed(
        tmp, frames_run=np.asarray(frames, np.int64), frame=np.repeat(np.asarray(frames, np.int64), counts),
        tlbr=np.concatenate([c.tlbr for c in cands]).reshape(-1, 4), scores=np.concatenate([c.scores for c in cands]),
        class_ids=np.concatenate([c.class_ids for c in cands]),
        letterbox=np.array([lb.scale, lb.pad_x, lb.pad_y]), size=np.array([cands[0].width, cands[0].height]))
    tmp.replace(path)


def load_candidates(path: Path) -> dict[int, "object"]:
    """.npz from :func:`save_candidates` -> {frame: Candidates} for every frame that was run."""
    from pipeline.detectors.geometry import Letterbox
    from pipeline.detectors.onnx_yolo import Candidates

    z = np.load(path)
    lb = Letterbox(*(float(v) for v in z["letterbox"]))
    w, h = (int(v) for v in z["size"])
    frame, order = z["frame"], np.argsort(z["frame"], kind="stable")
    starts = np.searchsorted(frame[order], z["frames_run"], side="left")
    ends = np.searchsorted(frame[order], z["frames_run"], side="right")
    out = {}
    for f, a, b in zip(z["frames_run"], starts, ends):
        idx = order[a:b]
        out[int(f)] = Candidates(z["tlbr"][idx], z["scores"][idx], z["class_ids"][idx], lb, w, h)
    return out


def det_rows(frame: int, dets) -> str:
    """One frame's detections as MOTChallenge det rows (the format of ``reid-pipeline detect``)."""
    out = []
    for d in dets:
        x, y, w, h = (float(v) for v in d.tlwh)
        out.append(f"{frame},-1,{x:.2f},{y:.2f},{w:.2f},{h:.2f},{d.score:.5f},-1,-1,-1\n")
    return "".join(out)


def derive_det_file(cands_by_frame: dict, conf: float, iou: float, out: Path) -> int:
    """Write the det file of one (conf, iou) variant from cached candidates; -> number of boxes."""
    if conf < RAW_CONF_FLOOR - 1e-12:
        raise ValueError(f"conf {conf} is below the raw candidates' floor {RAW_CONF_FLOOR}")
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    tmp = out.with_suffix(out.suffix + ".part")
    with open(tmp, "w") as fh:
        for f in sorted(cands_by_frame):
            dets = cands_by_frame[f].select(conf, iou)
            n += len(dets)
            fh.write(det_rows(f, dets))
    tmp.replace(out)
    return n


def run_raw_candidates(seq_dir: Path, weights: Path, imgsz: int, out: Path, batch: int = 4) -> Path:
    """Run yolov5n over every frame of a sequence once, NMS deferred, scores >= RAW_CONF_FLOOR -> ``out``."""
    from tqdm import tqdm

    from pipeline.detectors import DetectorConfig
    from pipeline.detectors.onnx_yolo import OnnxYoloDetector
    from pipeline.mot import MOTSequence

    seq = MOTSequence(seq_dir)
    det = OnnxYoloDetector(DetectorConfig(kind="onnx", weights=str(weights), conf=RAW_CONF_FLOOR, imgsz=imgsz,
                                          device="cpu"))
    frames: list[int] = []
    cands: list = []
    pending: list[tuple[int, np.ndarray]] = []
    n = seq.info.seq_length
    with tqdm(total=n, desc=f"yolov5n@{imgsz} {seq.name}", unit="fr") as bar:
        for frame, image in seq.iter_frames(1, n):
            pending.append((frame, image))
            if len(pending) == batch or frame == n:
                cands += det.candidates([im for _, im in pending])
                frames += [f for f, _ in pending]
                bar.update(len(pending))
                pending = []
    save_candidates(out, frames, cands)
    return out


def make_yolo_sets(pets: Path, weights: Path, sets: tuple[YoloSet, ...] = YOLO_SETS,
                   dets_root: Path | None = None) -> dict[str, Path]:
    """Build (cached) the det files of ``sets`` under runs/dets/<seq>/; -> {set name: det file}."""
    root = dets_root or REPO / "runs" / "dets"
    out: dict[str, Path] = {}
    for imgsz in sorted({s.imgsz for s in sets}, reverse=True):
        todo = [s for s in sets if s.imgsz == imgsz and not (root / pets.name / f"{s.name}.txt").exists()]
        for s in sets:
            if s.imgsz == imgsz:
                out[s.name] = root / pets.name / f"{s.name}.txt"
        if not todo:
            continue
        raw = raw_candidates_path(pets.name, imgsz, root)
        if not raw.exists():
            run_raw_candidates(pets, weights, imgsz, raw)
        cands = load_candidates(raw)
        for s in todo:
            n = derive_det_file(cands, s.conf, s.iou, out[s.name])
            print(f"wrote {out[s.name]} ({n} boxes)")
    return out


def det_sequence(pets: Path, out_root: Path, det_name: str, det_file: Path) -> Path:
    """A sequence folder (symlinks to ``pets``) whose det/<det_name>.txt is ``det_file``."""
    seq_dir = out_root / "seqs" / det_name / pets.name
    (seq_dir / "det").mkdir(parents=True, exist_ok=True)
    for name in ("seqinfo.ini", "img1", "gt"):
        link = seq_dir / name
        if not link.exists():
            link.symlink_to(pets / name)
    link = seq_dir / "det" / f"{det_name}.txt"
    if link.is_symlink() and link.resolve() != det_file.resolve():
        link.unlink()
    if not link.exists():
        link.symlink_to(det_file.resolve())
    return seq_dir


def yolov5n_sequence(pets: Path, out_root: Path) -> Path:
    """A sequence folder (symlinks to PETS09-S2L1) whose det/yolov5n.txt holds the project's detections."""
    det = REPO / "runs" / "dets" / pets.name / "yolov5n.txt"
    if not det.exists():
        weights = pets.parents[3] / "weights" / "yolov5n.onnx"
        subprocess.run([sys.executable, "-m", "pipeline", "detect", str(pets), "--weights", str(weights),
                        "--out", str(det), "--conf", "0.1"], check=True, cwd=REPO)
    return det_sequence(pets, out_root, "yolov5n", det)


CONFIG_BY_DET = {"frcnn": "default", "det": "acf", "yolov5n": "yolo"}


def config_name(det: str, seq=None) -> str:
    """Detector family -> config stem: every yolov5n* set uses yolo.yaml; a set of another name gets the preset its
    scores in ``seq`` call for (:func:`trackers.presets.choose_preset`, as ``benchmark mot --config auto``), or
    ``default`` without ``seq``."""
    if det.startswith("yolov5n"):
        return CONFIG_BY_DET["yolov5n"]
    if det in CONFIG_BY_DET or seq is None:
        return CONFIG_BY_DET.get(det, "default")
    from trackers.presets import choose_preset

    return choose_preset(seq.det(det).conf)[0]


def ours_config(variant: str, det: str, seq=None):
    """(config, path): the detector's config (``seq``: the sequence, for a set of an unknown name: the config
    ``--config auto`` gives it, score range included); ``ours_motion`` with appearance switched off."""
    from trackers.config import config_for_scores, load_tracker_config
    from trackers.presets import preset_path

    cfg_path = preset_path(config_name(det, seq))
    if det in CONFIG_BY_DET or det.startswith("yolov5n") or seq is None:
        config = load_tracker_config(cfg_path)
    else:
        config = config_for_scores(seq.det(det).conf)[0]
    if variant == "ours_motion":
        config = config.model_copy(update={"appearance": config.appearance.model_copy(update={"enabled": False})})
    return config, cfg_path


def emb_cache_path(encoder) -> Path:
    """Where the benchmark tools keep the box embeddings of one AppearanceEncoder
    (runs/bench_mot/emb_cache/<encoder.embedding_key>.npz: weights version, crop resize rule, flip)."""
    return REPO / "runs" / "bench_mot" / "emb_cache" / f"{encoder.embedding_key}.npz"


class BoxCachedEncoder:
    """Embeds each (frame image, tlwh) once with ``inner`` (an AppearanceEncoder); later calls replay the
    stored rows. The detection sets share most boxes (variants derived from the same candidates), so a
    benchmark over all of them embeds each box once."""

    def __init__(self, inner, path: Path | None = None) -> None:
        """``path``: an .npz of earlier embeddings of the same encoder (loaded when present and made under the
        same ``embedding_key``; written by :meth:`save`), so runs of the benchmark tools do not re-embed the
        same boxes."""
        self.inner = inner
        self.version = inner.version
        self.key = inner.embedding_key
        self.cache: dict[tuple, np.ndarray] = {}
        self.path = path
        self._saved = 0
        if path is not None:  # the file itself and parts written alongside it (<stem>.<part>.npz)
            for part in sorted(path.parent.glob(f"{path.stem}*.npz")):
                if part.name.endswith(".part.npz"):
                    continue
                z = np.load(part, allow_pickle=False)
                if "key" in z.files and str(z["key"]) == self.key:  # files without a key predate the resize fix
                    for img, box, f in zip(z["image"], z["box"], z["emb"]):
                        self.cache[(str(img), *(float(v) for v in box))] = f
            self._saved = len(self.cache)

    def save(self) -> None:
        """Write the cache to ``path`` (atomic; only when it grew)."""
        if self.path is None or len(self.cache) == self._saved or not self.cache:
            return
        keys = list(self.cache)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".part.npz")
        np.savez(tmp, version=np.array(self.version), key=np.array(self.key), image=np.array([k[0] for k in keys]),
                 box=np.array([k[1:] for k in keys], dtype=np.float64),
                 emb=np.stack([self.cache[k] for k in keys]).astype(np.float32))
        tmp.replace(self.path)
        self._saved = len(keys)

    def embed_boxes(self, image: np.ndarray, boxes_tlwh: np.ndarray) -> np.ndarray:
        """(H, W, 3) image, (N, 4) tlwh -> (N, D) embeddings."""
        import hashlib

        key_img = hashlib.sha1(np.ascontiguousarray(image[::8, ::8]).tobytes()).hexdigest()
        keys = [(key_img, *(float(v) for v in np.round(b, 2))) for b in np.asarray(boxes_tlwh, dtype=np.float64)]
        todo = [i for i, k in enumerate(keys) if k not in self.cache]
        if todo:
            feats = self.inner.embed_boxes(image, np.asarray(boxes_tlwh)[todo])
            for i, f in zip(todo, feats):
                self.cache[keys[i]] = f
        if not keys:
            return np.zeros((0, self.inner.dim), dtype=np.float32)
        return np.stack([self.cache[k] for k in keys])
