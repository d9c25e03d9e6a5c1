"""Thread pools of a camera actor sized to its Ray CPUs (``executor.size_threads``, docs/scaling.md).

A camera actor is one process among several on a node. Left at their library defaults, its inference
libraries each start one thread per core of the MACHINE, not of the actor's share: onnxruntime's intra-op
pool (whose threads spin while they wait for work), OpenVINO's inference threads (pinned to cores: every
actor pins a thread to the same core), torch's intra-op pool and OpenCV's ``parallel_for`` pool. Ray sets
``OMP_NUM_THREADS`` for its workers, which none of these read. Four actors x two threads on two cores then
run against each other (measured by tools/bench_ray.py).

:func:`camera_threads` is the actor's share: ``executor.camera_num_cpus`` rounded down, at least 1.
:func:`sized_for_actor` fills the thread settings the config leaves open (``detector.threads`` and
``encoder.threads`` null) with it, and caps ``detector.streams`` (a camera actor's detector call has one
frame, which runs on the LATENCY-compiled model anyway); values set in the config are kept, so they override.
:func:`apply_process_threads` sizes the process-wide pools (torch, OpenCV). The local executor does not use
this module: its one process owns the machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.camconfig import CamsConfig


@dataclass(frozen=True)
class ActorThreads:
    """The thread settings a camera actor runs with (reported by its ``info``): ``share``: its CPU share;
    ``detector`` / ``encoder``: the detector's and encoder's inference threads (None: library default);
    ``streams``: the OpenVINO detector's streams; ``sized``: whether ``executor.size_threads`` applied."""

    share: int
    detector: int | None
    encoder: int | None
    streams: int
    sized: bool


def camera_threads(camera_num_cpus: float) -> int:
    """Threads that fit a camera actor's logical CPUs: ``floor(camera_num_cpus)``, at least 1
    (0.5 -> 1, 1 -> 1, 2.5 -> 2)."""
    return max(1, math.floor(camera_num_cpus + 1e-9))


def sized_for_actor(cfg: CamsConfig) -> tuple[CamsConfig, ActorThreads]:
    """``cfg`` with a camera actor's thread settings filled in (see the module docstring) and what they are;
    unchanged (and ``sized`` False) when ``executor.size_threads`` is off."""
    ex, det, enc = cfg.executor, cfg.detector, cfg.encoder
    share = camera_threads(ex.camera_num_cpus)
    if not ex.size_threads:
        return cfg, ActorThreads(share, det.threads, enc.threads, det.streams, False)
    det_update: dict = {}
    if det.kind == "onnx" and det.threads is None:  # detector.threads is an onnx-only option
        det_update["threads"] = share
    det_threads = det_update.get("threads", det.threads)
    if det.streams > 1:
        det_update["streams"] = max(1, min(det.streams, det_threads or share))
    enc_threads = share if enc.threads is None else enc.threads
    sized = cfg.model_copy(update={
        "detector": det.model_copy(update=det_update),
        "encoder": enc.model_copy(update={"threads": enc_threads}),
    })
    return sized, ActorThreads(share, det_threads, enc_threads, det_update.get("streams", det.streams), True)


def apply_process_threads(threads: ActorThreads) -> None:
    """Size this process's torch intra-op pool (through ``encoder.threads``, set by the encoder's builder) and
    OpenCV's pool (decoding, resizing) to the actor's share; nothing when sizing is off."""
    if not threads.sized:
        return
    import cv2

    cv2.setNumThreads(threads.share)
