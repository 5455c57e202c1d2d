"""The server's search pool: concurrent searches share a core budget and never exceed it."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import numpy as np

from glint.service.cores import CoreBudget
from glint.service.deps import SearchPool


class CountingIndex:
    """Stands in for an index: records how many threads run searches at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_use = 0
        self.peak = 0
        self.given: list[int] = []

    def resolve_params(self, k: int, params: Any, *, cap: int | None = None) -> Any:
        return params

    def search(self, queries: Any, k: int, *, params: Any, threads: int, filter: Any = None) -> int:
        with self.lock:
            self.in_use += threads
            self.peak = max(self.peak, self.in_use)
            self.given.append(threads)
        work = np.arange(200_000, dtype=np.float64)
        for _ in range(20):  # real work, long enough for the requests to overlap
            work = np.sqrt(work + 1.0)
        with self.lock:
            self.in_use -= threads
        return k


def test_concurrent_batches_stay_within_the_core_budget() -> None:
    index = CountingIndex()
    pool = SearchPool(anyio.CapacityLimiter(4), CoreBudget(3))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(24):
                tg.start_soon(pool.search, index, None, 10, {}, 3)

    anyio.run(main)
    assert len(index.given) == 24
    assert index.peak <= 3  # 4 worker threads, but never more than 3 cores in use
    assert all(1 <= t <= 3 for t in index.given)
    assert pool.cores.free == 3


def test_a_lone_batch_gets_every_core_it_asks_for() -> None:
    index = CountingIndex()
    pool = SearchPool(anyio.CapacityLimiter(2), CoreBudget(2))
    assert anyio.run(pool.search, index, None, 5, {}, 2) == 5
    assert index.given == [2]
