"""run_spans: every query in exactly one chunk, errors raised, helpers shared without stalls."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from glint.index.threads import run_spans, spans


@pytest.mark.parametrize("nq", [0, 1, 7, 8, 100, 1001])
@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_every_query_runs_once(nq: int, threads: int) -> None:
    seen: Counter[int] = Counter()
    lock = threading.Lock()

    def run(span: tuple[int, int]) -> None:
        a, b = span
        assert 0 <= a < b <= nq
        with lock:
            seen.update(range(a, b))

    run_spans(nq, threads, run)
    assert seen == Counter(range(nq))


def test_chunks() -> None:
    assert spans(0, 4) == []
    assert spans(5, 1) == [(0, 5)] and spans(7, 2) == [(0, 7)]  # too few to share
    parts = spans(1000, 2)
    assert len(parts) == 8 and parts[0] == (0, 125) and parts[-1] == (875, 1000)


def test_threads_share_the_work() -> None:
    names: set[str] = set()
    lock = threading.Lock()
    two = threading.Event()

    def run(span: tuple[int, int]) -> None:
        with lock:
            names.add(threading.current_thread().name)
            if len(names) == 2:
                two.set()
        assert two.wait(timeout=30)  # no chunk ends before a second thread has one

    run_spans(64, 2, run)
    assert threading.current_thread().name in names and len(names) == 2
    helper = (names - {threading.current_thread().name}).pop()
    assert helper.startswith("glint-search")


def test_an_error_in_a_chunk_is_raised() -> None:
    ran: list[int] = []

    def run(span: tuple[int, int]) -> None:
        ran.append(span[0])
        if span[0] == 0:
            raise ValueError("chunk 0 failed")

    with pytest.raises(ValueError, match="chunk 0 failed"):
        run_spans(400, 2, run)
    assert len(ran) < len(spans(400, 2))  # the others stopped taking chunks


def test_searches_sharing_busy_helpers_do_not_stall() -> None:
    """While another search holds every helper, a search runs all its chunks itself."""
    release = threading.Event()
    started = threading.Event()

    def hold(span: tuple[int, int]) -> None:
        started.set()
        assert release.wait(timeout=30)

    first = threading.Thread(target=run_spans, args=(8, 2, hold))
    first.start()
    assert started.wait(timeout=30)
    done: list[tuple[int, int]] = []
    finished = threading.Event()

    def second() -> None:
        run_spans(100, 2, done.append)
        finished.set()

    threading.Thread(target=second).start()
    try:
        assert finished.wait(timeout=30), "the second search waited for busy helpers"
        assert sorted(done)[0][0] == 0 and sum(b - a for a, b in done) == 100
    finally:
        release.set()
        first.join(timeout=30)
