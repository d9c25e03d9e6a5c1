"""ONNX export of an embedding network (dynamic batch), a parity check against PyTorch, and the encoder's cache.

The exported graph has input ``images`` (B, 3, H, W) float32 (normalised RGB,
see ``reid_models.encoder.preprocess_crops``) and output ``embeddings`` (B, D)
(not L2-normalised; the encoder normalises). Metadata (``model_name``,
``input_h``, ``input_w``, ``embedding_dim``, ``version``, ``exporter``) lets
``AppearanceEncoder.from_checkpoint("x.onnx", backend="onnx")`` run it without
PyTorch weights.

Files are written under a private temporary name beside the target (``O_CREAT | O_EXCL``, random suffix) and
renamed into place, so a crash never leaves a half-written model and nobody can plant a file or link at the name
being written.

The encoder's ONNX cache (:func:`cached_onnx`, ``encoder.backend: onnx | openvino``; 2026-12-08, it was
``/tmp/reid_pipeline_onnx``, shared by every user and trusted unchecked): ``$REID_CACHE_DIR/onnx``, else
``$XDG_CACHE_HOME/reid-pipeline/onnx``, else ``~/.cache/reid-pipeline/onnx``; folders created 0700, files 0600.
A folder not owned by the current user, or writable by group or others, is refused in one line. A cached file is
used only when it is a regular file of the user's, not group/world-writable, and its record beside it
(``<name>.json``: the weights key, model name, exporter, opset, torch version and the file's SHA-256) matches;
anything else is exported again. The newest :data:`CACHE_KEEP` files are kept (one per adapted version).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import stat
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pipeline.core.errors import ModelError
from pipeline.core.paths import cache_root, private_folder, unsafe_owner_or_mode as _unsafe
from reid_models.backbones import EmbeddingNet

log = logging.getLogger(__name__)

#: bump when :func:`export_onnx` writes a different graph or metadata: cached files of older exporters are re-made
EXPORTER_VERSION = "2"
#: cached ONNX files kept (newest by use); each adaptation round adds one
CACHE_KEEP = 8
_CACHE_FORMAT = "reid-pipeline/onnx-cache/1"
CACHE_WHAT = "the encoder's ONNX cache folder"


def exclusive_temp(path: Path, mode: int = 0o666) -> Path:
    """A new empty file beside ``path`` under an unpredictable hidden name, created with ``O_EXCL`` (never an
    existing file or link) and ``mode`` (less the umask). OSError when the folder cannot be written."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(tmp, flags, mode))
            return tmp
        except FileExistsError:
            continue


def _first_line(exc: BaseException, replace: tuple[str, str] | None = None) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.replace(*replace) if replace else text


def export_onnx(model: EmbeddingNet, path: str | Path, opset: int = 17, version: str = "",
                label: str | None = None, mode: int = 0o666,
                before_replace: Callable[[Path], None] | None = None) -> Path:
    """Write ``model`` (eval mode, on CPU) to ``path`` with a dynamic batch axis; returns the path.

    ``label``: how messages name the file (default ``path``); ``mode``: the new file's permissions (less the
    umask; the cache passes 0o600); ``before_replace(tmp)``: a check on the written temporary file (the export
    command's parity check) that may raise, in which case nothing is written at ``path``. Any failure is one
    :class:`ModelError` line naming ``label``, and no temporary file is left."""
    import onnx

    path = Path(path)
    label = label or str(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = exclusive_temp(path, mode)
    except OSError as exc:
        raise ModelError(f"{label}: cannot write ({exc.strerror or exc})") from None
    model = model.cpu().eval()
    h, w = model.input_size
    dummy = torch.zeros(2, 3, h, w)
    try:
        try:
            with warnings.catch_warnings():  # the legacy (TorchScript) exporter needs no onnxscript; silence its notice
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(
                    model, (dummy,), str(tmp), input_names=["images"], output_names=["embeddings"],
                    dynamic_axes={"images": {0: "batch"}, "embeddings": {0: "batch"}}, opset_version=opset,
                    dynamo=False,
                )
            proto = onnx.load(str(tmp))
            meta = {"model_name": model.model_name, "input_h": str(h), "input_w": str(w),
                    "embedding_dim": str(model.embedding_dim), "version": version, "exporter": EXPORTER_VERSION,
                    "pixel_mean": ",".join(map(str, model.pixel_mean)),
                    "pixel_std": ",".join(map(str, model.pixel_std))}
            for k, v in meta.items():
                entry = proto.metadata_props.add()
                entry.key, entry.value = k, v
            onnx.save(proto, str(tmp))
        except Exception as exc:  # noqa: BLE001 - report exporter / disk failures as one line, naming label
            raise ModelError(f"{label}: ONNX export failed: {_first_line(exc, (str(tmp), label))}") from None
        if before_replace is not None:
            before_replace(tmp)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise ModelError(f"{label}: cannot write ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def open_onnx_session(path: str | Path, options=None, providers: list | None = None, label: str | None = None):
    """An onnxruntime session on ``path`` (CPU unless ``providers`` says otherwise); a file onnxruntime cannot load
    (not ONNX, truncated, a .pt named .onnx) is one :class:`ModelError` line naming it (``label``), not
    onnxruntime's traceback."""
    import onnxruntime as ort

    label = label or str(path)
    if not Path(path).is_file():
        raise ModelError(f"{label}: no such ONNX file")
    try:
        return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own types (InvalidProtobuf, Fail, ...)
        first = _first_line(exc, (str(path), label))
        raise ModelError(f"{label}: not an ONNX model onnxruntime can load ({first[:200]})") from None


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """The custom metadata written by :func:`export_onnx`."""
    return dict(open_onnx_session(path).get_modelmeta().custom_metadata_map)


def onnx_signature(path: str | Path) -> tuple[dict[str, str], list]:
    """(custom metadata, the first input's shape: ints for fixed axes, a name or None for dynamic ones)."""
    sess = open_onnx_session(path)
    return dict(sess.get_modelmeta().custom_metadata_map), list(sess.get_inputs()[0].shape)


def parity(model: EmbeddingNet, onnx_path: str | Path, batch: np.ndarray, label: str | None = None) -> dict[str, float]:
    """Max / mean absolute difference of PyTorch vs onnxruntime outputs on a (B, 3, H, W) float32 batch."""
    sess = open_onnx_session(onnx_path, label=label)
    out_onnx = sess.run(None, {sess.get_inputs()[0].name: batch.astype(np.float32)})[0]
    with torch.inference_mode():
        out_torch = model.cpu().eval()(torch.from_numpy(batch.astype(np.float32))).numpy()
    diff = np.abs(out_onnx - out_torch)
    scale = float(np.abs(out_torch).max()) or 1.0
    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()), "max_abs_output": scale,
            "batch": int(batch.shape[0])}


# -- the encoder's ONNX cache (in pipeline.core.paths.cache_root()) --------------------------------------------------
def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _trusted_file(path: Path) -> bool:
    """A regular file (not a link) of the current user's, not writable by group or others."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and _unsafe(st) is None


def _cache_hit(path: Path, record: Path, expect: dict) -> bool:
    """Whether the cached ``path`` may be used: both files trusted, the record names ``expect``, the SHA-256 fits."""
    if not path.exists() and not record.exists():
        return False
    if not (_trusted_file(path) and _trusted_file(record)):
        log.warning("encoder ONNX cache: %s is not a private regular file of yours (or lacks its record): "
                    "ignored, exported again", path)
        return False
    try:
        stored = json.loads(record.read_text())
    except (OSError, ValueError):
        stored = {}
    if any(stored.get(k) != v for k, v in expect.items()):
        log.info("encoder ONNX cache: %s was made for other weights or by another exporter: exported again", path)
        return False
    if stored.get("sha256") != file_sha256(path):
        log.warning("encoder ONNX cache: %s does not match its recorded SHA-256 (changed after it was written): "
                    "ignored, exported again", path)
        return False
    return True


def _write_record(record: Path, data: dict) -> None:
    tmp = exclusive_temp(record, 0o600)
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, record)
    finally:
        tmp.unlink(missing_ok=True)


def prune_cache(folder: Path, keep: int = CACHE_KEEP, protect: Path | None = None) -> list[Path]:
    """Remove all but the ``keep`` most recently used ``.onnx`` files of ``folder`` (with their records) and
    temporary files a crashed export left over a day ago; ``protect`` is never removed. Returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    models = [p for p in entries if p.suffix == ".onnx" and not p.name.startswith(".") and p != protect]
    models.sort(key=lambda p: p.stat().st_mtime if p.exists() else 0.0, reverse=True)
    stale_tmp = [p for p in entries if p.name.startswith(".") and p.suffix == ".tmp"
                 and p.exists() and time.time() - p.stat().st_mtime > 86400]
    for p in models[max(keep - (protect is not None), 0):] + stale_tmp:
        for q in (p, p.with_suffix(".json")) if p.suffix == ".onnx" else (p,):
            try:
                q.unlink()
                removed.append(q)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.debug("encoder ONNX cache: cannot remove %s: %s", q, exc)
    return removed


def cached_onnx(model: EmbeddingNet, key: str, opset: int = 17) -> Path:
    """The ONNX export of ``model`` from the per-user cache (module docstring), exported when missing, stale or
    untrusted. ``key``: what names the weights (the checkpoint's content hash, or the state's hash)."""
    folder = private_folder(private_folder(cache_root(), CACHE_WHAT) / "onnx", CACHE_WHAT)
    name = f"{model.model_name}-{key}"
    path, record = folder / f"{name}.onnx", folder / f"{name}.json"
    expect = {"format": _CACHE_FORMAT, "key": key, "model_name": model.model_name, "exporter": EXPORTER_VERSION,
              "opset": int(opset), "torch": torch.__version__}
    if _cache_hit(path, record, expect):
        try:
            os.utime(path)  # most recently used: the pruning keeps it
        except OSError:
            pass
        return path
    export_onnx(model, path, opset=opset, version=key, mode=0o600)
    try:
        _write_record(record, {**expect, "sha256": file_sha256(path)})
    except OSError as exc:
        raise ModelError(f"{record}: cannot write the ONNX cache record ({exc.strerror or exc})") from None
    prune_cache(folder, CACHE_KEEP, protect=path)
    return path
