"""Virtual multi-camera data from one MOTChallenge sequence (no real multi-camera set is obtainable).

A *cut* is one virtual camera: a rectangular region of the source frame
(tlbr pixels, ``x1``/``y1`` exclusive) and a window of source frames. Layouts:

* ``two-regions``: left and right parts of the frame with a vertical gap strip
  (``gap`` = fraction of the width) between them; people walking across cross
  the blind strip, so hand-overs take a moment;
* ``grid``: 2 x 2 regions with gap strips in both directions;
* ``time-windows``: the full frame cut into ``n`` windows of frames with gaps
  (``gap`` = fraction of the length) between them; camera k starts
  ``time_offset_s`` later on the common clock;
* ``regions-windows``: two regions (left/right, blind strip ``gap``) times ``n``
  recording windows with gaps (``time_gap`` = fraction of the length per gap,
  centred at the fractions ``splits``): camera ``left2`` sees what ``left1``
  saw, after a pause. Every camera keeps the whole frame range and the common
  frame clock; outside its window its frames are black and it has no gt
  (``CameraCut.on``), so a batch run, which reads one frame of every camera per
  step, feeds the matcher in time order;
* ``overlap``: ``n`` columns of equal width; columns 1 and 2 overlap by
  ``overlap`` (fraction of the width), every other neighbour pair is separated
  by a blind strip ``gap``. :func:`overlapping_pairs` finds the overlapping pair
  (for ``matching.overlapping_cameras``).

Ground truth is re-expressed in each camera's coordinates: boxes clipped to
the region and kept only when at least ``min_visible`` of their area lies
inside; frames renumbered from the cut's first frame. Gt ids of the source are
global already; ``identities.json`` writes the local -> global map explicitly.
Detections of the full source frames are re-expressed the same way
(:func:`cut_detections`), so one detector pass serves every layout.

A build is complete when its ``identities.json`` exists (:func:`is_complete`): a build removes it first and
writes it last, and each video is written as ``video.part.mp4`` and renamed when whole, so an interrupted build
leaves no full-named truncated video and no marker (``reid-pipeline run`` rebuilds such a demo folder).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.core.errors import ConfigError

LAYOUTS = ("two-regions", "time-windows", "grid", "regions-windows", "overlap")
#: written last by :func:`build_virtual_cameras`: a folder without it is a build that did not finish
COMPLETE_MARKER = "identities.json"


@dataclass(frozen=True)
class CameraCut:
    """One virtual camera: region [x0, x1) x [y0, y1) of the source, source frames [f0, f1] (1-based).

    on: the source frames [a, b] the camera records (None: all of [f0, f1]); its other frames
    are black and carry no gt.
    """

    cam_id: str
    x0: int
    y0: int
    x1: int
    y1: int
    f0: int
    f1: int
    time_offset_s: float = 0.0
    on: tuple[int, int] | None = None

    def records(self, frames: np.ndarray) -> np.ndarray:
        """(N,) bool: which 1-based source frames fall in [f0, f1] and in ``on``."""
        frames = np.asarray(frames)
        keep = (frames >= self.f0) & (frames <= self.f1)
        if self.on is not None:
            keep &= (frames >= self.on[0]) & (frames <= self.on[1])
        return keep

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def length(self) -> int:
        return self.f1 - self.f0 + 1


def _even(v: float) -> int:
    """Largest even int <= v (video encoders want even sizes)."""
    i = int(np.floor(v))
    return i - i % 2


def plan_layout(
    layout: str, width: int, height: int, f0: int, f1: int, fps: float, gap: float = 0.1, n: int = 2,
    time_gap: float = 0.05, splits: tuple[float, ...] | None = None, overlap: float = 1 / 12,
) -> list[CameraCut]:
    """The cuts of a layout over source frames [f0, f1]; ConfigError for a bad layout/gap.

    ``n``: time windows (time-windows, regions-windows) or columns (overlap); ``time_gap``,
    ``splits``: regions-windows only; ``overlap``: overlap only.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"layout: unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    if not 0.0 <= gap < 1.0:
        raise ConfigError(f"gap: must be in [0, 1), got {gap}")
    if layout == "two-regions":
        w = _even(width * (1.0 - gap) / 2.0)
        return [CameraCut("left", 0, 0, w, height, f0, f1), CameraCut("right", width - w, 0, width, height, f0, f1)]
    if layout == "grid":
        w, h = _even(width * (1.0 - gap) / 2.0), _even(height * (1.0 - gap) / 2.0)
        xs, ys = ((0, w), (width - w, width)), ((0, h), (height - h, height))
        names = (("top_left", "top_right"), ("bottom_left", "bottom_right"))
        return [CameraCut(names[r][c], xs[c][0], ys[r][0], xs[c][1], ys[r][1], f0, f1)
                for r in range(2) for c in range(2)]
    if layout == "regions-windows":
        return _regions_windows(width, height, f0, f1, gap, n, time_gap, splits)
    if layout == "overlap":
        return _overlap_columns(width, height, f0, f1, gap, n, overlap)
    if n < 2:
        raise ConfigError(f"cams: time-windows needs >= 2 cameras, got {n}")
    total = f1 - f0 + 1
    length = int(np.floor(total * (1.0 - gap) / n))
    if length < 1:
        raise ConfigError(f"frames: {total} frames are too few for {n} windows")
    step = length + (total - n * length) // (n - 1)
    return [
        CameraCut(f"window{k + 1}", 0, 0, width, height, f0 + k * step, f0 + k * step + length - 1,
                  time_offset_s=(k * step) / fps)
        for k in range(n)
    ]


def _recording_windows(f0: int, f1: int, n: int, time_gap: float,
                       splits: tuple[float, ...] | None) -> list[tuple[int, int]]:
    """``n`` windows of [f0, f1] separated by gaps of ``time_gap`` x length frames centred at the
    fractions ``splits`` (default k/n); ConfigError when they do not fit."""
    if n < 2:
        raise ConfigError(f"cams: regions-windows needs >= 2 time windows, got {n}")
    if not 0.0 < time_gap < 1.0 / n:
        raise ConfigError(f"time_gap: must be in (0, 1/{n}), got {time_gap}")
    splits = tuple(k / n for k in range(1, n)) if splits is None else tuple(splits)
    if len(splits) != n - 1 or any(not 0.0 < a < 1.0 for a in splits) or list(splits) != sorted(splits):
        raise ConfigError(f"splits: need {n - 1} increasing fractions in (0, 1), got {list(splits)}")
    total = f1 - f0 + 1
    g = max(1, int(round(total * time_gap)))
    bounds, start = [], f0
    for a in splits:
        gap_start = f0 + int(round(total * a)) - g // 2
        bounds.append((start, gap_start - 1))
        start = gap_start + g
    bounds.append((start, f1))
    if any(b < a for a, b in bounds):
        raise ConfigError(f"splits: windows {bounds} of frames {f0}:{f1} are empty")
    return bounds


def _regions_windows(width: int, height: int, f0: int, f1: int, gap: float, n: int, time_gap: float,
                     splits: tuple[float, ...] | None) -> list[CameraCut]:
    """left/right regions (blind strip ``gap``) x ``n`` recording windows: left1, right1, left2, ..."""
    w = _even(width * (1.0 - gap) / 2.0)
    return [CameraCut(f"{side}{k + 1}", x0, 0, x1, height, f0, f1, on=on)
            for k, on in enumerate(_recording_windows(f0, f1, n, time_gap, splits))
            for side, x0, x1 in (("left", 0, w), ("right", width - w, width))]


def _overlap_columns(width: int, height: int, f0: int, f1: int, gap: float, n: int,
                     overlap: float) -> list[CameraCut]:
    """``n`` equal columns col1..coln: col1/col2 share ``overlap`` x width pixels, the others are
    ``gap`` x width apart. Width w solves n w - overlap W + (n - 2) gap W = W."""
    if n < 2:
        raise ConfigError(f"cams: overlap needs >= 2 columns, got {n}")
    if not 0.0 < overlap < 0.5:
        raise ConfigError(f"overlap: must be in (0, 0.5), got {overlap}")
    o, g = int(round(width * overlap)), int(round(width * gap))
    w = (width + o - (n - 2) * g) // n
    if w <= o or w < 2:
        raise ConfigError(f"overlap: {n} columns with overlap {overlap} and gap {gap} do not fit {width} px")
    xs = [0, w - o]
    for _ in range(n - 2):
        xs.append(xs[-1] + w + g)
    return [CameraCut(f"col{k + 1}", x, 0, x + w, height, f0, f1) for k, x in enumerate(xs)]


def overlapping_pairs(cuts: list[CameraCut]) -> list[list[str]]:
    """[[a, b], ...]: pairs of cameras whose regions intersect while both record (for
    ``matching.overlapping_cameras``: only they may see one person at the same time)."""
    pairs = []
    for i, a in enumerate(cuts):
        for b in cuts[i + 1:]:
            ra, rb = a.on or (a.f0, a.f1), b.on or (b.f0, b.f1)
            space = min(a.x1, b.x1) > max(a.x0, b.x0) and min(a.y1, b.y1) > max(a.y0, b.y0)
            if space and min(ra[1], rb[1]) >= max(ra[0], rb[0]):
                pairs.append([a.cam_id, b.cam_id])
    return pairs


def cut_boxes(
    frames: np.ndarray, ids: np.ndarray, tlwh: np.ndarray, cut: CameraCut, min_visible: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-express source gt rows in a cut's coordinates.

    frames: (N,) 1-based source frames; ids: (N,); tlwh: (N, 4) source pixels.
    Returns (local frames (K,), ids (K,), tlwh (K, 4) clipped to the region, in
    region pixels) for rows inside the frame window whose clipped area is at
    least ``min_visible`` of their full area.
    """
    frames = np.asarray(frames, dtype=np.int64)
    tlwh = np.asarray(tlwh, dtype=np.float64).reshape(-1, 4)
    x0 = np.clip(tlwh[:, 0], cut.x0, cut.x1)
    y0 = np.clip(tlwh[:, 1], cut.y0, cut.y1)
    x1 = np.clip(tlwh[:, 0] + tlwh[:, 2], cut.x0, cut.x1)
    y1 = np.clip(tlwh[:, 1] + tlwh[:, 3], cut.y0, cut.y1)
    area = tlwh[:, 2] * tlwh[:, 3]
    inside = (x1 - x0) * (y1 - y0)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(area > 0, inside / area, 0.0)
    keep = cut.records(frames) & (frac >= min_visible) & (inside > 0)
    local = np.stack([x0 - cut.x0, y0 - cut.y0, x1 - x0, y1 - y0], axis=1)[keep]
    return frames[keep] - cut.f0 + 1, np.asarray(ids, dtype=np.int64)[keep], local


def cut_detections(frames: np.ndarray, tlwh: np.ndarray, scores: np.ndarray, cut: CameraCut,
                   min_visible: float = 0.5) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Detections of the full source frames as the cut's camera sees them (the gt rule of
    :func:`cut_boxes`: clipped to the region, kept when >= ``min_visible`` of the box is inside).

    frames: (N,) 1-based source frames; tlwh: (N, 4) source pixels; scores: (N,).
    Returns local frame -> (tlwh (K, 4) region pixels, scores (K,)); frames without any are absent.
    """
    scores = np.asarray(scores, dtype=np.float64)
    lf, rows, box = cut_boxes(frames, np.arange(len(scores)), tlwh, cut, min_visible)
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for f in np.unique(lf):
        m = lf == f
        out[int(f)] = (box[m], scores[rows[m]])
    return out


def write_seqinfo(path: Path, name: str, fps: float, length: int, width: int, height: int,
                  im_dir: str = "img1", im_ext: str = ".jpg") -> None:
    """A MOTChallenge ``seqinfo.ini``."""
    path.write_text(
        f"[Sequence]\nname={name}\nimDir={im_dir}\nframeRate={fps:g}\nseqLength={length}\n"
        f"imWidth={width}\nimHeight={height}\nimExt={im_ext}\n",
        encoding="utf-8",
    )


def write_gt(path: Path, frames: np.ndarray, ids: np.ndarray, tlwh: np.ndarray) -> None:
    """MOT15-style gt rows ``frame,id,x,y,w,h,1,-1,-1,-1`` sorted by frame then id."""
    path.parent.mkdir(parents=True, exist_ok=True)
    order = np.lexsort((ids, frames))
    with open(path, "w", encoding="utf-8") as fh:
        for i in order:
            x, y, w, h = tlwh[i]
            fh.write(f"{frames[i]},{ids[i]},{x:.3f},{y:.3f},{w:.3f},{h:.3f},1,-1,-1,-1\n")


def write_identities(out_dir: Path, source: str, layout: str, cuts: list[CameraCut],
                     ids_per_cam: dict[str, np.ndarray], overlapping: list[list[str]] | None = None) -> Path:
    """``identities.json``: {"cameras": {cam: {"local id": global id}}, "source", "layout", "cuts",
    "overlapping_cameras": [[a, b], ...]}."""
    data = {
        "source": source,
        "layout": layout,
        "cameras": {cam: {str(int(i)): int(i) for i in np.unique(ids)} for cam, ids in ids_per_cam.items()},
        "cuts": {c.cam_id: asdict(c) for c in cuts},
        "overlapping_cameras": overlapping or [],
    }
    path = out_dir / COMPLETE_MARKER
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)  # whole or absent: it marks a complete build
    return path


def is_complete(out_dir: Path) -> bool:
    """True when ``out_dir`` holds a complete build: its ``identities.json``, written last, exists (a build
    interrupted by Ctrl-C or a kill leaves none, whatever camera files it got to)."""
    return (Path(out_dir) / COMPLETE_MARKER).is_file()


def read_cuts(out_dir: Path) -> list[CameraCut]:
    """The cuts a build wrote to ``out_dir/identities.json``, in the layout's order."""
    data = json.loads((Path(out_dir) / "identities.json").read_text(encoding="utf-8"))
    return [CameraCut(**{**c, "on": tuple(c["on"]) if c.get("on") else None}) for c in data["cuts"].values()]


def write_cams_yaml(out_dir: Path, cuts: list[CameraCut], sources: dict[str, Path], extra: dict | None = None) -> Path:
    """A minimal ``cams.yaml`` for the runner: one camera per cut (absolute paths).

    ``time_offset_s`` is written only for cuts that start later on the common clock.
    """
    import yaml

    cams = []
    for c in cuts:
        entry: dict = {"id": c.cam_id, "source": str(sources[c.cam_id].resolve())}
        if c.time_offset_s:
            entry["time_offset_s"] = round(c.time_offset_s, 6)
        cams.append(entry)
    data = {"mode": "batch", "run_key": f"virtual-{out_dir.name}", "cameras": cams,
            "store": {"path": str((out_dir / "identities.sqlite").resolve())},
            "outputs": {"dir": str((out_dir / "outputs").resolve())}}
    data.update(extra or {})
    path = out_dir / "cams.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _partial_video(out_dir: Path, cam_id: str) -> Path:
    """Where a camera's video is written until it is complete (then renamed to ``video.mp4``)."""
    return out_dir / cam_id / "video.part.mp4"


def _open_writers(cuts: list[CameraCut], out_dir: Path, fmt: str, fps: float) -> dict[str, object]:
    """Per cut: a cv2.VideoWriter (fmt 'mp4', writing :func:`_partial_video`) or the image folder Path (fmt
    'images', emptied first: frames of an earlier build never stay beside the new ones)."""
    import cv2

    writers: dict[str, object] = {}
    for c in cuts:
        cam_dir = out_dir / c.cam_id
        if fmt == "mp4":
            cam_dir.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(cam_dir / "img1", ignore_errors=True)  # an earlier --format images build's frames
            path = _partial_video(out_dir, c.cam_id)
            w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (c.width, c.height))
            if not w.isOpened():
                raise ConfigError(f"{path}: cv2.VideoWriter cannot write mp4v")
            writers[c.cam_id] = w
        else:
            shutil.rmtree(cam_dir / "img1", ignore_errors=True)
            (cam_dir / "video.mp4").unlink(missing_ok=True)  # an earlier mp4 build's video
            (cam_dir / "img1").mkdir(parents=True, exist_ok=True)
            writers[c.cam_id] = cam_dir / "img1"
    return writers


def write_media(frames, cuts: list[CameraCut], out_dir: Path, fmt: str, fps: float) -> dict[str, Path]:
    """Crop every source frame into the cuts it belongs to; returns cam -> video file or image folder.

    frames: iterable of (1-based source frame, BGR image) covering the cuts' windows in order.
    """
    import cv2

    writers = _open_writers(cuts, out_dir, fmt, fps)
    try:
        for f, image in frames:
            for c in cuts:
                if not c.f0 <= f <= c.f1:
                    continue
                crop = np.ascontiguousarray(image[c.y0:c.y1, c.x0:c.x1])
                if c.on is not None and not c.on[0] <= f <= c.on[1]:
                    crop = np.zeros_like(crop)  # the camera does not record now
                w = writers[c.cam_id]
                if isinstance(w, Path):
                    cv2.imwrite(str(w / f"{f - c.f0 + 1:06d}.jpg"), crop)
                else:
                    w.write(crop)
    finally:
        for w in writers.values():
            if not isinstance(w, Path):
                w.release()
    if fmt == "mp4":  # complete: the videos take their names (a half-written one never has it)
        for c in cuts:
            if _partial_video(out_dir, c.cam_id).exists():
                os.replace(_partial_video(out_dir, c.cam_id), out_dir / c.cam_id / "video.mp4")
    return {c.cam_id: (out_dir / c.cam_id / ("video.mp4" if fmt == "mp4" else "img1")) for c in cuts}


def build_virtual_cameras(
    seq_dir: Path, out_dir: Path, layout: str = "two-regions", gap: float = 0.1, n: int = 2,
    frame_range: tuple[int, int] | None = None, fmt: str = "mp4", min_visible: float = 0.5,
    video: Path | None = None, progress: bool = True, time_gap: float = 0.05,
    splits: tuple[float, ...] | None = None, overlap: float = 1 / 12,
) -> dict:
    """Write the virtual cameras of ``seq_dir`` under ``out_dir``; returns a summary dict.

    Layout per camera: out_dir/<cam>/{seqinfo.ini, gt/gt.txt, video.mp4 | img1/}; plus
    out_dir/identities.json and out_dir/cams.yaml (with ``matching.overlapping_cameras`` when
    two regions overlap). Layout parameters: :func:`plan_layout`.
    """
    from pipeline.mot import MOTSequence

    seq = MOTSequence(Path(seq_dir), video=video)
    info = seq.info
    f0, f1 = frame_range or (1, info.seq_length)
    f0, f1 = max(1, f0), min(info.seq_length, f1)
    if f1 < f0:
        raise ConfigError(f"frames: empty range {f0}:{f1} for {info.name} ({info.seq_length} frames)")
    cuts = plan_layout(layout, info.im_width, info.im_height, f0, f1, info.frame_rate, gap, n, time_gap, splits,
                       overlap)
    pairs = overlapping_pairs(cuts)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / COMPLETE_MARKER).unlink(missing_ok=True)  # incomplete until this build writes it, last
    gt = seq.gt()
    ids_per_cam: dict[str, np.ndarray] = {}
    summary: dict = {"source": info.name, "layout": layout, "frames": [f0, f1], "cameras": {}}
    for c in cuts:
        lf, ids, box = cut_boxes(gt.frame, gt.ids, gt.tlwh, c, min_visible)
        write_gt(out_dir / c.cam_id / "gt" / "gt.txt", lf, ids, box)
        im_ext = ".jpg"
        write_seqinfo(out_dir / c.cam_id / "seqinfo.ini", c.cam_id, info.frame_rate, c.length, c.width, c.height,
                      "img1", im_ext)
        ids_per_cam[c.cam_id] = ids
        summary["cameras"][c.cam_id] = {"boxes": int(len(ids)), "ids": int(len(np.unique(ids))),
                                        "region_tlbr": [c.x0, c.y0, c.x1, c.y1], "frames": [c.f0, c.f1],
                                        "records": list(c.on or (c.f0, c.f1))}
    start, end = min(c.f0 for c in cuts), max(c.f1 for c in cuts)
    frames = seq.iter_frames(start, end)
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, total=end - start + 1, desc=f"virtual cameras {info.name}", unit="frame")
    sources = write_media(frames, cuts, out_dir, fmt, info.frame_rate)
    write_cams_yaml(out_dir, cuts, sources, {"matching": {"overlapping_cameras": pairs}} if pairs else None)
    write_identities(out_dir, info.name, layout, cuts, ids_per_cam, pairs)  # last: marks the build complete
    summary["overlapping_cameras"] = pairs
    summary["shared_ids"] = sorted(set.intersection(*(set(map(int, v)) for v in ids_per_cam.values())))
    return summary
