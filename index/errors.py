"""Exceptions raised by ``glint.index``.

Every error derives from :class:`GlintError`::

    GlintError
    ├── ConfigError      a spec string, build key or search parameter is invalid
    │   └── OverLimitError   a search parameter is over the server's cap
    ├── InputError       input vectors, ids or payloads are unusable (NaN, empty, duplicates, ...)
    │   └── DimensionError   a vector's dimension does not match the index
    ├── FormatError      an index directory is damaged, foreign or of an unsupported version
    └── NotFoundError    a file or index directory does not exist

``ConfigError``, ``InputError`` and ``DimensionError`` are also ``ValueError``s, so callers
that only know the standard library can still catch them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "ConfigError",
    "DimensionError",
    "FormatError",
    "GlintError",
    "InputError",
    "NotFoundError",
    "OverLimitError",
    "one_line",
    "prefixed_errors",
]


class GlintError(Exception):
    """Root of every error raised by glint's index layer."""


class ConfigError(GlintError, ValueError):
    """An index spec, build key or search parameter is invalid."""


class OverLimitError(ConfigError):
    """A search parameter is over a limit set by whoever serves the index (not by its kind):
    ``param`` names it."""

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.param = param


class InputError(GlintError, ValueError):
    """Input data (vectors, ids, payloads, queries) cannot be used as given."""


class DimensionError(InputError):
    """A vector's dimension does not match what the index expects."""


class FormatError(GlintError):
    """An index directory or input file is damaged, foreign or of an unknown version."""


class NotFoundError(GlintError, FileNotFoundError):
    """A path that should exist does not."""


def one_line(exc: BaseException) -> str:
    """``str(exc)`` squeezed onto one line (or the exception's type name if it is empty)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


@contextmanager
def prefixed_errors(src: str) -> Iterator[None]:
    """Re-raise glint errors from the block with ``src: `` in front of the message."""
    try:
        yield
    except GlintError as exc:
        message = str(exc)
        if message.startswith(f"{src}: "):
            raise
        raise type(exc)(f"{src}: {message}").with_traceback(exc.__traceback__) from None
