"""INT8 static quantisation of an ONNX YOLO detector (onnxruntime.quantization, QDQ, per-channel weights).

Calibration feeds real images through the detector's own letterbox (rectangular, stride 32) so the
activation ranges are those the detector sees. The model is quantised from its dynamic-size cut
(``onnx_graph.cut_yolov5_heads``): the Detect decode (sigmoid, grid, anchors, pixel coordinates) stays
in float in numpy, and one INT8 file serves every input size.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from pipeline.core.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def calibration_images(folder: Path, count: int) -> list[Path]:
    """``count`` image files of ``folder`` (sorted by name, evenly spaced), ConfigError when there are none."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"detector.calibration: {folder} is not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError(f"detector.calibration: no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    if len(files) <= count:
        return files
    return [files[int(i)] for i in np.linspace(0, len(files) - 1, count).round()]


def calibration_blobs(images: list[Path], imgsz: int, stride: int = 32):
    """Yield (1, 3, H, W) float32 blobs: each image letterboxed to its aspect ratio (long side ``imgsz``)."""
    from pipeline.core.images import read_image

    from pipeline.detectors.geometry import letterbox

    for path in images:
        img = read_image(path)
        if img is None:
            raise ConfigError(f"detector.calibration: cannot read image {path}")
        lb_img, _ = letterbox(img, imgsz, stride=stride)
        yield np.ascontiguousarray(lb_img[None, ..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


def is_quantized(path: Path) -> bool:
    """True when the ONNX file holds QuantizeLinear / QLinear ops (an INT8 model)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError, a truncated file, ...: one line naming the file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"detector.weights: {path}: not a readable ONNX model ({type(exc).__name__}: {first})"
                         ) from None
    return any(n.op_type in ("QuantizeLinear", "QLinearConv", "ConvInteger") for n in model.graph.node)


def cpu_has_vnni(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether this x86 CPU has VNNI int8 dot products (flags ``avx512_vnni``, ``avx_vnni`` or ``amx_int8`` in
    ``cpuinfo``); None when unknown (no such file, or not an x86 CPU)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), None)
    if flags is None or not ({"sse2", "avx2"} & set(flags)):
        return None
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags))


def default_reduce_range() -> bool:
    """7-bit weights on x86 CPUs without VNNI. Their u8 x s8 convolutions (``vpmaddubsw``) add pairs of products
    into saturating int16, so full-range int8 weights can overflow; onnxruntime's quantisation guide recommends
    ``reduce_range`` there. Measured: on an AVX2-only AMD EPYC, 14 of 19 PETS boxes kept IoU > 0.9 with full-range
    weights (tests/pipeline/test_detector_backends.py needs 80 %); on the earlier Intel Xeon CI machines it passed."""
    return cpu_has_vnni() is False


def quantize_detector(src: Path, images: list[Path], out: Path, imgsz: int = 640, method: str = "percentile",
                      keep_outputs_fp32: bool = True, reduce_range: bool | None = None) -> Path:
    """Write ``out``: ``src`` (an fp32 ONNX model with a dynamic input size) quantised to INT8.

    QDQ format, weights int8 per output channel, activations uint8 with ranges over ``images`` by ``method``
    ('minmax' | 'percentile' | 'entropy'). ``keep_outputs_fp32``: the convolutions that produce the model's
    outputs (YOLO's Detect convs: box coordinates and scores) stay fp32.
    ``reduce_range``: 7-bit weights (None: :func:`default_reduce_range`, i.e. on x86 CPUs without VNNI).
    The source's metadata (the cut model's anchors and strides) is kept; opset < 13 is converted to 13."""
    import onnx
    import onnx.version_converter
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from tqdm import tqdm

    src_model = onnx.load(str(src))
    input_name = src_model.graph.input[0].name

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(tqdm(calibration_blobs(images, imgsz), total=len(images), desc="calibrate", unit="img"))

        def get_next(self):
            blob = next(self._it, None)
            return None if blob is None else {input_name: blob}

    out.parent.mkdir(parents=True, exist_ok=True)
    pre = out.with_name(f"{out.stem}.{os.getpid()}.pre.onnx")   # per process: concurrent makers never mix
    part = out.with_name(f"{out.stem}.{os.getpid()}.part.onnx")
    try:
        opset = max((o.version for o in src_model.opset_import if o.domain in ("", "ai.onnx")), default=0)
        if opset < 13:  # per-channel DequantizeLinear (its ``axis``) needs opset 13
            onnx.save(onnx.version_converter.convert_version(src_model, 13), str(pre))
        quant_pre_process(str(pre if opset < 13 else src), str(pre), skip_symbolic_shape=True)
        outputs = {o.name for o in src_model.graph.output}
        exclude = [n.name for n in src_model.graph.node if keep_outputs_fp32 and set(n.output) & outputs]
        methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                   "entropy": CalibrationMethod.Entropy}
        quantize_static(str(pre), str(part), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=methods[method], nodes_to_exclude=exclude,
                        reduce_range=default_reduce_range() if reduce_range is None else bool(reduce_range))
    except (ConfigError, ModelError):
        raise
    except Exception as exc:
        raise ModelError(f"cannot quantise {src}: {str(exc).splitlines()[0]}") from exc
    finally:
        pre.unlink(missing_ok=True)
    model = onnx.load(str(part))
    have = {p.key for p in model.metadata_props}
    for p in src_model.metadata_props:
        if p.key not in have:
            model.metadata_props.add().CopyFrom(p)
    onnx.save(model, str(part))
    part.replace(out)
    log.info("INT8 detector written to %s (%d calibration images)", out, len(images))
    return out
