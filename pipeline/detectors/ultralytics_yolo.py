"""Ultralytics detector: any model Ultralytics loads (name, local .pt/.onnx, or a model YAML).

Weights are loaded restricted by default (no code from the file runs); see :func:`load_ultralytics_model`.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from pipeline.detectors.config import DetectorConfig
from pipeline.core.errors import ConfigError, ModelError
from pipeline.core.types import Detection, tlbr_to_tlwh

log = logging.getLogger(__name__)


def _first_line(exc: BaseException) -> str:
    """An Ultralytics message's first line without its ``ERROR ❌️`` decoration."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return re.sub(r"^\W*ERROR\W*", "", text).strip() or type(exc).__name__


def _refusal(exc: BaseException) -> str:
    """Why a restricted load refused a file: the torch error somewhere in the exception chain."""
    from reid_models.safe_load import refusal_reason

    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        if "GLOBAL " in str(exc):
            return refusal_reason(exc)
        exc = exc.__cause__ or exc.__context__
    return refusal_reason(seen[0])


def _builtin_model_yaml(weights: str) -> bool:
    """True when ``weights`` names a model definition shipped inside the Ultralytics package
    (e.g. ``yolo11n.yaml``), resolved the way Ultralytics resolves it."""
    from ultralytics.utils import ROOT
    from ultralytics.utils.checks import check_yaml

    p = Path(weights)
    if len(p.parts) != 1 or p.exists():
        return False
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", str(p))  # yolo11n.yaml -> yolo11.yaml, as Ultralytics
    try:
        found = check_yaml(str(p), hard=False) or check_yaml(unified)
    except Exception:  # noqa: BLE001 - not found anywhere: not a built-in
        return False
    return Path(found).resolve().is_relative_to((ROOT / "cfg").resolve())


def _load_restricted(weights: str):
    """YOLO(weights) without running code from the file.

    ``.pt``: the file (downloaded first for an official asset name, as Ultralytics does) is copied
    into a private temporary folder, checked there with Ultralytics' restricted loader
    (``torch_safe_load(safe_only=True)``: ``torch.load(weights_only=True)`` with an allow-list of the
    torch/Ultralytics classes a checkpoint contains) and, once it passes, that same copy is handed
    to YOLO, so the checked bytes are the loaded bytes. ``.yaml``: only the model definitions
    shipped with Ultralytics (Ultralytics ``eval``s a definition's ``activation``). Other formats
    (.onnx, ...) are not unpickled and load as usual.
    """
    from ultralytics import YOLO
    from ultralytics.nn.tasks import torch_safe_load
    from ultralytics.utils import SETTINGS
    from ultralytics.utils.checks import REMOTE_FILE_PREFIXES, check_file, check_model_file_from_stem
    from ultralytics.utils.downloads import attempt_download_asset

    name = str(check_model_file_from_stem(weights))  # yolo11n -> yolo11n.pt, as Ultralytics does
    suffix = Path(name.split("?")[0]).suffix.lower()
    if suffix in (".yaml", ".yml"):
        if not _builtin_model_yaml(name):
            raise ModelError(
                f"{weights}: a model definition outside the Ultralytics package is code (its activation is "
                f"evaluated); set detector.trust_weights: true only for a file you trust"
            )
        return YOLO(name)
    if suffix != ".pt":
        return YOLO(name)
    if Path(name).is_file():
        local = name
    elif name.lower().startswith(REMOTE_FILE_PREFIXES):
        local = check_file(name, download_dir=SETTINGS["weights_dir"])
    else:
        local = attempt_download_asset(name)  # an official asset name: found in the weights folder or downloaded
    with tempfile.TemporaryDirectory(prefix="reid-weights-") as tmp:  # mkdtemp: 0700, ours alone
        copy = Path(tmp) / Path(local).name
        shutil.copyfile(local, copy)
        try:
            torch_safe_load(str(copy), safe_only=True)
        except (ConnectionError, OSError):  # Ultralytics wanted to download something: reported by the caller
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the restricted loader refuses is the file's fault
            raise ModelError(
                f"{weights}: not a loadable Ultralytics checkpoint ({_refusal(exc)}); set "
                f"detector.trust_weights: true only for a file you trust"
            ) from None
        return YOLO(str(copy))


def load_ultralytics_model(weights: str, trust_weights: bool = False):
    """An ``ultralytics.YOLO`` for ``weights`` (name, local/remote .pt, .onnx, built-in .yaml, ...).

    By default files are loaded restricted (see :func:`_load_restricted`): a crafted checkpoint
    runs no code and fails with one ModelError line naming it. ``trust_weights``: plain
    ``YOLO(weights)`` (unrestricted unpickling), with a logged warning. A failed download ->
    one-line ModelError naming the weights/URL; any other load failure -> one line too.
    """
    from ultralytics import YOLO

    try:
        if trust_weights:
            log.warning(
                "detector.trust_weights: true: loading %s without restrictions; a crafted weights file can run "
                "code on this machine", weights,
            )
            return YOLO(weights)
        return _load_restricted(weights)
    except ModelError:
        raise
    except (ConnectionError, OSError, FileNotFoundError) as exc:
        url = re.search(r"https?://\S+?\.(?:pt|onnx|yaml)", str(exc))
        tried = url.group(0) if url else weights
        raise ModelError(
            f"cannot load Ultralytics weights '{weights}' (tried to fetch {tried}; offline?): download it once "
            f"elsewhere and set detector.weights to the local .pt/.onnx path, or use the ONNX detector "
            f"(kind: onnx, weights: ../shared/weights/yolov5n.onnx)"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - Ultralytics raises TypeError/KeyError/... for files it cannot use
        raise ModelError(f"{weights}: Ultralytics cannot load it: {_first_line(exc)}") from None


def ultralytics_onnx_batch(path: Path) -> int | None:
    """The fixed batch of an ONNX file Ultralytics is to run (None: dynamic batch).

    Ultralytics decodes one output laid out (B, 4 + C, N) (YOLOv8/11, and YOLOv5u exports); a classic YOLOv5
    export's (B, N, 5 + C) rows or a cut model's Detect maps would give wrong boxes or none, silently, so they
    are refused in one line naming ``kind: onnx``, which decodes both. A fixed batch above 1 is refused too
    (Ultralytics sends the frames of a call as one batch); batch 1 is run one frame per call."""
    from pipeline.detectors.onnx_graph import META_KIND, io_dims

    inp, out, meta = io_dims(path)
    v5_rows = len(out) == 3 and out[1] is not None and out[2] is not None and out[1] > out[2]
    if v5_rows or META_KIND in meta:
        what = f"a YOLOv5-layout export (output {tuple(out)}: anchors x (5 + classes))" if v5_rows else \
            "a YOLOv5 model cut before its Detect decode"
        raise ConfigError(f"detector.kind: ultralytics cannot decode {path}, {what}; use kind: onnx for this file")
    batch = inp[0] if inp else None
    if batch is not None and batch > 1:
        raise ConfigError(f"detector.weights: {path} has a fixed batch of {batch}; kind: ultralytics needs an ONNX "
                          "export with batch 1 or a dynamic batch")
    return batch


class UltralyticsDetector:
    """Batched Ultralytics inference, persons (``cfg.classes``) only, tlwh in original pixels."""

    def __init__(self, cfg: DetectorConfig) -> None:
        from pipeline.core.device import resolve_device

        w = Path(cfg.weights).expanduser()
        if (w.suffix in (".pt", ".onnx") and (w.is_absolute() or len(w.parts) > 1)) and not w.is_file():
            raise ModelError(f"detector weights not found: {w}")
        self.cfg = cfg
        #: an ONNX file's fixed batch (1: one frame per predict call), None: any batch
        self.fixed_batch = ultralytics_onnx_batch(w) if w.suffix.lower() == ".onnx" and w.is_file() else None
        self.model = load_ultralytics_model(str(w) if w.is_file() else cfg.weights, cfg.trust_weights)
        self.device = str(resolve_device(cfg.device))

    def _predict(self, images_bgr: list[np.ndarray]) -> list:
        kw = dict(conf=self.cfg.conf, iou=self.cfg.iou, imgsz=self.cfg.imgsz, classes=list(self.cfg.classes),
                  device=self.device, verbose=False)
        if self.fixed_batch == 1:  # a batch-1 ONNX export: one frame per call (the same boxes as a batch)
            return [res for img in images_bgr for res in self.model.predict([img], **kw)]
        return self.model.predict(list(images_bgr), **kw)

    def detect(self, images_bgr: list[np.ndarray]) -> list[list[Detection]]:
        """Batch of BGR (H, W, 3) uint8 images -> per image detections."""
        if not images_bgr:
            return []
        results = self._predict(images_bgr)
        out: list[list[Detection]] = []
        for res in results:
            boxes = res.boxes
            tlbr = boxes.xyxy.cpu().numpy().astype(np.float64)
            scores = boxes.conf.cpu().numpy().astype(np.float64)
            cls = boxes.cls.cpu().numpy().astype(np.int64)
            keep = np.isin(cls, self.cfg.classes)
            out.append([
                Detection(tlwh=tlbr_to_tlwh(b), score=float(s), class_id=int(c))
                for b, s, c in zip(tlbr[keep], scores[keep], cls[keep])
            ])
        return out
