"""Inference runtimes for an ONNX detector file: onnxruntime (CPU, CUDA / TensorRT EP), OpenVINO (CPU), OpenCV DNN.

Each takes a (B, 3, H, W) float32 blob and returns the model's outputs (batch first). The libraries are
imported inside the constructors: a missing optional one fails only the config that names it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.core.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

CUDA_EP, TENSORRT_EP, CPU_EP = "CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"


class InferenceRuntime(Protocol):
    #: the model input's fixed batch / height / width, None where dynamic
    fixed_batch: int | None
    fixed_hw: tuple[int, int] | None
    #: the model's metadata (key -> value)
    metadata: dict[str, str]

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        """(B, 3, H, W) float32 -> every model output, batch first."""
        ...


def _gpu_index(device: str) -> int | None:
    """'cuda' / 'cuda:1' / '1' / 'tensorrt' / 'tensorrt:1' -> GPU index; 'cpu' / 'auto' -> None."""
    d = device.strip().lower()
    for prefix in ("cuda", "tensorrt"):
        if d == prefix:
            return 0
        if d.startswith(prefix + ":") and d[len(prefix) + 1:].isdigit():
            return int(d[len(prefix) + 1:])
    return int(d) if d.isdigit() else None


def ort_providers(device: str, available: list[str]) -> list:
    """onnxruntime execution providers for ``device``, best first, CPU always last.

    'cpu' -> CPU only; 'auto' -> CUDA when the installed onnxruntime has it; 'cuda[:N]' / 'N' -> CUDA on GPU N;
    'tensorrt[:N]' -> TensorRT then CUDA on GPU N. A requested GPU provider that this onnxruntime lacks
    (the CPU wheel) is left out with a warning: the detector runs on the CPU."""
    d = device.strip().lower()
    if d == "cpu":
        return [CPU_EP]
    index = _gpu_index(d)
    wanted = [TENSORRT_EP, CUDA_EP] if d.startswith("tensorrt") else [CUDA_EP]
    providers: list = []
    for ep in wanted:
        if ep in available:
            providers.append((ep, {"device_id": index or 0}))
        elif d != "auto":
            log.warning("detector.device %s: this onnxruntime has no %s (installed: %s); running on the CPU",
                        device, ep, ", ".join(available))
    return providers + [CPU_EP]


class OrtRuntime:
    """onnxruntime session; ``threads``: intra-op threads (None: onnxruntime's default, one per core)."""

    def __init__(self, path: Path, device: str, threads: int | None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        self.providers = ort_providers(device, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own types for bad files
            raise ModelError(f"cannot load ONNX detector {path}: {str(exc).splitlines()[0]}") from exc
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        h, w = inp.shape[2], inp.shape[3]
        self.fixed_hw = (h, w) if isinstance(h, int) and isinstance(w, int) else None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: blob})


class OpenVinoRuntime:
    """OpenVINO on the CPU (x86 AVX2 / AVX-512, Intel or AMD; ARM where OpenVINO ships a wheel). Reads the ONNX file
    itself; a dynamic-size model is compiled once per input shape seen (a camera's frames keep one).

    ``precision``: the config's 'fp32' / 'bf16' / 'int8' (an INT8 QDQ model runs its INT8 ops under an f32 hint);
    bf16 falls back to fp32 on a CPU without native bf16 (``pipeline.core.openvino_cpu``); 'auto' times fp32 and
    bf16 on the first call's frames and keeps the faster (bf16 only if >= 10 % faster; ``auto_times_s``).
    ``streams``: 1 = PERFORMANCE_HINT LATENCY, the images of a call one after another, each spread over all
    threads; n > 1 = PERFORMANCE_HINT THROUGHPUT with n CPU streams: the images of one call (the cameras' frames
    of an iteration) run as parallel infer requests (AsyncInferQueue), one stream each, so the cores stay busy
    through the parts of a forward that do not parallelise well; a call with one frame (one camera, or a detection
    stride leaving one) runs on a LATENCY-compiled model over all threads, as with 1 stream (one stream alone would
    get only its share of the cores). The outputs are the same either way."""

    def __init__(self, path: Path, threads: int | None, precision: str = "fp32", streams: int = 1) -> None:
        from pipeline.core.openvino_cpu import auto_candidates, cpu_capabilities, import_openvino, inference_precision

        ov = import_openvino("detector.backend")
        self._core = ov.Core()
        self._ov = ov
        try:
            self._model = self._core.read_model(str(path))
        except Exception as exc:
            raise ModelError(f"cannot load ONNX detector {path} in OpenVINO: {str(exc).splitlines()[0]}") from exc
        capabilities = cpu_capabilities(self._core)
        #: precision 'auto': the hints still to time on the first call (None once chosen, or nothing to choose)
        self._auto: list[str] | None = None
        if precision == "auto":
            candidates = auto_candidates(capabilities)
            hint = candidates[0]
            self._auto = candidates if len(candidates) > 1 else None
        else:
            hint = inference_precision(precision, capabilities, "detector.precision")
        #: precision 'auto': the median seconds per timed call of each hint ({} otherwise)
        self.auto_times_s: dict[str, float] = {}
        self.streams = int(streams)
        self._base_config: dict = {"PERFORMANCE_HINT": "LATENCY"}
        if threads is not None:  # sized for a share of a machine other processes use too (a Ray camera actor):
            # unpinned, else every such process pins its threads to the same first cores (docs/scaling.md)
            self._base_config.update({"INFERENCE_NUM_THREADS": threads, "ENABLE_CPU_PINNING": False})
        self._set_hint(hint)
        shape = self._model.inputs[0].get_partial_shape()
        # a dynamic batch is run one image per forward: each new input shape compiles the model again (~1 s),
        # and the number of frames per detector call varies (cameras, detection stride); with streams the
        # runtime takes any batch and runs its images as parallel requests
        static_batch = shape[0].get_length() if shape[0].is_static else None
        if self.streams > 1 and static_batch in (None, 1):
            self.fixed_batch = None  # any batch: its images run as parallel batch-1 requests (a static batch-1 too)
        else:
            self.fixed_batch = static_batch if static_batch is not None else 1
        self.fixed_hw = (shape[2].get_length(), shape[3].get_length()) if shape[2].is_static and shape[3].is_static else None
        self.metadata = _onnx_metadata(path)
        self._compiled: dict[tuple, object] = {}
        self._requests: dict[tuple, object] = {}
        self._queues: dict[tuple, object] = {}

    def _set_hint(self, hint: str) -> None:
        """Compile (and look up compiled models, requests and queues) with INFERENCE_PRECISION_HINT ``hint``."""
        self.inference_precision = hint
        self._config = {**self._base_config, "INFERENCE_PRECISION_HINT": hint}
        self._throughput_config = {**self._config, "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": self.streams}

    def _choose_auto(self, blob: np.ndarray, reps: int = 5) -> None:
        """precision 'auto': run ``blob`` (the first call's frames) once per candidate hint to compile, then
        ``reps`` times each, interleaved so that a change of machine load hits both alike; keep the hint
        :func:`choose_precision` picks and drop the other's compiled models."""
        import time

        from pipeline.core.openvino_cpu import choose_precision

        candidates, self._auto = self._auto or [], None
        usable = []
        for hint in candidates:
            self._set_hint(hint)
            try:
                self._run(blob)
            except Exception as exc:  # noqa: BLE001 - a hint this OpenVINO cannot compile is not a candidate
                if hint == "f32":
                    raise
                log.warning("detector.precision auto: %s does not run here (%s); using fp32", hint,
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                continue
            usable.append(hint)
        candidates = usable
        times: dict[str, list[float]] = {h: [] for h in candidates}
        for _ in range(reps):
            for hint in candidates:
                self._set_hint(hint)
                t0 = time.perf_counter()
                self._run(blob)
                times[hint].append(time.perf_counter() - t0)
        chosen = choose_precision(times)
        self.auto_times_s = {h: float(np.median(t)) for h, t in times.items()}
        self._set_hint(chosen)
        for cache in (self._compiled, self._requests, self._queues):
            for key in [k for k in cache if k[-1] != chosen]:
                del cache[key]
        log.info("detector.precision auto: %s per call of %d frame(s) -> %s", ", ".join(
            f"{'fp32' if h == 'f32' else h} {1000 * t:.1f} ms" for h, t in self.auto_times_s.items()), len(blob),
            "fp32" if chosen == "f32" else chosen)

    def _compile(self, shape: tuple[int, ...], throughput: bool = False):
        key = (shape, throughput, self.inference_precision)
        if key not in self._compiled:
            model = self._model.clone()
            if not self._model.inputs[0].get_partial_shape().is_static:
                model.reshape({0: self._ov.PartialShape(list(shape))})
            self._compiled[key] = self._core.compile_model(model, "CPU",
                                                          self._throughput_config if throughput else self._config)
        return self._compiled[key]

    def _request(self, shape: tuple[int, ...]):
        key = (shape, self.inference_precision)
        if key not in self._requests:
            self._requests[key] = self._compile(shape).create_infer_request()
        return self._requests[key]

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        if self._auto:
            self._choose_auto(blob)
        return self._run(blob)

    def _run(self, blob: np.ndarray) -> list[np.ndarray]:
        if self.streams > 1 and self.fixed_batch is None and len(blob) > 1:
            return self._run_parallel(blob)
        req = self._request(tuple(blob.shape))
        req.infer({0: blob})
        return [req.get_output_tensor(i).data.copy() for i in range(len(req.model_outputs))]

    def _run_parallel(self, blob: np.ndarray) -> list[np.ndarray]:
        """(B, 3, H, W): each image an infer request of the THROUGHPUT-compiled model, B at a time at most
        ``streams`` in flight -> the outputs stacked batch first, in input order."""
        shape = (1,) + tuple(blob.shape[1:])
        key = (shape, self.inference_precision)
        if key not in self._queues:
            self._queues[key] = self._ov.AsyncInferQueue(self._compile(shape, throughput=True), self.streams)
        queue = self._queues[key]
        results: list[list[np.ndarray] | None] = [None] * len(blob)

        def done(request, index: int) -> None:
            results[index] = [request.get_output_tensor(i).data.copy() for i in range(len(request.model_outputs))]

        queue.set_callback(done)
        for i in range(len(blob)):
            queue.start_async({0: blob[i:i + 1]}, i)
        queue.wait_all()
        return [np.concatenate([r[k] for r in results]) for k in range(len(results[0]))]  # type: ignore[index]


class OpenCvRuntime:
    """OpenCV DNN (CPU); batch 1; the input's fixed size, as onnxruntime and OpenVINO report it (``fixed_hw``).

    ``threads``: applied with ``cv2.setNumThreads`` (process-wide: OpenCV has no per-network setting)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import cv2

        if threads is not None:
            cv2.setNumThreads(int(threads))
        try:
            self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            raise ModelError(f"cannot load ONNX detector {path} in OpenCV: {str(exc).splitlines()[0]}") from exc
        self.fixed_batch = 1
        self.fixed_hw = _onnx_fixed_hw(path)
        self.metadata = _onnx_metadata(path)

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        self.net.setInput(blob)
        names = self.net.getUnconnectedOutLayersNames()
        outs = self.net.forward(names)
        return list(outs)


def _onnx_fixed_hw(path: Path) -> tuple[int, int] | None:
    """The first input's fixed (height, width), None where either is dynamic."""
    from pipeline.detectors.onnx_graph import io_dims

    dims = io_dims(path)[0]
    return (dims[2], dims[3]) if len(dims) == 4 and dims[2] is not None and dims[3] is not None else None


def _onnx_metadata(path: Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def open_runtime(path: Path, backend: str, device: str, threads: int | None, precision: str = "fp32",
                 streams: int = 1) -> InferenceRuntime:
    """The runtime named by ``backend`` ('onnxruntime' | 'openvino' | 'opencv') on ``path``."""
    if backend == "onnxruntime":
        return OrtRuntime(path, device, threads)
    if backend == "openvino":
        return OpenVinoRuntime(path, threads, precision, streams)
    if backend == "opencv":
        return OpenCvRuntime(path, threads)
    raise ConfigError(f"detector.backend: unknown '{backend}' (valid: onnxruntime, openvino, opencv)")
