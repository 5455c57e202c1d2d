"""The result schema ``glint-bench/1``: one :class:`Row` per (config, knob value).

A results file is a JSON object (:class:`Results`)::

    {"schema": "glint-bench/1", "date": "2026-11-22T21:00:00+00:00",
     "machine": "AMD EPYC, 2 cores, 23.5 GiB RAM", "command": "glint-bench run ...",
     "versions": {"glint": ..., "numpy": ..., "faiss": ..., "hnswlib": ..., "numba": ...,
                  "python": ...},
     "dataset": {"name": ..., "path": ..., "n": 100000, "dim": 384, "metric": "ip",
                 "queries": "id", "nq": 10000, "k": 10},
     "notes": ["svs: not run (...)"], "rows": [Row, ...]}

``notes`` records what did not run and why (a failed config, SVS without its interpreter).

Row fields:

- ``dataset``, ``queries`` (``id``/``ood``), ``nq``: what was searched (the first ``nq`` queries).
- ``system``: ``glint``, ``faiss``, ``hnswlib`` or ``svs``; ``config``: the glint spec (with
  fixed search parameters after ``;``) or the peer's name and build parameters.
- ``knob``/``knob_value``: the swept search parameter (``ef_search``, ``efSearch``, ``ef``...)
  and its value at this point; both ``None`` for a config with no knob (exact search).
- ``recall_at_10``: the fraction of the exact top 10 found among the 10 returned, averaged over
  queries; ties with the 10th exact score count as found.
- ``qps_1t``/``qps_all``: queries per second on the whole batch with 1 thread and with
  ``threads_all`` threads (median of the repeats).
- ``p50_ms``/``p99_ms``: single-query latency, one query at a time, 1 thread.
- ``build_seconds``: the build's wall time (all cores); from the cache when the build was cached.
- ``memory_bytes``: the library's own accounting of the index size (glint ``memory_bytes``,
  faiss ``len(serialize_index)``, hnswlib the saved file's size).
- ``disk_bytes``: the saved index's size on disk; ``rss_bytes``: resident memory of the index,
  best-effort, from /proc/self: the anonymous memory that loading the index allocated plus the
  resident pages of the index's memory-mapped files after this point's measurements (JIT and
  library code pages and the allocator's retained search buffers are not counted). The search
  runs in a fresh process per config unless ``--in-process``.
- ``machine``: the machine line of the run.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

__all__ = [
    "ROW_KEYS",
    "SCHEMA",
    "SYSTEMS",
    "Results",
    "Row",
    "check_row",
]

SCHEMA = "glint-bench/1"
SYSTEMS = ("glint", "faiss", "hnswlib", "svs")


class Row(TypedDict):
    """One measured point: a config at one value of its search knob."""

    schema: str
    dataset: str
    queries: str
    nq: int
    system: Literal["glint", "faiss", "hnswlib", "svs"]
    config: str
    knob: str | None
    knob_value: int | None
    recall_at_10: float
    qps_1t: float
    qps_all: float
    threads_all: int
    p50_ms: float
    p99_ms: float
    build_seconds: float
    memory_bytes: int
    disk_bytes: int | None
    rss_bytes: int | None
    machine: str


class Results(TypedDict):
    """A results file: the run's context and its rows."""

    schema: str
    date: str
    machine: str
    command: str
    versions: dict[str, str | None]
    dataset: dict[str, Any]
    notes: list[str]
    rows: list[Row]


ROW_KEYS: tuple[str, ...] = tuple(Row.__annotations__)

_NUMBER_KEYS = ("recall_at_10", "qps_1t", "qps_all", "p50_ms", "p99_ms", "build_seconds")
_INT_KEYS = ("nq", "threads_all", "memory_bytes")


def check_row(row: Any) -> Row:
    """Return ``row`` if it follows the schema, else raise ``ValueError`` naming the problem."""
    if not isinstance(row, dict):
        raise ValueError(f"a row must be a JSON object, got {type(row).__name__}")
    missing = [key for key in ROW_KEYS if key not in row]
    if missing:
        raise ValueError(f"row is missing {', '.join(missing)}: {row}")
    if row["schema"] != SCHEMA:
        raise ValueError(f"row schema {row['schema']!r} is not {SCHEMA!r}")
    if row["system"] not in SYSTEMS:
        raise ValueError(f"unknown system {row['system']!r}; expected one of {SYSTEMS}")
    for key in _NUMBER_KEYS:
        if not isinstance(row[key], (int, float)) or isinstance(row[key], bool):
            raise ValueError(f"row field {key} must be a number, got {row[key]!r}")
    for key in _INT_KEYS:
        if not isinstance(row[key], int) or isinstance(row[key], bool):
            raise ValueError(f"row field {key} must be an integer, got {row[key]!r}")
    return row  # type: ignore[return-value]
