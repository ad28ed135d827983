"""What every venue simulator shares: the server, fault switches, the log of what was sent.

A simulator is a local WebSocket server (websockets' asyncio server) that speaks one
venue's protocol strictly, with synthetic but documented-shape data that is
deterministic under ``seed``. The protocol is the venue's ``Server`` (``wsrec.venues``),
one per connection in ``state["server"]``: a simulator feeds it client messages
(``answer``), sends what it queues (``flush``), and adds what a server on a network has
(a clock, timeouts, connection limits) and the data. Fault switches make the recorder's
error paths testable:

* ``drop_every=N``: abort the TCP connection (no close frame) after every N data frames;
* ``malformed_every=N``: every N-th data frame is cut in half (invalid JSON);
* ``stall_after=N``: after N data frames, send nothing more (the connection stays open);
* ``error=CODE``: answer with the venue's error CODE (each simulator lists its own in
  ``errors``), or ``http:STATUS`` to refuse the WebSocket upgrade with that HTTP status
  (400 to 599); anything else is refused when the simulator is made (``error_problem``).

Exchange times are the simulator's wall clock (``clock``: ns since the epoch, injectable;
``time.time_ns`` by default) less a small latency, a few ms deterministic from ``seed``
(``exchange_ns``): a recording from a simulator shows receive-minus-exchange latencies
like a venue's. A chain's blocks are timed from the wall clock when the simulator
started (``block_ns``), one block every ``1 / rate`` s, or, at the venue's own pace
(``rate`` None and a ``block_time``, Flow's), a block time apart give or take a
deterministic jitter; the head is the last block whose time the clock has passed
(``head_offset``), so a block at the head is never later than the time it is sent.

Every message a simulator sends is logged per connection in ``sent`` (and client
messages in ``received``), so tests can compare a recording with what was sent.

A simulator is a separate server: ``SimThread`` serves one from its own thread and
event loop (what ``record(..., sim=...)`` does), so a client's loop is never starved by
it. Within its loop a simulator yields regularly while it catches up at a high
``rate`` (every ``YIELD_EVERY`` frames), since sends that never block would otherwise
keep it from serving its other connections.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from wsrec.errors import UsageError
from wsrec.logs import log
from wsrec.venues.base import Server, compact

__all__ = ["SimOptions", "Simulator", "SimThread", "Dropped", "compact", "PRICE_LEVELS",
           "price_level", "Walk"]

#: a simulator catching up (sends that do not block) yields to its loop this often
YIELD_EVERY = 16
#: the simulated latency of exchange times (ns): a simulator's base, from its seed, in
#: LATENCY_BASE, plus up to LATENCY_JITTER per message
LATENCY_BASE = (1_000_000, 6_000_000)
LATENCY_JITTER = 2_000_000

#: an instrument (its ticker, or a pair's base currency) -> (its price level, decimals)
PRICE_LEVELS = {"BTC": (90_000.0, 1), "ETH": (3_000.0, 2), "SOL": (150.0, 3),
                "AAPL": (230.0, 2), "MSFT": (420.0, 2)}


def price_level(symbol: str) -> tuple[float, int]:
    """Where ``symbol`` trades and to how many decimals: ``PRICE_LEVELS`` by its ticker or
    base currency (``BTC/USD``, ``ETH-PERP``: BTC, ETH), else a level from 5 to 5,000
    deterministic from its name, to 2 decimals."""
    base = symbol.replace("-", "/").split("/")[0].upper()
    if base in PRICE_LEVELS:
        return PRICE_LEVELS[base]
    return round(5 * 10 ** (zlib.crc32(base.encode()) % 1000 / 333), 2), 2


def _mix(*numbers: int) -> int:
    """A well-mixed 64-bit number from ``numbers`` (splitmix64), the same every run."""
    x = 0
    for n in numbers:
        x = (x + n * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % (1 << 64)
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) % (1 << 64)
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) % (1 << 64)
        x ^= x >> 31
    return x


class Walk:
    """Each symbol's price: a random walk from its level, rounded to its decimals;
    ``tick`` is its smallest step, ``step`` the spacing of its book levels (about a
    basis point, at least a tick)."""

    def __init__(self, rng: random.Random, sigma: float = 0.0005):
        self.rng, self.sigma = rng, sigma
        self.prices: dict[str, float] = {}

    def next(self, symbol: str) -> float:
        level, decimals = price_level(symbol)
        price = self.prices.get(symbol, level)
        price = round(price * (1 + self.rng.gauss(0, self.sigma)), decimals)
        self.prices[symbol] = price
        return price

    def mid(self, symbol: str) -> float:
        """The symbol's last price (its level before any)."""
        return self.prices.get(symbol, price_level(symbol)[0])

    @staticmethod
    def decimals(symbol: str) -> int:
        return price_level(symbol)[1]

    @staticmethod
    def tick(symbol: str) -> float:
        return 10.0 ** -price_level(symbol)[1]

    @staticmethod
    def step(symbol: str) -> float:
        level, decimals = price_level(symbol)
        return max(round(level * 0.0001, decimals), 10.0 ** -decimals)

    def format(self, symbol: str, price: float) -> str:
        return f"{price:.{self.decimals(symbol)}f}"


@dataclass
class SimOptions:
    seed: int = 1
    #: data frames per second (per stream; a chain's blocks per second); None: the
    #: venue's own pace (``Simulator.default_rate``, or a chain's ``block_time``)
    rate: float | None = None
    drop_every: int | None = None
    malformed_every: int | None = None
    stall_after: int | None = None
    error: str | None = None
    auth_timeout: float = 10.0        # alpaca: seconds to authenticate
    idle_timeout: float = 60.0        # hyperliquid: close after this long with nothing sent
    inactivity: float = 60.0          # flow: drop a connection idle without subscriptions
    ping_interval: float | None = None  # server protocol pings (flow 9 s); dfuse app pings
    pong_timeout: float = 10.0
    max_symbols: int = 30             # alpaca symbol limit (the free plan's, on iex)
    max_connections: int = 1          # alpaca connections per endpoint
    #: the credentials accepted (environment variable -> value, as the venue's client reads
    #: them); None: any non-empty ones, and the simulator's ``sample_credentials`` for a
    #: recorder
    credentials: dict[str, str] | None = None
    extra: dict = field(default_factory=dict)


class Dropped(Exception):
    """Raised inside a session when a fault switch ended the connection."""


class Simulator:
    venue = ""
    server: type[Server] = Server
    #: credentials a recorder is given when the options name none
    sample_credentials: dict[str, str] = {}
    ping_interval_default: float | None = None
    #: the venue error codes ``error=`` takes, and what each does; None: any text
    errors: dict[str, str] | None = {}
    #: data frames per second when the options name no rate
    default_rate = 20.0
    #: a chain's block pace when the options name no rate: (mean, jitter) in ns, each
    #: block ``mean`` after the one before give or take up to twice ``jitter``; None:
    #: ``default_rate`` blocks a second
    block_time: tuple[int, int] | None = None

    def __init__(self, options: SimOptions | None = None,
                 clock: Callable[[], int] | None = None):
        self.options = options or SimOptions()
        #: the wall clock exchange times come from (ns since the epoch)
        self.clock = clock or time.time_ns
        problem = self.error_problem(self.options.error)
        if problem is None and not (isinstance(self.rate, (int, float))
                                    and math.isfinite(self.rate) and self.rate >= 0):
            problem = f"rate must be a finite number >= 0, not {self.options.rate!r}"
        if problem:
            raise UsageError(f"{self.venue} simulator: {problem}")
        self.url: str | None = None          # ws://HOST:PORT, without a path
        self.client_url: str | None = None   # that with ``client_path()``: what is announced
        self.sent: dict[int, list[bytes]] = {}
        self.received: dict[int, list[bytes]] = {}
        self.active = 0
        self._ids = itertools.count()
        self._server = None
        self.loop_started = 0.0
        self.wall_started = self.clock()   # the wall clock at start(): block times' origin
        self.latency_base = random.Random(f"latency {self.options.seed}").randint(*LATENCY_BASE)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0, announce: bool = False) -> str:
        ping = self.options.ping_interval
        if ping is None:
            ping = self.ping_interval_default
        self._server = await serve(
            self._handle, host, port, process_request=self._process_request,
            ping_interval=ping if self.protocol_pings else None,
            ping_timeout=self.options.pong_timeout if self.protocol_pings else None,
            max_size=None, compression="deflate")
        sock = self._server.sockets[0]
        h, p = sock.getsockname()[:2]
        self.url = f"ws://{h}:{p}"
        self.client_url = self.url + self.client_path()
        self.loop_started = asyncio.get_running_loop().time()
        self.wall_started = self.clock()
        if announce:
            log(f"listening on {self.client_url}", url=self.client_url,
                public=self.public_values())
        return self.url

    def client_path(self) -> str:
        """The path (and query) a client can connect to as is: the venue's
        ``Server.default_path``."""
        return self.server.default_path

    def public_values(self) -> tuple[str, ...]:
        """The ``sample_credentials`` values the options don't replace: demo values, no
        secret, so the URL announced with one in it is printed as a client needs it."""
        given = set((self.options.credentials or {}).values())
        return tuple(v for v in self.sample_credentials.values() if v not in given)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.close()

    protocol_pings = False

    @classmethod
    def error_problem(cls, error: str | None) -> str | None:
        """Why ``error`` is not something this simulator can answer with (None: it is):
        one of its ``errors``, or ``http:STATUS``."""
        if error is None:
            return None
        error = str(error)
        if error.startswith("http:"):
            status = error[5:]
            if status.isdigit() and 400 <= int(status) <= 599:
                try:
                    HTTPStatus(int(status))
                    return None
                except ValueError:
                    pass
            return f"{error!r}: http:STATUS takes a known HTTP error status (400 to 599)"
        if cls.errors is None:
            return None if error.strip() else "give the error text to answer with"
        if error in cls.errors:
            return None
        return (f"the {cls.venue} simulator has no error code {error!r}; valid: "
                f"{', '.join(cls.errors)}, or http:STATUS")

    def now(self) -> float:
        return asyncio.get_running_loop().time() - self.loop_started

    def exchange_ns(self, state: dict) -> int:
        """The exchange time of a message sent now on this connection (ns since the
        epoch): the wall clock less the latency, never before the connection's last."""
        rng = state.get("latency_rng")
        if rng is None:
            rng = state["latency_rng"] = random.Random(
                f"latency {self.options.seed} {state.get('cid', 0)}")
        t = self.clock() - self.latency_base - rng.randrange(LATENCY_JITTER)
        t = max(t, state.get("exchange_ns", t))
        state["exchange_ns"] = t
        return t

    @property
    def rate(self) -> float:
        """Data frames per second: the options' rate, else ``default_rate``."""
        rate = self.options.rate
        return self.default_rate if rate is None else rate

    def paced(self) -> bool:
        """Whether a chain's blocks come at the venue's own pace (``block_time``)."""
        return self.options.rate is None and self.block_time is not None

    def block_period_ns(self) -> int:
        """The mean time between a chain's blocks: the venue's ``block_time``, or one
        block every ``1 / rate`` s (1 s at rate 0, where the head stays put)."""
        if self.paced():
            return self.block_time[0]
        rate = self.rate
        return round(1e9 / rate) if rate > 0 else 1_000_000_000

    def block_offset_ns(self, offset: int) -> int:
        """When the block ``offset`` blocks after the head at start was made, from the
        wall clock at start: a block period each, and at the venue's pace a jitter of up
        to ``block_time[1]`` either way (deterministic from the seed and the block), so
        consecutive blocks are mean +- twice that apart."""
        base = offset * self.block_period_ns()
        if not self.paced() or offset == 0:
            return base
        spread = self.block_time[1]
        return base + _mix(offset, self.options.seed) % (2 * spread + 1) - spread

    def block_ns(self, offset: int) -> int:
        """The time of the block ``offset`` blocks after the one at the head when the
        simulator started: when it was made (``block_offset_ns`` after the wall clock
        then) less a latency of a few ms (deterministic from the seed and the block)."""
        jitter = (offset * 2654435761 + self.options.seed * 40503) % LATENCY_JITTER
        return self.wall_started + self.block_offset_ns(offset) - self.latency_base - jitter

    def head_offset(self) -> int:
        """The head now, in blocks after the head at start: the last block made by the
        simulator's clock (at rate 0 the head stays put)."""
        if not self.paced() and self.rate <= 0:
            return 0
        elapsed = self.clock() - self.wall_started
        guess = elapsed // self.block_period_ns()
        if not self.paced():
            return guess
        while self.block_offset_ns(guess + 1) <= elapsed:
            guess += 1
        while guess > 0 and self.block_offset_ns(guess) > elapsed:
            guess -= 1
        return guess

    # -- per connection ------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request):
        """Refuse an upgrade (return an HTTP response) or accept it (None)."""
        err = self.options.error
        if err and err.startswith("http:"):
            return self.http_error(int(err[5:]), "refused by --error")
        problem = self.server.refuse(request.path)
        return None if problem is None else self.http_error(404, problem)

    def credentials(self) -> dict[str, str]:
        """The environment a recorder needs to be let in (its credentials)."""
        return dict(self.options.credentials or self.sample_credentials)

    def make_server(self, request) -> Server:
        """The venue's side of a new connection (``request``: the upgrade request)."""
        return self.server(request.path, request.headers)

    async def flush(self, ws: ServerConnection, state: dict) -> bool:
        """Send what the connection's server queued; close the connection when the server
        says so (then True)."""
        server = state["server"]
        for payload, text in server.take():
            await self.send(ws, state, payload, not text)
        if server.close is not None:
            await ws.close(*server.close)
            return True
        return False

    async def answer(self, ws: ServerConnection, state: dict, message) -> bool:
        """Hand a client message to the connection's server and send its answer (True:
        the server closed the connection)."""
        state["server"].receive(message)
        return await self.flush(ws, state)

    @staticmethod
    def http_error(status: int, text: str):
        body = f"{status} {HTTPStatus(status).phrase}: {text}\n".encode()
        headers = Headers([("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                           ("Connection", "close")])
        return Response(status, HTTPStatus(status).phrase, headers, body)

    async def _handle(self, ws: ServerConnection) -> None:
        cid = next(self._ids)
        self.sent[cid] = []
        self.received[cid] = []
        self.active += 1
        state = {"data": 0, "cid": cid, "rng": random.Random(self.options.seed * 7919 + cid),
                 "tasks": {}}
        try:
            state["server"] = self.make_server(ws.request)
            await self.session(ws, state)
        except (ConnectionClosed, Dropped):
            pass
        finally:
            self.active -= 1

    async def session(self, ws: ServerConnection, state: dict) -> None:
        """Start the connection's server, then answer client messages while the
        ``background`` coroutines run and ``update`` keeps the data streams
        (``state["tasks"]``) in step with the server; at the end, cancel them all."""
        state["server"].start()
        if await self.flush(ws, state):
            return
        helpers = [self.spawn(b) for b in self.background(ws, state)]
        try:
            while not await self.answer(ws, state, await self.recv(ws, state)):
                self.update(ws, state)
        finally:
            for task in [*helpers, *state["tasks"].values()]:
                task.cancel()

    def background(self, ws: ServerConnection, state: dict) -> list:
        """Coroutines that run beside a connection (pings, timeouts, a stream)."""
        return []

    def update(self, ws: ServerConnection, state: dict) -> None:
        """Start or stop data streams after a client message (``spawn`` them into
        ``state["tasks"]``)."""

    @staticmethod
    def spawn(coro) -> asyncio.Task:
        """A task that ends quietly with its connection."""
        async def run():
            try:
                await coro
            except (ConnectionClosed, Dropped):
                pass
        return asyncio.create_task(run())

    async def recv(self, ws: ServerConnection, state: dict):
        """The next client message (str or bytes), logged."""
        message = await ws.recv()
        self.received[state["cid"]].append(message.encode() if isinstance(message, str)
                                           else message)
        return message

    async def send(self, ws: ServerConnection, state: dict, payload: bytes,
                   binary: bool = False) -> None:
        """Send a control message (welcome, ack, error): no fault switches."""
        self.sent[state["cid"]].append(payload)
        await ws.send(payload if binary else payload.decode())

    async def emit(self, ws: ServerConnection, state: dict, payload: bytes,
                   binary: bool = False) -> None:
        """Send a data frame through the fault switches."""
        opts = self.options
        state["data"] += 1
        n = state["data"]
        if opts.stall_after is not None and n > opts.stall_after:
            await ws.wait_closed()
            raise Dropped()
        if opts.malformed_every and n % opts.malformed_every == 0:
            payload = payload[: len(payload) // 2]
        await self.send(ws, state, payload, binary)
        if opts.drop_every and n % opts.drop_every == 0:
            await ws.drain()       # what was logged as sent reaches the socket ...
            ws.transport.abort()   # ... then the connection dies without a close frame
            raise Dropped()
        if n % YIELD_EVERY == 0:
            await asyncio.sleep(0)  # a send that never blocks must not starve the loop

    async def ticks(self):
        """Yield forever at ``rate`` per second (anchored, so no drift)."""
        loop = asyncio.get_running_loop()
        period = 1.0 / self.rate if self.rate > 0 else 3600.0
        start = loop.time()
        for i in itertools.count(1):
            delay = start + i * period - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif i % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # behind: catch up, but let the loop run
            yield i


class SimThread:
    """Serve ``simulator`` from its own thread and event loop until ``stop()``.

    A simulator is a separate server: however fast it sends, it never runs in (or
    starves) the caller's event loop. ``start()`` returns its URL; ``sent`` and
    ``received`` stay readable on the simulator after ``stop()``. Also a context
    manager::

        with SimThread(get_simulator("hyperliquid")) as sim:
            record_from(sim.url)
    """

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0):
        self.simulator = simulator
        self.host, self.port = host, port
        self.url: str | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> str:
        """Start serving; returns the URL (raises what starting the server raised)."""
        if self.thread is not None:
            raise RuntimeError("simulator thread already started")
        self.thread = threading.Thread(target=self._main, daemon=True,
                                       name=f"wsrec-sim-{self.simulator.venue}")
        self.thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the {self.simulator.venue} simulator did not start within "
                               f"{timeout:g}s")
        if self._error is not None:
            self.thread.join(timeout)
            raise self._error
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Close the server (and its connections), end the thread; idempotent."""
        thread, loop = self.thread, self.loop
        if thread is None or not thread.is_alive():
            return
        if loop is not None and self._stop is not None:
            try:
                loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop is already closed
                pass
        thread.join(timeout)

    def __enter__(self) -> "SimThread":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            if not self._ready.is_set():
                self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.url = await self.simulator.start(self.host, self.port)
        except Exception as exc:  # noqa: BLE001 - raised again by start()
            self._error = exc
            return
        finally:
            self._ready.set()
        try:
            await self._stop.wait()
        finally:
            try:
                await asyncio.wait_for(self.simulator.close(), 5.0)
            except TimeoutError:
                pass  # asyncio.run cancels what is left
