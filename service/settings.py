"""Service settings, read from ``GLINT_*`` environment variables (and the ``serve`` flags)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Settings(BaseSettings):
    """Everything the service can be told. ``GLINT_INDEX_DIRS`` is a JSON list of
    ``DIR`` or ``NAME=DIR`` entries."""

    model_config = SettingsConfigDict(env_prefix="GLINT_", frozen=True)

    index_dirs: list[str] = Field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    api_keys_file: Path | None = None
    api_keys: str | None = Field(
        default=None, description="Keys as 'ROLE KEY' entries separated by newlines or commas."
    )
    search_workers: int = Field(default_factory=_cores, ge=1)
    batch_threads: int = Field(default_factory=_cores, ge=1)
    max_k: int = Field(default=1000, ge=1)
    max_batch: int = Field(default=10_000, ge=1)
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_candidates: int = Field(
        default=10_000,
        ge=1,
        description="Cap on every candidate count of a search (each kind's, e.g. hnsw's "
        "ef_search); a given one over it is refused, a default one lowered to it.",
    )
    request_timeout_s: float | None = Field(
        default=30.0,
        gt=0,
        description="A search that has not finished (queueing included) in this many seconds "
        "is answered 503; None waits for ever.",
    )
    workers: int = Field(
        default=1, ge=1, description="uvicorn worker processes (they share memory-mapped indices)."
    )
    verify_checksums: bool = True
    log_level: str = "info"
    log_format: Literal["json", "text"] = "json"
