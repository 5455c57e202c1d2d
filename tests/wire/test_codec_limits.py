"""The binary codecs against hostile bodies (issue 15, findings 1 and 3).

A decoded-size limit holds while decoding, against each array's declared shape and dtype, before
anything is allocated or decompressed; every malformed body is a one-line :class:`DecodeError`,
never numpy's or zipfile's own exception. Memory is measured as the growth of this process's
peak RSS (``VmHWM``), reset first where the kernel allows it (``/proc/self/clear_refs``); the
bomb is written member by member, so building it never raises that peak.
"""

from __future__ import annotations

import functools
import io
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

import glint.wire.codecs as codecs
from glint.wire import (
    NPY_MAGIC,
    DecodedTooLarge,
    DecodeError,
    decode_npy,
    decode_npz,
    encode_npy,
    encode_npz,
)

MIB = 1 << 20
LIMIT = 64 * MIB
BOMB_ROWS, BOMB_DIM = 2_000_000, 64  # 512 MB of float32 zeros, ~0.5 MB deflated
RSS_GROWTH = 32 * MIB


# -- builders -----------------------------------------------------------------------------------


def npy_header(
    descr: Any, shape: Any, *, fortran: bool = False, version: int = 1, pad: int = 0
) -> bytes:
    """A hand-written ``.npy`` header, so that it can say anything."""
    text = repr({"descr": descr, "fortran_order": fortran, "shape": shape}) + " " * pad
    size = 4 if version >= 2 else 2
    text += " " * (-(6 + 2 + size + len(text) + 1) % 64) + "\n"
    length = struct.pack("<I" if size == 4 else "<H", len(text))
    return NPY_MAGIC + bytes([version, 0]) + length + text.encode("latin1")


def zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@functools.cache
def bomb() -> bytes:
    """Finding 1's body: ``tokens`` float32 (2,000,000, 64) zeros, ``np.savez_compressed``
    style, written in 1 MiB steps so this process never holds the array."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("tokens.npy", "w", force_zip64=True) as member:
            member.write(npy_header("<f4", (BOMB_ROWS, BOMB_DIM)))
            whole, rest = divmod(BOMB_ROWS * BOMB_DIM * 4, MIB)
            zeros = bytes(MIB)
            for _ in range(whole):
                member.write(zeros)
            member.write(bytes(rest))
        archive.writestr("offsets.npy", encode_npy(np.array([0, BOMB_ROWS], np.int64)))
    return buffer.getvalue()


def central_entry(body: bytes, name: str) -> int:
    """Where member ``name``'s central-directory entry starts."""
    at = body.rfind(b"PK\x01\x02")  # from the end, where the directory is
    while at >= 0:
        (length,) = struct.unpack_from("<H", body, at + 28)
        if body[at + 46 : at + 46 + length] == name.encode():
            return at
        at = body.rfind(b"PK\x01\x02", 0, at)
    raise AssertionError(f"no central directory entry for {name}")


CENTRAL_FIELDS = {
    "flags": (8, "<H"),
    "crc": (16, "<I"),
    "compress_size": (20, "<I"),
    "file_size": (24, "<I"),
}


def patched(body: bytes, name: str, **fields: int) -> bytes:
    """``body`` with fields of member ``name``'s central-directory entry (the one zipfile
    reads sizes, checksum and flags from) set to lies."""
    out = bytearray(body)
    at = central_entry(body, name)
    for field, value in fields.items():
        offset, fmt = CENTRAL_FIELDS[field]
        struct.pack_into(fmt, out, at + offset, value)
    return bytes(out)


def corrupted(body: bytes, name: str) -> bytes:
    """``body`` with the first bytes of member ``name``'s data (stored or deflated) broken."""
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        local = archive.getinfo(name).header_offset
    name_len, extra_len = struct.unpack_from("<HH", body, local + 26)
    start = local + 30 + name_len + extra_len
    return body[:start] + b"\xff" * 8 + body[start + 8 :]


# -- memory -------------------------------------------------------------------------------------


def _peak_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/self/status")


@contextmanager
def peak_growth() -> Iterator[list[int]]:
    """Yields a list that holds, after the block, how far the block raised the peak RSS."""
    try:  # 5 resets the peak to the current RSS, so a higher earlier peak cannot hide growth
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        pass
    grown: list[int] = []
    before = _peak_rss()
    yield grown
    grown.append(_peak_rss() - before)


# -- finding 1: the compression bomb -----------------------------------------------------------


def test_compression_bomb_is_refused_before_inflating() -> None:
    body = bomb()
    assert len(body) < MIB  # the body limit counts these bytes
    with zipfile.ZipFile(io.BytesIO(body)) as archive:  # and the bomb is an honest one
        assert archive.getinfo("tokens.npy").file_size == 128 + BOMB_ROWS * BOMB_DIM * 4
    with peak_growth() as grown, pytest.raises(DecodedTooLarge) as caught:
        decode_npz(body, ("tokens", "offsets"), max_bytes=LIMIT)
    assert grown[0] < RSS_GROWTH, f"peak RSS grew by {grown[0] / MIB:.0f} MiB"
    message = str(caught.value)
    assert message.startswith(f"body decodes past the limit of {LIMIT} bytes")
    assert "'tokens.npy'" in message and "\n" not in message
    assert isinstance(caught.value, DecodeError)


def test_a_member_not_asked_for_is_never_inflated() -> None:
    ones = encode_npy(np.ones((3, 4), np.float32))
    body = zip_of({"tokens.npy": ones, "junk.npy": b"not even an .npy"})
    out = decode_npz(body, ("tokens",), max_bytes=48)
    np.testing.assert_array_equal(out["tokens"], np.ones((3, 4), np.float32))
    with peak_growth() as grown:  # no limit: inflating tokens would cost 512 MB
        out = decode_npz(bomb(), ("offsets",))
    assert grown[0] < RSS_GROWTH
    np.testing.assert_array_equal(out["offsets"], [0, BOMB_ROWS])


def test_the_budget_covers_all_requested_members_together() -> None:
    tokens = np.zeros((25, 8), np.float32)  # 800 bytes
    offsets = np.array([0, 10, 25], np.int64)  # 24 bytes
    body = encode_npz(tokens=tokens, offsets=offsets)
    assert set(decode_npz(body, ("tokens", "offsets"), max_bytes=824)) == {"tokens", "offsets"}
    with pytest.raises(DecodedTooLarge, match=r"'offsets\.npy' declares shape \(3,\) of int64"):
        decode_npz(body, ("tokens", "offsets"), max_bytes=823)
    assert set(decode_npz(body, ("offsets",), max_bytes=24)) == {"offsets"}


def test_a_zip_entry_lying_about_its_size_cannot_inflate_past_it() -> None:
    # the bomb's member said to inflate to 288 bytes: reading stops there, its checksum fails
    lying = patched(bomb(), "tokens.npy", file_size=288)
    with peak_growth() as grown, pytest.raises(DecodeError, match=r"'tokens\.npy': Bad CRC-32"):
        decode_npz(lying, ("tokens",))  # no limit at all: the declared size alone bounds it
    assert grown[0] < RSS_GROWTH
    # with the checksum of those 288 bytes, the .npy header inside disagrees with the zip
    start = npy_header("<f4", (BOMB_ROWS, BOMB_DIM)) + bytes(288 - 128)
    lying = patched(lying, "tokens.npy", crc=zlib.crc32(start))
    with peak_growth() as grown, pytest.raises(DecodeError) as caught:
        decode_npz(lying, ("tokens",))
    assert grown[0] < RSS_GROWTH
    assert not isinstance(caught.value, DecodedTooLarge)
    assert "declares 512000000 bytes of data, the archive holds 160" in str(caught.value)


def test_reading_stops_at_the_declared_size() -> None:
    good = encode_npy(np.arange(40, dtype=np.float32).reshape(10, 4))
    body = zip_of({"tokens.npy": good + bytes(64 * MIB)}, zipfile.ZIP_DEFLATED)
    lying = patched(body, "tokens.npy", file_size=len(good))
    with pytest.raises(DecodeError, match=r"'tokens\.npy': Bad CRC-32"):
        decode_npz(lying, ("tokens",))
    # with a checksum of what it declares, the member is exactly that, and the rest unread
    honest = patched(lying, "tokens.npy", crc=zlib.crc32(good))
    with peak_growth() as grown:
        out = decode_npz(honest, ("tokens",))
    assert grown[0] < RSS_GROWTH
    np.testing.assert_array_equal(out["tokens"], np.arange(40).reshape(10, 4))


# -- finding 3: huge declared shapes ------------------------------------------------------------

HUGE = (99999999, 128)  # 51 GB of float32


def test_huge_npy_shape_is_refused_without_allocating() -> None:
    body = npy_header("<f4", HUGE) + bytes(64)
    with peak_growth() as grown:
        with pytest.raises(DecodedTooLarge, match=r"shape \(99999999, 128\) of float32"):
            decode_npy(body, max_bytes=LIMIT)
        with pytest.raises(DecodeError) as caught:  # no limit: the body is checked against it
            decode_npy(body)
    assert grown[0] < RSS_GROWTH
    assert not isinstance(caught.value, DecodedTooLarge)
    assert str(caught.value) == (
        "body is not a valid .npy array: the header declares 51199999488 bytes of data, "
        "the body holds 64"
    )


def test_huge_npz_member_shape_is_refused_without_allocating() -> None:
    body = zip_of({"tokens.npy": npy_header("<f4", HUGE) + bytes(64), "offsets.npy": b""})
    with pytest.raises(DecodedTooLarge, match=r"'tokens\.npy' declares shape \(99999999, 128\)"):
        decode_npz(body, ("tokens",), max_bytes=LIMIT)
    with pytest.raises(
        DecodeError, match="declares 51199999488 bytes of data, the archive holds 64"
    ):
        decode_npz(body, ("tokens",))


# -- malformed .npy bodies ----------------------------------------------------------------------

FLOATS = np.arange(12, dtype=np.float32).reshape(3, 4)


def _refusals() -> list[tuple[str, bytes, str]]:
    body = encode_npy(FLOATS)
    return [
        ("truncated data", body[:-5], "declares 48 bytes of data, the body holds 43"),
        ("truncated header", body[:20], "EOF: reading array header"),
        ("only the magic", NPY_MAGIC, "EOF: reading magic string"),
        ("trailing garbage", body + b"xyz", "declares 48 bytes of data, the body holds 51"),
        ("object dtype", npy_header("|O", (2, 2)) + bytes(32), "holds Python objects"),
        (
            "structured dtype",
            npy_header([("a", "<f4"), ("b", "<i4")], (2, 2)) + bytes(32),
            "must hold a numeric .npy array, got dtype",
        ),
        (
            "object field",
            npy_header([("a", "<f4"), ("b", "|O")], (2, 2)) + bytes(48),
            "holds Python objects",
        ),
        ("void", npy_header("|V8", (2, 2)) + bytes(32), "must hold a numeric"),
        ("complex", npy_header("<c8", (2, 2)) + bytes(32), "must hold a numeric"),
        ("bool", npy_header("|b1", (2, 2)) + bytes(4), "must hold a numeric"),
        ("text", npy_header("<U3", (2, 2)) + bytes(48), "must hold a numeric"),
        ("1-D", npy_header("<f4", (4,)) + bytes(16), "must hold a 2-D [nq, dim] array"),
        ("3-D", npy_header("<f4", (1, 2, 2)) + bytes(16), "got shape (1, 2, 2)"),
        ("negative", npy_header("<f4", (-1, 4)) + bytes(16), "non-negative integers"),
        ("boolean dim", npy_header("<f4", (True, 4)) + bytes(16), "non-negative integers"),
        ("not a tuple", npy_header("<f4", [2, 2]) + bytes(16), "shape is not valid"),
        ("absurd empty", npy_header("<f4", (0, 10**30)), "is absurd"),
        ("many dims", npy_header("<f4", (1,) * 40) + bytes(4), "40 dimensions"),
        ("bad descr", npy_header("<f99", (2, 2)) + bytes(16), "not a valid dtype descriptor"),
        ("not a dict", NPY_MAGIC + b"\x01\x00\x04\x00[1]\n", "not a dictionary"),
        ("version 3", npy_header("<f4", (1, 1), version=3) + bytes(4), "version 3.0"),
        ("long header", npy_header("<f4", (1, 1), pad=12000) + bytes(4), "array header"),
    ]


@pytest.mark.parametrize(
    ("case", "body", "detail"), [pytest.param(*case, id=case[0]) for case in _refusals()]
)
def test_npy_refusals(case: str, body: bytes, detail: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_npy(body, what="q.npy", max_bytes=LIMIT)
    message = str(caught.value)
    assert message.startswith("q.npy "), case
    assert detail in message, (case, message)
    assert "\n" not in message and len(message) < 300, case
    assert not isinstance(caught.value, DecodedTooLarge), case


def test_a_long_hostile_header_is_not_echoed_whole() -> None:
    garbage = "{" + "x" * 5000 + "\n"
    body = NPY_MAGIC + b"\x01\x00" + struct.pack("<H", len(garbage)) + garbage.encode()
    with pytest.raises(DecodeError) as caught:
        decode_npy(body)
    assert len(str(caught.value)) < 300


def test_memory_error_becomes_decoded_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_memory(*_: object) -> np.ndarray:
        raise MemoryError

    monkeypatch.setattr(codecs, "_allocate", no_memory)
    with pytest.raises(DecodedTooLarge, match=r"^body does not fit in memory once decoded$"):
        decode_npy(encode_npy(FLOATS))
    with pytest.raises(DecodedTooLarge, match=r"^body does not fit in memory once decoded$"):
        decode_npz(encode_npz(tokens=FLOATS), ("tokens",))


# -- malformed .npz bodies ----------------------------------------------------------------------


def _npz_refusals() -> list[tuple[str, bytes, str]]:
    tokens = encode_npy(FLOATS)
    good = encode_npz(tokens=FLOATS, offsets=np.array([0, 3]))
    deflated = zip_of({"tokens.npy": tokens}, zipfile.ZIP_DEFLATED)
    noise = np.random.default_rng(0).standard_normal((100, 16)).astype(np.float32)
    incompressible = zip_of({"tokens.npy": encode_npy(noise)}, zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(io.BytesIO(incompressible)) as archive:
        cut = archive.getinfo("tokens.npy").compress_size - 100
    return [
        ("a bare .npy", tokens, "not an npz archive"),
        ("garbage", b"PK\x03\x04 garbage", "not a zip file"),
        ("cut in half", good[: len(good) // 2], "not a zip file"),
        ("no magic", zip_of({"tokens.npy": b"hello"}), "'tokens.npy': not a .npy array"),
        ("unsuffixed", zip_of({"tokens": tokens}), "member 'tokens' is not named tokens.npy"),
        ("trailing", zip_of({"tokens.npy": tokens + b"x"}), "declares 48 bytes of data"),
        ("short", zip_of({"tokens.npy": tokens[:-1]}), "declares 48 bytes of data"),
        ("object", zip_of({"tokens.npy": npy_header("|O", (1, 1))}), "holds Python objects"),
        ("bool", zip_of({"tokens.npy": npy_header("|b1", (1, 1)) + b"\1"}), "not numeric"),
        ("encrypted", patched(deflated, "tokens.npy", flags=1), "'tokens.npy' is encrypted"),
        ("lzma", zip_of({"tokens.npy": tokens}, zipfile.ZIP_LZMA), "compression method 14"),
        ("bzip2", zip_of({"tokens.npy": tokens}, zipfile.ZIP_BZIP2), "compression method 12"),
        (
            "deflate cut short",
            patched(incompressible, "tokens.npy", compress_size=cut),
            "'tokens.npy': Bad CRC-32",  # zipfile checks the checksum where the input ends
        ),
        (
            "corrupt deflate",
            corrupted(deflated, "tokens.npy"),
            "'tokens.npy': Error -3 while decompressing",
        ),
        ("bad crc", patched(good, "tokens.npy", crc=1), "Bad CRC-32"),
        (
            "too many members",
            zip_of({f"m{i}.npy": b"" for i in range(1100)}),
            "more than 1024 members",
        ),
    ]


@pytest.mark.parametrize(
    ("case", "body", "detail"), [pytest.param(*case, id=case[0]) for case in _npz_refusals()]
)
def test_npz_refusals(case: str, body: bytes, detail: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_npz(body, ("tokens", "offsets"), what="q.npz", max_bytes=LIMIT)
    message = str(caught.value)
    assert message.startswith("q.npz is not a valid .npz archive: "), (case, message)
    assert detail.lower() in message.lower(), (case, message)
    assert "\n" not in message, case


def test_npz_duplicate_member_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("tokens.npy", encode_npy(FLOATS))
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("tokens.npy", encode_npy(FLOATS * 2))
    with pytest.raises(DecodeError, match=r"member 'tokens\.npy' appears twice"):
        decode_npz(buffer.getvalue(), ("tokens",))


def test_npz_truncated_anywhere_is_a_decode_error() -> None:
    body = encode_npz(tokens=FLOATS, offsets=np.array([0, 3]))
    for cut in range(len(body)):
        with pytest.raises(DecodeError):
            decode_npz(body[:cut], ("tokens", "offsets"))


def test_npy_truncated_anywhere_is_a_decode_error() -> None:
    body = encode_npy(FLOATS)
    for cut in range(len(body)):
        with pytest.raises(DecodeError):
            decode_npy(body[:cut])


# -- what still decodes -------------------------------------------------------------------------

ARRAYS: list[Callable[[], np.ndarray]] = [
    lambda: np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    lambda: (np.arange(12, dtype=np.float16).reshape(3, 4) - 6) / 3,
    lambda: np.arange(-6, 6, dtype=np.int64).reshape(4, 3),
    lambda: np.arange(12, dtype=np.uint8).reshape(2, 6),
    lambda: np.arange(12, dtype=">f4").reshape(3, 4),  # big-endian, as np.load returns it
    lambda: np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
    lambda: np.zeros((0, 4), np.float32),
]


@pytest.mark.parametrize("make", ARRAYS)
def test_npy_round_trip(make: Callable[[], np.ndarray]) -> None:
    array = make()
    body = encode_npy(array)
    out = decode_npy(body, max_bytes=array.nbytes)
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable and not np.shares_memory(out, np.frombuffer(body, np.uint8))
    assert out.flags.f_contiguous if array.flags.f_contiguous else out.flags.c_contiguous


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("make", ARRAYS)
def test_npz_round_trip(make: Callable[[], np.ndarray], compressed: bool) -> None:
    tokens, offsets = make(), np.array([0, 1, 3], np.int64)
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, tokens=tokens, offsets=offsets)
    out = decode_npz(buffer.getvalue(), ("tokens", "offsets", "absent"), max_bytes=1000)
    assert sorted(out) == ["offsets", "tokens"]
    for got, want in ((out["tokens"], tokens), (out["offsets"], offsets)):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        assert got.flags.writeable


def test_a_large_valid_member_decodes_in_bounded_steps() -> None:
    tokens = np.random.default_rng(0).standard_normal((20_000, 64)).astype(np.float32)  # 5 MB
    buffer = io.BytesIO()
    np.savez_compressed(buffer, tokens=tokens)
    out = decode_npz(buffer.getvalue(), ("tokens",), max_bytes=tokens.nbytes)
    np.testing.assert_array_equal(out["tokens"], tokens)
    with pytest.raises(DecodedTooLarge):
        decode_npz(buffer.getvalue(), ("tokens",), max_bytes=tokens.nbytes - 1)
