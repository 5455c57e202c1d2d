"""Limits on request bodies, enforced as they stream in: the size of one body, and the memory
all the bodies in flight may cost.

- :class:`BodyLimitMiddleware` (``max_body_bytes``): a declared ``Content-Length`` over the
  limit is answered 413 before any byte is read; a chunked body is counted as it arrives, and
  once it passes the limit the app is told the client went away (it stops reading) and the
  client gets the 413, so no request can make the server buffer more than the limit.
- :class:`AdmissionMiddleware` (``max_inflight_bytes``): each request is charged what its body
  will cost in memory once parsed (its declared ``Content-Length`` times the factor of its
  media type; a chunked body is charged as it arrives) and holds that charge until its answer
  is sent and no worker thread works for it any more. A request that would take the total
  past the budget is answered 503 ``unavailable`` with ``Retry-After`` at once, before any
  byte of its body is read. The routes correct the charge once they know what the body really
  costs (:meth:`Charge.require`, with :func:`json_cost`, :func:`npz_cost`, :func:`array_cost`),
  and add what the answer will cost once they know how many hits it holds
  (:func:`charge_more`, :func:`answer_cost`), giving a request that has no charge one then
  (the same 503 when the budget cannot take it).

Both answer a refused request with ``Connection: close``, and the server gives the C heap's
free pages back to the system when it goes idle after large bodies (:func:`trim_heap_soon`).

The memory rule: requests in flight cost at most the budget, except that one request
costing more than the whole budget is admitted alone (its charge is the whole budget), so
their bodies, parsed, take at most ``max(max_inflight_bytes, the costliest single request)``;
small JSON bodies (:data:`SMALL_JSON_BODY`) and the small answers of requests that are not
otherwise charged (:data:`SMALL_ANSWER_HITS`) are not counted.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterable

import numpy as np
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from glint.wire import NPY_MEDIA_TYPE, NPZ_MEDIA_TYPE, media_type, npz_declared_bytes

from .auth import KeyRing
from .errors import ServiceError, error_response
from .observability import Metrics

__all__ = [
    "ANSWER_HIT_COST",
    "ARRAY_NUMBER_COST",
    "BINARY_FACTOR",
    "JSON_FACTOR",
    "JSON_HIT_COST",
    "JSON_NUMBER_COST",
    "NPZ_HIT_COST",
    "SMALL_ANSWER_HITS",
    "SMALL_JSON_BODY",
    "AdmissionBudget",
    "AdmissionMiddleware",
    "BodyLimitMiddleware",
    "Charge",
    "answer_cost",
    "array_cost",
    "charge_more",
    "charge_of",
    "json_cost",
    "npz_cost",
    "trim_heap_soon",
]

SMALL_JSON_BODY = 64 * 1024
"""JSON bodies under this many bytes are not charged, so the hot single-query path pays
nothing for the budget: the routes parse them on the event loop, one at a time, and one costs
at most ~2.6 MB while it is parsed (a number takes 2 bytes or more), ~0.4 MB of arrays after."""

JSON_FACTOR = 4
"""A JSON body is admitted at this many times its size. Measured (CPython 3.11, pydantic
2.14): a 28 MB batch of 10,000 x 384 numbers written with 4 decimals, validated a step at a
time (:mod:`glint.service.stepwise`), peaks at 2.2x its size with the body itself (the
float64 matrix and one step's Python floats), and :func:`json_cost` charges it 4.1x (the
index's float32 copy and a step's worth of floats counted in full). Validated whole, as a
body of another shape is, the same batch holds 230 MB of Python floats (9.1x its size with
the body); shorter numbers cost more a byte (bare zeros: 7x stepwise, 37x whole). So the
routes charge the exact figure, :func:`json_cost`, once they hold the body."""

JSON_NUMBER_COST = 80
"""Peak bytes a number of a JSON body validated whole costs, parsed and searched: 60 to 73
measured for a Python float and its slot in a list, plus its 8 in the float64 matrix (the
float32 copy the index makes reuses memory the parse freed), rounded up."""

ARRAY_NUMBER_COST = 20
"""Bytes a number of a JSON body validated a step at a time costs: 8 in the float64 matrix,
4 in the index's float32 copy, and 8 more for token sets, whose matrices are joined in one."""

BINARY_FACTOR = 3
"""An ``.npy`` or ``.npz`` body is admitted at this many times its size: the body, its
decoded arrays (no larger than the body for ``.npy``) and a float32 copy of float64 values
(half as large). An ``.npz`` member may be compressed, so the routes charge its declared
uncompressed size before decoding it (:func:`npz_cost`), and the arrays' real size after
(:func:`array_cost`)."""

ANSWER_HIT_COST = 12
"""Bytes a hit of a search's answer costs in its result arrays (an int64 id, a float32
score), whatever the answer is encoded as."""

JSON_HIT_COST = 150
"""Bytes a hit of a JSON answer costs on top, while it is encoded: its Python int and float
and their list slots (~142 MB per million hits, measured, encoded whole) and its text."""

NPZ_HIT_COST = 12
"""Bytes a hit of an ``.npz`` answer costs on top: its id and score in the archive."""

SMALL_ANSWER_HITS = 4096
"""An answer of at most this many hits (under 0.7 MB, JSON) is not charged to a request that
is not charged otherwise (a small JSON body): the routes encode it on the event loop."""

# An answer sent before the body is read closes the connection, as Go's server does: else
# the server would read the rest of the body to reach the next request (uvicorn discards
# it), and a refused 28 MB body would cost as much network and event-loop time as a served one.
_UNREAD = {"Connection": "close"}
_RETRY_UNREAD = {"Retry-After": "1", **_UNREAD}
_UNAUTHORIZED_UNREAD = {"WWW-Authenticate": "Bearer", **_UNREAD}
_TRIM_AFTER = 64 * 1024 * 1024  # bytes released since the last trim that make one worth it


def json_cost(body: bytes, *, step: int | None = None) -> int:
    """The memory a JSON body costs once parsed: itself and, a number (commas counted: an
    overestimate by the commas between keys), :data:`JSON_NUMBER_COST` bytes when it is
    validated whole; :data:`ARRAY_NUMBER_COST` when it is validated ``step`` bytes at a time,
    plus one step's Python floats (:mod:`glint.service.stepwise`)."""
    numbers = body.count(b",") + 1
    if step is None:
        return len(body) + JSON_NUMBER_COST * numbers
    in_step = min(numbers, step // 2 + 1)  # a number takes 2 bytes of text or more
    return len(body) + ARRAY_NUMBER_COST * numbers + JSON_NUMBER_COST * in_step


def answer_cost(hits: int, *, npz: bool) -> int:
    """The memory the answer of a search of ``hits`` hits (queries times ``k``) costs: its
    result arrays, and its encoding as ``.npz`` (``npz``) or JSON."""
    return hits * (ANSWER_HIT_COST + (NPZ_HIT_COST if npz else JSON_HIT_COST))


def array_cost(body: bytes, *arrays: np.ndarray) -> int:
    """The memory a binary body costs once decoded: itself, its arrays and the float32 copy
    the index makes of an array stored in another type (offsets counted too: a few bytes)."""
    copies = sum(4 * a.size for a in arrays if a.dtype != np.float32)
    return len(body) + sum(a.nbytes for a in arrays) + copies


def npz_cost(body: bytes, keys: Iterable[str]) -> int:
    """The memory an ``.npz`` body can cost once the members ``keys`` are decoded: the body
    and the sizes its zip directory declares for them, known before anything is
    decompressed (:func:`glint.wire.npz_declared_bytes`)."""
    return len(body) + npz_declared_bytes(body, keys)


class AdmissionBudget:
    """The bytes of memory the requests in flight may cost together, shared by an app's
    requests and the worker threads that work for them (so it takes a thread lock).

    ``on_idle`` is called, on the thread that gave the last bytes back, when nothing is in
    flight any more after at least ``idle_after`` bytes were released since the last call.
    """

    def __init__(
        self,
        capacity: int,
        *,
        on_idle: Callable[[], None] | None = None,
        idle_after: int = _TRIM_AFTER,
    ) -> None:
        self.capacity = capacity
        self.used = 0
        self._lock = threading.Lock()
        self._on_idle = on_idle
        self._idle_after = idle_after
        self._released = 0

    def admit(self, cost: int) -> Charge | None:
        """A charge of ``cost`` bytes for a new request, or None if the budget cannot take
        it now; a cost over the whole budget is admitted alone, charged the whole budget."""
        charge = Charge(self)
        return charge if charge.try_require(cost) else None


class Charge:
    """One request's share of an :class:`AdmissionBudget`.

    Held by the request until its answer is sent, and by each worker thread working for it
    (:meth:`retain`, :meth:`release`): the bytes go back once the last holder lets go, so a
    thread still parsing or searching for a request that has timed out keeps its memory
    counted.
    """

    def __init__(self, budget: AdmissionBudget) -> None:
        self._budget = budget
        self.bytes = 0
        self._holders = 1

    def try_require(self, cost: int) -> bool:
        """Grow the charge to ``cost`` bytes (capped at the whole budget) if the budget can
        take it; False if it cannot. A charge never shrinks before it is released."""
        budget = self._budget
        wanted = min(cost, budget.capacity)
        with budget._lock:
            if wanted <= self.bytes:
                return True
            if budget.used - self.bytes + wanted > budget.capacity:
                return False
            budget.used += wanted - self.bytes
            self.bytes = wanted
            return True

    def require(self, cost: int) -> None:
        """:meth:`try_require`, answering 503 ``unavailable`` when the budget cannot take it."""
        if not self.try_require(cost):
            raise _overloaded(self._budget)

    def retain(self) -> None:
        with self._budget._lock:
            self._holders += 1

    def release(self) -> None:
        budget = self._budget
        with budget._lock:
            self._holders -= 1
            if self._holders:
                return
            budget.used -= self.bytes
            budget._released += self.bytes
            self.bytes = 0
            idle = budget.used == 0 and budget._released >= budget._idle_after
            if idle:
                budget._released = 0
        if idle and budget._on_idle is not None:
            budget._on_idle()


class _Admission:
    """What :class:`AdmissionMiddleware` leaves in a request's scope: the budget, and the
    request's charge once it has one (the middleware releases it once the request is done,
    whoever made it; an object, so a copy of the scope shares it)."""

    __slots__ = ("budget", "charge")

    def __init__(self, budget: AdmissionBudget) -> None:
        self.budget = budget
        self.charge: Charge | None = None


_ADMISSION = "glint.admission"


def charge_of(scope: Scope) -> Charge | None:
    """The admission charge of the request of ``scope`` (None: it is not charged)."""
    admission: _Admission | None = scope.get(_ADMISSION)
    return None if admission is None else admission.charge


def charge_more(scope: Scope, cost: int) -> Charge | None:
    """Add ``cost`` bytes to the charge of the request of ``scope``, giving the request a
    charge if it has none (held until it is answered, as one made on admission is); 503
    ``unavailable`` when the budget cannot take it. None when the app has no budget."""
    admission: _Admission | None = scope.get(_ADMISSION)
    if admission is None:
        return None
    charge = admission.charge
    if charge is not None:
        charge.require(charge.bytes + cost)
        return charge
    charge = admission.budget.admit(cost)
    if charge is None:
        raise _overloaded(admission.budget)
    admission.charge = charge
    return charge


def _overloaded(budget: AdmissionBudget) -> ServiceError:
    return ServiceError(
        "unavailable",
        f"the server is busy: request bodies in flight would pass its memory budget of "
        f"{budget.capacity} bytes (GLINT_MAX_INFLIGHT_BYTES); retry later",
    )


def _refuse(error: ServiceError) -> Response:
    """The answer to a request refused before its body was read (or all of it)."""
    headers = {503: _RETRY_UNREAD, 401: _UNAUTHORIZED_UNREAD}.get(error.status, _UNREAD)
    return error_response(error.status, error.code, error.message, error.field, headers)


async def _run_counted(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    over: Callable[[int], ServiceError | None],
) -> None:
    """Run ``app`` with its body counted as it streams in: ``over`` is given each chunk's
    size and returns the error to answer once the body passes a limit. The app then sees the
    client go away (it stops reading), its answer is dropped, and the error's goes out."""
    error: ServiceError | None = None
    responded = False

    async def counted_receive() -> Message:
        nonlocal error
        if error is not None:
            return {"type": "http.disconnect"}
        message = await receive()
        if message["type"] == "http.request":
            error = over(len(message.get("body", b"")))
            if error is not None:
                return {"type": "http.disconnect"}
        return message

    async def guarded_send(message: Message) -> None:
        nonlocal responded
        if error is not None:
            return
        responded = True
        await send(message)

    try:
        await app(scope, counted_receive, guarded_send)
    except Exception:
        if error is None:
            raise
    if error is not None and not responded:
        await _refuse(error)(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str:
    """The first value of header ``name`` (lower case), or ''."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def _body_headers(scope: Scope) -> tuple[int | None, str]:
    """The declared body size (0 when there is no body, None when it is chunked) and the
    media type of a request. Any ``Transfer-Encoding`` makes it chunked, whatever its value
    and wherever a ``Content-Length`` stands: the body is then counted as it arrives, never
    trusted to be the size a ``Content-Length`` beside it claims."""
    length = 0
    chunked = False
    media = ""
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit():
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"content-type":
            media = media_type(value.decode("latin-1"))
    return (None if chunked else length), media


class BodyLimitMiddleware:
    """Pure ASGI middleware: 413 with the error envelope for bodies over ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                error = self._too_large()
                await _refuse(error)(scope, receive, send)
                return
        received = 0

        def over(size: int) -> ServiceError | None:
            nonlocal received
            received += size
            return self._too_large() if received > self.limit else None

        await _run_counted(self.app, scope, receive, send, over)

    def _too_large(self) -> ServiceError:
        return ServiceError("payload_too_large", f"request body exceeds {self.limit} bytes")


class AdmissionMiddleware:
    """Pure ASGI middleware: the admission budget of ``capacity`` bytes (see the module's
    documentation). With ``metrics``, rejections are counted and the bytes in use exposed."""

    def __init__(
        self,
        app: ASGIApp,
        capacity: int,
        metrics: Metrics | None = None,
        keys: KeyRing | None = None,
    ) -> None:
        self.app = app
        self.keys = keys
        self.budget = AdmissionBudget(capacity, on_idle=trim_heap_soon)
        self._rejected: Callable[[], None] = lambda: None
        if metrics is not None:
            metrics.inflight_bytes.set_function(lambda: self.budget.used)
            self._rejected = metrics.admission_rejections.inc

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, media = _body_headers(scope)
        if declared != 0 and self.keys is not None and self.keys.enabled:
            # Bodies are read, parsed and charged for callers with a key only: anyone else is
            # answered 401 here, before they can take any of the budget.
            try:
                self.keys.bearer_role(_header(scope, b"authorization"))
            except ServiceError as exc:
                await _refuse(exc)(scope, receive, send)
                return
        binary = media in (NPY_MEDIA_TYPE, NPZ_MEDIA_TYPE)
        admission = _Admission(self.budget)
        scope[_ADMISSION] = admission
        try:
            if not binary and declared is not None and declared < SMALL_JSON_BODY:
                # small: not charged, unless the route charges its answer (charge_more)
                await self.app(scope, receive, send)
                return
            await self._charged(scope, receive, send, admission, declared, binary)
        finally:
            if admission.charge is not None:
                admission.charge.release()

    async def _charged(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        admission: _Admission,
        declared: int | None,
        binary: bool,
    ) -> None:
        factor = BINARY_FACTOR if binary else JSON_FACTOR
        charge = self.budget.admit(factor * (declared or 0))
        if charge is None:
            self._rejected()
            await _refuse(_overloaded(self.budget))(scope, receive, send)
            return
        admission.charge = charge
        if declared is not None:
            await self.app(scope, receive, send)
            return

        def over(size: int) -> ServiceError | None:
            if charge.try_require(charge.bytes + factor * size):
                return None
            self._rejected()
            return _overloaded(self.budget)

        await _run_counted(self.app, scope, receive, send, over)


def _malloc_trim() -> None:
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return
    trim(0)


def trim_heap_soon() -> None:
    """Give the C heap's free pages back to the system, on a thread of its own (glibc's
    ``malloc_trim``; nothing elsewhere). Parsed bodies leave much of the heap free but still
    resident once they are gone (measured: ~140 MB after one 42 MB JSON batch, 0 after a
    trim, which took 6 ms)."""
    threading.Thread(target=_malloc_trim, name="glint-trim", daemon=True).start()
