"""Hostile batch bodies against a real ``glint serve`` process (issue 15, findings 1 and 3).

One ``glint serve`` subprocess serves ``docs`` (flat, l2) and ``mv`` (muvera over flat, ip),
both of dimension 16, with ``GLINT_MAX_DECODED_BYTES`` at 32 MiB. Hypothesis sends it
``.npy`` bodies with any header (dtypes numeric or not, object, structured, big-endian, bool,
complex; shapes huge, empty, negative, 0-D to 4-D; Fortran order; format versions 1 to 3),
``.npz`` bodies whose members are such blobs (stored or deflated, missing, duplicated,
unrequested, with lying zip sizes or checksums), and JSON batch bodies (wrong types, nested
lists, huge numbers, booleans for ``k``, ``NaN``/``Infinity`` literals, deep nesting); any of
them may be cut short, have a byte flipped or bytes appended.

Every answer must be a 200 or a 4xx carrying the error envelope ``{"error": {"code",
"message", ...}}`` with a code of ``glint.wire``'s table sent with one of its statuses: never
a 5xx. Memory bound: the server's peak RSS (``VmHWM``, reset after warm-up through
``/proc/PID/clear_refs`` where the kernel allows it) may not pass its resident size after
warm-up plus 256 MiB (``RSS_BOUND``). The bodies sent are small, so only a decode that inflates
or allocates what a body declares can pass it; the bomb of finding 1 alone used ~500 MB.

Examples are derandomized and bounded (``MAX_EXAMPLES`` per property, ``GLINT_FUZZ_EXAMPLES``
raises it), so a run is reproducible and takes well under a minute.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import struct
import subprocess
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from glint.index import build_index
from glint.wire import ERROR_CODES, NPY_MAGIC, encode_npy

from testkit import clustered, spawn_serve, stop_process, token_sets

DIM = 16
MIB = 1 << 20
MAX_DECODED = 32 * MIB
RSS_BOUND = 256 * MIB
MAX_EXAMPLES = int(os.environ.get("GLINT_FUZZ_EXAMPLES", "300"))
MV_SPEC = "muvera:k_sim=2,dim_proj=8,r_reps=4,tokens=f32,inner=(flat)"
NPY = "application/x-npy"
NPZ = "application/x-npz"

FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# -- the server ---------------------------------------------------------------------------------


def _status(pid: int) -> dict[str, int]:
    """The memory lines of /proc/PID/status, in bytes."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) * 1024
    return out


class Server:
    """A ``glint serve`` process, its URL, a client, and its memory baseline."""

    def __init__(self, proc: subprocess.Popen[str], url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log
        self.http = httpx.Client(base_url=url, timeout=60.0)
        self.baseline = 0

    def post(
        self, collection: str, body: bytes, media: str, params: dict[str, str] | None = None
    ) -> httpx.Response:
        return self.http.post(
            f"/v1/collections/{collection}/search/batch",
            content=body,
            headers={"content-type": media},
            params=params,
        )

    def reset_peak(self) -> None:
        """Make the baseline the resident size now, and the peak start from it."""
        try:  # 5 resets the peak RSS to the current one (Linux >= 4.0)
            with open(f"/proc/{self.proc.pid}/clear_refs", "w") as clear:
                clear.write("5")
        except OSError:
            pass
        memory = _status(self.proc.pid)
        self.baseline = min(memory["VmRSS"], memory["VmHWM"])

    def peak_growth(self) -> int:
        return _status(self.proc.pid)["VmHWM"] - self.baseline

    def check_peak(self) -> None:
        grown = self.peak_growth()
        assert grown < RSS_BOUND, (
            f"server peak RSS grew by {grown / MIB:.0f} MiB over its {self.baseline / MIB:.0f} "
            f"MiB after warm-up (bound {RSS_BOUND / MIB:.0f} MiB)"
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("hostile")
    build_index(clustered(200, DIM, seed=3), "flat", "l2").save(root / "docs")
    build_index(token_sets(40, DIM, seed=4, mean_tokens=4), MV_SPEC, "ip").save(root / "mv")
    log = root / "serve.log"
    proc, url = spawn_serve(
        [f"docs={root / 'docs'}", f"mv={root / 'mv'}"],
        log,
        max_decoded_bytes=MAX_DECODED,
        max_k=50,
        max_batch=100,
        search_workers=1,
        batch_threads=1,
        log_level="warning",
    )
    try:
        running = Server(proc, url, log)
        # warm-up: one valid search of each kind, so the baseline holds what they keep
        ok = running.post("docs", encode_npy(np.ones((2, DIM), np.float32)), NPY)
        assert ok.status_code == 200, ok.text
        tokens, offsets = np.ones((3, DIM), np.float32), np.array([0, 1, 3], np.int64)
        ok = running.post("mv", _savez(tokens=tokens, offsets=offsets), NPZ)
        assert ok.status_code == 200, ok.text
        running.reset_peak()
        yield running
        running.http.close()
        assert proc.poll() is None, "the server died"
        assert "Traceback" not in log.read_text(), log.read_text()[-4000:]
    finally:
        stop_process(proc)


def assert_answer(response: httpx.Response) -> str:
    """A 200, or a 4xx with the error envelope and a code sent with that status; returns
    the status and code, for Hypothesis's statistics."""
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:500]}"
    if status == 200:
        return "200"
    assert 400 <= status < 500, status
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("code"), str) and isinstance(error.get("message"), str), body
    assert error["message"] and "\n" not in error["message"], body
    code = ERROR_CODES.get(error["code"])
    assert code is not None and status in code.statuses, (status, body)
    return f"{status} {error['code']}"


# -- building bodies ----------------------------------------------------------------------------


def npy_header(descr: Any, shape: Any, *, fortran: bool = False, version: int = 1) -> bytes:
    """A hand-written ``.npy`` header, so that it can say anything."""
    text = repr({"descr": descr, "fortran_order": fortran, "shape": shape})
    size = 4 if version >= 2 else 2
    text += " " * (-(6 + 2 + size + len(text) + 1) % 64) + "\n"
    length = struct.pack("<I" if size == 4 else "<H", len(text))
    return NPY_MAGIC + bytes([version, 0]) + length + text.encode("latin1")


def _savez(compress: bool = False, **members: Any) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, **members)
    return buffer.getvalue()


def _zip(members: list[tuple[str, bytes]], method: int) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # a duplicate name is one of the things sent
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(buffer, "w", method) as archive:
            for name, data in members:
                archive.writestr(name, data)
    return buffer.getvalue()


def _declared(descr: Any, shape: Any) -> int | None:
    """The data bytes a header declares, when it is well formed enough to say."""
    try:
        itemsize = np.dtype(descr).itemsize
    except (TypeError, ValueError):
        return None
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        return None
    return math.prod(shape) * itemsize


DESCRS = st.sampled_from(
    [
        "<f4", "<f4", "<f4", "<f2", "<f8", "<i4", "|i1", "|u1", ">f4", ">i8", "<f16",
        "|b1", "<c8", "<c16", "|O", "<U4", "|S3", "|V4", "<M8[s]", "<f99", "x",
        [("a", "<f4")], [("a", "<f4"), ("b", "|O")], ("<f4", (2,)), 7,
    ]
)  # fmt: skip
SIDES = st.one_of(
    st.integers(0, 4),
    st.just(DIM),
    st.sampled_from([99999999, 2000000, 2**31, 2**40, 2**62, 10**20, -1, -(2**63)]),
)
SHAPES = st.one_of(
    st.tuples(st.integers(0, 4), st.just(DIM)),
    st.lists(SIDES, max_size=4).map(tuple),
    st.sampled_from([(99999999, 128), (2000000, 64), (0, 10**30), [2, DIM], "(2, 16)", (True,)]),
)
FLOAT_DTYPES = st.sampled_from(["<f4", "<f4", "<f2", "<f8", ">f4", "<i4", "|u1"])


@st.composite
def valid_npy(draw: st.DrawFn, rows: int | None = None) -> bytes:
    """A well-formed [n, DIM] numeric .npy, maybe Fortran-ordered."""
    n = rows if rows is not None else draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))  # values matter less than bytes
    array = rng.integers(-8, 9, (n, DIM)).astype(draw(FLOAT_DTYPES))
    if draw(st.booleans()):
        array = np.asfortranarray(array)
    return encode_npy(array)


@st.composite
def any_npy(draw: st.DrawFn) -> bytes:
    """A .npy whose header says anything, followed by as many bytes as it declares (mostly)."""
    descr, shape = draw(DESCRS), draw(SHAPES)
    header = npy_header(
        descr, shape, fortran=draw(st.booleans()), version=draw(st.sampled_from([1, 1, 2, 3]))
    )
    declared = _declared(descr, shape)
    if declared is not None and declared <= 8192 and draw(st.integers(0, 3)):
        return header + bytes(declared)
    return header + draw(st.binary(max_size=256))


@st.composite
def damaged(draw: st.DrawFn, body: bytes) -> bytes:
    """``body``, or it cut short, with a byte flipped, or with bytes appended."""
    how = draw(st.sampled_from(["whole", "whole", "cut", "flip", "trail"]))
    if how == "cut" and body:
        return body[: draw(st.integers(0, len(body) - 1))]
    if how == "flip" and body:
        at = draw(st.integers(0, len(body) - 1))
        return body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
    if how == "trail":
        return body + draw(st.binary(min_size=1, max_size=16))
    return body


def _lie(body: bytes, draw: st.DrawFn) -> bytes:
    """``body`` with a field of one central-directory entry (what zipfile trusts) changed."""
    entries = [i for i in range(len(body) - 46) if body.startswith(b"PK\x01\x02", i)]
    if not entries:
        return body
    at = draw(st.sampled_from(entries))
    offset, fmt = draw(st.sampled_from([(8, "<H"), (10, "<H"), (16, "<I"), (20, "<I"), (24, "<I")]))
    value = draw(st.sampled_from([0, 1, 0xFFFF, 0xFFFFFFFF, 512_000_128]))
    out = bytearray(body)
    struct.pack_into(fmt, out, at + offset, value & (0xFFFF if fmt == "<H" else 0xFFFFFFFF))
    return bytes(out)


@st.composite
def npz_bodies(draw: st.DrawFn) -> bytes:
    """Token sets as an .npz, each member valid, hostile or missing, with extra members."""
    lengths = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    members: list[tuple[str, bytes]] = []
    for name, valid in (
        ("tokens.npy", valid_npy(rows=int(offsets[-1]))),
        ("offsets.npy", st.just(encode_npy(offsets))),
    ):
        how = draw(st.sampled_from(["valid", "valid", "valid", "hostile", "damaged", "missing"]))
        if how == "valid":
            members.append((name, draw(valid)))
        elif how == "hostile":
            members.append((name, draw(any_npy())))
        elif how == "damaged":
            members.append((name, draw(valid.flatmap(damaged))))
    extra = draw(st.sampled_from([None, None, "junk.npy", "tokens", "tokens.npy", "offsets.npy"]))
    if extra:
        members.append((extra, draw(st.one_of(any_npy(), st.binary(max_size=64)))))
    body = _zip(members, draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])))
    if draw(st.integers(0, 4)) == 0:
        body = _lie(body, draw)
    return draw(damaged(body))


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)
JSON_ANY = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=24,
)
ROW = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=DIM, max_size=DIM)
ODD_ROW = st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=DIM, max_size=DIM),
    st.lists(st.floats(-1, 1), min_size=0, max_size=DIM + 2),
    st.lists(st.one_of(st.booleans(), st.text(max_size=2), st.just(1e308)), max_size=DIM),
)
VECTORS_OK = st.lists(ROW, min_size=1, max_size=3)
TOKEN_SETS_OK = st.lists(st.lists(ROW, min_size=1, max_size=3), min_size=1, max_size=2)
VECTORS = st.one_of(VECTORS_OK, st.lists(ODD_ROW, max_size=3), JSON_ANY)
TOKEN_SETS = st.one_of(TOKEN_SETS_OK, st.lists(st.lists(ODD_ROW, max_size=2), max_size=2), JSON_ANY)
K = st.one_of(st.integers(1, 60), st.integers(-3, 0), st.just(10**30), st.booleans(), JSON_SCALARS)
PARAMS = st.one_of(
    st.just({}), st.dictionaries(st.sampled_from(["nprobe", "k", "ef"]), K), JSON_ANY
)


@st.composite
def json_bodies(draw: st.DrawFn, mv: bool) -> bytes:
    """A JSON batch body for collection ``mv`` or ``docs``: valid, shaped like the schema with
    anything in its fields, or raw hostile text."""
    raw = draw(st.sampled_from(["valid"] * 3 + [None] * 6 + ["deep", "number", "literal", "cut"]))
    if raw == "valid":
        queries = {"token_sets": TOKEN_SETS_OK} if mv else {"vectors": VECTORS_OK}
        body = draw(st.fixed_dictionaries(queries, optional={"k": st.integers(1, 50)}))
        return json.dumps(body).encode()
    if raw == "deep":
        depth = draw(st.sampled_from([10, 200, 1000, 5000, 100_000]))
        return ('{"vectors": ' + "[" * depth + "]" * depth + "}").encode()
    if raw == "number":
        return ('{"vectors": [[' + "9" * draw(st.integers(300, 5000)) + "]]}").encode()
    if raw == "literal":
        word = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0", "1E+400"]))
        return ('{"vectors": [[' + ", ".join([word] * DIM) + "]], " + f'"k": {word}' + "}").encode()
    body = draw(
        st.fixed_dictionaries(
            {},
            optional={"vectors": VECTORS, "token_sets": TOKEN_SETS, "k": K, "params": PARAMS},
        )
    )
    text = json.dumps(body, allow_nan=True).encode()
    return text[: draw(st.integers(0, len(text)))] if raw == "cut" else text


QUERY = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {},
        optional={
            "k": st.sampled_from(["1", "5", "0", "-1", "abc", "1e9", "true", "99999999999999999"]),
            "params": st.one_of(st.just('{"nprobe": 2}'), st.just("[[[1]]]"), st.text(max_size=12)),
        },
    ),
)


# -- the properties -----------------------------------------------------------------------------


@FUZZ
@given(body=st.one_of(valid_npy(), any_npy()).flatmap(damaged), query=QUERY, mv=st.booleans())
def test_npy_bodies(server: Server, body: bytes, query: dict[str, str], mv: bool) -> None:
    answer = assert_answer(server.post("mv" if mv else "docs", body, NPY, query))
    event(answer)  # the mix of answers, shown by --hypothesis-show-statistics
    server.check_peak()


@FUZZ
@given(body=npz_bodies(), query=QUERY, docs=st.integers(0, 7))
def test_npz_bodies(server: Server, body: bytes, query: dict[str, str], docs: int) -> None:
    answer = assert_answer(server.post("docs" if docs == 0 else "mv", body, NPZ, query))
    event(answer)
    server.check_peak()


@FUZZ
@given(case=st.booleans().flatmap(lambda mv: st.tuples(st.just(mv), json_bodies(mv))))
def test_json_bodies(server: Server, case: tuple[bool, bytes]) -> None:
    mv, body = case
    answer = assert_answer(server.post("mv" if mv else "docs", body, "application/json"))
    event(answer)
    server.check_peak()


def test_valid_bodies_are_answered(server: Server) -> None:
    """The fuzzer's valid cases do reach the search: the properties above are not vacuous."""
    tokens, offsets = np.ones((3, DIM), np.float16), np.array([0, 1, 3], np.int64)
    for collection, body, media in [
        ("docs", encode_npy(np.asfortranarray(np.ones((3, DIM), ">f4"))), NPY),
        ("mv", _savez(True, tokens=tokens, offsets=offsets), NPZ),
        ("docs", json.dumps({"vectors": [[0.5] * DIM], "k": 3}).encode(), "application/json"),
    ]:
        response = server.post(collection, body, media)
        assert response.status_code == 200, response.text
        assert len(response.json()["ids"]) in (1, 2, 3)


# -- the findings, replayed ---------------------------------------------------------------------


@functools.cache
def bomb() -> bytes:
    """Finding 1's body: ``tokens`` float32 (2,000,000, 64) zeros deflated (~0.5 MB), with
    valid offsets; written in 1 MiB steps, so this process never holds the array."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("tokens.npy", "w", force_zip64=True) as member:
            member.write(npy_header("<f4", (2_000_000, 64)))
            whole, rest = divmod(2_000_000 * 64 * 4, MIB)
            zeros = bytes(MIB)
            for _ in range(whole):
                member.write(zeros)
            member.write(bytes(rest))
        archive.writestr("offsets.npy", encode_npy(np.array([0, 2_000_000], np.int64)))
    return buffer.getvalue()


def test_compression_bomb_is_413_within_the_memory_bound(server: Server) -> None:
    body = bomb()
    assert len(body) < MIB  # the body limit counts these bytes
    with zipfile.ZipFile(io.BytesIO(body)) as archive:  # and the bomb is an honest one
        assert archive.getinfo("tokens.npy").file_size == 128 + 2_000_000 * 64 * 4
    response = server.post("mv", body, NPZ)
    assert_answer(response)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"
    server.check_peak()
    assert server.peak_growth() < 64 * MIB  # nothing near the 512 MB it declares


@pytest.mark.parametrize("version", [1, 2])
def test_huge_npy_header_shape_is_4xx(server: Server, version: int) -> None:
    body = npy_header("<f4", (99999999, 128), version=version) + bytes(64)
    response = server.post("docs", body, NPY)
    assert_answer(response)
    assert response.status_code in (400, 413), response.text
    server.check_peak()


@pytest.mark.parametrize("compress", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_huge_npz_member_shape_is_4xx(server: Server, compress: int) -> None:
    tokens = npy_header("<f4", (99999999, 128)) + bytes(64)
    offsets = encode_npy(np.array([0, 99999999], np.int64))
    body = _zip([("tokens.npy", tokens), ("offsets.npy", offsets)], compress)
    response = server.post("mv", body, NPZ)
    assert_answer(response)
    assert response.status_code in (400, 413), response.text
    server.check_peak()


@pytest.mark.parametrize("media", [NPY, NPZ])
def test_deeply_nested_params_query_is_4xx(server: Server, media: str) -> None:
    """``params`` arrives as JSON text in the query of a binary batch; nested deeper than
    Python's json module recurses, it must still be refused as a bad parameter."""
    tokens, offsets = np.ones((3, DIM), np.float32), np.array([0, 1, 3], np.int64)
    collection, body = (
        ("docs", encode_npy(np.ones((1, DIM), np.float32)))
        if media == NPY
        else ("mv", _savez(tokens=tokens, offsets=offsets))
    )
    response = server.post(collection, body, media, {"params": "[" * 3000 + "]" * 3000})
    assert_answer(response)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_parameter"
