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
    MobileNetV2 baseline; else a checkpoint path."""
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


def track_sequence(seq: MOTSequence, det_name: str, config: TrackerConfig, encoder: Any | None = None) -> SequenceRun:
    """Track every frame 1..seqLength of ``seq`` on its ``det/<det_name>.txt`` detections.

    With an encoder, frames are read and every detection gets an embedding
    (``encoder.embed_boxes``); camera-motion compensation also reads frames.
    """
    boxes = seq.det(det_name)
    _warn_scores(seq, det_name, boxes.conf, config)
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
