"""Model versions as bytes: checkpoint blobs that live in the identity store.

An adapted model is stored as the same dict a training checkpoint holds
(:mod:`reid_models.checkpoint`, format ``reid-pipeline/embedding-net/1``)
serialised with ``torch.save`` into bytes. Its version is the content hash of
its weights (:func:`~reid_models.checkpoint.state_hash`); the base model read
from a file keeps the file's hash (the version the pipeline stored its
embeddings under).
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from pipeline.core.errors import ModelError
from reid_models.backbones import EmbeddingNet
from reid_models.checkpoint import FORMAT, model_from_blob, read_checkpoint
from reid_models.safe_load import load_weights


def checkpoint_bytes(model: EmbeddingNet, state_dict: dict[str, torch.Tensor], metrics: dict | None = None,
                     parent: str | None = None, camera_bn: dict | None = None) -> bytes:
    """A checkpoint dict of ``model``'s architecture with ``state_dict`` -> ``torch.save`` bytes.

    ``camera_bn``: per-camera BatchNorm statistics (:data:`reid_models.adaptation.bn.CameraStats`), kept in
    the checkpoint's ``extra`` and given back as the rebuilt model's ``camera_bn``."""
    if not model.model_name:
        raise ModelError("checkpoint_bytes: model has no model_name (build it with build_model)")
    blob = {
        "format": FORMAT, "model_name": model.model_name, "model_kwargs": model.build_kwargs(),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "config": {"adapted_from": parent}, "metrics": metrics or {}, "epoch": 0, "optimizer": None,
        "extra": ({"camera_bn": {str(c): {k: v.detach().cpu() for k, v in st.items()} for c, st in camera_bn.items()}}
                  if camera_bn else {}),
    }
    buf = io.BytesIO()
    torch.save(blob, buf)
    return buf.getvalue()


def model_from_weights(weights: bytes | str | Path, source: str = "<store>") -> EmbeddingNet:
    """Rebuild an EmbeddingNet (eval mode, CPU) from checkpoint bytes or a checkpoint path."""
    if isinstance(weights, (str, Path)):
        blob = read_checkpoint(weights)
        source = str(weights)
    else:
        blob = load_weights(bytes(weights), source, "a valid reid-pipeline checkpoint")
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise ModelError(f"{source}: stored weights are not a reid-pipeline embedding checkpoint")
    return model_from_blob(blob, source).eval()
