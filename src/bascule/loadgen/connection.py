"""A minimal HTTP/1.1 client connection for the load generator: keep-alive, one request at a time.

It is an ``asyncio.Protocol``: the request is written as prepared bytes, and the answer is
parsed from the received chunks (status line; ``Content-Length`` or chunked body;
``Connection: close``) with no per-request objects beyond a future and the body. That keeps
the generator's CPU per request at a few tens of microseconds, well below the servers it
measures (httpx's ``AsyncClient`` costs several hundred).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Final, cast
from urllib.parse import urlsplit

from bascule._version import __version__
from bascule.core.errors import InvalidInputError

__all__ = ["HttpConnection", "Target", "encode_request", "parse_target"]

_USER_AGENT: Final = f"bascule-loadtest/{__version__}".encode()
_NO_BODY: Final = frozenset({204, 304})


@dataclass(frozen=True)
class Target:
    """Where requests go: parsed from the base URL."""

    scheme: str
    host: str
    port: int
    path: str
    """The URL's path prefix without a trailing slash (``""`` for the root)."""

    @property
    def host_header(self) -> str:
        """The ``Host`` header value."""
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_target(url: str) -> Target:
    """Parse ``http(s)://host[:port][/prefix]``.

    Raises:
        InvalidInputError: another scheme, no host, or a bad port.
    """
    expected = "http://host[:port] or https://host[:port]"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidInputError.for_field("URL", url, expected) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError.for_field("URL", url, expected)
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


def encode_request(
    method: str, path: str, host: str, body: bytes = b"", *, json_length: int | None = None
) -> bytes:
    """One HTTP/1.1 request, ready to write on a kept-alive connection.

    Args:
        method: HTTP method.
        path: Request target.
        host: ``Host`` header.
        body: The body.
        json_length: With the V2 binary tensor data extension, the length of the body's JSON
            part (sent as ``Inference-Header-Content-Length``); None for a JSON body.
    """
    if json_length is None:
        kind = "Content-Type: application/json\r\n"
    else:
        kind = (
            "Content-Type: application/octet-stream\r\n"
            f"Inference-Header-Content-Length: {json_length}\r\n"
        )
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{kind}Content-Length: {len(body)}\r\n"
    ).encode("latin-1")
    return head + b"User-Agent: " + _USER_AGENT + b"\r\n\r\n" + body


class _Protocol(asyncio.Protocol):
    """Parses answers as they arrive and hands each to the waiting request."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.lost = False
        self.keep_alive = True
        self._buf = bytearray()
        self._reset()

    def _reset(self) -> None:
        self._body_at = -1  # where the body starts in the buffer; -1 while headers are incomplete
        self._length = -1  # body length; -1 for chunked, -2 until the connection closes
        self._status = 0
        self._scan = 0  # chunked: where the next chunk header starts
        self._chunks: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._length == -2 and self._body_at >= 0:  # body delimited by the close
            self._finish(bytes(self._buf[self._body_at :]))
            return
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc or ConnectionResetError("the server closed the connection"))

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if self._body_at < 0 and not self._parse_head():
            return
        start = self._body_at
        if self._length >= 0:
            if len(buf) - start >= self._length:
                end = start + self._length
                body = bytes(buf[start:end])
                del buf[:end]
                self._finish(body)
        elif self._length == -1:
            self._parse_chunks()

    def _parse_head(self) -> bool:
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > 65_536:
                self._fail(ConnectionAbortedError("answer headers over 64 KiB"))
            return False
        head = bytes(buf[:end]).lower()
        try:
            self._status = int(head[9:12])
        except ValueError:
            self._fail(ConnectionAbortedError(f"not an HTTP answer: {head[:40]!r}"))
            return False
        self._body_at = end + 4
        self.keep_alive = b"\r\nconnection: close" not in head
        i = head.find(b"\r\ncontent-length:")
        if self._status in _NO_BODY or 100 <= self._status < 200:
            self._length = 0
        elif i >= 0:
            j = head.find(b"\r\n", i + 2)
            self._length = int(head[i + 17 : j if j >= 0 else len(head)])
        elif b"\r\ntransfer-encoding: chunked" in head:
            self._length = -1
            self._scan = self._body_at
        else:
            self._length = -2
            self.keep_alive = False
        return True

    def _parse_chunks(self) -> None:
        buf = self._buf
        while True:
            line_end = buf.find(b"\r\n", self._scan)
            if line_end < 0:
                return
            size = int(bytes(buf[self._scan : line_end]).split(b";")[0], 16)
            if size == 0:
                trailer_end = buf.find(b"\r\n\r\n", line_end)
                if trailer_end < 0:
                    return
                del buf[: trailer_end + 4]
                self._finish(b"".join(self._chunks))
                return
            stop = line_end + 2 + size
            if len(buf) < stop + 2:
                return
            self._chunks.append(bytes(buf[line_end + 2 : stop]))
            self._scan = stop + 2

    def _finish(self, body: bytes) -> None:
        status = self._status
        self._reset()
        waiter = self.waiter
        self.waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, body))
        if not self.keep_alive and self.transport is not None:
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()
        self.lost = True


class HttpConnection:
    """One kept-alive HTTP/1.1 connection (plain or TLS); one request in flight at a time."""

    def __init__(self, protocol: _Protocol, loop: asyncio.AbstractEventLoop) -> None:
        self._protocol = protocol
        self._loop = loop

    @classmethod
    async def open(cls, target: Target) -> HttpConnection:
        """Connect to ``target``.

        Raises:
            OSError: the connection was refused or failed.
        """
        loop = asyncio.get_running_loop()
        context = ssl.create_default_context() if target.scheme == "https" else None
        # asyncio and uvloop set TCP_NODELAY on TCP connections themselves.
        _, protocol = await loop.create_connection(_Protocol, target.host, target.port, ssl=context)
        return cls(protocol, loop)

    @property
    def closed(self) -> bool:
        """The connection is gone, or the server asked to close it."""
        p = self._protocol
        return p.lost or not p.keep_alive or p.transport is None or p.transport.is_closing()

    async def request(self, payload: bytes) -> tuple[int, bytes]:
        """Write one prepared request and wait for its answer.

        Raises:
            ConnectionError: the connection is closed or fails before the answer is complete.
        """
        p = self._protocol
        if self.closed or p.transport is None:
            raise ConnectionResetError("the connection is closed")
        waiter: asyncio.Future[tuple[int, bytes]] = self._loop.create_future()
        p.waiter = waiter
        p.transport.write(payload)
        return await waiter

    def close(self) -> None:
        """Close; a request in flight fails with ``ConnectionAbortedError``."""
        p = self._protocol
        if p.transport is not None and not p.transport.is_closing():
            p.transport.close()
        p.lost = True
        waiter = p.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionAbortedError("closed by the load generator"))
