"""Payload stores: JSON documents attached to external ids, returned with hits on request.

On disk the store is an SQLite file inside the index directory (``payloads.sqlite``), opened
read-only and immutable when serving, one connection per thread.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FormatError, InputError, NotFoundError, one_line

__all__ = [
    "MemoryPayloads",
    "PayloadStore",
    "SqlitePayloads",
    "read_payload_lines",
    "write_payloads",
]

PAYLOAD_FILE = "payloads.sqlite"


class PayloadStore:
    """Looks up payloads by external id; ids without a payload map to ``None``."""

    def get(self, ids: Iterable[int]) -> dict[int, dict[str, Any] | None]:
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (connections); the store may not be used afterwards."""


class MemoryPayloads(PayloadStore):
    """Payloads held in memory (an index that has been built but not saved)."""

    def __init__(self, ids: np.ndarray, payloads: Sequence[dict[str, Any] | None]) -> None:
        """Checks every payload now, before an index is built over them: each must be a JSON
        object (or None) that can be stored as standard JSON (no NaN or infinity)."""
        pairs = zip(ids.tolist(), payloads, strict=True)
        self._by_id = {int(i): p for i, p in pairs if p is not None}
        for row, (pid, payload) in enumerate(zip(ids.tolist(), payloads, strict=True)):
            if payload is not None:
                _check_storable(payload, f"payloads: row {row} (id {pid})")

    def get(self, ids: Iterable[int]) -> dict[int, dict[str, Any] | None]:
        return {int(i): self._by_id.get(int(i)) for i in ids}

    def items(self) -> Iterable[tuple[int, dict[str, Any]]]:
        return self._by_id.items()


class SqlitePayloads(PayloadStore):
    """Read-only payload store over ``payloads.sqlite``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            uri = f"{self.path.absolute().as_uri()}?mode=ro&immutable=1"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def get(self, ids: Iterable[int]) -> dict[int, dict[str, Any] | None]:
        wanted = [int(i) for i in ids]
        found: dict[int, dict[str, Any] | None] = dict.fromkeys(wanted)
        if not wanted:
            return found
        marks = ",".join("?" * len(wanted))
        rows = (
            self._conn()
            .execute(f"SELECT id, body FROM payloads WHERE id IN ({marks})", wanted)
            .fetchall()
        )
        for pid, body in rows:
            found[int(pid)] = json.loads(body)
        return found

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


def write_payloads(path: Path, rows: Iterable[tuple[int, dict[str, Any] | None]]) -> int:
    """Write ``(id, payload)`` pairs into a new SQLite file; returns how many were stored."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TABLE payloads (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        count = 0

        def encoded() -> Iterable[tuple[int, str]]:
            nonlocal count
            for pid, payload in rows:
                if payload is None:
                    continue
                try:
                    body = json.dumps(payload, separators=(",", ":"), allow_nan=False)
                except (TypeError, ValueError) as exc:
                    raise InputError(
                        f"payload of id {pid} is not JSON-serialisable: {exc}"
                    ) from None
                count += 1
                yield int(pid), body

        conn.executemany("INSERT INTO payloads (id, body) VALUES (?, ?)", encoded())
        conn.commit()
    finally:
        conn.close()
    return count


def _check_storable(payload: object, where: str) -> None:
    """``payload`` must be a dict that encodes to standard JSON."""
    if not isinstance(payload, dict):
        raise InputError(f"{where} is a {type(payload).__name__}, expected a dict or None")
    try:
        json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where} cannot be stored as JSON: {exc}") from None


PAYLOAD_SUFFIXES = (".jsonl", ".ndjson")


class _NotStandardJson(ValueError):
    """A NaN, an infinity or a number overflowing a double, which standard JSON has not."""


def _refuse_constant(name: str) -> float:
    raise _NotStandardJson(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NotStandardJson(f"{text} overflows a double")
    return value


def read_payload_lines(path: str | os.PathLike[str], n: int) -> list[dict[str, Any] | None]:
    """Read ``n`` payloads from a JSON Lines file: line ``i + 1`` holds row ``i``'s object, or
    ``null`` for a row without one. A trailing newline is fine; a blank line is not (write
    ``null``). Lines end at ``\\n`` (a ``\\r`` before it is ignored).

    Every line is checked as it is read, before anything is built over the payloads: valid
    UTF-8, standard JSON (no ``NaN``, ``Infinity`` or numbers past a double's range, which
    the payload store could not keep), an object or ``null``. Errors name the true line.

    Raises:
        NotFoundError: no such file.
        FormatError: a line is not UTF-8 or not JSON.
        InputError: a blank line, a line that is no object, a non-standard number, or a count
            other than ``n``.
    """
    src = os.fspath(path)
    suffix = Path(src).suffix.lower()
    if not os.path.exists(src):
        raise NotFoundError(f"{src}: no such file")
    if os.path.isdir(src):
        raise InputError(f"{src}: is a directory, expected a file")
    if suffix not in PAYLOAD_SUFFIXES:
        raise InputError(
            f"{src}: unsupported suffix {suffix or '(none)'!r} for payloads; supported: "
            f"{', '.join(PAYLOAD_SUFFIXES)}"
        )
    payloads: list[dict[str, Any] | None] = []
    # Bytes, line by line: decoding each line alone is what lets an error name its line (a
    # text-mode file decodes ahead in blocks, and fails on whatever line it had reached).
    with open(src, "rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            payloads.append(_parse_line(src, lineno, raw))
    if len(payloads) != n:
        raise InputError(f"{src}: expected {n} payload lines (one per row), got {len(payloads)}")
    return payloads


def _parse_line(src: str, lineno: int, raw: bytes) -> dict[str, Any] | None:
    """One JSON Lines payload: an object or ``null``."""
    where = f"{src}: line {lineno} (row {lineno - 1})"
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"{where} is not valid UTF-8 (byte {exc.start + 1} of the line is "
            f"0x{raw[exc.start]:02x})"
        ) from None
    if lineno == 1:
        line = line.removeprefix("\ufeff")  # a byte-order mark some editors write
    if not line.strip():
        raise InputError(f"{where} is blank; write null for a row without a payload")
    try:
        value = json.loads(line, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _NotStandardJson as exc:
        raise InputError(f"{where}: {exc}; payloads must be standard JSON") from None
    except json.JSONDecodeError as exc:
        raise FormatError(f"{where} is not valid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise FormatError(f"{where} is nested too deeply to read") from None
    except ValueError as exc:  # an integer past Python's digit limit for int(str)
        raise InputError(f"{where}: {one_line(exc)}") from None
    if value is not None and not isinstance(value, dict):
        raise InputError(f"{where} is a JSON {type(value).__name__}, expected an object or null")
    return value
