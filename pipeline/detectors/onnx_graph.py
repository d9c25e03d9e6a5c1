"""ONNX graph work for the YOLO detector: a YOLOv5 export cut before its Detect decode (dynamic input
height/width, the decode done in numpy by ``heads.decode_yolov5_heads``), and FLOP counting.

A YOLOv5 ONNX export bakes the input size into its Detect layer (Reshape shapes and the grid /
anchor-grid constants of a 640x640 input), so it cannot run at 640x480 as it is. Everything before the
three Detect convolutions is fully convolutional; ``cut_yolov5_heads`` keeps that part, makes the
input ``(batch, 3, height, width)`` symbolic and stores the anchors (pixels) and strides read from the
graph's own constants in the model's metadata. ``onnx`` is imported inside functions.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.errors import ModelError

#: metadata keys of a cut model
META_KIND, META_ANCHORS, META_STRIDES = "reid_pipeline.yolo_heads", "reid_pipeline.anchors", "reid_pipeline.strides"


@dataclass(frozen=True)
class HeadsSpec:
    """A cut YOLOv5 model's decode constants: anchors (L, 3, 2) w, h in input pixels, strides (L,) pixels,
    one row per output in output order."""

    anchors: np.ndarray
    strides: np.ndarray


def file_digest(path: Path, extra: str = "") -> str:
    """First 10 hex digits of sha256(file bytes + extra): the cache key of models derived from ``path``."""
    h = hashlib.sha256(Path(path).read_bytes())
    h.update(extra.encode())
    return h.hexdigest()[:10]


def _constant_arrays(model) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    out = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return out


def _detect_branches(model) -> list[tuple[str, int, np.ndarray, float]]:
    """Per Detect level: (conv output name, grid width, anchors (3, 2) pixels, stride), in output order."""
    consts = _constant_arrays(model)
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    branches = []
    for n in model.graph.node:
        if n.op_type != "Reshape" or n.input[1] not in consts:
            continue
        shape = consts[n.input[1]]
        if shape.ndim != 1 or len(shape) != 5 or shape[1] != 3:
            continue
        # walk Reshape -> Transpose -> Sigmoid -> ... collecting the 5-D anchor grid and the scalar stride
        anchors, stride, frontier, seen = None, None, [n.output[0]], set()
        while frontier:
            name = frontier.pop()
            for c in consumers.get(name, []):
                if c.name in seen:
                    continue
                seen.add(c.name)
                if c.op_type == "Mul":
                    other = [consts[i] for i in c.input if i in consts]
                    producer_is_pow = any(i in producers and producers[i].op_type == "Pow" for i in c.input)
                    for arr in other:
                        if arr.ndim == 5 and arr.shape[-1] == 2 and producer_is_pow:
                            anchors = arr[0, :, 0, 0, :].astype(np.float64)
                        elif arr.ndim == 0 and float(arr) > 2:
                            stride = float(arr)
                if c.op_type in ("Transpose", "Sigmoid", "Split", "Mul", "Add", "Pow"):
                    frontier.extend(c.output)
        if anchors is None or stride is None:
            continue
        branches.append((n.input[0], int(shape[4]), anchors, stride))
    return branches


def is_dynamic_hw(path: Path) -> bool:
    """True when the ONNX model's first input has symbolic (or unset) height and width."""
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return len(dims) == 4 and not dims[2].HasField("dim_value") and not dims[3].HasField("dim_value")


def io_dims(path: Path) -> tuple[tuple[int | None, ...], tuple[int | None, ...], dict[str, str]]:
    """(first input's dims, first output's dims, metadata) of an ONNX file, a symbolic or unset dim as None;
    ModelError (one line) when the file is not an ONNX model."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own types for a file that is not ONNX
        raise ModelError(f"{path}: not an ONNX model ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                         ) from None

    def dims(value_info) -> tuple[int | None, ...]:
        return tuple(d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim)

    if not model.graph.input or not model.graph.output:
        raise ModelError(f"{path}: an ONNX model without inputs or outputs")
    return dims(model.graph.input[0]), dims(model.graph.output[0]), {p.key: p.value for p in model.metadata_props}


def read_heads_spec(model_or_meta) -> HeadsSpec | None:
    """The decode constants of a cut model (``cut_yolov5_heads``) from its metadata, or None for any other model.
    Accepts an onnx ModelProto or a ``{key: value}`` metadata dict (onnxruntime's ``custom_metadata_map``)."""
    meta = model_or_meta if isinstance(model_or_meta, dict) else {p.key: p.value for p in model_or_meta.metadata_props}
    if meta.get(META_KIND) != "yolov5":
        return None
    return HeadsSpec(np.asarray(json.loads(meta[META_ANCHORS]), np.float64),
                     np.asarray(json.loads(meta[META_STRIDES]), np.float64))


def _tensor_shapes(model, names: list[str]) -> dict[str, tuple[int, ...]]:
    """Shapes of the named intermediate tensors in one forward of zeros at the model's fixed input size
    (onnxruntime: exact where static shape inference stops at computed Resize sizes)."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in names:
        probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    if not all(isinstance(d, int) for d in inp.shape):
        raise ModelError(f"expected a fixed input size, got {inp.shape}")
    outs = sess.run(names, {inp.name: np.zeros(inp.shape, np.float32)})
    return {n: tuple(o.shape) for n, o in zip(names, outs)}


def _resize_by_scales(model) -> None:
    """Rewrite every Resize that is given output ``sizes`` (a YOLOv5 export's upsample bakes 40x40 / 80x80 in)
    to the same ``scales`` (output / input shape at the export's own input size), so it follows the input."""
    from onnx import numpy_helper

    resizes = [n for n in model.graph.node if n.op_type == "Resize" and len(n.input) >= 4 and n.input[3]]
    if not resizes:
        return
    shapes = _tensor_shapes(model, sorted({t for n in resizes for t in (n.input[0], n.output[0])}))
    for n in resizes:
        factors = [o / i for o, i in zip(shapes[n.output[0]], shapes[n.input[0]])]
        name = f"{n.name or n.output[0]}_scales"
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(factors, np.float32), name))
        n.input[2] = name
        del n.input[3]


def cut_yolov5_heads(src: Path, dst: Path) -> Path:
    """Write ``dst``: the YOLOv5 ONNX ``src`` without its Detect decode, input (batch, 3, height, width).

    Outputs: per level (stride 8, 16, 32) the raw Detect conv map (B, 3 * (5 + C), H / s, W / s).
    ModelError (one line) when ``src`` is not a YOLOv5 export with three Detect levels."""
    import onnx
    from onnx.utils import Extractor

    model = onnx.load(str(src))
    branches = sorted(_detect_branches(model), key=lambda b: b[3])
    if len(branches) != 3:
        raise ModelError(f"{src}: not a YOLOv5 ONNX export (found {len(branches)} Detect levels, expected 3); "
                         "export it with a dynamic input (height, width) instead")
    inp = model.graph.input[0].name
    _resize_by_scales(model)
    cut = Extractor(onnx.shape_inference.infer_shapes(model)).extract_model([inp], [b[0] for b in branches])
    dims = cut.graph.input[0].type.tensor_type.shape.dim
    for d, name in zip(dims, ("batch", "channels", "height", "width")):
        if name != "channels":
            d.ClearField("dim_value")
            d.dim_param = name
    for out, (_, _, _, stride) in zip(cut.graph.output, branches):
        for d, name in zip(out.type.tensor_type.shape.dim, ("batch", "channels", "height", "width")):
            if name != "channels":
                d.ClearField("dim_value")
                d.dim_param = name if name == "batch" else f"{name}/{int(stride)}"
    del cut.graph.value_info[:]
    del cut.opset_import[:]
    cut.opset_import.extend(model.opset_import)
    for key, value in ((META_KIND, "yolov5"), (META_ANCHORS, json.dumps([b[2].tolist() for b in branches])),
                       (META_STRIDES, json.dumps([b[3] for b in branches]))):
        entry = cut.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(cut)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f"{dst.stem}.{os.getpid()}.part")   # two processes making the same file never mix
    onnx.save(cut, str(tmp))
    tmp.replace(dst)
    return dst


def conv_gflops(path: Path, height: int, width: int) -> float:
    """GFLOPs of one (1, 3, height, width) forward counted from the graph: 2 x the multiply-accumulates of every
    Conv (N * Cout * Ho * Wo * Cin / group * kh * kw, shapes from ONNX shape inference) and MatMul/Gemm.
    Element-wise ops (activations, decode) are not counted (they are < 1 % of a YOLO's FLOPs)."""
    import onnx

    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for d, v in zip(dims, (1, 3, height, width)):
        d.ClearField("dim_param")
        d.dim_value = v
    model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes = {}
    for vi in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input):
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    macs = 0
    for n in model.graph.node:
        if n.op_type == "Conv":
            out, w = shapes.get(n.output[0]), weights.get(n.input[1])
            if out is None or w is None or None in out:
                raise ModelError(f"{path}: cannot infer the shape of {n.name or n.output[0]} at {width}x{height}")
            macs += int(np.prod(out)) * int(np.prod(w[1:]))
        elif n.op_type in ("MatMul", "Gemm"):
            out, w = shapes.get(n.output[0]), weights.get(n.input[1])
            if out and w and None not in out:
                macs += int(np.prod(out)) * int(w[0] if n.op_type == "MatMul" else w[1])
    return 2 * macs / 1e9
