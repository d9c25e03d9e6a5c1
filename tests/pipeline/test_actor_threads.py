"""A camera actor's thread pools sized to its Ray CPUs (pipeline/distributed/threads.py, executor.size_threads)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.camconfig import CamsConfig
from pipeline.distributed.threads import ActorThreads, camera_threads, sized_for_actor


def _cfg(executor: dict, detector: dict | None = None, encoder: dict | None = None) -> CamsConfig:
    return CamsConfig.model_validate({
        "cameras": [{"id": "a", "source": "a.mp4"}, {"id": "b", "source": "b.mp4"}],
        "detector": detector or {"kind": "onnx", "weights": "m.onnx", "backend": "openvino", "streams": 2},
        "encoder": encoder or {},
        "executor": {"kind": "ray", **executor},
    })


@pytest.mark.parametrize("cpus, want", [(0.0, 1), (0.25, 1), (1.0, 1), (1.5, 1), (2.0, 2), (2.999, 2), (4.0, 4)])
def test_camera_threads_is_the_whole_cpus_of_the_actor(cpus: float, want: int) -> None:
    assert camera_threads(cpus) == want


def test_open_settings_are_sized_to_the_actor() -> None:
    cfg = _cfg({"camera_num_cpus": 1})
    sized, threads = sized_for_actor(cfg)
    assert (sized.detector.threads, sized.detector.streams, sized.encoder.threads) == (1, 1, 1)
    assert threads == ActorThreads(share=1, detector=1, encoder=1, streams=1, sized=True)
    # what is not a thread setting is left alone, and the input config is not modified
    assert sized.detector.backend == "openvino" and sized.cameras == cfg.cameras
    assert (cfg.detector.threads, cfg.detector.streams, cfg.encoder.threads) == (None, 2, None)


def test_streams_capped_by_threads_and_set_values_kept() -> None:
    sized, threads = sized_for_actor(_cfg({"camera_num_cpus": 3}))
    assert (sized.detector.threads, sized.detector.streams, sized.encoder.threads) == (3, 2, 3)
    # explicit values override the sizing: detector.threads 4 allows the 2 streams; encoder 2 stays 2
    cfg = _cfg({"camera_num_cpus": 1}, {"kind": "onnx", "weights": "m.onnx", "backend": "openvino", "streams": 2,
                                        "threads": 4}, {"threads": 2})
    sized, threads = sized_for_actor(cfg)
    assert (sized.detector.threads, sized.detector.streams, sized.encoder.threads) == (4, 2, 2)
    assert threads == ActorThreads(share=1, detector=4, encoder=2, streams=2, sized=True)


def test_ultralytics_detector_gets_no_threads_option() -> None:
    # detector.threads is an onnx-only option: torch's threads (encoder.threads) cover an ultralytics detector
    sized, threads = sized_for_actor(_cfg({"camera_num_cpus": 2}, {"kind": "ultralytics"}))
    assert sized.detector.threads is None and sized.encoder.threads == 2
    assert threads.detector is None and threads.encoder == 2


def test_size_threads_off_leaves_the_library_defaults() -> None:
    cfg = _cfg({"camera_num_cpus": 1, "size_threads": False})
    sized, threads = sized_for_actor(cfg)
    assert sized is cfg
    assert threads == ActorThreads(share=1, detector=None, encoder=None, streams=2, sized=False)


def test_camera_worker_builds_its_models_with_the_sized_pools(shared: Path, tmp_path: Path) -> None:
    """The actor class itself (no cluster needed): onnxruntime session, torch and OpenCV pools at 1 thread."""
    import cv2
    import torch

    from pipeline.distributed.camera_actor import CameraWorker

    cfg = CamsConfig.model_validate({
        "cameras": [{"id": "a", "source": str(tmp_path / "a.mp4")}],
        "detector": {"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx"), "imgsz": 320},
        "encoder": {"backend": "torch"},
        "executor": {"kind": "ray", "camera_num_cpus": 1},
    })
    before = torch.get_num_threads(), cv2.getNumThreads()
    try:
        worker = CameraWorker(cfg, "a")
        opts = worker.detector.runtime.session.get_session_options()
        assert opts.intra_op_num_threads == 1
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
        assert worker.threads == ActorThreads(share=1, detector=1, encoder=1, streams=1, sized=True)
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


def _single_core_affinities(run, seconds: float) -> set[str]:
    """Run ``run()`` over and over in a thread for ``seconds``; the CPU lists that thread was restricted to
    (``Cpus_allowed_list`` of /proc, sampled every 10 ms) when restricted to a single CPU."""
    import threading
    import time

    stop, tid = threading.Event(), []

    def loop() -> None:
        tid.append(threading.get_native_id())
        while not stop.is_set():
            run()

    th = threading.Thread(target=loop)
    th.start()
    seen: set[str] = set()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.01)
            if tid:
                status = Path(f"/proc/self/task/{tid[0]}/status").read_text()
                allowed = next(ln.split()[-1] for ln in status.splitlines() if ln.startswith("Cpus_allowed_list"))
                if "-" not in allowed and "," not in allowed:
                    seen.add(allowed)
    finally:
        stop.set()
        th.join()
    return seen


@pytest.mark.skipif(not Path("/proc/self/task").exists() or (os.cpu_count() or 1) < 2,
                    reason="needs Linux /proc and 2+ CPUs (pinning to one of them)")
def test_openvino_sized_threads_are_not_pinned(weights: Path, pets_dir: Path, tmp_path: Path) -> None:
    """OpenVINO pins its inference threads to the first cores by default: with one thread, every camera actor
    on a node ran detection on the same core (docs/scaling.md, Throughput). Threads set: not pinned (the OpenVINO
    encoder likewise: tests/reid_models/test_ov_encoder.py)."""
    from pipeline.detectors import DetectorConfig, build_detector
    from pipeline.mot import MOTSequence

    frame = MOTSequence(pets_dir).frame_image(1)
    kw = dict(kind="onnx", weights=str(weights), backend="openvino", imgsz=320, rect=True, model_cache=str(tmp_path))
    default, sized = build_detector(DetectorConfig(**kw)), build_detector(DetectorConfig(threads=1, **kw))
    default.detect([frame]), sized.detect([frame])  # compiled for the frame's shape before the sampling
    assert _single_core_affinities(lambda: default.detect([frame]), 1.5)  # the library default: pinned
    assert not _single_core_affinities(lambda: sized.detect([frame]), 1.5)
    assert [c.get_property("ENABLE_CPU_PINNING") for c in sized.runtime._compiled.values()] == [False]
