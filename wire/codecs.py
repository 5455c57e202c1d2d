"""The ``.npy`` and ``.npz`` bodies of the binary batch route, encoded and decoded.

Decoding never unpickles (``allow_pickle=False``) and raises :class:`DecodeError` (a
``ValueError``) with a one-line message that starts with ``what`` (``"body"`` by default).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

__all__ = ["NPY_MAGIC", "DecodeError", "decode_npy", "decode_npz", "encode_npy", "encode_npz"]

NPY_MAGIC = b"\x93NUMPY"
"""The first bytes of every ``.npy`` file."""


class DecodeError(ValueError):
    """Bytes that are not the ``.npy`` or ``.npz`` they should be."""


def encode_npy(array: npt.ArrayLike) -> bytes:
    """``array`` as the bytes of an ``.npy`` file."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def encode_npz(**arrays: npt.ArrayLike) -> bytes:
    """``arrays`` as the bytes of an (uncompressed) ``.npz`` archive, one member per name."""
    buffer = io.BytesIO()
    # ignore: numpy's stub reads **arrays as possibly filling the bool allow_pickle; they are arrays
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def decode_npy(body: bytes, *, what: str = "body") -> np.ndarray:
    """The numeric 2-D array ``[nq, dim]`` stored in ``.npy`` bytes."""
    if not body.startswith(NPY_MAGIC):
        raise DecodeError(f"{what} is not a .npy array (no NUMPY magic)")
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DecodeError(f"{what} is not a valid .npy array: {exc}") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        raise DecodeError(f"{what} must hold a numeric .npy array")
    if array.ndim != 2:
        raise DecodeError(f"{what} must hold a 2-D [nq, dim] array, got shape {array.shape}")
    return array


def decode_npz(body: bytes, keys: Iterable[str], *, what: str = "body") -> dict[str, np.ndarray]:
    """The members ``keys`` of an ``.npz`` archive, as arrays; a key the archive lacks is left
    out (what is missing is the caller's to name)."""
    try:
        loaded = np.load(io.BytesIO(body), allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array is no archive
            raise ValueError("not an npz archive")
        with loaded as npz:
            return {key: npz[key] for key in keys if key in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DecodeError(f"{what} is not a valid .npz archive: {exc}") from None
