"""A cap on request body size, as plain ASGI middleware (no framework import needed).

A request whose ``Content-Length`` exceeds the cap is answered 413 before its body is read (the
HTTP server holds a body to its declared length); a body without a declared length (chunked) is
read here as it arrives, refused with 413 as soon as it passes the cap, and otherwise replayed to
the app — so a client cannot stream an unbounded upload into the server.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["BodyLimitMiddleware"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimitMiddleware:
    """Refuse HTTP request bodies larger than ``max_bytes`` with 413 Payload Too Large."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        """Wrap ``app``; ``max_bytes`` is the largest body accepted."""
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await _reply(send, 400, "Content-Length is not an integer")
                return
            if size > self.max_bytes:
                await _reply(send, 413, self._message(size))
                return
            await self.app(scope, receive, send)  # the server holds the body to its length
            return
        messages: list[Message] = []  # no declared length (chunked): read it, up to the cap
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                logger.warning("refused a streamed request body over %d bytes", self.max_bytes)
                await _reply(send, 413, self._message(seen))
                return
            if not message.get("more_body", False):
                break
        replay = iter(messages)

        async def replayed() -> Message:
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)

    def _message(self, size: int) -> str:
        return (
            f"request body of {size} bytes exceeds the limit of {self.max_bytes} bytes; "
            "send a smaller file or start the server with a larger --max-body-mb"
        )


async def _reply(send: Send, status: int, detail: str) -> None:
    error = "PayloadTooLarge" if status == 413 else "BadRequest"
    body = json.dumps({"error": error, "detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
