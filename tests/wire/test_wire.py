"""glint.wire: the codecs round-trip and refuse with clear messages, the error table holds every
code the service answers with (each with its status), and the token-set checks."""

from __future__ import annotations

import ast
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

import glint.client.models as models
from glint.wire import (
    ERROR_CODES,
    FALLBACK_CODE,
    JSON_MEDIA_TYPE,
    METRIC_HEADER,
    NPY_MAGIC,
    NPY_MEDIA_TYPE,
    NPZ_MEDIA_TYPE,
    TOOK_MS_HEADER,
    DecodeError,
    check_offsets,
    check_token_matrix,
    check_token_sets,
    code_for_status,
    decode_npy,
    decode_npz,
    encode_npy,
    encode_npz,
    media_type,
    status_for,
)
from glint.wire.filters import Filter, filter_json

ROOT = Path(__file__).resolve().parents[2]

# -- media types and headers ----------------------------------------------------------------


def test_media_types_and_headers() -> None:
    assert (JSON_MEDIA_TYPE, NPY_MEDIA_TYPE, NPZ_MEDIA_TYPE) == (
        "application/json",
        "application/x-npy",
        "application/x-npz",
    )
    assert (METRIC_HEADER, TOOK_MS_HEADER) == ("X-Glint-Metric", "X-Glint-Took-Ms")
    assert (models.NPY_MEDIA_TYPE, models.NPZ_MEDIA_TYPE) == (NPY_MEDIA_TYPE, NPZ_MEDIA_TYPE)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("application/json", "application/json"),
        ("Application/X-NPY; charset=binary", "application/x-npy"),
        ("  application/x-npz ;q=1", "application/x-npz"),
        ("", ""),
    ],
)
def test_media_type_drops_parameters_and_case(header: str, expected: str) -> None:
    assert media_type(header) == expected


# -- codecs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint8])
def test_npy_round_trip(dtype: type) -> None:
    array = (np.arange(12).reshape(3, 4) % 7).astype(dtype)
    body = encode_npy(array)
    assert body.startswith(NPY_MAGIC)
    out = decode_npy(body)
    assert out.dtype == array.dtype
    np.testing.assert_array_equal(out, array)


def test_npz_round_trip_and_missing_members() -> None:
    ids = np.array([[3, -1]], np.int64)
    scores = np.array([[0.5, -np.inf]], np.float32)
    body = encode_npz(ids=ids, scores=scores)
    out = decode_npz(body, ("ids", "scores", "extra"))
    assert sorted(out) == ["ids", "scores"]  # a missing member is left out, not an error
    np.testing.assert_array_equal(out["ids"], ids)
    np.testing.assert_array_equal(out["scores"], scores)
    assert out["ids"].dtype == np.int64 and out["scores"].dtype == np.float32
    assert decode_npz(body, ()) == {}


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not an array", "body is not a .npy array (no NUMPY magic)"),
        (b"", "body is not a .npy array (no NUMPY magic)"),
        (_npy(np.ones((2, 3)))[:-5], "body is not a valid .npy array: "),
        (NPY_MAGIC + b"garbage", "body is not a valid .npy array: "),
        (_npy(np.array([{"a": 1}], dtype=object)), "body is not a valid .npy array: "),
        (_npy(np.array([["a", "b"]])), "body must hold a numeric .npy array"),
        (_npy(np.ones((2, 2), bool)), "body must hold a numeric .npy array"),
        (_npy(np.ones(4, np.float32)), "body must hold a 2-D [nq, dim] array, got shape (4,)"),
        (_npy(np.ones((1, 2, 3))), "body must hold a 2-D [nq, dim] array, got shape (1, 2, 3)"),
    ],
)
def test_npy_refusals(body: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_npy(body)
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)


def test_decode_names_what_it_decodes() -> None:
    with pytest.raises(DecodeError, match=r"^q\.npy is not a \.npy array"):
        decode_npy(b"xx", what="q.npy")
    with pytest.raises(DecodeError, match=r"^response is not a valid \.npz archive"):
        decode_npz(b"xx", ("ids",), what="response")


def _zip_cut() -> bytes:
    body = encode_npz(tokens=np.ones((4, 3), np.float32), offsets=np.array([0, 4]))
    return body[: len(body) // 2]


def _zip_with_a_bad_member() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("tokens.npy", b"\x93NUMPY broken")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (_npy(np.zeros((0, 4), np.float32)), "not an npz archive"),  # a bare .npy is no archive
        (b"garbage", ""),
        (b"", ""),
        (b"PK", ""),
        (_zip_cut(), ""),
        (_zip_with_a_bad_member(), ""),
    ],
)
def test_npz_refusals(body: bytes, detail: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_npz(body, ("tokens", "offsets"))
    message = str(caught.value)
    assert message.startswith("body is not a valid .npz archive: ") and detail in message


# -- the error table ------------------------------------------------------------------------

# Every (code, status) the REST API answers with today; the table must say exactly these.
ANSWERS = {
    "bad_request": {400},
    "invalid_json": {400},
    "invalid_body": {400},
    "invalid_parameter": {400, 422},  # 422: a candidate count over the server's cap
    "invalid_input": {400},
    "invalid_filter": {400},
    "invalid_index": {400, 422},  # 422: an admin load or reload of a broken index
    "dimension_mismatch": {400, 409},  # 409: an admin reload to another dimension
    "unauthorized": {401},
    "forbidden": {403},
    "not_found": {404},
    "method_not_allowed": {405},
    "not_acceptable": {406},
    "conflict": {409},
    "payload_too_large": {413},
    "unsupported_media_type": {415},
    "invalid_request": {422},
    "internal": {500},
    "timeout": {503},
    "unavailable": {503},
}


def test_table_holds_every_answer_with_its_statuses() -> None:
    assert {code: set(entry.statuses) for code, entry in ERROR_CODES.items()} == ANSWERS
    for code, entry in ERROR_CODES.items():
        assert entry.code == code and entry.meaning
        assert status_for(code) == entry.status == min(ANSWERS[code])
        for status, when in entry.also:
            assert status_for(code, status) == status and when


def test_status_for_refuses_what_the_table_does_not_say() -> None:
    with pytest.raises(ValueError, match="goes out with 422, not 400"):
        status_for("invalid_request", 400)
    with pytest.raises(KeyError):
        status_for("no_such_code")


def test_bare_http_errors_get_the_generic_code_of_their_status() -> None:
    generic = {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        406: "not_acceptable",
        413: "payload_too_large",
        415: "unsupported_media_type",
        503: "unavailable",
    }
    for status in range(400, 600):
        assert code_for_status(status) == generic.get(status, FALLBACK_CODE), status
    assert FALLBACK_CODE == "error"


def _literal_errors() -> list[tuple[str, str, int | None]]:
    """``(where, code, status)`` of every ``ServiceError(...)`` and ``error_response(...)`` in
    the service whose code is a literal (status None: the code's usual one)."""
    found = []
    for path in sorted((ROOT / "service").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            if node.func.id not in ("ServiceError", "error_response"):
                continue
            args = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
            keywords = {k.arg: k.value for k in node.keywords}
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if node.func.id == "error_response" and len(args) >= 2 and isinstance(args[1], str):
                found.append((where, args[1], args[0]))  # (status, code, message, ...)
            elif args and isinstance(args[0], str):
                status = keywords.get("status")
                value = status.value if isinstance(status, ast.Constant) else None
                found.append((where, args[0], value))
    return found


def test_every_code_the_service_uses_is_in_the_table_with_its_status() -> None:
    found = _literal_errors()
    assert len({code for _, code, _ in found}) >= 10, found  # the scan does see the service
    for where, code, status in found:
        assert code in ERROR_CODES, f"{where}: {code!r} is not in glint.wire.ERROR_CODES"
        if status is not None:
            assert status in ERROR_CODES[code].statuses, f"{where}: {code!r} with {status}"


# -- token sets -----------------------------------------------------------------------------


def test_token_sets_come_back_as_float32_and_int64() -> None:
    tokens = np.arange(12, dtype=np.float64).reshape(6, 2)
    flat, offsets = check_token_sets(tokens, np.array([0, 2, 6], np.int32))
    assert flat.dtype == np.float32 and flat.flags.c_contiguous and flat.shape == (6, 2)
    assert offsets.dtype == np.int64 and offsets.tolist() == [0, 2, 6]
    np.testing.assert_array_equal(flat, tokens)
    same = np.ones((3, 2), np.float32)
    assert check_token_sets(same, [0, 3])[0] is same  # no copy when already float32


def test_values_are_converted_not_judged() -> None:
    flat, _ = check_token_sets(np.array([[np.nan, 1e39]]), [0, 1])
    assert np.isnan(flat[0, 0]) and np.isinf(flat[0, 1])


@pytest.mark.parametrize(
    ("tokens", "offsets", "message"),
    [
        (np.ones(4), [0, 4], "q: tokens must be a 2-D [T, d] array, got shape (4,)"),
        (np.ones((0, 3)), [0, 0], "q: no tokens"),
        (np.ones((2, 0)), [0, 2], "q: tokens have no columns (shape (2, 0))"),
        (np.array([["a"], ["b"]]), [0, 2], "q: tokens must be numbers, got dtype <U1"),
        (
            np.ones((4, 2)),
            [[0, 4]],
            "q: offsets must be a 1-D array of n + 1 >= 2 integers, got shape (1, 2)",
        ),
        (
            np.ones((4, 2)),
            [4],
            "q: offsets must be a 1-D array of n + 1 >= 2 integers, got shape (1,)",
        ),
        (np.ones((4, 2)), [0.0, 4.0], "q: offsets must be integers, got dtype float64"),
        (np.ones((4, 2)), [1, 4], "q: offsets must start at 0, got 1"),
        (
            np.ones((4, 2)),
            [0, 3, 2, 4],
            "q: offsets are not monotone: offsets[2] = 2 is less than offsets[1] = 3",
        ),
        (
            np.ones((4, 2)),
            [0, 2, 2, 4],
            "q: set 1 is empty (offsets[1] = offsets[2] = 2); every set needs at least one token",
        ),
        (
            np.ones((4, 2)),
            [0, 2, 5],
            "q: offsets end at 5 but there are 4 tokens (the last offset must equal the number of token rows)",
        ),
    ],
)
def test_token_set_refusals(tokens: np.ndarray, offsets: list, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_token_sets(tokens, offsets, what="q")


def test_the_parts_check_alone() -> None:
    assert check_token_matrix([["a", "b"]]).shape == (1, 2)  # its dtype is the caller's
    assert check_offsets(np.array([0, 1, 3], np.uint8), 3).dtype == np.int64
    with pytest.raises(ValueError, match=r"^token sets: offsets end at 3 but there are 4 tokens"):
        check_offsets([0, 3], 4)


# -- filters as requests carry them ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"must": []}, "filter.must: List should have at least 1 item"),
        ({"must": [{"key": "a", "match": {"value": [1]}}]}, "filter.must.0.match.value: "),
        (
            {"should": [{"key": "a", "match": {"any": ["x", None]}}]},
            "filter.should.0.match.any.1: ",
        ),
        ({"must": [{"key": "a", "range": {"gte": "x"}}]}, "filter.must.0.range.gte: "),
        ({"must": [{"must": [{"has_id": ["x"]}]}]}, "filter.must.0.must.0.has_id.0: "),
        ({"must": [5]}, "filter.must.0: "),
        ({"must": [{"key": "a", "match": {"str": 1}}]}, "filter.must.0.match.str: Extra inputs"),
        (
            {"must": [{"key": "a", "match": {"value": 1, "any": [2]}}]},
            "filter.must.0.match: match ",
        ),
        (
            {"must": [{"key": "a", "range": {"gt": float("nan")}}]},
            "filter must hold finite numbers",
        ),
        ("{}", "filter must be a Filter or a mapping, got str"),
    ],
)
def test_filter_json_names_the_place(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        filter_json(value)  # type: ignore[arg-type]


def test_filter_json_round_trips() -> None:
    flt = {
        "must": [{"key": "lang", "match": {"except": ["fr"]}}, {"has_id": [1, 2]}],
        "should": [
            {"key": "y", "range": {"gte": 2020, "lt": 2024.5}},
            {"should": [{"is_empty": {"key": "t"}}]},
        ],
        "min_should": 1,
    }
    assert filter_json(flt) == flt
    assert filter_json(Filter.model_validate(flt)) == flt
    assert filter_json({}) is None and filter_json(None) is None and filter_json(Filter()) is None
