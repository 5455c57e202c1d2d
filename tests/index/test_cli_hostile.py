"""The `glint` command against hostile or absurd arguments: every failure is one line on stderr
and a non-zero exit, never a traceback (issue 15, item 5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glint.index import ConfigError, build_index
from glint.index.base import Index
from glint.index.validate import RESULT_ENTRY_BYTES, check_k, check_result_size, memory_limit
from glint.service.cli import main

from testkit import glint_error

DIM = 8


@pytest.fixture
def small(tmp_path: Path, data) -> dict[str, Path]:
    build_index(data(300, DIM), "flat", "l2").save(tmp_path / "ix")
    np.save(tmp_path / "q.npy", data(4, DIM, seed=1))
    return {"ix": tmp_path / "ix", "q": tmp_path / "q.npy", "out": tmp_path / "r.npz"}


def _search_args(small: dict[str, Path], k: int) -> list[str]:
    return [
        "search",
        str(small["ix"]),
        "--queries",
        str(small["q"]),
        "--k",
        str(k),
        "--out",
        str(small["out"]),
    ]


def test_an_absurd_k_is_one_line(small: dict[str, Path]) -> None:
    """Was a traceback: a 3.6 TiB allocation for the [nq, k] results."""
    message = glint_error(*_search_args(small, 1_000_000_000_000))
    assert message.startswith("glint: error: k=1000000000000 is too large"), message
    assert "more than this machine's memory" in message
    assert not small["out"].exists()


@pytest.mark.skipif(memory_limit() is None, reason="the memory size cannot be read here")
def test_a_k_too_large_for_the_batch_names_the_padding(small: dict[str, Path]) -> None:
    """A k that one query could hold, but not the 4 queries of the batch: refused once the
    queries are read, saying that a k over the index's size only adds padding."""
    limit = memory_limit()
    assert limit is not None
    k = limit // RESULT_ENTRY_BYTES // 2 + 1  # one query: half the memory; four: twice it
    message = glint_error(*_search_args(small, k))
    assert f"k={k} is too large: the results of 4 queries" in message, message
    assert "the index holds 300 vectors, so a k over 300 only adds -1 padding" in message


def test_k_over_the_count_still_pads(small: dict[str, Path]) -> None:
    """The [nq, k] contract is kept for a k over the index's size that fits in memory."""
    assert main(_search_args(small, 500)) == 0
    with np.load(small["out"]) as result:
        ids, scores = result["ids"], result["scores"]
    assert ids.shape == scores.shape == (4, 500)
    assert (ids[:, :300] >= 0).all() and (ids[:, 300:] == -1).all()


def test_in_process_search_refuses_the_absurd_k_too(data) -> None:
    index = build_index(data(50, DIM), "flat", "ip")
    with pytest.raises(ConfigError, match=r"k=1000000000000 is too large"):
        index.search(data(1, DIM), 10**12)
    with pytest.raises(ConfigError, match="positive integer"):
        check_k(0)
    check_result_size(1000, 1000, count=10)  # 12 MB: fine


def test_memory_errors_are_one_line(
    small: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def exhausted(*_: object, **__: object) -> None:
        raise MemoryError(
            "Unable to allocate 3.64 TiB for an array with shape (4, 100000000000) and data "
            "type int64"
        )

    monkeypatch.setattr(Index, "search", exhausted)
    assert main(_search_args(small, 5)) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "glint: error: out of memory (Unable to allocate 3.64 TiB for an array with shape "
        "(4, 100000000000) and data type int64)"
    ]


def test_unexpected_errors_are_one_line(
    small: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("faiss said no\nwith a second line")

    monkeypatch.setattr(Index, "search", broken)
    assert main(_search_args(small, 5)) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        "glint: error: unexpected RuntimeError: faiss said no with a second line "
        "(run with --verbose for the traceback)"
    )
