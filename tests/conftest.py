"""Shared fixtures: synthetic clustered data, exact references and real servers on ephemeral
loopback ports. The functions behind them live in ``tests/support/testkit.py``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import numpy as np
import pytest

from testkit import brute_force, chamfer_truth, clustered, queries_from, serving, token_sets


@pytest.fixture(scope="session")
def multivec() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return token_sets


@pytest.fixture(scope="session")
def multivec_queries() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return queries_from


@pytest.fixture(scope="session")
def chamfer() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return chamfer_truth


@pytest.fixture(scope="session")
def data() -> Callable[..., np.ndarray]:
    return clustered


@pytest.fixture(scope="session")
def exact() -> Callable[..., np.ndarray]:
    return brute_force


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """``serve(index_dirs=[...], **settings) -> base_url`` once ``/readyz`` says 200 (or at
    once with ``wait_ready=False``); servers stop at teardown."""
    from glint.service.app import create_app
    from glint.service.settings import Settings

    with ExitStack() as running:

        def start(*, wait_ready: bool = True, **settings: Any) -> str:
            app = create_app(Settings(**settings))
            return running.enter_context(serving(app, wait_ready=wait_ready))

        yield start
