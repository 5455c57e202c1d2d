"""The ``.npy`` and ``.npz`` bodies of the binary batch route, encoded and decoded.

Decoding trusts nothing a body declares. An ``.npy`` header is parsed with numpy's format
helpers (never unpickled) and checked before any array is allocated: a numeric dtype (float,
signed or unsigned integer), a sane shape, and exactly as many data bytes as it declares. With
``max_bytes``, the decoded size the headers declare (all requested members of an ``.npz``
together) is bounded too: over it, :class:`DecodedTooLarge`, raised before anything is
allocated or decompressed. An ``.npz`` member is decompressed in bounded steps, never past the
size its zip entry declares, so a compression bomb or a lying zip header cannot inflate it;
members not asked for are never decompressed, and an archive of more than 1024 entries is
refused before zipfile reads its directory. The arrays returned are writable and share no
memory with the body, as ``np.load``'s are.

Every refusal is a :class:`DecodeError` (a ``ValueError``) with a one-line message that starts
with ``what`` (``"body"`` by default); a ``MemoryError`` while decoding, which the checks should
make unreachable, becomes a :class:`DecodedTooLarge` too.
"""

from __future__ import annotations

import io
import math
import struct
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "NPY_MAGIC",
    "DecodeError",
    "DecodedTooLarge",
    "decode_npy",
    "decode_npz",
    "encode_npy",
    "encode_npz",
    "npz_declared_bytes",
]

NPY_MAGIC = b"\x93NUMPY"
"""The first bytes of every ``.npy`` file."""

_NUMERIC_KINDS = "fiu"
# numpy's own bound on header text (np.load's max_header_size default); np.save writes ~128 bytes
_MAX_HEADER_TEXT = 10_000
# magic (6) + version (2) + header length (4 in version 2.0) + the header text
_HEADER_LIMIT = 12 + _MAX_HEADER_TEXT
_MAX_NDIM = 32
# no array spans this many bytes, even with a zero dimension that makes it empty
_MAX_SPAN = 1 << 62
# decompressed bytes per read: ZipExtFile.read(n) inflates up to n bytes in one go
_CHUNK = 1 << 20
# zipfile builds an object per central-directory entry, so their number is bounded first
_MAX_MEMBERS = 1024
_CENTRAL_DIRECTORY_ENTRY = b"PK\x01\x02"
_MAX_MESSAGE = 200


class DecodeError(ValueError):
    """Bytes that are not the ``.npy`` or ``.npz`` they should be."""


class DecodedTooLarge(DecodeError):
    """Arrays whose declared shapes and dtypes decode to more than the caller's ``max_bytes``
    (the service answers 413); raised before they are allocated or decompressed."""


class _Invalid(Exception):
    """Why bytes are refused, without the caller's prefix."""


class _TooLarge(Exception):
    """Why bytes decode past the limit, without the caller's prefix."""


@dataclass(frozen=True)
class _Header:
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran_order: bool
    offset: int
    """Where the data starts, from the start of the ``.npy``."""

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize

    def describe(self) -> str:
        return f"shape {self.shape} of {self.dtype}, {self.nbytes} bytes"


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


def decode_npy(body: bytes, *, what: str = "body", max_bytes: int | None = None) -> np.ndarray:
    """The numeric 2-D array ``[nq, dim]`` stored in ``.npy`` bytes.

    Raises:
        DecodedTooLarge: the header declares more than ``max_bytes`` bytes of data.
        DecodeError: anything else wrong, before anything is allocated.
    """
    if not body.startswith(NPY_MAGIC):
        raise DecodeError(f"{what} is not a .npy array (no NUMPY magic)")
    try:
        header = _parse_header(body[:_HEADER_LIMIT])
        if header.dtype.kind not in _NUMERIC_KINDS and not header.dtype.hasobject:
            raise DecodeError(f"{what} must hold a numeric .npy array, got dtype {header.dtype}")
        _check_header(header)
        if len(header.shape) != 2:
            raise DecodeError(f"{what} must hold a 2-D [nq, dim] array, got shape {header.shape}")
        if max_bytes is not None and header.nbytes > max_bytes:
            raise _TooLarge(f"the header declares {header.describe()}")
        _check_span(header)
        held = len(body) - header.offset
        if held != header.nbytes:
            raise _Invalid(
                f"the header declares {header.nbytes} bytes of data, the body holds {held}"
            )
        flat = _allocate(header)
        if header.nbytes:
            flat.view(np.uint8)[:] = np.frombuffer(memoryview(body)[header.offset :], np.uint8)
        return _shaped(flat, header)
    except _Invalid as exc:
        raise DecodeError(f"{what} is not a valid .npy array: {exc}") from None
    except _TooLarge as exc:
        raise DecodedTooLarge(
            f"{what} decodes past the limit of {max_bytes} bytes: {exc}"
        ) from None
    except MemoryError:  # the last line of defence: the checks above should make it unreachable
        raise DecodedTooLarge(f"{what} does not fit in memory once decoded") from None


def decode_npz(
    body: bytes, keys: Iterable[str], *, what: str = "body", max_bytes: int | None = None
) -> dict[str, np.ndarray]:
    """The members ``keys`` of an ``.npz`` archive, as arrays; a key the archive lacks is left
    out (what is missing is the caller's to name). Member ``KEY`` is the entry ``KEY.npy``;
    other entries are never decompressed. Without ``max_bytes``, a member is read up to the
    size its zip entry declares (and its ``.npy`` header agrees with), however large.

    Raises:
        DecodedTooLarge: the requested members together declare more than ``max_bytes`` bytes
            of data (zip entry sizes are checked before decompressing, ``.npy`` headers before
            allocating).
        DecodeError: anything else wrong (not a zip, a duplicate, encrypted or truncated
            member, an unsupported compression, a member that is no valid numeric ``.npy``).
    """
    try:
        return _decode_npz(body, keys, max_bytes)
    except _Invalid as exc:
        raise DecodeError(f"{what} is not a valid .npz archive: {exc}") from None
    except _TooLarge as exc:
        raise DecodedTooLarge(
            f"{what} decodes past the limit of {max_bytes} bytes (all members together): {exc}"
        ) from None
    except MemoryError:  # the last line of defence: the checks should make it unreachable
        raise DecodedTooLarge(f"{what} does not fit in memory once decoded") from None


# -- .npy headers -----------------------------------------------------------------------------


def _parse_header(prefix: bytes) -> _Header:
    """The header at the start of ``prefix``, the first bytes of an ``.npy``: parsed only,
    not checked."""
    stream = io.BytesIO(prefix)
    try:
        major, minor = np.lib.format.read_magic(stream)
        if (major, minor) == (1, 0):
            parsed = np.lib.format.read_array_header_1_0(stream, _MAX_HEADER_TEXT)
        elif (major, minor) == (2, 0):
            parsed = np.lib.format.read_array_header_2_0(stream, _MAX_HEADER_TEXT)
        else:  # 3.0 only differs for structured dtypes with non-latin-1 names, refused anyway
            parsed = None
    except MemoryError:
        raise
    # numpy raises ValueError for what it recognises, but a hostile header reaches
    # literal_eval, its Python 2 tokenizer fallback and np.dtype, which raise SyntaxError,
    # tokenize.TokenError, TypeError, RecursionError ...: all of them mean a bad header
    except Exception as exc:
        raise _Invalid(_one_line(exc)) from None
    if parsed is None:
        raise _Invalid(f"unsupported .npy format version {major}.{minor}")
    shape, fortran_order, dtype = parsed
    return _Header(tuple(shape), dtype, fortran_order, stream.tell())


def _check_header(header: _Header) -> None:
    """Refuse what no request may carry: objects, non-numeric dtypes, impossible shapes."""
    dtype, shape = header.dtype, header.shape
    if dtype.hasobject:
        raise _Invalid(f"dtype {dtype} holds Python objects, which are never unpickled")
    if dtype.kind not in _NUMERIC_KINDS:
        raise _Invalid(f"dtype {dtype} is not numeric (float or integer)")
    if len(shape) > _MAX_NDIM:
        raise _Invalid(f"shape has {len(shape)} dimensions, at most {_MAX_NDIM} are read")
    if any(isinstance(n, bool) or n < 0 for n in shape):
        raise _Invalid(f"shape {shape} is not a tuple of non-negative integers")


def _check_span(header: _Header) -> None:
    # an empty array is allocated too: numpy refuses a shape like (0, 10**30) with a ValueError
    if math.prod(max(n, 1) for n in header.shape) * header.dtype.itemsize > _MAX_SPAN:
        raise _Invalid(f"shape {header.shape} is absurd")


def _allocate(header: _Header) -> np.ndarray:
    """A flat writable array for the data, allocated only after every check."""
    return np.empty(header.count, header.dtype)


def _shaped(flat: np.ndarray, header: _Header) -> np.ndarray:
    # a view, no copy: a 1-D array reshapes to either order in place
    return flat.reshape(header.shape, order="F" if header.fortran_order else "C")


# -- .npz archives ----------------------------------------------------------------------------


def npz_declared_bytes(body: bytes, keys: Iterable[str]) -> int:
    """The uncompressed bytes an ``.npz`` archive's zip directory declares for the members
    ``keys`` (what :func:`decode_npz` may inflate at most: it never reads a member past its
    declared size), read without decompressing anything; 0 for a body :func:`decode_npz`
    would refuse as no archive."""
    if body.count(_CENTRAL_DIRECTORY_ENTRY) > _MAX_MEMBERS:
        return 0
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            names = {f"{key}.npy" for key in keys}
            return sum(i.file_size for i in archive.infolist() if i.filename in names)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, struct.error):
        return 0


def _decode_npz(body: bytes, keys: Iterable[str], max_bytes: int | None) -> dict[str, np.ndarray]:
    if body.startswith(NPY_MAGIC):
        raise _Invalid("not an npz archive (a bare .npy array)")
    # a 64 MB body of minimal entries would make zipfile build a million objects
    if body.count(_CENTRAL_DIRECTORY_ENTRY) > _MAX_MEMBERS:
        raise _Invalid(f"more than {_MAX_MEMBERS} members")
    budget = max_bytes
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            members = _members(archive)
            for key in dict.fromkeys(keys):
                info = members.get(f"{key}.npy")
                if info is None:
                    if key in members:
                        raise _Invalid(f"member {key!r} is not named {key}.npy")
                    continue
                out[key] = _read_member(archive, info, budget)
                if budget is not None:
                    budget -= out[key].nbytes
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, struct.error) as exc:
        raise _Invalid(_one_line(exc)) from None
    return out


def _members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        if info.filename in members:  # zipfile would silently read the last one
            raise _Invalid(f"member {info.filename!r} appears twice")
        members[info.filename] = info
    return members


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int | None) -> np.ndarray:
    name = info.filename
    if info.flag_bits & 0x1:
        raise _Invalid(f"member {name!r} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _Invalid(
            f"member {name!r} uses compression method {info.compress_type}; "
            "only stored and deflated members are read"
        )
    # before decompressing anything: the zip declares how large the member inflates to
    if budget is not None and info.file_size - _HEADER_LIMIT > budget:
        raise _TooLarge(f"member {name!r} inflates to {info.file_size} bytes")
    try:
        with archive.open(info) as stream:
            return _read_npy_stream(stream, info.file_size, budget, name)
    except _Invalid as exc:
        raise _Invalid(f"member {name!r}: {exc}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, struct.error) as exc:
        raise _Invalid(f"member {name!r}: {_one_line(exc)}") from None


def _read_npy_stream(stream: IO[bytes], size: int, budget: int | None, name: str) -> np.ndarray:
    """The ``.npy`` of ``size`` bytes that ``stream`` inflates, read in bounded steps."""
    prefix = _read_upto(stream, min(size, _HEADER_LIMIT))
    if not prefix.startswith(NPY_MAGIC):
        raise _Invalid("not a .npy array (no NUMPY magic)")
    header = _parse_header(prefix)
    _check_header(header)
    if budget is not None and header.nbytes > budget:
        raise _TooLarge(f"member {name!r} declares {header.describe()}")
    _check_span(header)
    if header.offset + header.nbytes != size:
        raise _Invalid(
            f"the header declares {header.nbytes} bytes of data, the archive holds "
            f"{size - header.offset}"
        )
    flat = _allocate(header)
    raw = flat.view(np.uint8)
    filled = len(prefix) - header.offset
    raw[:filled] = np.frombuffer(memoryview(prefix)[header.offset :], np.uint8)
    while filled < header.nbytes:
        chunk = stream.read(min(_CHUNK, header.nbytes - filled))
        if not chunk:
            break
        raw[filled : filled + len(chunk)] = np.frombuffer(chunk, np.uint8)
        filled += len(chunk)
    if filled < header.nbytes:
        raise _Invalid(f"truncated: {filled} of {header.nbytes} bytes of data")
    # one byte more than declared: this ends the stream, so zipfile checks the CRC, and a
    # stream that went on would be refused (zipfile stops at the declared size itself)
    if stream.read(1):
        raise _Invalid(f"more than the {header.nbytes} bytes of data its header declares")
    return _shaped(flat, header)


def _read_upto(stream: IO[bytes], n: int) -> bytes:
    """Up to ``n`` bytes of ``stream`` (fewer only at its end)."""
    parts: list[bytes] = []
    left = n
    while left > 0:
        chunk = stream.read(min(_CHUNK, left))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _one_line(exc: BaseException) -> str:
    """``exc``'s message on one short line: a hostile header must not flood an answer."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
