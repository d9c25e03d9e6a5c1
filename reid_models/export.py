"""ONNX export of an embedding network (dynamic batch) and a parity check against PyTorch.

The exported graph has input ``images`` (B, 3, H, W) float32 (normalised RGB,
see ``reid_models.encoder.preprocess_crops``) and output ``embeddings`` (B, D)
(not L2-normalised; the encoder normalises). Metadata (``model_name``,
``input_h``, ``input_w``, ``embedding_dim``, ``version``) lets
``AppearanceEncoder.from_checkpoint("x.onnx", backend="onnx")`` run it without
PyTorch weights.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from pipeline.core.errors import ModelError
from reid_models.backbones import EmbeddingNet


def export_onnx(model: EmbeddingNet, path: str | Path, opset: int = 17, version: str = "") -> Path:
    """Write ``model`` (eval mode, on CPU) to ``path`` with a dynamic batch axis; returns the path."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    h, w = model.input_size
    dummy = torch.zeros(2, 3, h, w)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings():  # the legacy (TorchScript) exporter needs no onnxscript; silence its notice
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model, (dummy,), str(tmp), input_names=["images"], output_names=["embeddings"],
                dynamic_axes={"images": {0: "batch"}, "embeddings": {0: "batch"}}, opset_version=opset, dynamo=False,
            )
    except Exception as exc:  # noqa: BLE001 - report exporter failures as one line
        raise ModelError(f"{path}: ONNX export failed: {str(exc).splitlines()[0]}") from None
    proto = onnx.load(str(tmp))
    meta = {"model_name": model.model_name, "input_h": str(h), "input_w": str(w),
            "embedding_dim": str(model.embedding_dim), "version": version,
            "pixel_mean": ",".join(map(str, model.pixel_mean)), "pixel_std": ",".join(map(str, model.pixel_std))}
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, str(tmp))
    os.replace(tmp, path)
    return path


def open_onnx_session(path: str | Path, options=None):
    """An onnxruntime CPU session on ``path``; a file onnxruntime cannot load (not ONNX, truncated, a .pt named
    .onnx) is one :class:`ModelError` line naming it, not onnxruntime's traceback."""
    import onnxruntime as ort

    if not Path(path).is_file():
        raise ModelError(f"{path}: no such ONNX file")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own types (InvalidProtobuf, Fail, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not an ONNX model onnxruntime can load ({first[:200]})") from None


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """The custom metadata written by :func:`export_onnx`."""
    return dict(open_onnx_session(path).get_modelmeta().custom_metadata_map)


def parity(model: EmbeddingNet, onnx_path: str | Path, batch: np.ndarray) -> dict[str, float]:
    """Max / mean absolute difference of PyTorch vs onnxruntime outputs on a (B, 3, H, W) float32 batch."""
    sess = open_onnx_session(onnx_path)
    out_onnx = sess.run(None, {sess.get_inputs()[0].name: batch.astype(np.float32)})[0]
    with torch.inference_mode():
        out_torch = model.cpu().eval()(torch.from_numpy(batch.astype(np.float32))).numpy()
    diff = np.abs(out_onnx - out_torch)
    scale = float(np.abs(out_torch).max()) or 1.0
    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()), "max_abs_output": scale,
            "batch": int(batch.shape[0])}
