"""Payload files of `glint build --payloads`: errors name the true line, and values the
payload store cannot keep (NaN, infinities) are found while reading, before any building
(issue 15, item 7)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import glint.index.cli
from glint.index import FormatError, InputError, build_index
from glint.index.flat import FlatIndex
from glint.index.payloads import read_payload_lines
from glint.service.cli import main

from testkit import glint_error


def _lines(path: Path, n: int, *, bad: dict[int, bytes]) -> Path:
    """``n`` payload lines with multi-byte text (so that a decoder reading ahead in blocks is
    many lines past the one at fault); line numbers in ``bad`` (1-based) get those bytes."""
    with open(path, "wb") as handle:
        for line in range(1, n + 1):
            body = bad.get(line) or json.dumps({"i": line, "t": "é" * 40}).encode()
            handle.write(body + b"\n")
    return path


@pytest.mark.parametrize(("n", "at"), [(100, 43), (20_000, 15_001)])
def test_bad_utf8_names_its_line(tmp_path: Path, n: int, at: int) -> None:
    """Was line 1 for line 43, and 14719 for 15001: the text decoder's block, not the line."""
    path = _lines(tmp_path / "p.jsonl", n, bad={at: b'{"t": "caf\xe9"}'})
    with pytest.raises(FormatError) as info:
        read_payload_lines(path, n)
    assert str(info.value) == (
        f"{path}: line {at} (row {at - 1}) is not valid UTF-8 (byte 11 of the line is 0xe9)"
    )


@pytest.mark.parametrize(
    ("text", "what"),
    [
        (b'{"score": NaN}', "NaN is not a JSON number"),
        (b'{"x": [1, Infinity]}', "Infinity is not a JSON number"),
        (b'{"x": {"y": -Infinity}}', "-Infinity is not a JSON number"),
        (b'{"x": 1e999}', "1e999 overflows a double"),
    ],
)
def test_non_standard_numbers_name_their_line(tmp_path: Path, text: bytes, what: str) -> None:
    path = _lines(tmp_path / "p.jsonl", 50, bad={7: text})
    with pytest.raises(InputError) as info:
        read_payload_lines(path, 50)
    assert str(info.value) == (f"{path}: line 7 (row 6): {what}; payloads must be standard JSON")


def test_the_cli_refuses_a_nan_before_building(
    tmp_path: Path, data, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was found after the whole build, as the store was written, and named by id."""
    np.save(tmp_path / "base.npy", data(60, 8))
    payloads = _lines(tmp_path / "p.jsonl", 60, bad={42: b'{"v": NaN}'})

    def no_build(*_: object, **__: object) -> None:
        raise AssertionError("the build started before the payloads were checked")

    monkeypatch.setattr(glint.index.cli, "build_index", no_build)
    args = ["build", str(tmp_path / "base.npy"), "--out", str(tmp_path / "ix")]
    assert main([*args, "--payloads", str(payloads)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"glint: error: {payloads}: line 42 (row 41): NaN is not a JSON number; payloads must "
        "be standard JSON"
    ]
    assert not (tmp_path / "ix").exists()


def test_the_cli_names_the_line_of_bad_utf8(tmp_path: Path, data) -> None:
    np.save(tmp_path / "base.npy", data(60, 8))
    payloads = _lines(tmp_path / "p.jsonl", 60, bad={43: b'{"t": "\xff"}'})
    message = glint_error(
        "build", tmp_path / "base.npy", "--out", tmp_path / "ix", "--payloads", payloads
    )
    assert message == (
        f"glint: error: {payloads}: line 43 (row 42) is not valid UTF-8 (byte 8 of the line is "
        "0xff)"
    )


def test_good_files_read_as_before(tmp_path: Path) -> None:
    """CRLF line ends, a byte-order mark, null rows and non-ASCII text are fine."""
    path = tmp_path / "p.ndjson"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\nnull\r\n{"t": "\xc3\xa9", "f": 1.5e300}\n')
    assert read_payload_lines(path, 3) == [{"a": 1}, None, {"t": "é", "f": 1.5e300}]


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ('{"a": 1}\n{"a": \n{}\n', FormatError, r"line 2 \(row 1\) is not valid JSON"),
        ('{"a": 1}\n[1, 2]\n{}\n', InputError, r"line 2 \(row 1\) is a JSON list, expected"),
        ('{"a": 1}\n\n{"a": 2}\n', InputError, r"line 2 \(row 1\) is blank; write null"),
        ('{"a": 1}\nnull\n', InputError, r"expected 3 payload lines \(one per row\), got 2"),
        ('{"a": 1}\n{"big": ' + "9" * 5000 + "}\n{}\n", InputError, r"line 2 \(row 1\): .*digits"),
    ],
)
def test_other_line_errors(tmp_path: Path, text: str, error: type, message: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(text)
    with pytest.raises(error, match=message):
        read_payload_lines(path, 3)


def test_in_memory_payloads_are_checked_before_building(
    data, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build_index(payloads=...) (and parquet columns) too: named by row and id."""

    def no_build(*_: object, **__: object) -> None:
        raise AssertionError("the build started before the payloads were checked")

    monkeypatch.setattr(FlatIndex, "build", classmethod(no_build))
    payloads = [{"x": 1.0}, {"x": float("nan")}, None]
    with pytest.raises(InputError) as info:
        build_index(data(3, 4), "flat", ids=[10, 11, 12], payloads=payloads)
    assert str(info.value).startswith("payloads: row 1 (id 11) cannot be stored as JSON: ")
    assert "Out of range float values are not JSON compliant" in str(info.value)
