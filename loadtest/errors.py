"""The load generator's own errors: each becomes one line on stderr in ``glint loadtest``."""

from __future__ import annotations

__all__ = ["LoadTestError", "UsageError"]


class LoadTestError(ValueError):
    """The run cannot start or finish: an unreachable server, an unknown collection, a bad
    queries file, a missing optional dependency. ``glint loadtest`` exits 1."""


class UsageError(LoadTestError):
    """The options contradict each other or are out of range. ``glint loadtest`` exits 2."""
