"""Rows read back from the identity store, and array <-> blob conversion.

Arrays travel as ``.npy`` bytes (``numpy.save`` without pickle), so dtype and
shape are self-described and a blob read back is bit-identical.
"""

from __future__ import annotations

import ast
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pipeline.core.types import GlobalIdentity, Tracklet


#: ``.npy`` headers by (dtype, shape): ``np.save`` builds its header in Python (~30 us), per blob
_HEADERS: dict[tuple[str, tuple[int, ...]], bytes] = {}
#: parsed ``.npy`` version-1.0 headers: header bytes -> (dtype, shape, fortran order); ``np.load`` parses each
#: blob's header with ``ast.literal_eval`` (~90 us, 9 of the 11 s a hot swap spent reading 10^5 embeddings)
_PARSED: dict[bytes, tuple[np.dtype, tuple[int, ...], bool]] = {}


def to_blob(array: np.ndarray) -> bytes:
    """Any numeric array -> ``.npy`` bytes (``numpy.save``'s bytes: its header, cached per dtype and shape,
    then the C-order data)."""
    arr = np.ascontiguousarray(array)
    key = (arr.dtype.str, arr.shape)
    header = _HEADERS.get(key) if arr.dtype.kind in "biuf" else None
    if header is None:
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        blob = buf.getvalue()
        if arr.dtype.kind in "biuf":
            if len(_HEADERS) > 1024:  # many distinct shapes (tracklet lengths): start over
                _HEADERS.clear()
            _HEADERS[key] = blob[:len(blob) - arr.nbytes]
        return blob
    return header + arr.tobytes()


def from_blob(blob: bytes | None) -> np.ndarray | None:
    """``.npy`` bytes -> array (None stays None): a new, writable array, as ``np.load`` gives. Version-1.0
    headers of numeric arrays (what :func:`to_blob` writes) are parsed once per distinct header
    (:func:`blob_view`); anything else goes through ``np.load``."""
    if blob is None:
        return None
    view = blob_view(blob)
    if view is not None:
        return view.copy(order="K")
    return np.load(io.BytesIO(blob), allow_pickle=False)


def blob_view(blob: bytes) -> np.ndarray | None:
    """A read-only array over the bytes of a version-1.0 ``.npy`` blob of a numeric array (no copy), its
    header parsed once per distinct header; None for any other blob (use :func:`from_blob`)."""
    if blob[:8] != b"\x93NUMPY\x01\x00":
        return None
    end = 10 + int.from_bytes(blob[8:10], "little")
    header = bytes(blob[10:end])
    parsed = _PARSED.get(header)
    if parsed is None:
        parsed = _parse_header(header)
        if parsed is None:
            return None
        if len(_PARSED) > 1024:  # many distinct shapes (tracklet lengths): start over
            _PARSED.clear()
        _PARSED[header] = parsed
    dtype, shape, fortran = parsed
    flat = np.frombuffer(blob, dtype=dtype, offset=end)
    if flat.size != math.prod(shape):
        return None
    return flat.reshape(shape, order="F" if fortran else "C")


def _parse_header(header: bytes) -> tuple[np.dtype, tuple[int, ...], bool] | None:
    """(dtype, shape, fortran order) of a ``.npy`` 1.0 header dict, or None when it is not a plain numeric one."""
    try:
        d = ast.literal_eval(header.decode("latin1"))
        dtype = np.dtype(d["descr"])
        shape = tuple(int(n) for n in d["shape"])
        fortran = bool(d["fortran_order"])
    except (ValueError, SyntaxError, KeyError, TypeError):
        return None
    return (dtype, shape, fortran) if dtype.kind in "biuf" else None


@dataclass
class StoredTracklet:
    """A tracklet as stored.

    frames: (T,) int64 1-based; timestamps: (T,) float64 s; boxes_tlwh: (T, 4)
    float64; embeddings: model version -> (D,) float32 aggregated L2-normalised
    vector; frame_embeddings: (T', D) float32 per-frame features or None
    (only loaded when asked for); global_id: assigned identity or None.
    """

    tracklet_id: int
    run_id: int
    cam_id: str
    track_id: int
    start_time: float
    end_time: float
    start_frame: int
    end_frame: int
    global_id: int | None
    frames: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    boxes_tlwh: np.ndarray | None = None
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    frame_embeddings: np.ndarray | None = None
    embedding_frames: np.ndarray | None = None


@dataclass(frozen=True)
class Sighting:
    """Where and when an identity was seen: one tracklet's camera and time span."""

    global_id: int
    cam_id: str
    tracklet_id: int
    track_id: int
    start_time: float
    end_time: float
    start_frame: int
    end_frame: int
    run_id: int


@dataclass(frozen=True)
class IdentityRow:
    """Summary of one identity (no members): first/last seen and where."""

    global_id: int
    first_seen: float
    last_seen: float
    first_cam: str
    last_cam: str
    n_tracklets: int  # tracklets assigned to it
    model_version: str | None


@dataclass(frozen=True)
class ModelVersion:
    """A re-id model version: weights as bytes or a path, metrics, parent, deployed flag."""

    version: str
    parent: str | None
    created: float
    weights_path: str | None
    metrics: dict
    deployed: bool
    has_blob: bool


@dataclass(frozen=True)
class Event:
    """An identity event (appear / leave / handover / ...) with a JSON payload."""

    event_id: int
    kind: str
    global_id: int
    cam_id: str
    t: float
    payload: dict


@dataclass
class TrackletRecord:
    """One finished tracklet to record with its identity (the arguments of
    :meth:`~pipeline.store.identity_store.IdentityStore.record_tracklet`, for its batched form
    :meth:`~pipeline.store.identity_store.IdentityStore.record_tracklets`).

    embedding: (D,) aggregated vector or None; events: (kind, payload) pairs."""

    tracklet: Tracklet
    embedding: np.ndarray | None
    model_version: str
    identity: GlobalIdentity
    distance: float | None = None
    events: Sequence[tuple[str, dict]] = ()
    probability: float | None = None
