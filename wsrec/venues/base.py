"""What a venue adapter is: plain protocol code, no sockets.

A ``Venue`` turns what the user asked for (a ``Request``: channels, symbols, params,
credentials) into ``Stream`` objects, one per connection. A ``Stream`` is the protocol
of one connection: it says what to send when the connection opens, and for each
received message returns how to classify it (channels, symbols) and, for the few
messages that matter to the protocol (welcome, acks, errors, progress), what to do:
send something, declare the opening exchange done, reconnect, or stop for good.
It also remembers what it needs to resume after a reconnect.

A ``Server`` is the venue's side of one connection: what the venue answers to the
handshake, auth, subscriptions, pings and malformed messages, and which data frames a
client's subscriptions get, and in what form.

The recorder (``wsrec.record.recorder``) runs any venue's streams with the same network
loop; the simulators and the replay server run its server side. Tests drive both with
literal frames from ``venue-docs``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Mapping

from wsrec.errors import UsageError

__all__ = ["Request", "Step", "Stream", "Server", "Venue", "UsageError", "NONE", "UNAVAILABLE",
           "endpoint", "shards", "compact", "loads", "echo", "strings", "integer"]

NONE: tuple = ()
#: how a server that offers only part of a venue (``Server.offered``) says why it refuses
UNAVAILABLE = "not available on this server"


@dataclass
class Request:
    """What to record, as the user said it (CLI options or API arguments)."""
    channels: list[str] = field(default_factory=list)
    symbols: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    url: str | None = None          # endpoint override (sandbox, testnet, local server)
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def param(self, name: str, default=None):
        return self.params.get(name, default)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.params.get(name)
        if value is None:
            return default
        return str(value).lower() in ("1", "true", "yes", "on")


@dataclass
class Step:
    """What the recorder must do after a received message."""
    send: list[bytes] = field(default_factory=list)   # messages to send now
    ready: bool = False             # the opening exchange is complete
    fatal: str | None = None        # stop recording: reconnecting can't cure this
    retry: str | None = None        # drop this connection and reconnect


class Stream:
    """The protocol of one connection. Subclasses override what they need."""

    name: str = "main"              # the ``stream`` column: which logical stream this is
    url: str = ""
    headers: dict[str, str] = {}
    text_out: bool = True           # outbound messages are text frames
    binary_in: bool = False         # inbound data is msgpack (Alpaca's binary mode)

    def opening(self) -> list[bytes]:
        """Messages to send as soon as the connection is open."""
        return []

    def receive(self, payload: bytes, text: bool) -> tuple[tuple, tuple, Step | None]:
        """Classify a received message and react to it: ``(channels, symbols, step)``.

        Called for every message, so the common case (a data frame) must be cheap:
        scan bytes, don't parse JSON.
        """
        return NONE, NONE, None

    def heartbeat(self) -> bytes | None:
        """An application-level keepalive message, or None for a protocol ping."""
        return None

    def secrets(self) -> list[str]:
        """Strings that must never be stored or printed (keys, tokens)."""
        return []

    def reset(self) -> None:
        """Called before every (re)connect; keep what resuming needs, drop the rest."""


class Server:
    """The venue's side of one connection, sans I/O: client messages in, frames out.

    Made per connection from the upgrade request's ``path`` and ``headers``. ``start()``
    (the connection is open), ``receive(message)`` (a client message, str or bytes) and
    ``internal_error()`` queue frames in ``out`` as ``(payload, is_text)``; ``take()``
    hands them over. ``close`` is set to ``(code, reason)`` when the venue ends the
    connection; ``ready`` once data may flow (the venue has acknowledged a subscription).
    ``render(payload, text, channels, symbols)`` says what this client gets of a data
    frame (recorded, or made by a simulator): a list of ``(payload, is_text)``, possibly
    empty. Client messages of any shape the venue would refuse get the venue's own error
    reply and change nothing. The simulators (``wsrec.sim``) and replay emulation
    (``wsrec.replay._emulate``) move these frames; this class never touches a socket.

    ``offered``: what this server has to give, as the ``Request`` its data was recorded
    with (the live relay: the upstream connection's channels, symbols and parameters);
    a subscription outside it gets the venue's own answer to an unavailable
    subscription. None: everything.

    The base class is the pass-through: ready at once, client messages ignored, every
    data frame as is.
    """

    def __init__(self, path: str = "/", headers: Mapping[str, str] | None = None, *,
                 offered: Request | None = None):
        self.path = path
        self.headers = headers if headers is not None else {}
        self.offered = offered
        self.out: list[tuple[bytes, bool]] = []
        self.close: tuple[int, str] | None = None
        self.ready = True

    #: the paths the venue serves, as a client writes them (for help texts)
    paths: tuple[str, ...] = ()
    #: the path (and query) a client connects to when it names none: what ``wsrec sim``
    #: and the replay server add to the URL they announce ("": the bare URL)
    default_path = ""

    @classmethod
    def refuse(cls, path: str) -> str | None:
        """Why the venue answers an upgrade to ``path`` with HTTP 404 (None: it serves it)."""
        return None

    def start(self) -> None:
        """The connection is open (queue a greeting here)."""

    def receive(self, message) -> None:
        """A client message (str or bytes)."""

    def internal_error(self) -> None:
        """The venue's generic error, for a message whose handling failed unexpectedly."""

    def render(self, payload: bytes, text: bool, channels, symbols) -> list[tuple[bytes, bool]]:
        return [(payload, text)]

    def signature(self):
        """What ``render`` depends on besides the frame, as a hashable value: two
        connections with equal signatures (of the same class) get the same frames, so a
        server of many clients may render each frame once for all of them. None: not
        comparable (rendered per connection)."""
        return ()

    def reply(self, obj) -> None:
        """Queue a JSON text frame."""
        self.out.append((compact(obj), True))

    def take(self) -> list[tuple[bytes, bool]]:
        out, self.out = self.out, []
        return out


class Venue:
    """A venue: its endpoints, channels, parameters, limits and defaults."""

    name: str = ""
    title: str = ""
    endpoints: dict[str, str] = {}
    channels: dict[str, str] = {}           # name -> what it carries
    default_channels: list[str] = []
    params: dict[str, str] = {}             # --param name -> meaning
    symbols: str = ""                       # what --symbols means here (and the symbols column)
    example_symbols: tuple[str, ...] = ()   # completion offers them after the recorded ones
    credentials: dict[str, str] = {}        # environment variable -> meaning
    watchdog: float | None = None           # reconnect after this much silence (None: off)
    heartbeat: float | None = 20.0          # seconds between keepalives (None: none)
    send_limit: tuple[int, float] | None = None      # at most N client messages per T s
    connect_limit: tuple[int, float] | None = None   # at most N new connections per T s

    #: Where a data frame's exchange timestamp is (the session's ``exch_ts`` column):
    #: ``(pattern, unit)`` pairs tried in order, each a regex (bytes) over the raw payload
    #: with one named group ``(?P<t>...)``; its first match in the frame is the frame's
    #: time (the first message's, for a frame holding several). ``unit``: "rfc3339" (no
    #: zone means UTC), or "s", "ms", "us", "ns" for integers (bare or quoted).
    exch_time: tuple[tuple[bytes, str], ...] = ()
    #: normalized table -> the channels whose frames carry its rows
    normalized: dict[str, tuple[str, ...]] = {}
    #: channels whose frames ``check_sequence`` reads (``wsrec verify --deep``)
    sequenced: tuple[str, ...] = ()

    def exch_ts(self, payloads, kinds):
        """The ``exch_ts`` of each frame (Arrow arrays in, timestamp[ns, UTC] out)."""
        from wsrec.venues.normalize import exchange_times
        return exchange_times(payloads, self.exch_time)

    def decode(self, payload: bytes, text: bool):
        """A data frame as a value for ``normalize`` (ValueError when it is not one).
        Text frames are JSON; binary frames are the venue's business."""
        if not text:
            raise ValueError("a binary frame")
        return json.loads(payload)

    def normalize(self, table: str, message, channel: str | None, state: dict):
        """The rows of ``table`` (one of ``wsrec.venues.normalize.TABLES``) that the
        decoded frame ``message`` holds, as tuples in the order of
        ``normalize.FIELDS[table]``, each starting with its exchange time in ns (None:
        the frame's ``exch_ts``). ``channel`` is the frame's (None when it has several),
        ``state`` a dict kept per connection, for mappings that need the frames before.
        Raises ValueError, KeyError, TypeError, IndexError or AttributeError for a frame
        it cannot map: the frame is counted as unmapped, never silently dropped."""
        return ()

    def check_sequence(self, message, channel: str | None, state: dict):
        """The venue-level gaps a frame of ``sequenced`` reveals, as ``(what, size)``
        pairs (``size``: how many messages or blocks are missing, or repeated);
        ``state`` is a dict kept per connection."""
        return ()

    def streams(self, request: Request) -> list[Stream]:
        raise NotImplementedError

    def describe(self) -> dict:
        from wsrec.venues.tables import tables
        return {
            "name": self.name,
            "title": self.title,
            "endpoints": self.endpoints,
            "channels": self.channels,
            "default_channels": self.default_channels,
            "params": self.params,
            "symbols": self.symbols,
            "credentials": self.credentials,
            "watchdog_s": self.watchdog,
            "heartbeat_s": self.heartbeat,
            "send_limit": self.send_limit,
            "connect_limit": self.connect_limit,
            "normalized": {t: list(c) for t, c in tables(self).items()},
        }

    def check_channels(self, request: Request) -> list[str]:
        channels = request.channels or list(self.default_channels)
        unknown = [c for c in channels if self.channels and c not in self.channels]
        if unknown:
            raise UsageError(f"{self.name}: unknown channel(s) {', '.join(unknown)} "
                             f"(choose from {', '.join(self.channels)})")
        return channels

    def check_params(self, request: Request) -> None:
        unknown = [p for p in request.params if self.params and p not in self.params]
        if unknown:
            raise UsageError(f"{self.name}: unknown parameter(s) {', '.join(unknown)} "
                             f"(known: {', '.join(self.params)})")


def endpoint(override: str | None, default: str, path: str = "") -> str:
    """The URL to connect to: ``override`` when given (with ``path`` appended when it
    names only a host, e.g. a local simulator), else ``default``."""
    if not override:
        return default
    from urllib.parse import urlsplit
    try:
        bare = urlsplit(override).path in ("", "/")
    except ValueError:   # not a URL: the recorder reports it (a usage error)
        return override
    if bare and path:
        return override.rstrip("/") + "/" + path.lstrip("/")
    return override


def shards(streams: list[Stream]) -> list[Stream]:
    """Name the connections a request is spread over: ``main`` when one is enough,
    else ``shard-0``, ``shard-1``, ..."""
    if len(streams) > 1:
        for i, stream in enumerate(streams):
            stream.name = f"shard-{i}"
    return streams


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


BAD = object()   # a client message that is not a JSON value


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def loads(message):
    """A client's text message as a JSON value, or ``BAD``: binary, not JSON (NaN and
    Infinity included), or nested deeper than the parser goes."""
    if not isinstance(message, str):
        return BAD
    try:
        return json.loads(message, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return BAD


def echo(value, limit: int = 200) -> str:
    """A client's value quoted back in an error text, at most ``limit`` characters."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):
        text = repr(type(value).__name__)
    return text if len(text) <= limit else text[:limit] + "..."


def strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
