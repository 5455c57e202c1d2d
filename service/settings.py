"""Service settings, read from ``GLINT_*`` environment variables (and the ``serve`` flags)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
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
    allow_unauthenticated: bool = Field(
        default=False,
        description="Serve without API keys on a host that is not loopback (a trusted network "
        "only: every caller may then search and call the admin routes). Without it, no keys "
        "and such a host are refused at start.",
    )
    ssl_certfile: Path | None = Field(
        default=None,
        description="PEM certificate (leaf first, then its chain) to serve HTTPS with; needs "
        "ssl_keyfile.",
    )
    ssl_keyfile: Path | None = Field(
        default=None, description="PEM private key of ssl_certfile; needs ssl_certfile."
    )
    ssl_keyfile_password: SecretStr | None = Field(
        default=None,
        description="Passphrase of an encrypted ssl_keyfile (from the environment only: a "
        "flag would show in the process list).",
    )
    search_workers: int = Field(default_factory=_cores, ge=1)
    batch_threads: int = Field(default_factory=_cores, ge=1)
    max_k: int = Field(default=1000, ge=1)
    max_batch: int = Field(default=10_000, ge=1)
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_decoded_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="Bytes the arrays of one binary body may decode to (all members of an "
        ".npz together), checked against the declared shapes before anything is allocated.",
    )
    max_inflight_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="Admission budget: the memory the bodies of the requests in flight may "
        "cost once parsed (service/limits.py says how a body is charged); a request that would "
        "pass it is answered 503 with Retry-After.",
    )
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
    docs: Literal["read", "open", "off"] = Field(
        default="read",
        description="The API docs routes (/openapi.json, /docs, /redoc): behind the read key "
        "(open when no keys are configured), open to anyone, or not served.",
    )
    log_level: str = "info"
    log_format: Literal["json", "text"] = "json"
