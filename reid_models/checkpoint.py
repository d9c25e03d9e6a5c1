"""Checkpoints of embedding networks: weights + architecture + training config + metrics.

A checkpoint is a ``torch.save`` dict::

    format        "reid-pipeline/embedding-net/1"
    model_name    factory name (``reid_models.factory.build_model``)
    model_kwargs  constructor arguments that rebuild the architecture
    state_dict    the embedding network's weights (CPU tensors)
    config        the training config (plain dict), metrics (dict), epoch (int)
    optimizer     optimizer state or None; extra: anything else (heads, scheduler, RNG states)

Files are written atomically (temporary file + rename) so a crash never
leaves a half-written checkpoint. Loading never unpickles arbitrary objects
(``weights_only=True``, :mod:`reid_models.safe_load`); a file that is not a checkpoint is one
ModelError line naming it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from pipeline.core.errors import ModelError
from reid_models.backbones import EmbeddingNet
from reid_models.factory import build_model
from reid_models.safe_load import load_weights

FORMAT = "reid-pipeline/embedding-net/1"


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Detached CPU copies of ``model``'s state dict (independent of the model and its device)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def save_checkpoint(
    path: str | Path,
    model: EmbeddingNet,
    config: dict,
    metrics: dict,
    epoch: int,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``model`` (built by ``build_model``) with its config, metrics and epoch to ``path``."""
    if not model.model_name:
        raise ModelError("save_checkpoint: model has no model_name (build it with build_model)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": FORMAT,
        "model_name": model.model_name,
        "model_kwargs": model.build_kwargs(),
        "state_dict": cpu_state(model),
        "config": config,
        "metrics": metrics,
        "epoch": int(epoch),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "extra": extra or {},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict; ModelError naming the file when missing or not a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such checkpoint")
    blob = load_weights(path, str(path), "a valid reid-pipeline checkpoint")
    fmt = blob.get("format") if isinstance(blob, dict) else None
    if isinstance(fmt, str) and fmt.startswith("reid-pipeline/lstm-aggregator/"):
        raise ModelError(f"{path}: an LSTM aggregator checkpoint ({fmt}), not an embedding network's: give the "
                         f"embedding net's checkpoint (format {FORMAT}); the aggregator goes in aggregator.checkpoint")
    if fmt != FORMAT:
        raise ModelError(f"{path}: not a reid-pipeline embedding checkpoint (format {FORMAT} expected)")
    return blob


def model_from_blob(blob: dict[str, Any], source: str = "<checkpoint>") -> EmbeddingNet:
    """Rebuild the network of a checkpoint dict and load its weights (strict)."""
    kwargs = dict(blob["model_kwargs"])
    if "input_size" in kwargs:
        kwargs["input_size"] = tuple(kwargs["input_size"])
    model = build_model(blob["model_name"], **kwargs)
    state = {k: (v.float() if v.dtype == torch.float16 else v) for k, v in blob["state_dict"].items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{source}: weights do not fit {blob['model_name']}: {str(exc).splitlines()[0]}") from None
    camera_bn = (blob.get("extra") or {}).get("camera_bn")
    if camera_bn:  # an adapted version's per-camera BatchNorm statistics (reid_models.adaptation.bn)
        own = model.state_dict()
        bad = [k for st in camera_bn.values() for k in st if k not in own or st[k].shape != own[k].shape]
        if bad:
            raise ModelError(f"{source}: camera BatchNorm statistics do not fit {blob['model_name']}: {bad[0]}")
        model.camera_bn = {str(c): {k: v.float() for k, v in st.items()} for c, st in camera_bn.items()}
    return model


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[EmbeddingNet, dict[str, Any]]:
    """(model in eval mode on ``device``, meta with config, metrics, epoch, model_name, model_kwargs, extra, hash)."""
    blob = read_checkpoint(path)
    model = model_from_blob(blob, str(path)).to(device).eval()
    meta = {k: blob[k] for k in ("config", "metrics", "epoch", "model_name", "model_kwargs", "optimizer", "extra")}
    meta["hash"] = file_hash(path)
    return model, meta


def file_hash(path: str | Path, length: int = 12) -> str:
    """First ``length`` hex digits of the SHA-256 of a file's bytes (the model version)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def state_hash(state_dict: dict[str, torch.Tensor], length: int = 12) -> str:
    """SHA-256 over a state dict's names and tensor bytes (version of in-memory weights)."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:length]


def pooled_trunk_blob(blob: dict[str, Any], source: str = "<checkpoint>") -> dict[str, Any]:
    """A ``mobilenetv2_fc`` checkpoint dict as a ``mobilenetv2_pool`` one: the fine-tuned MobileNetV2
    trunk with its global-average-pooled 1280-d features as the embedding; the FC head is dropped.

    (Luo et al. "Bag of tricks" embed with the global feature the losses were computed above.)
    Config, metrics, epoch and history are kept; ``extra["embedding"]`` records the conversion.
    """
    if blob.get("model_name") != "mobilenetv2_fc":
        raise ModelError(f"{source}: pooled-trunk export needs a mobilenetv2_fc checkpoint, got {blob.get('model_name')!r}")
    state = {k: v for k, v in blob["state_dict"].items() if k.startswith("features.")}
    kwargs = {"input_size": tuple(blob["model_kwargs"].get("input_size", (128, 64))), "pretrained": None,
              "last_stride": int(blob["model_kwargs"].get("last_stride", 2)),
              **({"ibn": True} if blob["model_kwargs"].get("ibn") else {})}
    extra = {**blob.get("extra", {}), "embedding": "mobilenetv2_fc trunk, global-average-pooled 1280-d (FC head dropped)"}
    return {**blob, "model_name": "mobilenetv2_pool", "model_kwargs": kwargs, "state_dict": state, "extra": extra}


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name the same existing file (links and ``..`` included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def slim_checkpoint(src: str | Path, dst: str | Path, half: bool = False) -> Path:
    """Copy a training checkpoint without optimizer / heads / scheduler state (for shipping).

    ``half=True`` stores floating-point weights as float16 (half the size; they
    are cast back to float32 when loaded). Config, metrics and epoch are kept.
    ``dst`` naming ``src`` itself is refused (the training state would be lost; 2026-12-08). The copy is written
    under a private temporary name and renamed; a folder that cannot be written is one ModelError line naming
    ``dst``, and no temporary file stays.
    """
    from reid_models.export import exclusive_temp

    dst = Path(dst)
    blob = read_checkpoint(src)
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in blob["state_dict"].items()}
    history = blob.get("extra", {}).get("history", [])
    slim = {**blob, "state_dict": state, "optimizer": None, "extra": {"history": history, "slim_of": Path(src).name}}
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"{dst}: cannot write ({exc.strerror or exc})") from None
    if same_file(src, dst):  # checked once dst's folder exists, so "new/../src.pt" is caught too
        raise ModelError(f"{dst}: is the checkpoint being slimmed ({src}); write the slim copy to another file "
                         "(its optimizer and heads would be lost)")
    try:
        tmp = exclusive_temp(dst)
    except OSError as exc:
        raise ModelError(f"{dst}: cannot write ({exc.strerror or exc})") from None
    try:
        torch.save(slim, tmp)
        os.replace(tmp, dst)
    except (OSError, RuntimeError) as exc:  # torch.save reports a write failure as RuntimeError
        raise ModelError(f"{dst}: cannot write ({str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r})"
                         ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return dst
