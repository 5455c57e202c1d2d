"""How many cores each search may use: one budget shared by every request of a worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["CoreBudget"]


class CoreBudget:
    """A counting budget of cores shared by concurrent searches.

    ``with budget.take(want) as got:`` waits until at least one core is free, takes up to
    ``want`` of the free ones and returns them on exit. Searches that each take what they are
    given never run more threads than the budget holds.
    """

    def __init__(self, cores: int) -> None:
        if cores < 1:
            raise ValueError(f"a core budget needs at least one core, got {cores}")
        self.cores = cores
        self._free = cores
        self._cond = threading.Condition()

    @property
    def free(self) -> int:
        with self._cond:
            return self._free

    @contextmanager
    def take(self, want: int) -> Iterator[int]:
        want = max(1, min(int(want), self.cores))
        with self._cond:
            while self._free == 0:
                self._cond.wait()
            got = min(want, self._free)
            self._free -= got
        try:
            yield got
        finally:
            with self._cond:
                self._free += got
                self._cond.notify_all()
