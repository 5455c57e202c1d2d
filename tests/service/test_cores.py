"""The core budget: concurrent searches never run more threads than it holds."""

from __future__ import annotations

import threading

import pytest

from glint.service.cores import CoreBudget


def test_core_budget_never_hands_out_more_than_it_holds() -> None:
    budget = CoreBudget(3)
    in_use, peak, lock = [0], [0], threading.Lock()
    barrier = threading.Barrier(6)

    def worker(want: int) -> None:
        barrier.wait(timeout=10)
        for _ in range(200):
            with budget.take(want) as got:
                assert 1 <= got <= want
                with lock:
                    in_use[0] += got
                    peak[0] = max(peak[0], in_use[0])
                with lock:
                    in_use[0] -= got

    threads = [threading.Thread(target=worker, args=(w,)) for w in (1, 2, 3, 3, 2, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert peak[0] <= 3 and budget.free == 3


def test_core_budget_gives_what_is_free() -> None:
    budget = CoreBudget(4)
    with budget.take(3) as first:
        assert first == 3
        with budget.take(4) as second:
            assert second == 1 and budget.free == 0
    assert budget.free == 4
    with budget.take(99) as got:
        assert got == 4
    with pytest.raises(ValueError, match="at least one core"):
        CoreBudget(0)
