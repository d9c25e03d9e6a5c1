"""Run the tracker over MOTChallenge sequences (shared by ``track``, ``benchmark mot`` and tools).

Reaches across packages (data layer, tracker, optional re-id encoder), so it lives in
``pipeline/``. Only the time spent inside ``Tracker.update`` counts as tracker time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.errors import ConfigError, ModelError
from pipeline.mot import MOTSequence, detections_by_frame
from pipeline.core.types import TrackOutput
from trackers.config import TrackerConfig
from trackers.tracker import Tracker

log = logging.getLogger(__name__)


@dataclass
class SequenceRun:
    """One sequence tracked: its outputs, frame count and seconds spent in Tracker.update."""

    name: str
    outputs: list[TrackOutput]
    n_frames: int
    tracker_seconds: float

    @property
    def fps(self) -> float:
        return self.n_frames / self.tracker_seconds if self.tracker_seconds > 0 else float("inf")


def load_encoder(reid: str, device: str = "auto") -> Any | None:
    """``none`` -> None; ``default`` -> the shipped checkpoint; ``imagenet`` -> the raw ImageNet
    MobileNetV2 baseline; else a checkpoint path. ``device`` is checked even with ``none`` (a typo is an error,
    not ignored): :func:`pipeline.core.device.resolve_device`."""
    from pipeline.core.device import resolve_device

    device = resolve_device(device)
    if reid == "none":
        return None
    from reid_models.encoder import AppearanceEncoder

    if reid == "imagenet":
        return AppearanceEncoder.imagenet_baseline(device=device)
    path = None if reid == "default" else Path(reid)
    if path is not None and not path.is_file():
        raise ModelError(f"{path}: no such re-id checkpoint")
    return AppearanceEncoder.from_checkpoint(path, device=device)


def _warn_scores(seq: MOTSequence, det_name: str, scores: np.ndarray, config: TrackerConfig) -> None:
    lo, hi = config.detection.score_range
    outside = np.mean((scores < lo) | (scores > hi)) if len(scores) else 0.0
    if outside > 0.25:  # a few clipped outliers are fine; a wrong scale is not
        log.warning("%s det/%s.txt: %.0f%% of the scores (span [%.3g, %.3g]) lie outside detection.score_range [%g, %g]; "
                    "they are clipped (use a config with a matching score_range, e.g. the acf preset)",
                    seq.name, det_name, 100 * outside, scores.min(), scores.max(), lo, hi)


def _warn_boxes(seq: MOTSequence, det_name: str, boxes) -> None:
    """One warning when the boxes do not look like pixel ``left, top, width, height``: all coordinates within
    [0, 1.5] (normalised), or many boxes reaching well past the image (``x1, y1, x2, y2`` read as widths)."""
    if len(boxes) == 0:
        return
    tlwh = boxes.tlwh
    width, height = seq.info.im_width, seq.info.im_height
    path = seq.det_path(det_name)
    if float(np.abs(tlwh).max()) <= 1.5:
        log.warning("%s: every box coordinate is within [0, 1.5]: they look normalised, but columns 3-6 must be "
                    "pixels (left, top, width, height)", path)
    elif width and height:
        past = np.mean((tlwh[:, 0] + tlwh[:, 2] > 1.1 * width) | (tlwh[:, 1] + tlwh[:, 3] > 1.1 * height))
        if past > 0.2:
            log.warning("%s: %.0f%% of the boxes reach past the %dx%d image: columns 3-6 must be left, top, width, "
                        "height (x1, y1, x2, y2 or centre coordinates do this)", path, 100 * past, width, height)


def track_sequence(seq: MOTSequence, det_name: str, config: TrackerConfig, encoder: Any | None = None,
                   check_scores: bool = True) -> SequenceRun:
    """Track every frame 1..seqLength of ``seq`` on its ``det/<det_name>.txt`` detections.

    With an encoder, frames are read and every detection gets an embedding
    (``encoder.embed_boxes``); camera-motion compensation also reads frames. ``check_scores``: warn when the
    scores do not fit ``config``'s score range (off for a config ``--config auto`` fitted to these very scores,
    whose range clips the top and the negatives on purpose). Detections past ``seqLength`` are dropped with a
    warning.
    """
    boxes = seq.det(det_name)
    if check_scores:
        _warn_scores(seq, det_name, boxes.conf, config)
    _warn_boxes(seq, det_name, boxes)
    late = int(np.sum(boxes.frame > seq.info.seq_length))
    if late:
        log.warning("%s det/%s.txt: %d detection(s) in frames after seqLength %d (up to frame %d) are not tracked; "
                    "check seqLength in %s", seq.name, det_name, late, seq.info.seq_length, int(boxes.frame.max()),
                    seq.seq_dir / "seqinfo.ini")
    by_frame = detections_by_frame(boxes)
    needs_image = encoder is not None or config.cmc.method != "none"
    if needs_image and not seq.has_frames():
        what = "--reid" if encoder is not None else "cmc"
        raise ConfigError(f"{seq.seq_dir}: {what} needs the sequence's frames, but it has none")
    tracker = Tracker(config, cam_id=seq.name, frame_rate=seq.info.frame_rate)
    outputs: list[TrackOutput] = []
    seconds = 0.0
    for frame in range(1, seq.info.seq_length + 1):
        dets = by_frame.get(frame, [])
        image = seq.frame_image(frame) if needs_image else None
        if encoder is not None and dets:
            emb = encoder.embed_boxes(image, np.stack([d.tlwh for d in dets]))
            for d, e in zip(dets, emb):
                d.embedding = e
        t0 = time.perf_counter()
        outs = tracker.update(dets, image)
        seconds += time.perf_counter() - t0
        outputs.extend(outs)
    return SequenceRun(seq.name, outputs, seq.info.seq_length, seconds)


def write_run(run: SequenceRun, out_dir: Path) -> Path:
    """Write ``<out_dir>/<seq>.txt`` in MOTChallenge format; returns the path."""
    from pipeline.mot import write_mot_results

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{run.name}.txt"
    write_mot_results(path, run.outputs)
    return path
