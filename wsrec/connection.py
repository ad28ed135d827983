"""One WebSocket client connection: websockets' sans-I/O protocol over an asyncio transport.

This is the only network code of the recorder. Bytes read from the socket go into
``websockets.client.ClientProtocol``; the frames it parses come out to a handler,
stamped with the wall-clock and monotonic time taken when the read returned (before
any parsing), which is as close to the socket as Python gets. Fragmented messages are
reassembled here, permessage-deflate is undone by the protocol, and pings are answered
by it; pings and the close frame are also reported to the handler so they can be
recorded.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Protocol as _Protocol

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from .errors import WsrecError

__all__ = ["Connection", "Handler", "ConnectError", "HandshakeRejected", "connect"]

_time_ns = time.time_ns
_monotonic_ns = time.monotonic_ns


class ConnectError(WsrecError):
    """The connection could not be opened (DNS, refused, TLS, timeout, bad handshake)."""


class HandshakeRejected(ConnectError):
    """The server answered the upgrade with an HTTP status other than 101."""

    def __init__(self, status: int, body: bytes = b""):
        self.status = status
        self.body = body
        text = body.decode(errors="replace").strip().splitlines()
        super().__init__(f"HTTP {status} on the WebSocket upgrade"
                         + (f": {text[0][:200]}" if text else ""))


class Handler(_Protocol):
    def on_open(self, connection: "Connection", ts_ns: int, mono_ns: int) -> None: ...
    def on_message(self, payload: bytes, text: bool, ts_ns: int, mono_ns: int) -> None: ...
    def on_ping(self, data: bytes, ts_ns: int, mono_ns: int) -> None: ...


class Connection(asyncio.Protocol):
    """A client connection; use ``connect()`` to open one."""

    def __init__(self, url: str, handler: Handler, *, headers: dict | None = None,
                 max_size: int | None = 256 << 20, compression: bool = True):
        try:
            self._uri = parse_uri(url)
        except InvalidURI as exc:
            raise ConnectError(f"invalid WebSocket URL {url!r}: {exc}") from None
        extensions = [ClientPerMessageDeflateFactory()] if compression else None
        self.protocol = ClientProtocol(self._uri, extensions=extensions,
                                       max_size=(max_size, None))
        self.handler = handler
        self.headers = headers or {}
        self.response: Response | None = None
        self.transport: asyncio.Transport | None = None
        self.opened = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self._parts: list[bytes] = []
        self._part_text = False
        self._abort_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        request = self.protocol.connect()
        for key, value in self.headers.items():
            request.headers[key] = value
        self.protocol.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        ts, mono = _time_ns(), _monotonic_ns()
        protocol = self.protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if type(event) is Response:
                self._handshake(event, ts, mono)
                continue
            opcode = event.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if event.fin:
                    self.handler.on_message(event.data, opcode is Opcode.TEXT, ts, mono)
                else:
                    self._parts = [event.data]
                    self._part_text = opcode is Opcode.TEXT
            elif opcode is Opcode.CONT:
                self._parts.append(event.data)
                if event.fin:
                    payload = b"".join(self._parts)
                    self._parts = []
                    self.handler.on_message(payload, self._part_text, ts, mono)
            elif opcode is Opcode.PING:
                self.handler.on_ping(bytes(event.data), ts, mono)
        self._flush()

    def eof_received(self):
        self.protocol.receive_eof()
        self._flush()
        return False

    def connection_lost(self, exc) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectError(
                f"connection closed during the handshake{f': {exc}' if exc else ''}"))
        if not self.closed.done():
            code = self.protocol.close_code
            reason = self.protocol.close_reason or ""
            if code is None:
                code = 1006
                reason = reason or (str(exc) if exc else "connection lost without a close frame")
            self.closed.set_result((code, reason))

    # -- helpers ------------------------------------------------------------------------

    def _handshake(self, response: Response, ts: int, mono: int) -> None:
        self.response = response
        if self.opened.done():
            return
        exc = self.protocol.handshake_exc
        if exc is None:
            self.handler.on_open(self, ts, mono)  # before any message of this read
            self.opened.set_result(response)
        elif isinstance(exc, InvalidStatus):
            self.opened.set_exception(HandshakeRejected(exc.response.status_code,
                                                        exc.response.body or b""))
        else:
            self.opened.set_exception(ConnectError(f"WebSocket handshake failed: {exc}"))

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
        if self._abort_timer is None and (self.protocol.close_expected()
                                          or self.protocol.state is State.CLOSED):
            # the server should close TCP first; once, however many reads follow
            self._abort_timer = asyncio.get_running_loop().call_later(2.0, self.abort)

    # -- the caller's side --------------------------------------------------------------

    def send(self, message: bytes, text: bool = True) -> None:
        if self.protocol.state is not State.OPEN:
            return
        if text:
            self.protocol.send_text(message)
        else:
            self.protocol.send_binary(message)
        self._flush()

    def ping(self, data: bytes = b"") -> None:
        if self.protocol.state is State.OPEN:
            self.protocol.send_ping(data)
            self._flush()

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            self._flush()
        elif self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @property
    def is_open(self) -> bool:
        return self.protocol.state is State.OPEN


async def connect(url: str, handler: Handler, *, headers: dict | None = None,
                  timeout: float = 10.0, max_size: int | None = 256 << 20,
                  compression: bool = True) -> Connection:
    """Open a connection and complete the WebSocket handshake, or raise ConnectError."""
    loop = asyncio.get_running_loop()
    conn = Connection(url, handler, headers=headers, max_size=max_size,
                      compression=compression)
    uri = conn._uri
    ctx = ssl.create_default_context() if uri.secure else None
    try:
        async with asyncio.timeout(timeout):
            await loop.create_connection(lambda: conn, uri.host, uri.port, ssl=ctx)
            await conn.opened
    except TimeoutError:
        conn.abort()
        raise ConnectError(f"timed out after {timeout:g}s connecting to {uri.host}:{uri.port}") \
            from None
    except OSError as exc:
        conn.abort()
        reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else \
            (exc.strerror or str(exc))
        raise ConnectError(f"cannot connect to {uri.host}:{uri.port}: {reason}") from None
    except InvalidHandshake as exc:
        conn.abort()
        raise ConnectError(f"WebSocket handshake failed: {exc}") from None
    except BaseException:  # ConnectError, or cancelled mid-handshake: don't leak the socket
        conn.abort()
        raise
    return conn
