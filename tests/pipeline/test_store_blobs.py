"""Array <-> BLOB conversion of the identity store (pipeline/store/records.py): what from_blob returns for the
bytes to_blob and numpy.save write is what numpy.load returns, value for value, through the cached header path."""

from __future__ import annotations

import io

import numpy as np
import pytest

from pipeline.store import records
from pipeline.store.records import from_blob, to_blob

_RNG = np.random.default_rng(0)
CASES = {
    "embedding f4": _RNG.standard_normal(1280).astype(np.float32),
    "boxes i8": _RNG.integers(0, 9, (17, 4)).astype(np.int64),
    "big-endian f8": _RNG.standard_normal((3, 5)).astype(">f8"),
    "empty": np.zeros((0, 4), np.float32),
    "fortran order": np.asfortranarray(_RNG.standard_normal((4, 3))),
    "scalar": np.array(7, np.int16),
    "3-d u1": _RNG.integers(0, 255, (2, 3, 4)).astype(np.uint8),
    "bool": np.array([True, False, True]),
}


def _saved(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return buf.getvalue()


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("writer", ["to_blob", "np.save"])
def test_from_blob_reads_what_numpy_load_reads(name: str, writer: str) -> None:
    x = CASES[name]
    blob = to_blob(x) if writer == "to_blob" else _saved(x)
    for _ in range(2):  # the second read takes the cached header
        got, ref = from_blob(blob), np.load(io.BytesIO(blob), allow_pickle=False)
        assert got.dtype == ref.dtype and got.shape == ref.shape
        assert got.tobytes(order="A") == ref.tobytes(order="A") and np.array_equal(got, ref)
        assert np.array_equal(got.reshape(x.shape), x)  # (to_blob stores a 0-d array as shape (1,))
        assert got.flags.writeable  # as np.load gives
        if ref.ndim >= 2:
            assert got.flags.f_contiguous == ref.flags.f_contiguous
    header = blob[10:10 + int.from_bytes(blob[8:10], "little")]
    assert header in records._PARSED  # read through the cached header, not numpy.load


def test_from_blob_falls_back_to_numpy_for_other_blobs() -> None:
    """A version-2.0 header and a structured dtype are not on the fast path: numpy.load reads them."""
    x = np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")])
    buf = io.BytesIO()
    np.lib.format.write_array(buf, x, version=(2, 0), allow_pickle=False)
    for blob in (buf.getvalue(), _saved(x)):
        got = from_blob(blob)
        assert got.dtype == x.dtype and np.array_equal(got, x)
    assert from_blob(None) is None
