"""OpenVINO on the CPU: the one place that imports ``openvino`` and decides the inference precision.

Used by the detector (``detector.backend: openvino``, pipeline/detectors/runtimes.py) and the re-id encoder
(``encoder.backend: openvino``, reid_models/ovencoder.py). ``openvino`` is imported only when one of them is
configured: where its wheel cannot be installed (a platform without one) that config fails with a one-line
:class:`ConfigError`; ``backend: onnxruntime`` / ``torch`` run everywhere.

bf16 needs native support (AVX512_BF16 or AMX on x86; OpenVINO lists ``BF16`` in the CPU's
``OPTIMIZATION_CAPABILITIES``). On a CPU without it, ``precision: bf16`` falls back to fp32 with one logged
warning instead of failing, so a config written for a bf16 machine still runs (slower) on any other.

Native bf16 is not always faster: on an AMD Zen 4 the bf16 detector ran 1.37x fp32's frames/s, on an Intel Xeon
with AVX512_BF16 but no AMX it ran at 0.7-0.85x (docs/speed.md). ``precision: auto`` (the detector) therefore times
both on the first frames and keeps the faster: :func:`auto_candidates` and :func:`choose_precision`.
"""

from __future__ import annotations

import logging
from typing import Any

from pipeline.core.errors import ConfigError

log = logging.getLogger(__name__)

#: config precision -> OpenVINO INFERENCE_PRECISION_HINT
_HINTS = {"fp32": "f32", "bf16": "bf16"}


def import_openvino(key: str) -> Any:
    """The ``openvino`` module; ``key`` (e.g. 'detector.backend') names the setting in the one-line error."""
    try:
        import openvino
    except ImportError as exc:
        raise ConfigError(f"{key}: openvino needs the Python package 'openvino' (pip install openvino, or bash "
                          f"tools/setup.sh; no wheel for this platform: use {key}: "
                          f"{'onnxruntime' if key.startswith('detector') else 'torch'})") from exc
    return openvino


def cpu_capabilities(core: Any) -> list[str]:
    """The CPU plugin's OPTIMIZATION_CAPABILITIES (e.g. ['BF16', 'FP32', 'INT8', ...])."""
    try:
        return [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
    except Exception as exc:  # noqa: BLE001 - no usable CPU device: one line, not OpenVINO's traceback
        raise ConfigError(f"openvino: no usable CPU device ({str(exc).splitlines()[0] if str(exc) else exc})") from exc


#: bf16 is kept by ``precision: auto`` only when it is at least this much faster than fp32 (fp32 is exact: a tie
#: or a gain within timing noise keeps fp32)
AUTO_BF16_MARGIN = 0.10


def auto_candidates(capabilities: list[str]) -> list[str]:
    """The INFERENCE_PRECISION_HINTs ``precision: auto`` times: ['f32', 'bf16'] on a CPU with native bf16, else
    ['f32'] (nothing to time)."""
    return ["f32", "bf16"] if "BF16" in capabilities else ["f32"]


def choose_precision(times_s: dict[str, list[float]], margin: float = AUTO_BF16_MARGIN) -> str:
    """``precision: auto``'s choice from the timed calls per hint ({'f32': [s, ...], 'bf16': [s, ...]}): 'bf16'
    when its median call time is below (1 - ``margin``) x f32's, else 'f32'. Medians, so one slow call (another
    process taking the core) does not decide."""
    import statistics

    f32 = statistics.median(times_s["f32"])
    bf16 = times_s.get("bf16")
    if bf16 and statistics.median(bf16) < (1.0 - margin) * f32:
        return "bf16"
    return "f32"


def inference_precision(requested: str, capabilities: list[str], key: str) -> str:
    """Config precision ('fp32' | 'bf16' | 'auto': resolved by the caller with :func:`choose_precision`, here f32;
    'int8' models run their own INT8 ops with an f32 hint) -> the
    INFERENCE_PRECISION_HINT to compile with. bf16 on a CPU whose ``capabilities`` lack BF16 -> 'f32' (warned).

    f32 is always set explicitly: on a CPU with native bf16 OpenVINO would otherwise run an fp32 model in bf16."""
    if requested == "bf16":
        if "BF16" in capabilities:
            return "bf16"
        log.warning("%s: precision bf16 asked for, but this CPU has no native bf16 (OpenVINO capabilities: %s); "
                    "running fp32", key, ", ".join(capabilities) or "none")
    return "f32"
