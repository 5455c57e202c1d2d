"""The one table of index kinds: a kind's name to its build config, search parameters and
index class.

Each kind module ends with ``register(ItsIndex)``; :mod:`glint.index.kinds` imports every
kind module, so the table is full once :mod:`glint.index` is imported. Everything that turns a
kind's name into a type goes through here: spec strings, manifests, search parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .base import Index
from .config import IndexConfig, SearchParams, split_spec, validate_model
from .errors import ConfigError

__all__ = [
    "Kind",
    "config_from_dict",
    "get_kind",
    "kind_names",
    "parse_search_params",
    "parse_spec",
    "register",
]


@dataclass(frozen=True)
class Kind:
    """One index kind: its name, build config, search parameters and index class."""

    name: str
    config: type[IndexConfig]
    params: type[SearchParams]
    index: type[Index[Any]]


_KINDS: dict[str, Kind] = {}


def register(index: type[Index[Any]]) -> type[Index[Any]]:
    """Add a kind, described by its index class's ``kind``, ``config_type`` and
    ``params_type``; a name registers once."""
    kind = Kind(index.kind, index.config_type, index.params_type, index)
    if index.config_type.kind != kind.name:
        raise ValueError(f"{index.__name__}: its config is of kind {index.config_type.kind!r}")
    if kind.name in _KINDS and _KINDS[kind.name] != kind:
        raise ValueError(f"index kind {kind.name!r} is registered twice")
    _KINDS[kind.name] = kind
    return index


def kind_names() -> list[str]:
    return sorted(_KINDS)


def get_kind(name: str) -> Kind:
    """The kind called ``name``, or a :class:`ConfigError` listing the valid ones."""
    try:
        return _KINDS[name]
    except KeyError:
        raise ConfigError(
            f"unknown index kind {name!r}; valid kinds: {', '.join(kind_names())}"
        ) from None


def parse_spec(spec: str | IndexConfig) -> IndexConfig:
    """Parse a spec string (or pass a config through) into the kind's typed config."""
    if isinstance(spec, IndexConfig):
        return spec
    name, values = split_spec(spec)
    config: IndexConfig = validate_model(get_kind(name).config, values, f"index kind {name!r}")
    return config


def config_from_dict(name: str, values: Mapping[str, Any]) -> IndexConfig:
    """Rebuild a config from a manifest's ``kind`` and ``config`` entries."""
    config: IndexConfig = validate_model(get_kind(name).config, values, f"index kind {name!r}")
    return config


def parse_search_params(
    name: str, params: Mapping[str, Any] | None, *, inner: str | None = None
) -> SearchParams:
    """Validate search parameters for a ``name`` index without one at hand (unknown keys name
    the valid ones); ``inner`` is the inner kind of a multi-vector index. A search validates
    through ``Index.resolve_params``, which also fills the defaults."""
    parsed: SearchParams = get_kind(name).params.parse(
        params, what=f"search on a {name!r} index", inner=inner
    )
    return parsed
