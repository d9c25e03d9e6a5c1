"""Search by photo: check an upload, cut the optional box, embed it, rank the store's identities.

Uploads are size-limited (``max_bytes``), their declared pixel size is read from the header (Pillow, without
decoding) and refused above ``MAX_PIXELS`` before OpenCV decodes them; anything that does not
decode as an image is refused with :class:`UploadError` (HTTP 413 / 415 / 422 in the app), never passed on.
The encoder is built on first use by the factory the caller gives (the run's or ``serve``'s ``encoder:``
settings), once, and shared under a lock. Ranking is :func:`pipeline.query.rank_tracklets` (cosine distance
to every stored tracklet embedding of the encoder's version; an identity ranks by its best tracklet).
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.core.types import crop_tlwh
from pipeline.store import IdentityStore

MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 40_000_000


class UploadError(Exception):
    """An upload the console refuses; ``status`` is the HTTP status, ``str()`` the one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def mib(n: int) -> str:
    """Bytes as '8 MiB' / '381.5 MiB' (the upload limits' messages)."""
    return f"{n / 2**20:.4g} MiB"


@functools.cache
def _quiet_bomb_warnings() -> None:
    """Once per process: Pillow's DecompressionBombWarning (sizes it only warns about) stays out of the run's log,
    since :func:`declared_size`'s caller refuses anything over ``MAX_PIXELS`` itself."""
    from PIL import Image

    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def declared_size(data: bytes) -> tuple[int, int]:
    """(width, height) an upload's header declares, read without decoding the pixels (Pillow's lazy open);
    UploadError 415 when no known image header is found, 413 when Pillow itself calls it a decompression bomb."""
    import io
    import re

    from PIL import Image, UnidentifiedImageError

    _quiet_bomb_warnings()
    try:
        with Image.open(io.BytesIO(data)) as im:  # reads the header only; load() is never called
            return int(im.size[0]), int(im.size[1])
    except Image.DecompressionBombError as exc:  # over twice Pillow's own limit (about 179 megapixels)
        got = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(got.group(1)) / 1e6:.0f} megapixels" if got else "too many pixels"
        raise UploadError(413, f"the picture declares {size}; the limit is {MAX_PIXELS / 1e6:.0f} megapixels"
                          ) from None
    # ImportError: once ultralytics is imported it patches Image.open to retry an unknown header as HEIF through
    # pi_heif, which is not installed: that too means the upload is not an image this console reads
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, ImportError):
        raise UploadError(415, NOT_AN_IMAGE) from None


NOT_AN_IMAGE = "the upload is not an image OpenCV can read (JPEG, PNG, BMP, WebP, ...)"
#: at most two uploads are decoded at once (each <= MAX_PIXELS x 3 bytes): bounded memory under parallel searches
DECODE_SLOTS = threading.BoundedSemaphore(2)


def decode_image(data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> np.ndarray:
    """Upload bytes -> (H, W, 3) BGR uint8; UploadError when too large, empty or not an image.

    The size the header declares is checked before any pixel is decoded (a 600-byte JPEG can declare 30000 x
    30000 pixels, which libjpeg would otherwise allocate and fill), so decoding costs at most ``MAX_PIXELS``."""
    import cv2

    if len(data) > max_bytes:
        raise UploadError(413, f"the picture is too large; the limit is {mib(max_bytes)}")
    if not data:
        raise UploadError(422, "no picture was uploaded")
    w, h = declared_size(data)
    if w * h > MAX_PIXELS:
        raise UploadError(413, f"the picture has {w}x{h} pixels; the limit is {MAX_PIXELS / 1e6:.0f} megapixels")
    if w <= 0 or h <= 0:
        raise UploadError(415, NOT_AN_IMAGE)
    buf = np.frombuffer(data, np.uint8)
    with DECODE_SLOTS:
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3 or image.size == 0:
        raise UploadError(415, NOT_AN_IMAGE)
    if image.shape[0] * image.shape[1] > MAX_PIXELS:  # a header that lied: refused all the same
        raise UploadError(413, f"the picture has {image.shape[1]}x{image.shape[0]} pixels; the limit is"
                               f" {MAX_PIXELS / 1e6:.0f} megapixels")
    return image


def parse_box(text: str | None) -> np.ndarray | None:
    """'x,y,w,h' (tlwh pixels) -> (4,) float64; None for an empty value; UploadError when malformed."""
    if text is None or not text.strip():
        return None
    try:
        tlwh = np.array([float(v) for v in text.split(",")], dtype=np.float64)
    except ValueError:
        tlwh = np.zeros(0)
    if tlwh.shape != (4,) or not np.all(np.isfinite(tlwh)) or tlwh[2] <= 0 or tlwh[3] <= 0:
        raise UploadError(422, f"box {text!r}: expected x,y,w,h in pixels with w, h > 0")
    return tlwh


def probe_crop(image: np.ndarray, box: np.ndarray | None) -> np.ndarray:
    """The person to search for: the box's pixels (the project's crop rule), or the whole picture."""
    if box is None:
        return image
    crop = crop_tlwh(image, box, min_size=4)
    if crop is None:
        raise UploadError(422, f"the box is outside the {image.shape[1]}x{image.shape[0]} picture or too small")
    return crop


class PhotoSearch:
    """Ranks a store's identities against a probe crop; ``encoder_factory()`` -> an AppearanceEncoder."""

    def __init__(self, encoder_factory: Callable[[], Any]) -> None:
        self._factory = encoder_factory
        self._encoder = None
        self._lock = threading.Lock()

    def encoder(self):
        with self._lock:
            if self._encoder is None:
                self._encoder = self._factory()
            return self._encoder

    def embed(self, crop: np.ndarray) -> tuple[np.ndarray, str]:
        """((D,) float32 probe embedding, model version)."""
        enc = self.encoder()
        with self._lock:
            vec = enc.embed_crops([crop])[0]
        return np.asarray(vec, np.float32), enc.version

    def search(self, store: IdentityStore, crop: np.ndarray, top: int = 5) -> dict:
        """{"model_version", "identities": [{rank, global_id, distance, moments: [{tracklet_id, cam_id,
        start_time, end_time, frames, distance}] (that identity's closest tracklets)}]}."""
        from pipeline.query import rank_tracklets

        probe, version = self.embed(crop)
        ranked = rank_tracklets(store, probe, version, top=10_000)
        moments: dict[int, list[dict]] = {}
        for t in ranked["tracklets"]:
            if t["global_id"] is not None:
                moments.setdefault(t["global_id"], []).append(
                    {k: t[k] for k in ("tracklet_id", "cam_id", "start_time", "end_time", "frames", "distance")})
        idents = [dict(i, moments=moments.get(i["global_id"], [])[:3]) for i in ranked["identities"][:top]]
        return {"model_version": version, "identities": idents}
