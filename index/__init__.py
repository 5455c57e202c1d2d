"""glint's index layer: build, save, load and search compressed vector indices in process."""

from __future__ import annotations

from . import kinds  # registers every kind: first, so that specs and manifests resolve
from .api import build_index, load_index
from .base import Index, IndexMeta, SearchResult
from .config import IndexConfig, SearchParams
from .errors import ConfigError, DimensionError, FormatError, GlintError, InputError, NotFoundError
from .metrics import METRICS, Metric
from .multivec import TokenSets, exact_maxsim, read_token_sets
from .registry import get_kind, parse_search_params, parse_spec

__all__ = [
    "METRICS",
    "ConfigError",
    "DimensionError",
    "FormatError",
    "GlintError",
    "Index",
    "IndexConfig",
    "IndexMeta",
    "InputError",
    "Metric",
    "NotFoundError",
    "SearchParams",
    "SearchResult",
    "TokenSets",
    "build_index",
    "exact_maxsim",
    "get_kind",
    "kinds",
    "load_index",
    "parse_search_params",
    "parse_spec",
    "read_token_sets",
]
