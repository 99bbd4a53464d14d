"""ASGI middleware: a request id on every request and response (``x-request-id``).

Ids are cheap to make: a random per-process prefix and a counter (no syscall per request,
unlike ``uuid4``), unique across processes and restarts for all practical purposes.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Iterable
from typing import Any, TypeGuard

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestIdMiddleware", "client_request_id", "is_valid_request_id", "new_request_id"]

_VALID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_PREFIX = secrets.token_hex(6)
_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """A fresh request id (22 hex digits)."""
    return f"{_PREFIX}{next(_COUNTER):010x}"


def is_valid_request_id(value: object) -> TypeGuard[str]:
    """Whether a client-supplied id is safe to echo and log (1-128 of ``A-Za-z0-9._:-``)."""
    return isinstance(value, str) and _VALID.match(value) is not None


def client_request_id(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The client's ``x-request-id`` header when it is sane, else None."""
    for name, value in headers:
        if name == b"x-request-id":
            rid = value.decode("latin-1")
            return rid if _VALID.match(rid) else None
    return None


class RequestIdMiddleware:
    """Takes the client's ``x-request-id`` (if sane) or makes one; echoes it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = client_request_id(scope.get("headers", ())) or new_request_id()
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = rid
        header = (b"x-request-id", rid.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
