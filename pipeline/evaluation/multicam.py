"""Multi-camera evaluation: per-camera CLEAR/ID metrics plus one cross-camera global IDF1.

The global IDF1 follows the MTMC IDF1 of DukeMTMC (Ristani et al. 2016): the
ground truth and the results of all cameras are concatenated into one long
sequence whose frame numbers are made camera-unique (camera k's frame f
becomes ``k * stride + f``), gt ids are replaced by their global ids
(``identities.json``) and result ids are the pipeline's global ids; then ONE
identity mapping between gt and result identities is solved over all cameras.
A person given different global ids in two cameras therefore costs global
IDF1 even when each camera alone is perfect.

Layout: ``gt_root/<cam>/gt/gt.txt`` (+ ``seqinfo.ini``) and
``gt_root/identities.json`` ({"cameras": {cam: {"local gt id": global id}}}),
as written by ``reid-pipeline virtual-cameras``; results ``results_dir/<cam>.txt``
(MOTChallenge rows with global ids, e.g. the runner's ``outputs/mot_global``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.core.errors import DataError
from pipeline.evaluation.sequences import evaluate, evaluate_sequence
from pipeline.mot import MOTBoxes, read_mot_file
from pipeline.mot.boxes import check_unique_ids

#: per-camera metrics whose denominator is the camera's result rows: None for a camera without any
UNDEFINED_WITHOUT_RESULTS = ("IDP", "Prcn", "MOTP")
GLOBAL_KEYS = ("IDF1", "IDP", "IDR", "MOTA", "IDSW", "FP", "FN")


@dataclass
class MultiCamReport:
    """per_camera: cam -> metric dict (H1's keys); overall: all cameras pooled as separate
    sequences; global_: the cross-camera metrics (IDF1, IDP, IDR, ...) with one id mapping."""

    per_camera: dict[str, dict[str, float]]
    overall: dict[str, float]
    global_: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"per_camera": self.per_camera, "overall": self.overall, "global": self.global_,
                "notes": self.notes}

    def table(self) -> str:
        keys = ("MOTA", "IDF1", "IDP", "IDR", "IDSW", "FP", "FN")
        lines = [f"{'camera':16s}" + "".join(f"{k:>9s}" for k in keys)]
        rows = list(self.per_camera.items()) + [("OVERALL", self.overall), ("GLOBAL (x-cam)", self.global_)]
        for name, m in rows:
            lines.append(f"{name:16s}" + "".join(_fmt(k, m.get(k)) for k in keys))
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _fmt(key: str, v: float | None) -> str:
    if v is None:
        return f"{'-':>9s}"
    return f"{int(v):9d}" if key in ("IDSW", "FP", "FN") else f"{float(v):9.1f}"


def load_identity_map(gt_root: Path) -> dict[str, dict[int, int]]:
    """cam -> {local gt id: global id} from ``gt_root/identities.json`` (DataError when malformed)."""
    path = Path(gt_root) / "identities.json"
    if not path.is_file():
        raise DataError(path, "missing: the global identity map of the cameras (written by virtual-cameras)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(cam): {int(k): int(v) for k, v in ids.items()} for cam, ids in data["cameras"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(path, f"malformed identity map: {exc!r}") from None


def relabel(boxes: MOTBoxes, id_map: dict[int, int], where: Path) -> MOTBoxes:
    """A copy of ``boxes`` with ids mapped local -> global; DataError for an unmapped id."""
    ids = boxes.ids.copy()
    for local in np.unique(boxes.ids):
        if int(local) not in id_map:
            raise DataError(where, f"gt id {int(local)} has no global id in identities.json")
        ids[boxes.ids == local] = id_map[int(local)]
    return _with(boxes, ids=ids)


def _with(boxes: MOTBoxes, **changes: np.ndarray) -> MOTBoxes:
    cols = {k: getattr(boxes, k) for k in ("frame", "ids", "tlwh", "conf", "cls", "vis")}
    cols.update(changes)
    return MOTBoxes(**cols)


def concat_cameras(parts: list[MOTBoxes], stride: int) -> MOTBoxes:
    """One sequence from per-camera boxes: camera k's frame f -> k * stride + f (stride > max frame)."""
    shifted = [_with(b, frame=b.frame + k * stride) for k, b in enumerate(parts)]
    cols = {k: np.concatenate([getattr(b, k) for b in shifted]) for k in ("frame", "ids", "tlwh", "conf", "cls", "vis")}
    cols["tlwh"] = cols["tlwh"].reshape(-1, 4)
    return MOTBoxes(**cols)


def _empty_like(gt: MOTBoxes) -> MOTBoxes:
    return gt.select(np.zeros(len(gt), dtype=bool))


def evaluate_multicam(gt_root: Path, results_dir: Path, benchmark: str = "MOT15",
                      cams: list[str] | None = None) -> MultiCamReport:
    """Per-camera metrics (H1's evaluator) and the cross-camera global IDF1 over ``cams`` (default: all in the map).

    A camera without its ``<cam>.txt`` is scored as empty results (with a note); a results folder that is
    missing, not a folder, or holds no ``<cam>.txt`` of any of ``cams`` is a DataError (a wrong path, not a run
    that found nobody)."""
    gt_root, results_dir = Path(gt_root), Path(results_dir)
    id_maps = load_identity_map(gt_root)
    cams = sorted(id_maps) if cams is None else list(cams)
    check_cams(cams)
    check_results_dir(results_dir, cams)
    notes, pairs, gts, ress = [], [], [], []
    for cam in cams:
        gt_path = gt_root / cam / "gt" / "gt.txt"
        # as `eval` (pipeline/evaluation/dirs.py) and the official evaluator: rows past the camera's seqLength
        # are a DataError naming the file (results of a longer or later frame range than this gt)
        length = _seq_length(gt_root / cam)
        gt = relabel(read_mot_file(gt_path, "gt", max_frame=length), id_maps.get(cam, {}), gt_path)
        res_path = results_dir / f"{cam}.txt"
        if res_path.is_file():
            res = read_mot_file(res_path, "result", max_frame=length)
            check_unique_ids(res_path, res, "tracker")
            if length is not None and len(res) and len(gt) and int(res.frame.max()) < int(gt.frame.min()):
                notes.append(f"{res_path}: its rows end at frame {int(res.frame.max())}, before the gt's first"
                             f" frame {int(gt.frame.min())}: results of another frame range?")
        else:
            notes.append(f"{res_path}: missing, camera scored as empty results")
            res = _empty_like(gt)
        pairs.append((cam, gt, res))
        gts.append(gt)
        ress.append(res)
    report = evaluate(pairs, benchmark=benchmark, workers=1)
    stride = 1 + max([int(b.frame.max()) for b in gts + ress if len(b)] + [0])
    glob = evaluate_sequence(concat_cameras(gts, stride), concat_cameras(ress, stride), benchmark, "global")
    metrics = _metrics_of(glob)
    per_camera = {k: dict(v) for k, v in report.per_sequence.items()}
    for cam, _, res in pairs:  # no result rows: precision and MOTP are 0/0, undefined (printed '-')
        if not len(res) and cam in per_camera:
            per_camera[cam].update({k: None for k in UNDEFINED_WITHOUT_RESULTS if k in per_camera[cam]})
    return MultiCamReport(
        per_camera=per_camera,
        overall=dict(report.overall),
        global_={k: metrics[k] for k in GLOBAL_KEYS if k in metrics},
        notes=notes,
    )


def _seq_length(cam_dir: Path) -> int | None:
    """The camera's seqLength from ``cam_dir/seqinfo.ini`` (virtual-cameras writes it), None without one."""
    if not (cam_dir / "seqinfo.ini").is_file():
        return None
    from pipeline.mot.seqinfo import read_seqinfo

    return int(read_seqinfo(cam_dir).seq_length)


def check_cams(cams: list[str]) -> None:
    """ConfigError for an empty ``--cams`` or a camera named twice."""
    from pipeline.core.errors import ConfigError

    if not cams:
        raise ConfigError("--cams: no camera named (leave it out to evaluate every camera of identities.json)")
    twice = sorted({c for c in cams if cams.count(c) > 1})
    if twice:
        raise ConfigError(f"--cams: {', '.join(twice)} named more than once")


def check_results_dir(results_dir: Path, cams: list[str]) -> None:
    """DataError naming ``results_dir`` unless it is a folder holding ``<cam>.txt`` for at least one of ``cams``."""
    expected = ", ".join(f"{c}.txt" for c in cams[:6]) + (", ..." if len(cams) > 6 else "")
    if not results_dir.exists():
        raise DataError(results_dir, f"no such results folder (expected one with {expected}, e.g. a run's"
                                     " outputs/mot_global)")
    if not results_dir.is_dir():
        raise DataError(results_dir, f"not a folder: --results is the folder that holds {expected}")
    if not any((results_dir / f"{c}.txt").is_file() for c in cams):
        found = sorted(p.name for p in results_dir.iterdir())
        held = f"it holds {', '.join(found[:6])}{', ...' if len(found) > 6 else ''}" if found else "it is empty"
        raise DataError(results_dir, f"no result file for any gt camera (expected {expected}; {held})")


def _metrics_of(result) -> dict[str, float]:
    """The metric dict of H1's SequenceResult (``.metrics`` or a mapping)."""
    if isinstance(result, dict):
        return result
    for attr in ("metrics", "summary"):
        if hasattr(result, attr):
            return dict(getattr(result, attr))
    raise TypeError(f"unexpected SequenceResult {type(result).__name__}")


def handover_stats(gt_root: Path) -> dict[str, int]:
    """The hand-overs a multi-camera gt makes possible, on the source clock.

    Local gt frames are put back on the source clock with each cut's first frame ``f0``
    (``identities.json`` "cuts"; without it local frames are taken as common). Per global id:
    the set of source frames it is in some camera's gt, and the cameras of each frame.
    Returns ``ids`` (global ids), ``ids_multi_camera`` (seen by > 1 camera),
    ``reappear_events`` (the id is in no camera for >= 1 frame, then in one again),
    ``reappear_ids`` (ids with >= 1 such event) and ``reappear_other_camera`` (events whose
    re-appearance is in none of the cameras of its last sighting: a blind hand-over).
    """
    gt_root = Path(gt_root)
    id_maps = load_identity_map(gt_root)
    data = json.loads((gt_root / "identities.json").read_text(encoding="utf-8"))
    starts = {cam: int(c.get("f0", 1)) for cam, c in data.get("cuts", {}).items()}
    seen: dict[int, dict[int, set[str]]] = {}  # global id -> source frame -> cameras
    for cam in sorted(id_maps):
        gt_path = gt_root / cam / "gt" / "gt.txt"
        gt = relabel(read_mot_file(gt_path, "gt"), id_maps[cam], gt_path)
        for f, i in zip(gt.frame.astype(int) + starts.get(cam, 1) - 1, gt.ids.astype(int)):
            seen.setdefault(int(i), {}).setdefault(int(f), set()).add(cam)
    events = ids_re = other = 0
    for frames in seen.values():
        order = sorted(frames)
        jumps = [(a, b) for a, b in zip(order, order[1:]) if b > a + 1]
        events += len(jumps)
        ids_re += bool(jumps)
        other += sum(not (frames[a] & frames[b]) for a, b in jumps)
    return {"ids": len(seen), "ids_multi_camera": sum(len(set().union(*v.values())) > 1 for v in seen.values()),
            "reappear_events": events, "reappear_ids": ids_re, "reappear_other_camera": other}


def perfect_linking_labels(tracklets, gt_root: Path, min_iou: float = 0.5) -> dict[int, int]:
    """Each tracklet's gt global id by majority vote of its boxes (IoU > ``min_iou`` with the best-overlapping
    gt box of its camera and frame); a tracklet without any such box keeps 100000 + its id. Written as
    global ids, these labels link the tracklets perfectly: the ceiling of any cross-camera linking of them.

    tracklets: stored tracklets with ``tracklet_id``, ``cam_id``, ``frames`` (local MOT frames) and
    ``boxes_tlwh`` ((K, 4)); gt_root: the cameras' gt as :func:`evaluate_multicam` reads it.
    """
    from collections import Counter

    id_maps = load_identity_map(gt_root)
    gts = {cam: read_mot_file(Path(gt_root) / cam / "gt" / "gt.txt", "gt") for cam in id_maps}
    labels = {}
    for t in tracklets:
        gt, votes = gts[t.cam_id], Counter()
        for f, b in zip(t.frames, np.asarray(t.boxes_tlwh, dtype=np.float64).reshape(-1, 4)):
            rows = gt.frame == f
            if not rows.any():
                continue
            r = gt.tlwh[rows]
            x1, y1 = np.maximum(b[0], r[:, 0]), np.maximum(b[1], r[:, 1])
            x2, y2 = np.minimum(b[0] + b[2], r[:, 0] + r[:, 2]), np.minimum(b[1] + b[3], r[:, 1] + r[:, 3])
            inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
            iou = inter / (b[2] * b[3] + r[:, 2] * r[:, 3] - inter)
            k = int(iou.argmax())
            if iou[k] > min_iou:
                votes[id_maps[t.cam_id][int(gt.ids[rows][k])]] += 1
        labels[t.tracklet_id] = votes.most_common(1)[0][0] if votes else 100000 + t.tracklet_id
    return labels
