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
import re
import ssl
import time
from typing import Protocol as _Protocol

from websockets.client import ClientProtocol
from websockets.exceptions import (InvalidHandshake, InvalidStatus, PayloadTooBig,
                                   ProtocolError)
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State

from wsrec.errors import ConnectError, HandshakeRejected
from wsrec.urls import InvalidURL, parse_url, url_problem

__all__ = ["Connection", "Handler", "ConnectError", "HandshakeRejected", "InvalidURL",
           "connect", "parse_url", "url_problem", "LOCAL_CLOSE"]

_time_ns = time.time_ns
_monotonic_ns = time.monotonic_ns

#: a read is parsed in slices of this many bytes ...
READ_SLICE = 16 << 10
#: ... and once parsing it took this long (seconds), the rest waits for the loop's next turn
PARSE_BUDGET = 0.05
#: unsent bytes (pongs to a peer that does not read) past which reading pauses
WRITE_HIGH_WATER = 4 << 20


#: close codes wsrec sends when it fails a connection itself, and what they mean
LOCAL_CLOSE = {1002: "protocol error", 1007: "invalid data", 1009: "message too big",
               1011: "internal error"}


class Handler(_Protocol):
    def on_open(self, connection: "Connection", ts_ns: int, mono_ns: int) -> None: ...
    def on_message(self, payload: bytes, text: bool, ts_ns: int, mono_ns: int) -> None: ...
    def on_ping(self, data: bytes, ts_ns: int, mono_ns: int) -> None: ...


class Connection(asyncio.Protocol):
    """A client connection; use ``connect()`` to open one."""

    def __init__(self, url: str, handler: Handler, *, headers: dict | None = None,
                 max_size: int | None = 256 << 20, compression: bool = True):
        self._uri = parse_url(url)   # InvalidURL (a ConnectError) when unusable
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
        self._backlog: tuple | None = None   # (rest of a read, ts, mono) parsed next turn
        self._paused: set[str] = set()       # why reading is paused: "backlog", "write"

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        try:   # a peer that stops reading our pongs stops being read (pause_writing)
            transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        except (AttributeError, NotImplementedError):
            pass
        request = self.protocol.connect()
        for key, value in self.headers.items():
            request.headers[key] = value
        self.protocol.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        ts, mono = _time_ns(), _monotonic_ns()
        if len(data) <= READ_SLICE and self._backlog is None:
            self._parse(data, ts, mono)
        else:
            self._feed(data, ts, mono)

    def _feed(self, data: bytes, ts: int, mono: int) -> None:
        """Parse a large read in slices; past ``PARSE_BUDGET`` seconds, pause reading and
        parse the rest on the loop's next turn (stamped with this read's time), so that
        timers (the duration, a close timeout) fire on time whatever the peer floods."""
        if self._backlog is not None:   # (reading is paused meanwhile: not expected)
            rest, ts, mono = self._backlog
            data, self._backlog = rest + data, None
        started = time.perf_counter()
        pos, end = 0, len(data)
        while pos < end:
            self._parse(data[pos:pos + READ_SLICE], ts, mono)
            pos += READ_SLICE
            transport = self.transport
            if transport is None or transport.is_closing():
                return   # aborted (stopped, watchdog): the rest is not wanted
            if pos < end and time.perf_counter() - started > PARSE_BUDGET:
                self._backlog = (data[pos:], ts, mono)
                self._pause("backlog")
                asyncio.get_running_loop().call_soon(self._drain_backlog)
                return

    def _drain_backlog(self) -> None:
        backlog, self._backlog = self._backlog, None
        transport = self.transport
        if backlog is not None and transport is not None and not transport.is_closing():
            self._feed(*backlog)
        if self._backlog is None:
            self._resume("backlog")

    def _pause(self, why: str) -> None:
        transport = self.transport
        if not self._paused and transport is not None and not transport.is_closing():
            transport.pause_reading()
        self._paused.add(why)

    def _resume(self, why: str) -> None:
        self._paused.discard(why)
        transport = self.transport
        if not self._paused and transport is not None and not transport.is_closing():
            try:
                transport.resume_reading()
            except RuntimeError:
                pass

    def pause_writing(self) -> None:
        self._pause("write")

    def resume_writing(self) -> None:
        self._resume("write")

    def _parse(self, data: bytes, ts: int, mono: int) -> None:
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
        self._backlog = None
        if not self.opened.done():
            self.opened.set_exception(ConnectError(
                f"connection closed during the handshake{f': {exc}' if exc else ''}"))
        if not self.closed.done():
            self.closed.set_result(self._close_status(exc))

    def _close_status(self, exc) -> tuple[int, str]:
        """(code, reason) as they were: the server's close frame; else the code wsrec
        failed the connection with (1002 a protocol error, 1007 invalid UTF-8, 1009 a
        message over the size limit, 1011) and its local reason; else 1006."""
        protocol = self.protocol
        rcvd = protocol.close_rcvd
        if rcvd is not None:
            return rcvd.code, rcvd.reason
        failure = protocol.parser_exc
        if failure is not None and not isinstance(failure, EOFError):
            if isinstance(failure, PayloadTooBig):
                code = 1009
            elif isinstance(failure, ProtocolError):
                code = 1002
            elif isinstance(failure, UnicodeDecodeError):
                code = 1007
            else:
                code = 1011
            sent = protocol.close_sent
            detail = sent.reason if sent is not None and sent.code == code and sent.reason \
                else (str(failure) or type(failure).__name__)
            return code, f"closed by wsrec ({LOCAL_CLOSE[code]}): {detail}"
        code = protocol.close_code
        reason = protocol.close_reason or ""
        if code is None or code == 1006:
            return 1006, reason or (_os_error_text(exc) if exc
                                    else "connection lost without a close frame")
        return code, reason

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
    where = f"{uri.host}:{uri.port}"
    try:
        ctx = ssl.create_default_context() if uri.secure else None
        async with asyncio.timeout(timeout):
            await loop.create_connection(lambda: conn, uri.host, uri.port, ssl=ctx)
            await conn.opened
    except TimeoutError:
        conn.abort()
        raise ConnectError(f"timed out after {timeout:g}s connecting to {where}") from None
    except ConnectError:
        conn.abort()
        raise
    except OSError as exc:
        conn.abort()
        if uri.secure and conn.transport is None and (
                isinstance(exc, ssl.SSLError) or isinstance(exc, (ConnectionResetError,
                                                                  BrokenPipeError))):
            raise ConnectError(f"cannot connect to {where}: {_tls_error_text(exc)}") from None
        raise ConnectError(f"cannot connect to {where}: {_os_error_text(exc)}") from None
    except InvalidHandshake as exc:
        conn.abort()
        raise ConnectError(f"WebSocket handshake failed: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - whatever else: a ConnectError naming it
        conn.abort()
        raise ConnectError(f"cannot connect to {where}: {type(exc).__name__}: "
                           f"{exc or 'no detail'}") from None
    except BaseException:  # cancelled mid-handshake: don't leak the socket
        conn.abort()
        raise
    return conn


def _os_error_text(exc: BaseException) -> str:
    """An OSError in words, never empty ("connection refused", "Name or service not
    known", "connection reset by the server")."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(exc, BrokenPipeError):
        return "connection closed by the server (broken pipe)"
    text = getattr(exc, "strerror", None) or str(exc)
    return text or type(exc).__name__


_PLAIN_HINTS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "record layer failure",
                "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST", "UNEXPECTED_EOF", "EOF occurred")


def _tls_error_text(exc: BaseException) -> str:
    """A failed TLS handshake in words, with a hint when the server may not speak TLS."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        detail = re.sub(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$", "",
                        exc.strerror or str(exc)) or type(exc).__name__
        text = "TLS handshake failed: " + (f"SSL: {exc.reason}: {detail}" if exc.reason
                                           else detail)
        plain = any(h in str(exc) or h == exc.reason for h in _PLAIN_HINTS)
    else:
        text = f"TLS handshake failed: {_os_error_text(exc)}"
        plain = True
    return text + (" (is the server plain ws://?)" if plain else "")
