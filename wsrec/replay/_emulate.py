"""Playing the venue for a client: what the replay WebSocket server says and sends.

Each venue's side of the protocol is its ``Server`` (``wsrec.venues``, sans I/O): the
welcome, auth, subscription acks, pongs, error replies, and for each recorded frame what
a client gets (nothing, the recorded bytes, or a rewritten frame: an Alpaca array cut
down to the subscribed elements, a Flow or dfuse frame tagged with the client's own
subscription id). ``Emulator`` is the one driver over any of them: it runs a client's
messages and the recorded frames through the server under one lock (so an ack goes out
ahead of every frame of the new subscription) and hands what it queues to ``send``.

A bug that still raises in ``on_message`` is the replay server's to catch: it answers
with ``internal_error()`` (the venue's generic error) and the client stays connected.
"""

from __future__ import annotations

import threading
from functools import partial
from typing import Callable
from urllib.parse import urlsplit

from wsrec.store.session import Frame
from wsrec.venues.alpaca import AlpacaServer
from wsrec.venues.base import Request, Server
from wsrec.venues.dfuse import DfuseServer
from wsrec.venues.flow import FlowServer
from wsrec.venues.hyperliquid import HyperliquidServer
from wsrec.venues.vega import VegaServer

__all__ = ["Emulator", "emulator_for", "client_path"]

Send = Callable[[bytes, bool], None]   # (payload, is_text)
Close = Callable[[int, str], None]     # (code, reason)


class Emulator:
    """One client's connection: the venue's ``Server`` behind a lock, its frames sent
    through ``send``."""

    def __init__(self, server: Server, send: Send, close: Close | None = None):
        self.server = server
        self.send = send
        self.close = close
        self.closed = False
        self.ready = threading.Event()
        self.lock = threading.Lock()

    def _flush(self) -> None:
        # under the lock: an ack goes out ahead of every frame of the new subscription
        for payload, text in self.server.take():
            self.send(payload, text)
        if self.server.close is not None and not self.closed:
            self.closed = True
            if self.close is not None:
                self.close(*self.server.close)
        elif self.server.ready and not self.closed:
            self.ready.set()

    def start(self) -> None:
        """The connection is open (the venue's welcome, if it has one)."""
        with self.lock:
            self.server.start()
            self._flush()

    def on_message(self, message) -> None:
        """A client message (str or bytes)."""
        if self.closed:
            return
        with self.lock:
            self.server.receive(message)
            self._flush()

    def internal_error(self) -> None:
        """Answer a message whose handling failed unexpectedly with the venue's generic
        error (nothing for a venue that takes no client messages)."""
        with self.lock:
            self.server.internal_error()
            self._flush()

    def render(self, frame: Frame) -> list[tuple[bytes, bool]] | None:
        """What this client gets for a recorded frame: a list of (payload, is_text), or
        None."""
        if frame.dir != "in" or self.closed:
            return None
        with self.lock:
            out = self.server.render(frame.payload, frame.kind == "text",
                                     frame.channels or (), frame.symbols or ())
        return out or None


_SERVERS = {
    "alpaca": AlpacaServer,
    "hyperliquid": partial(HyperliquidServer, post_response={
        "type": "error", "payload": "post requests are not replayed"}),
    "vega": VegaServer,
    "flow": FlowServer,
    "dfuse": partial(DfuseServer, auth=False),   # a replay takes any token
}


def client_path(venue: str, sessions=(), channels=None) -> str:
    """The path a client of an emulated ``venue`` connects to as is: that of the first
    recorded connection of ``sessions`` the venue's server serves (a Vega stream, an
    Alpaca feed; first of those whose stream is one of ``channels``, if any is), else
    its ``Server.default_path``; "" for a venue that is not emulated."""
    make = _SERVERS.get(venue)
    if make is None:
        return ""
    server = getattr(make, "func", make)
    default = server.default_path
    paths = []   # (stream, path) of each recorded connection the server serves
    for session in sessions:
        for conn in session.manifest.get("connections") or ():
            path = urlsplit(conn.get("url") or "").path
            if path and server.refuse(path) is None:
                paths.append((conn.get("stream"), path))
    wanted = [p for stream, p in paths if channels and stream in channels] or \
        [p for _, p in paths]
    if not wanted:
        return default
    return default if wanted[0] == urlsplit(default).path else wanted[0]


def emulator_for(venue: str, emulate: bool, send: Send, path: str, headers,
                 close: Close | None = None, offered: Request | None = None) -> Emulator:
    """The emulator for a recorded venue (pass-through for others or with emulate=False).
    ``close(code, reason)`` ends the connection when the venue would; ``offered``: what
    the server has to give (``Server.offered``; None: everything)."""
    make = _SERVERS.get(venue) if emulate else None
    if make is None:
        return Emulator(Server(path, headers), send, close)
    return Emulator(make(path, headers, offered=offered), send, close)
