"""glint's index layer: build, save, load and search compressed vector indices in process."""

from __future__ import annotations

from .api import build_index, load_index
from .base import Index, SearchResult
from .config import IndexConfig, parse_search_params, parse_spec
from .errors import ConfigError, DimensionError, FormatError, GlintError, InputError, NotFoundError
from .metrics import METRICS, Metric
from .multivec import TokenSets, exact_maxsim, read_token_sets

__all__ = [
    "METRICS",
    "ConfigError",
    "DimensionError",
    "FormatError",
    "GlintError",
    "Index",
    "IndexConfig",
    "InputError",
    "Metric",
    "NotFoundError",
    "SearchResult",
    "TokenSets",
    "build_index",
    "exact_maxsim",
    "load_index",
    "parse_search_params",
    "parse_spec",
    "read_token_sets",
]
