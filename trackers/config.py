"""Tracker configuration schema: every threshold lives here (and in the presets, trackers/presets/*.yaml).

Validated once at the entry point (``pipeline.core.configio.load_config(TrackerConfig, path)``);
unknown keys and bad values raise ConfigError naming the key path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from pipeline.core.configio import StrictModel, load_config
from pipeline.core.errors import ConfigError


class DetectionConfig(StrictModel):
    """How detection scores are read and split into high/low passes (scores after normalisation)."""

    score_range: tuple[float, float] = (0.0, 1.0)
    """Raw scores are mapped linearly from [lo, hi] to [0, 1] and clipped (ACF det.txt scores are not in [0, 1])."""
    high_thresh: float = Field(0.6, ge=0.0, le=1.0)
    """Detections at or above this go to the first association pass."""
    low_thresh: float = Field(0.1, ge=0.0, le=1.0)
    """Detections in [low_thresh, high_thresh) only go to the second (ByteTrack) pass; below are dropped."""
    new_track_thresh: float = Field(0.7, ge=0.0, le=1.0)
    """Unmatched high detections at or above this start a new track."""
    min_box_area: float = Field(0.0, ge=0.0)
    """Detections with smaller w*h (pixels^2) are ignored."""
    relative_to_floor: bool = False
    """Thresholds are stated for a detector whose (normalised) scores start at ``reference_floor``; the tracker
    estimates the floor of the detections it gets (their lowest score so far, once ``floor_min_samples`` were
    seen) and maps every threshold t >= reference_floor linearly from [reference_floor, 1] to [floor, 1]
    (``trackers.detections.ScoreFloor``). For detectors run at an unknown confidence cut."""
    reference_floor: float = Field(0.1, ge=0.0, lt=1.0)
    floor_min_samples: int = Field(30, ge=1)
    """Detections seen before the floor estimate is used (until then the thresholds are taken as given)."""

    @model_validator(mode="after")
    def _check(self) -> "DetectionConfig":
        lo, hi = self.score_range
        if not hi > lo:
            raise ValueError("score_range must be [lo, hi] with hi > lo")
        if self.low_thresh > self.high_thresh:
            raise ValueError("low_thresh must be <= high_thresh")
        if self.relative_to_floor and self.low_thresh < self.reference_floor:
            raise ValueError("with relative_to_floor, low_thresh must be >= reference_floor")
        return self


class KalmanConfig(StrictModel):
    representation: Literal["xyah", "xywh"] = "xyah"
    std_weight_position: float = Field(1.0 / 20, gt=0.0)
    std_weight_velocity: float = Field(1.0 / 160, gt=0.0)


class LifecycleConfig(StrictModel):
    n_init: int = Field(2, ge=1)
    """Consecutive hits for a tentative track to become confirmed."""
    max_age: int = Field(30, ge=1)
    """Frames a confirmed track survives without a match (at ``max_age_reference_fps``)."""
    max_age_reference_fps: float | None = Field(30.0, gt=0.0)
    """If set, max_age is rescaled to the sequence frame rate: round(max_age * fps / ref). null = frames as given."""
    confirm_on_first_frame: bool = True
    """Tracks born in the tracker's first frame are confirmed at once (ByteTrack)."""
    output_coasting_frames: int = Field(0, ge=0)
    """Also output confirmed tracks missed for up to this many frames (predicted box). 0 = updated tracks only."""
    output_box: Literal["kalman", "detection"] = "kalman"
    """Report the filtered state or the matched detection box."""


class AssociationConfig(StrictModel):
    first_match_thresh: float = Field(0.8, gt=0.0)
    """Max fused cost in the first pass (confirmed + lost tracks vs high detections)."""
    second_match_thresh: float = Field(0.5, gt=0.0)
    """Max IoU distance in the second pass (still-tracked tracks vs low detections)."""
    unconfirmed_match_thresh: float = Field(0.7, gt=0.0)
    """Max IoU distance for tentative tracks vs the remaining high detections."""
    fuse_score: bool = True
    """Multiply IoU similarity by the detection score in the first and tentative passes (ByteTrack MOT17)."""
    mahalanobis_gate: bool = False
    """Forbid pairs whose squared Mahalanobis distance exceeds the chi-square 0.95 quantile (4 dof)."""
    ocm_weight: float = Field(0.0, ge=0.0)
    """OC-SORT observation-centric momentum: weight of the direction-consistency cost (0 = off)."""
    ocm_delta_t: int = Field(3, ge=1)
    """Frames back used to estimate a track's direction for OCM."""
    oru: bool = True
    """OC-SORT observation-centric re-update: replay a virtual trajectory after a gap."""
    remove_duplicates_iou: float = Field(0.85, ge=0.0, le=1.0)
    """Drop the younger of a tracked/lost pair overlapping more than this (ByteTrack); 1.0 = off."""


class AppearanceConfig(StrictModel):
    enabled: bool = True
    """Use detection embeddings when present (motion-only otherwise)."""
    mode: Literal["ema", "gallery"] = "ema"
    ema_alpha: float = Field(0.9, ge=0.0, lt=1.0)
    """feature = alpha * feature + (1 - alpha) * new (BoT-SORT)."""
    budget: int = Field(30, ge=1)
    """Gallery size per track (mode=gallery)."""
    proximity_thresh: float = Field(0.5, ge=0.0, le=1.0)
    """Appearance is ignored for pairs with IoU distance above this."""
    appearance_thresh: float = Field(0.4, ge=0.0, le=2.0)
    """Cosine distances above this count as 'no appearance evidence' (1.0)."""
    fusion: Literal["min", "weighted", "motion"] = "min"
    """min(iou_cost, emb_cost) (BoT-SORT), weight*emb + (1-weight)*iou (StrongSORT-like), or ``motion``:
    appearance never lowers a cost (only ``veto_thresh`` uses it)."""
    weight: float = Field(0.5, ge=0.0, le=1.0)
    min_score_for_update: float = Field(0.0, ge=0.0, le=1.0)
    """Only detections at least this confident update a track's appearance."""
    fuse_lost_only: bool = False
    """Fuse appearance only into the rows of lost tracks (not matched at the last detected frame): tracked
    tracks associate by motion alone, appearance re-finds people after a gap (long-term re-association)."""
    veto_thresh: float = Field(2.0, ge=0.0, le=2.0)
    """First-pass pairs whose cosine distance exceeds this are forbidden (tracks with a feature, detections with
    appearance evidence); 2.0 = off. DeepSORT's gate with the roles swapped: appearance gates motion."""
    occlusion_iou: float = Field(1.0, ge=0.0, le=1.0)
    """A detection overlapping another detection of its frame by more than this IoU is occluded: its embedding
    (a crop of two people) neither updates a track's feature nor counts as appearance evidence; 1.0 = off."""
    thresh_from_negatives: bool = False
    """Set the appearance threshold in use from the embedding itself: the ``negative_quantile`` of the cosine
    distances between non-overlapping detections of the same frame (different people), capped by
    ``appearance_thresh`` (``trackers.detections.NegativeDistances``); the veto is unaffected."""
    veto_quantile: float | None = Field(None, gt=0.0, lt=1.0)
    """Veto from the embedding itself: the veto threshold in use is this quantile of the negative distances
    (0.5: a pair less alike than the median pair of two different people is not one person), capped by
    ``veto_thresh``; null = ``veto_thresh`` as given."""
    negative_quantile: float = Field(0.05, gt=0.0, lt=1.0)
    negative_min_pairs: int = Field(200, ge=1)
    """Negative pairs seen before the estimate replaces ``appearance_thresh``."""
    dynamic_ema: bool = False
    """Deep OC-SORT's confidence-weighted EMA: alpha_t = alpha + (1 - alpha) * (1 - (s - h) / (1 - h)) for a
    detection of score s at or above the high threshold h (a barely-high detection hardly moves the feature)."""


class CMCConfig(StrictModel):
    method: Literal["none", "sparse_flow"] = "none"
    downscale: int = Field(2, ge=1)
    max_corners: int = Field(1000, ge=10)


class TrackerConfig(StrictModel):
    """All tracker settings; the presets ``trackers/presets/*.yaml`` (:mod:`trackers.presets`) are instances of this.

    The field defaults are the schema's neutral values, not a tuned preset: entry points start from a preset
    (``run``: ``yolo``; ``track`` / ``benchmark mot``: ``default``)."""

    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    kalman: KalmanConfig = Field(default_factory=KalmanConfig)
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    association: AssociationConfig = Field(default_factory=AssociationConfig)
    appearance: AppearanceConfig = Field(default_factory=AppearanceConfig)
    cmc: CMCConfig = Field(default_factory=CMCConfig)


def load_tracker_config(path: str | Path | None) -> TrackerConfig:
    """A preset name (``yolo``, ``default``, ...: :mod:`trackers.presets`) or a YAML file -> validated
    TrackerConfig (the field defaults when None); ConfigError on problems (an unknown preset names the known ones).

    A file is a whole config over the schema's field defaults (as the presets are), unless it has a ``preset:`` key:
    then its other keys are written over that preset (:func:`trackers.presets.overriding`)."""
    from pipeline.core.configio import load_yaml, validate
    from trackers.presets import is_preset_name, overriding, preset_path

    if path is None:
        return load_config(TrackerConfig, None)
    if is_preset_name(path) and not Path(path).is_file():
        path = preset_path(str(path))
    data = load_yaml(path)
    if "preset" in data:
        try:
            data = overriding(data)
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return validate(TrackerConfig, data, str(path))


def config_for_scores(scores):
    """``--config auto`` for one detection file: (the validated :class:`TrackerConfig`, the
    :class:`trackers.presets.PresetChoice` behind it): the chosen preset with the choice's score range written
    over its own."""
    from trackers.presets import choose_preset

    choice = choose_preset(scores)
    config = load_tracker_config(choice.name)
    if choice.score_range is not None:
        config = config.model_copy(update={"detection": config.detection.model_copy(
            update={"score_range": choice.score_range})})
    return config, choice
