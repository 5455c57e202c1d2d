"""Request dependencies as ``Annotated`` aliases: settings, registry, auth, the search pool."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn, TypeVar, cast

import anyio
import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import Depends, Request
from starlette.types import Scope

from glint.index import Index, SearchParams, SearchResult
from glint.wire.filters import Filter

from .auth import KeyRing, Role
from .cores import CoreBudget
from .errors import ServiceError
from .limits import Charge, charge_of
from .observability import Metrics
from .registry import Registry
from .settings import Settings

__all__ = [
    "AdminKey",
    "MetricsDep",
    "ReadKey",
    "RegistryDep",
    "SearchPool",
    "Service",
    "ServiceDep",
    "Ticket",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Ticket:
    """What one request may spend: time until ``deadline`` (on anyio's clock; None: no
    timeout) for everything it does (reading its body, parsing it, waiting for a worker,
    searching, encoding the answer), and its admission ``charge``, which the worker threads
    working for it hold until they end (None: the request is not charged)."""

    deadline: float | None
    charge: Charge | None = None

    def remaining(self) -> float | None:
        """Seconds left (0 once the deadline has passed), or None without a deadline."""
        return None if self.deadline is None else max(0.0, self.deadline - anyio.current_time())


class SearchPool:
    """Where blocking work runs: worker threads off the event loop.

    - At most ``limiter``'s capacity of threads run at once. A slot is held until the thread
      really ends, even when the request that started it has given up, so abandoned work
      still counts against the pool.
    - Searches share ``cores``, so concurrent requests never run more search threads than the
      budget holds (see :mod:`glint.service.cores`).
    - With a ``timeout``, a request gets that many seconds for all it does, from its
      :meth:`ticket` on: work that waits for a slot and runs past the ticket's deadline is
      answered 503 ``timeout`` at the deadline, and finishes in the background (holding its
      slot, and its request's admission charge, until it ends).
    - ``max_candidates`` caps every candidate count of a search, asked for or default
      (:meth:`glint.index.SearchParams.capped`).
    """

    def __init__(
        self,
        limiter: CapacityLimiter,
        cores: CoreBudget,
        *,
        timeout: float | None = None,
        max_candidates: int | None = None,
        on_timeout: Callable[[], None] | None = None,
    ) -> None:
        self.limiter = limiter
        self.cores = cores
        self.timeout = timeout
        self.max_candidates = max_candidates
        self._on_timeout = on_timeout

    def ticket(self, scope: Scope | None = None) -> Ticket:
        """A request's ticket, taken as it starts: its deadline is the timeout from now; its
        charge, that of the request of ``scope`` (see :mod:`glint.service.limits`)."""
        deadline = None if self.timeout is None else anyio.current_time() + self.timeout
        return Ticket(deadline, None if scope is None else charge_of(scope))

    def resolve(self, index: Index[Any], k: int, params: Mapping[str, Any]) -> SearchParams:
        """The search ``params`` ask of ``index`` for ``k`` results, with every default, and
        capped: a given candidate count over the cap is refused (OverLimitError), before
        anything else the index refuses (ConfigError); a default one is lowered to it."""
        resolved: SearchParams = index.resolve_params(k, params, cap=self.max_candidates)
        return resolved

    async def search(
        self,
        index: Index[Any],
        queries: Any,
        k: int,
        params: Mapping[str, Any],
        threads: int,
        ticket: Ticket | None = None,
        *,
        filter: Filter | None = None,
    ) -> SearchResult:
        """``index.search`` with up to ``threads`` cores, whatever of them are free, for the
        search :meth:`resolve` makes of ``params``, within ``ticket`` (a new one without).
        ``filter`` is compiled into the rows it allows on the worker thread, with the
        search: its cost grows with the collection, so it is kept off the event loop."""
        resolved = self.resolve(index, k, params)

        def work(still_wanted: Callable[[], bool]) -> SearchResult | None:
            with self.cores.take(threads) as got:
                if not still_wanted():  # timed out while waiting for cores: skip the work
                    return None
                allowed = index.allowed_rows(filter) if filter is not None else None
                return index.search(queries, k, params=resolved, filter=allowed, threads=got)

        return await self._run(work, ticket, "the search")

    async def call(self, fn: Callable[..., T], *args: Any, ticket: Ticket | None = None) -> T:
        """``fn(*args)`` on a pool thread, within ``ticket`` (a new one without)."""
        return await self._run(lambda _: fn(*args), ticket, "the request")

    async def _run(
        self, fn: Callable[[Callable[[], bool]], T | None], ticket: Ticket | None, what: str
    ) -> T:
        """Run ``fn(still_wanted)`` on a pool thread; ``still_wanted()`` turns False once the
        request has stopped waiting for it (``fn`` may then return None: no one reads it)."""
        loop = asyncio.get_running_loop()
        ticket = ticket or self.ticket()
        token = object()
        acquired = False
        with anyio.move_on_after(ticket.remaining()):
            await self.limiter.acquire_on_behalf_of(token)
            acquired = True
        if not acquired:
            self.timed_out("no search worker became free")
        charge = ticket.charge
        if charge is not None:
            charge.retain()  # given back with the slot
        # Who gives the slot back: this task once the thread has ended (the common case, no
        # extra hop), or the thread itself when this task stopped waiting for it.
        lock = threading.Lock()
        state = {"started": False, "finished": False, "abandoned": False}

        def work() -> T | None:
            with lock:
                if state["abandoned"]:
                    return None  # given up before it began: the task released the slot
                state["started"] = True
            try:
                return fn(lambda: not state["abandoned"])
            finally:
                with lock:
                    state["finished"] = True
                    release_here = state["abandoned"]
                if release_here:  # without waiting: the loop may be stopping
                    if charge is not None:
                        charge.release()
                    # RuntimeError: the event loop is closed (shutdown), nothing to release
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(self.limiter.release_on_behalf_of, token)

        try:
            with anyio.move_on_after(ticket.remaining()):
                result = await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
                # None only from work that was abandoned, whose result no one awaits
                return cast(T, result)
            self.timed_out(f"{what} did not finish")
        finally:
            with lock:
                release_now = state["finished"] or not state["started"]
                state["abandoned"] = True
            if release_now:
                self.limiter.release_on_behalf_of(token)
                if charge is not None:
                    charge.release()

    def timed_out(self, what: str) -> NoReturn:
        """Count a timeout and answer it: 503 ``timeout``, saying ``what`` did not happen."""
        if self._on_timeout is not None:
            self._on_timeout()
        raise ServiceError(
            "timeout", f"{what} within the request timeout of {self.timeout:g} s; retry later"
        )


@dataclass(frozen=True)
class Service:
    """The app's parts in one dependency, for hot routes (each dependency costs per request)."""

    settings: Settings
    registry: Registry
    pool: SearchPool
    metrics: Metrics


async def get_service(request: Request) -> Service:
    found: Service = request.app.state.service
    return found


async def get_registry(request: Request) -> Registry:
    found: Registry = request.app.state.registry
    return found


async def get_metrics(request: Request) -> Metrics:
    found: Metrics = request.app.state.metrics
    return found


def authorize(request: Request, needed: Role) -> Role | None:
    ring: KeyRing = request.app.state.keys
    if not ring.enabled:
        return None
    role = ring.bearer_role(request.headers.get("authorization", ""))
    if needed == "admin" and role != "admin":
        raise ServiceError("forbidden", "this route needs an admin key")
    return role


async def require_read(request: Request) -> Role | None:
    return authorize(request, "read")


async def require_admin(request: Request) -> Role | None:
    return authorize(request, "admin")


ServiceDep = Annotated[Service, Depends(get_service)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ReadKey = Annotated[Role | None, Depends(require_read)]
AdminKey = Annotated[Role | None, Depends(require_admin)]
