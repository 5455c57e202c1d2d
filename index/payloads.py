"""Payload stores: JSON documents attached to external ids, returned with hits on request.

On disk the store is an SQLite file inside the index directory (``payloads.sqlite``), opened
read-only and immutable when serving, one connection per thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["MemoryPayloads", "PayloadStore", "SqlitePayloads", "write_payloads"]

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
        pairs = zip(ids.tolist(), payloads, strict=True)
        self._by_id = {int(i): p for i, p in pairs if p is not None}

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
