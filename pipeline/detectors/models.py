"""Which ONNX file a ``kind: onnx`` detector runs: the configured weights, or a model derived from them
(dynamic-size cut for ``rect``, INT8 for ``precision: int8``), made on first use and cached.

Cache names carry a hash of what they are made from (source bytes; for INT8 also the calibration files'
names and contents (2026-12-08: before, names and sizes) and the settings), so a changed source or
calibration set makes a new file, never a stale one.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.core.errors import ConfigError, ModelError
from pipeline.detectors.config import DetectorConfig

log = logging.getLogger(__name__)


def dynamic_model(weights: Path, cache: Path) -> Path:
    """``weights`` when its input height/width are dynamic, else its YOLOv5 cut (``cut_yolov5_heads``), cached."""
    from pipeline.detectors.onnx_graph import cut_yolov5_heads, file_digest, is_dynamic_hw

    if is_dynamic_hw(weights):
        return weights
    out = cache / f"{weights.stem}.dynamic-{file_digest(weights)}.onnx"
    if not out.is_file():
        log.info("detector: cutting %s to a dynamic-size model %s", weights, out)
        cut_yolov5_heads(weights, out)
    return out


def calibration_key(images: list[Path]) -> str:
    """Part of the INT8 cache key: each calibration image's name and the sha256 of its bytes, in order (an
    image replaced by another of the same name and size gives another key)."""
    import hashlib

    return ";".join(f"{p.name}:{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in images)


def int8_model(src: Path, cfg: DetectorConfig, cache: Path) -> Path:
    """The INT8 quantisation of ``src`` (dynamic size) with ``cfg.calibration`` images, cached."""
    from pipeline.detectors.onnx_graph import file_digest
    from pipeline.detectors.quantize import calibration_images, default_reduce_range, quantize_detector

    if cfg.calibration is None:
        raise ConfigError(f"detector.calibration: precision int8 needs a folder of calibration images to quantise "
                          f"{cfg.weights} (or weights that are already INT8: tools/quantize_detector.py)")
    images = calibration_images(Path(cfg.calibration), cfg.calibration_frames)
    key = calibration_key(images) + f";imgsz={cfg.imgsz};qdq-percentile-u8s8-pc-headsfp32"
    reduce_range = default_reduce_range()  # 7-bit weights on x86 without VNNI: a different file, decided once
    key += ";w7" if reduce_range else ""
    out = cache / f"{Path(cfg.weights).stem}.int8-{file_digest(src, key)}.onnx"
    if not out.is_file():
        log.info("detector: quantising %s to INT8 with %d images of %s -> %s", src, len(images), cfg.calibration, out)
        quantize_detector(src, images, out, cfg.imgsz, reduce_range=reduce_range)
    return out


def model_cache(cfg: DetectorConfig) -> Path:
    """Where derived models go: ``cfg.model_cache``, else ``detector_models`` in the per-user cache folder
    (private: a model planted there would run as this user's)."""
    from pipeline.core.paths import cache_root, private_folder

    if cfg.model_cache is not None:
        return Path(cfg.model_cache).expanduser()
    what = "the detector's model cache folder"
    return private_folder(private_folder(cache_root(), what) / "detector_models", what)


def resolve_model(cfg: DetectorConfig) -> Path:
    """The ONNX file to run for ``cfg`` (kind onnx); derived files go to ``cfg.model_cache``."""
    from pipeline.detectors.quantize import is_quantized

    weights = Path(cfg.weights).expanduser()
    if not weights.is_file():
        raise ModelError(f"ONNX detector weights not found: {weights}")
    quantized = is_quantized(weights)  # a damaged file fails here, in one line naming it
    if cfg.precision != "int8" and not cfg.rect:
        return weights
    if quantized:
        if cfg.precision != "int8":
            raise ConfigError(f"detector.precision: {weights} is an INT8 model; set precision: int8")
        if cfg.calibration is not None:
            raise ConfigError(f"detector.calibration: {weights} is already an INT8 model, the calibration images "
                              "would not be used; remove detector.calibration")
        return weights
    cache = model_cache(cfg)
    src = dynamic_model(weights, cache)
    return int8_model(src, cfg, cache) if cfg.precision == "int8" else src
