"""Request body limit for every route, enforced while the body streams in.

A declared ``Content-Length`` over the limit is refused before any byte is read; a chunked
body is counted as it arrives, and once it passes the limit the app is told the client went
away (it stops reading) and the client gets the 413, so no request can make the server
buffer more than ``max_body_bytes``.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ServiceError, error_response

__all__ = ["BodyLimitMiddleware"]


def _too_large(limit: int) -> ServiceError:
    return ServiceError("payload_too_large", f"request body exceeds {limit} bytes")


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
                error = _too_large(self.limit)
                response = error_response(error.status, error.code, error.message)
                await response(scope, receive, send)
                return
        received = 0
        exceeded = False
        responded = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # the app sees a disconnect and stops reading; its answer is dropped below
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal responded
            if exceeded:
                return
            responded = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not responded:
            error = _too_large(self.limit)
            await error_response(error.status, error.code, error.message)(scope, receive, send)
