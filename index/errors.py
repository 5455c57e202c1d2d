"""Exceptions raised by ``glint.index``.

Every error derives from :class:`GlintError`::

    GlintError
    ├── ConfigError      a spec string, build key or search parameter is invalid
    ├── InputError       input vectors, ids or payloads are unusable (NaN, empty, duplicates, ...)
    │   └── DimensionError   a vector's dimension does not match the index
    ├── FormatError      an index directory is damaged, foreign or of an unsupported version
    └── NotFoundError    a file or index directory does not exist

``ConfigError``, ``InputError`` and ``DimensionError`` are also ``ValueError``s, so callers
that only know the standard library can still catch them.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DimensionError",
    "FormatError",
    "GlintError",
    "InputError",
    "NotFoundError",
]


class GlintError(Exception):
    """Root of every error raised by glint's index layer."""


class ConfigError(GlintError, ValueError):
    """An index spec, build key or search parameter is invalid."""


class InputError(GlintError, ValueError):
    """Input data (vectors, ids, payloads, queries) cannot be used as given."""


class DimensionError(InputError):
    """A vector's dimension does not match what the index expects."""


class FormatError(GlintError):
    """An index directory or input file is damaged, foreign or of an unknown version."""


class NotFoundError(GlintError, FileNotFoundError):
    """A path that should exist does not."""
