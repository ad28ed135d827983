"""The recording engine: runs any venue's streams over the one connection loop.

For each ``Stream`` (one per connection the venue needs) a slot connects, runs the
opening exchange, and stores every message in both directions and every connection
event through one ``SessionWriter``. It reconnects on any non-fatal loss with
exponential backoff and full jitter, resumes where the stream knows how, watches for
silence, sends keepalives, respects the venue's send and connect rate limits, and
stops cleanly on a signal, ``duration``, ``max_frames`` or a fatal error.

Stops are exact and bounded: ``duration`` is checked on every message and by a timer
(on an injectable monotonic clock), ``max_frames`` on every message, and the moment the
recording is done each open connection is sent its close frame (from inside the read
that stopped it, if so); it gets ``CLOSE_TIMEOUT`` seconds for the server's, then it is
aborted. Whatever happens (including cancellation), every connection that opened gets
exactly one ``close`` event, with the code and reason actually seen (1006 when wsrec
cut it; 1002 or 1009 with wsrec's reason when wsrec failed it). Keepalives and
server pings never hold a stop up: server pings are stored at most once a second per
connection (a ``ping`` event with the ``count`` since the previous one).

Secrets (``wsrec.secrets``) never reach a row, the manifest or a message: the URL,
arguments, outbound messages, events and errors all go through one ``Redactor``.
SIGHUP is ignored (one line on stderr) while recording: only SIGINT/SIGTERM stop it.

The receive path per message is: stamp (done by the connection), check the deadline,
classify by scanning bytes (the stream), append to the writer's lists. Nothing else.
"""

from __future__ import annotations

import asyncio
import collections
import math
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from wsrec.record._connection import ConnectError, HandshakeRejected, connect, url_problem
from wsrec.errors import WsrecError
from wsrec.secrets import Redactor
from wsrec.venues.base import NONE, Request, Step, Stream, UsageError, Venue
from wsrec.store.writer import SessionWriter

__all__ = ["Recorder", "RecordOptions", "RecordResult", "record", "check_options",
           "ignore_sighup", "MIN_HEARTBEAT", "SIGHUP_MESSAGE"]

_time_ns = time.time_ns
_monotonic_ns = time.monotonic_ns

#: seconds a stopping connection waits for the server's close frame before the abort
CLOSE_TIMEOUT = 0.5
#: seconds ``Recorder.run`` gives its streams to close after the stop, then cancels them
STOP_GRACE = CLOSE_TIMEOUT + 1.0
#: the duration timer re-reads the clock at least this often (seconds)
CLOCK_POLL = 0.25
#: the shortest keepalive interval (seconds); 0 turns keepalives off
MIN_HEARTBEAT = 0.1
#: at most one ``ping`` event row per connection this often (seconds); it counts the rest
PING_ROW_INTERVAL = 1.0
#: what a SIGHUP prints (once per signal) instead of ending the recording
SIGHUP_MESSAGE = "SIGHUP ignored; use SIGTERM to stop"


@dataclass
class RecordOptions:
    duration: float | None = None          # seconds (on Recorder.clock); None: until stopped
    max_frames: int | None = None          # inbound frames to store, then stop
    max_retries: int | None = None         # consecutive failed attempts; None: unlimited
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    backoff_reset: float = 60.0            # healthy this long: the backoff starts over
    watchdog: float | None = None          # None: the venue's default; 0: off
    heartbeat: float | None = None         # None: the venue's default; 0: off
    open_timeout: float = 10.0
    max_message_size: int = 256 << 20
    compression: bool = True
    flush_interval: float = 1.0
    writer_settings: dict = field(default_factory=dict)


@dataclass
class RecordResult:
    path: Path
    venue: str
    session: str
    status: str
    error: str | None
    frames_in: int
    frames_out: int
    events: int
    bytes_in: int
    reconnects: int
    seconds: float
    stopped_by: str


class _RateLimit:
    """At most ``count`` uses per ``period`` seconds (a sliding window)."""

    def __init__(self, limit: tuple[int, float] | None):
        self.count, self.period = limit if limit else (0, 0.0)
        self.times: collections.deque = collections.deque()

    async def wait(self) -> None:
        if not self.count:
            return
        while True:
            now = time.monotonic()
            while self.times and now - self.times[0] >= self.period:
                self.times.popleft()
            if len(self.times) < self.count:
                self.times.append(now)
                return
            await asyncio.sleep(self.period - (now - self.times[0]))


class _Slot:
    """One logical stream (``stream`` name) and the physical connections it makes, each
    numbered (``conn``) across the whole session as it opens."""

    def __init__(self, rec: "Recorder", name: str, stream: Stream):
        self.rec = rec
        self.name = name
        self.conn: int | None = None   # the open connection's number
        self.stream = stream
        self.connection = None
        self.last_rx = 0
        self.ready = False
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.pings = 0           # server pings not yet in a ``ping`` row
        self.ping_data = b""     # the latest of them
        self.ping_row_ns = None  # monotonic time of the last ``ping`` row

    # Handler interface (called by the connection for every message)
    def on_message(self, payload, text: bool, ts: int, mono: int) -> None:
        rec = self.rec
        if rec.done:
            return
        if rec.deadline is not None and rec.clock() >= rec.deadline:
            rec.finish("duration")  # one read can hold many messages: stop between them
            return
        try:
            channels, symbols, step = self.stream.receive(payload, text)
        except Exception:  # noqa: BLE001 - a malformed frame: store it unclassified
            channels, symbols, step = NONE, NONE, None
        try:
            rec.writer.append(payload, conn=self.conn, stream=self.name, dir="in",
                              kind="text" if text else "binary", channels=channels,
                              symbols=symbols, ts_ns=ts, mono_ns=mono)
        except WsrecError as exc:
            rec.fail(str(exc))
            return
        self.last_rx = mono
        rec.frames_in += 1
        rec.bytes_in += len(payload)
        if rec.frames_in == rec.options.max_frames:
            rec.finish("max-frames")
        elif step is not None:
            self.handle(step)

    def on_open(self, connection, ts: int, mono: int) -> None:
        self.connection = connection
        self.last_rx = mono
        self.conn = self.rec.next_conn
        self.rec.next_conn += 1
        self.rec.event("open", conn=self.conn, stream=self.name, ts_ns=ts, mono_ns=mono,
                       url=self.rec.redact(self.stream.url))

    def hang_up(self) -> None:
        """Start the closing handshake of the open connection (the recording stopped)."""
        connection = self.connection
        if connection is not None and connection.is_open:
            connection.close(1000, "recording stopped")

    def closed(self, code: int, reason: str) -> None:
        """Write the open connection's ``close`` event (once; no-op when none is open),
        after a last ``ping`` row counting the pings not yet written."""
        if self.conn is None:
            return
        if self.pings:
            self.rec.event("ping", conn=self.conn, stream=self.name, count=self.pings,
                           data=self.ping_data.hex())
        self.pings, self.ping_row_ns = 0, None
        conn, self.conn, self.connection = self.conn, None, None
        self.rec.event("close", conn=conn, stream=self.name, code=code, reason=reason)

    def on_ping(self, data: bytes, ts: int, mono: int) -> None:
        """A server ping (the protocol answers it): counted, and written as a ``ping``
        row at most every ``PING_ROW_INTERVAL`` seconds, so a flood costs no disk and
        never holds the stop up."""
        rec = self.rec
        if rec.done:
            return
        if rec.deadline is not None and rec.clock() >= rec.deadline:
            rec.finish("duration")
            return
        self.last_rx = mono
        self.pings += 1
        self.ping_data = data
        if self.ping_row_ns is None or mono - self.ping_row_ns >= PING_ROW_INTERVAL * 1e9:
            self.ping_row_ns = mono
            count, self.pings = self.pings, 0
            rec.event("ping", conn=self.conn, stream=self.name, ts_ns=ts, mono_ns=mono,
                      count=count, data=data.hex())

    def handle(self, step: Step) -> None:
        if step.send:
            self.send(step.send)
        if step.ready and not self.ready:
            self.ready = True
        if step.fatal:
            self.rec.fail(step.fatal)
        elif step.retry:
            self.rec.event("error", conn=self.conn, stream=self.name, error=step.retry)
            if self.connection is not None:
                self.connection.close(1000, "reconnecting")

    def send(self, messages) -> None:
        for m in messages:
            self.outbox.put_nowait(m)

    async def sender(self, connection) -> None:
        """Send queued messages under the venue's rate limit; record each one."""
        rec = self.rec
        while True:
            message = await self.outbox.get()
            await rec.send_limit.wait()
            if rec.done or not connection.is_open:
                continue
            connection.send(message, text=self.stream.text_out)   # the real bytes
            rec.frames_out += 1
            try:   # ... stored with every secret redacted
                rec.writer.append(rec.redact_bytes(message), conn=self.conn, stream=self.name,
                                  dir="out",
                                  kind="text" if self.stream.text_out else "binary")
            except WsrecError as exc:
                rec.fail(str(exc))

    async def keepalive(self, connection, interval: float) -> None:
        while connection.is_open:
            if await self.rec.sleep(max(interval, MIN_HEARTBEAT)):
                return   # stopped: no keepalive after the stop, and no wait for one
            if self.rec.done or not connection.is_open:
                return
            message = self.stream.heartbeat()
            if message is None:
                connection.ping()
            else:
                self.send([message])

    async def watchdog(self, connection, limit: float) -> None:
        limit_ns = int(limit * 1e9)
        while connection.is_open:
            await asyncio.sleep(min(limit / 4, 1.0))
            silent = _monotonic_ns() - self.last_rx
            if silent > limit_ns and connection.is_open:
                self.rec.event("watchdog", conn=self.conn, stream=self.name,
                               silent_s=round(silent / 1e9, 3))
                connection.abort()
                return

    async def _run(self) -> None:
        rec, opts = self.rec, self.rec.options
        failures = 0  # consecutive failed attempts
        while not rec.done:
            if failures:
                if opts.max_retries is not None and failures > opts.max_retries:
                    rec.fail(f"{rec.venue.name}: gave up after {opts.max_retries} "
                             f"retr{'y' if opts.max_retries == 1 else 'ies'}: {rec.last_error}")
                    return
                delay = random.uniform(0, min(opts.backoff_max,
                                              opts.backoff_initial * 2 ** (failures - 1)))
                rec.reconnects += 1
                rec.event("reconnect", conn=None, stream=self.name, attempt=failures,
                          delay_s=round(delay, 3))
                if await rec.sleep(delay):
                    return
            await rec.connect_limit.wait()
            if rec.done:
                return
            self.stream.reset()
            self.ready = False
            self.outbox = asyncio.Queue()
            try:
                connection = await connect(self.stream.url, self, headers=self.stream.headers,
                                           timeout=opts.open_timeout,
                                           max_size=opts.max_message_size,
                                           compression=opts.compression)
            except HandshakeRejected as exc:
                rec.last_error = rec.redact(str(exc))
                rec.event("error", conn=None, stream=self.name, error=rec.last_error,
                          status=exc.status)
                if exc.status in (401, 403):
                    rec.fail(f"{rec.venue.name}: {rec.last_error}: the server refused the "
                             f"credentials")
                    return
                if exc.status in (400, 404):
                    rec.fail(f"{rec.venue.name}: {rec.last_error}: the endpoint refused "
                             f"this request")
                    return
                failures += 1
                continue
            except ConnectError as exc:
                rec.last_error = rec.redact(str(exc))
                rec.event("error", conn=None, stream=self.name, error=rec.last_error)
                failures += 1
                continue
            opened = time.monotonic()
            code, reason = await self.attend(connection)
            if rec.done:
                return
            rec.last_error = rec.redact(f"connection closed (code {code}"
                                        f"{', ' + reason if reason else ''})")
            healthy = time.monotonic() - opened >= opts.backoff_reset
            failures = 1 if healthy else failures + 1

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            # cancelled, or failed in between: a connection that opened still gets its
            # close event (and its socket is cut)
            if self.conn is not None:
                if self.connection is not None:
                    self.connection.abort()
                self.closed(1006, "closed by wsrec: the recording ended"
                            if self.rec.done else "closed by wsrec")

    async def attend(self, connection) -> tuple[int, str]:
        """Serve an open connection until it closes or the recording stops (then close
        it, bounded by ``CLOSE_TIMEOUT``); write its close event; return (code, reason)."""
        rec = self.rec
        tasks = [asyncio.create_task(self.sender(connection))]
        if rec.heartbeat:
            tasks.append(asyncio.create_task(self.keepalive(connection, rec.heartbeat)))
        if rec.watchdog:
            tasks.append(asyncio.create_task(self.watchdog(connection, rec.watchdog)))
        done_wait = asyncio.create_task(rec.done_event.wait())
        tasks.append(done_wait)
        seen = None  # (code, reason) of the close, once known
        try:
            self.send(self.stream.opening())
            await asyncio.wait([connection.closed, done_wait],
                               return_when=asyncio.FIRST_COMPLETED)
            if not connection.closed.done():  # we are stopping: close politely, briefly
                self.hang_up()  # (done already by ``Recorder.finish`` when it was open)
                try:
                    await asyncio.wait_for(asyncio.shield(connection.closed), CLOSE_TIMEOUT)
                except TimeoutError:
                    connection.abort()
                    seen = 1006, (f"closed by wsrec after stop: no close frame from the "
                                  f"server within {CLOSE_TIMEOUT:g}s")
            if seen is None:
                seen = connection.closed.result()
        finally:
            for t in tasks:
                t.cancel()
            if seen is None:  # cancelled (or failed) before the close: cut it
                connection.abort()
                seen = 1006, ("closed by wsrec: the recording ended" if rec.done
                              else "closed by wsrec")
            self.closed(*seen)
        code, reason = seen
        return code, reason


class Recorder:
    """Record ``venue`` as ``request`` asks into a new session under ``data``."""

    def __init__(self, venue: Venue, request: Request, *, data=None,
                 options: RecordOptions | None = None, name: str | None = None,
                 args: dict | None = None, progress=None, clock=None, redact=()):
        self.venue = venue
        self.clock = clock or time.monotonic  # seconds; the duration is measured on it
        self.request = request
        self.options = options or RecordOptions()
        check_options(self.options)
        self.streams = venue.streams(request)
        # every secret this recording knows of: the venue's keys and tokens, and what
        # the URLs, headers, parameters (--send messages) and arguments hold by name;
        # ``redact``: more names to treat as secret (--redact NAME)
        self.redactor = Redactor((s for st in self.streams for s in st.secrets() if s),
                                 names=redact)
        for st in self.streams:
            self.redactor.learn(st.url)
            self.redactor.learn({f"header.{k}": v for k, v in (st.headers or {}).items()})
        self.redactor.learn(request.params)
        self.redactor.learn(args or {})
        for st in self.streams:   # an unusable URL: a usage error before anything exists
            problem = url_problem(st.url)
            if problem:
                raise UsageError(f"{venue.name}: invalid URL {self.redact(st.url)!r}: "
                                 f"{problem}")
        opts = self.options
        self.watchdog = venue.watchdog if opts.watchdog is None else (opts.watchdog or None)
        self.heartbeat = venue.heartbeat if opts.heartbeat is None else (opts.heartbeat or None)
        args = dict(args or {})
        if any(s.binary_in for s in self.streams):
            args["binary"] = "msgpack"  # how replay knows to decode binary frames
        self.writer = SessionWriter(name or venue.name, data, args=self._redact_args(args),
                                    flush_interval=opts.flush_interval,
                                    **opts.writer_settings)
        self.send_limit = _RateLimit(venue.send_limit)
        self.connect_limit = _RateLimit(venue.connect_limit)
        self.progress = progress
        self.done = False
        self.error: str | None = None
        self.stopped_by = ""
        self.last_error = ""
        self.frames_in = self.frames_out = self.events = self.bytes_in = self.reconnects = 0
        self.next_conn = 0   # the number the next connection to open gets
        self.done_event: asyncio.Event | None = None
        self.deadline: float | None = None   # on ``clock``: when ``duration`` is up
        self.slots: list[_Slot] = []
        self._timer: asyncio.TimerHandle | None = None

    # -- secrets -------------------------------------------------------------------------

    @property
    def secrets(self) -> list[str]:
        """The secret values known so far (longest first)."""
        return self.redactor.values

    def redact(self, text: str) -> str:
        """Text (a URL, an error) without secrets."""
        return self.redactor.text(text)

    def redact_bytes(self, data: bytes) -> bytes:
        """An outbound message as stored: secret JSON fields and known values redacted."""
        return self.redactor.message(data)

    def _redact_args(self, args):
        return self.redactor.obj(args)

    def _redact_info(self, value):
        if isinstance(value, str):
            return self.redactor.text(value)
        if isinstance(value, dict):
            return {k: self._redact_info(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._redact_info(v) for v in value]
        return value

    # -- events and ending ---------------------------------------------------------------

    def event(self, kind: str, **info) -> None:
        """Write an event row; its string fields are redacted."""
        fields = {k: (v if k in ("ts_ns", "mono_ns", "conn", "stream")
                      else self._redact_info(v)) for k, v in info.items()}
        try:
            self.writer.event(kind, **fields)
            self.events += 1
        except WsrecError as exc:
            self.fail(str(exc))

    def finish(self, why: str) -> None:
        """Stop recording, successfully."""
        if not self.done:
            self.done = True
            self.stopped_by = why
            for slot in self.slots:   # the close frames go out now, not a few turns later
                slot.hang_up()
            if self.done_event is not None:
                self.done_event.set()

    def fail(self, error: str) -> None:
        """Stop recording: the session ends ``failed`` with this one-line reason."""
        if not self.done:
            self.error = self.redact(" ".join(str(error).split()) or "failed")
            self.finish("error")

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless stopped first; True when stopped."""
        try:
            await asyncio.wait_for(self.done_event.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def stop(self) -> None:
        """Graceful stop (Ctrl-C, SIGTERM): finish the session as complete."""
        self.finish("signal")

    # -- running -------------------------------------------------------------------------

    async def run(self) -> RecordResult:
        """Record until stopped; the session is closed when this returns."""
        hup = ignore_sighup()   # until the session is closed, not only while running
        try:
            return await self._run()
        finally:
            restore_sighup(hup)

    async def _run(self) -> RecordResult:
        loop = asyncio.get_running_loop()
        self.done_event = asyncio.Event()
        if self.done:
            self.done_event.set()
        started = time.monotonic()
        handled = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, self.stop)
                    handled.append(sig)
                except (NotImplementedError, RuntimeError):
                    pass
        if self.options.duration:
            self.deadline = self.clock() + self.options.duration
            self._check_deadline()
        self.slots = [_Slot(self, name, s) for name, s in zip(stream_names(self.streams),
                                                               self.streams)]
        tasks = [asyncio.create_task(slot.run()) for slot in self.slots]
        ticker = asyncio.create_task(self._tick()) if self.progress else None
        waiter = asyncio.create_task(self.done_event.wait())
        try:
            await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            if not self.done and all(t.done() for t in tasks):
                self.fail(f"all connections ended: {self._last_cause(tasks)}")
            self.finish("error" if self.error else "stopped")
            # every stream closes within CLOSE_TIMEOUT; one stuck elsewhere (connecting,
            # rate-limited) is cancelled, and still writes its close event
            await asyncio.wait(tasks, timeout=STOP_GRACE)
        finally:
            waiter.cancel()
            for t in tasks:
                t.cancel()
            if ticker:
                ticker.cancel()
            if self._timer:
                self._timer.cancel()
            for sig in handled:
                loop.remove_signal_handler(sig)
            # let the cancelled streams run their ``finally`` (close events) before the
            # writer closes
            pending = [t for t in tasks if not t.done()]
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        status = "failed" if self.error else "complete"
        try:
            self.writer.close(status, self.error)
        except WsrecError as exc:
            status, self.error = "failed", self.error or self.redact(str(exc))
        if self.progress:
            self.progress(self, final=True)
        return RecordResult(self.writer.folder, self.writer.venue, self.writer.id, status,
                            self.error, self.frames_in, self.frames_out, self.events,
                            self.bytes_in, self.reconnects, time.monotonic() - started,
                            self.stopped_by)

    def _last_cause(self, tasks) -> str:
        """Why the last stream ended: what it raised, else the last connection error."""
        for t in reversed(tasks):
            if t.done() and not t.cancelled() and t.exception() is not None:
                exc = t.exception()
                return self.redact(f"{type(exc).__name__}: {exc}" if str(exc)
                                   else type(exc).__name__)
        return self.last_error or "no connection could be kept open"

    def _check_deadline(self) -> None:
        """Finish with ``duration`` once ``self.clock()`` reaches ``self.deadline``; until
        then re-check when it should be up (and at least every ``CLOCK_POLL`` seconds).
        A loop timer calling this directly: no task hop between it and the stop."""
        self._timer = None
        if self.done:
            return
        left = self.deadline - self.clock()
        if left <= 0:
            self.finish("duration")
        else:
            self._timer = asyncio.get_running_loop().call_later(min(left, CLOCK_POLL),
                                                                self._check_deadline)

    async def _tick(self) -> None:
        while True:
            self.progress(self, final=False)
            await asyncio.sleep(0.5)


def check_options(opts: RecordOptions) -> None:
    """UsageError for options no recording can honour (non-finite, negative, a keepalive
    more often than ``MIN_HEARTBEAT``); the CLI checks the same with its option types."""
    def finite(name, value, *, zero_ok=False, none_ok=True):
        if value is None and none_ok:
            return
        if not isinstance(value, (int, float)) or isinstance(value, bool) or \
                not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
            raise UsageError(f"{name} must be a finite number "
                             f"{'>= 0' if zero_ok else '> 0'}, not {value!r}")
    finite("duration", opts.duration)
    finite("backoff_initial", opts.backoff_initial, none_ok=False)
    finite("backoff_max", opts.backoff_max, none_ok=False)
    finite("backoff_reset", opts.backoff_reset, none_ok=False)
    finite("watchdog", opts.watchdog, zero_ok=True)
    finite("heartbeat", opts.heartbeat, zero_ok=True)
    finite("open_timeout", opts.open_timeout, none_ok=False)
    finite("flush_interval", opts.flush_interval, none_ok=False)
    if opts.heartbeat and opts.heartbeat < MIN_HEARTBEAT:
        raise UsageError(f"heartbeat must be 0 (off) or at least {MIN_HEARTBEAT:g} s, "
                         f"not {opts.heartbeat:g}")


_NO_HANDLER = object()


def _sighup(signum, frame) -> None:
    try:   # a write(2): safe whatever the main thread was doing (no buffered stream)
        os.write(2, (SIGHUP_MESSAGE + "\n").encode())
    except OSError:
        pass


def ignore_sighup():
    """Make SIGHUP print ``SIGHUP_MESSAGE`` instead of killing the process (a closed
    terminal or a reload must not leave a crashed session); returns what to give
    ``restore_sighup``. Main thread only; a no-op elsewhere or without SIGHUP."""
    sig = getattr(signal, "SIGHUP", None)
    if sig is None or threading.current_thread() is not threading.main_thread():
        return _NO_HANDLER
    try:
        return signal.signal(sig, _sighup)
    except (ValueError, OSError):
        return _NO_HANDLER


def restore_sighup(previous) -> None:
    if previous is _NO_HANDLER or previous is None:
        return
    try:
        signal.signal(signal.SIGHUP, previous)
    except (ValueError, OSError):
        pass


def stream_names(streams: list[Stream]) -> list[str]:
    """Each stream's name (``Stream.name``); repeated names get ``#N`` added."""
    names = [getattr(s, "name", None) or "main" for s in streams]
    if len(set(names)) == len(names):
        return names
    return [f"{n}#{i}" for i, n in enumerate(names)]


def record(venue: Venue, request: Request, *, sim=None, **kwargs) -> RecordResult:
    """Run a recording to its end in a fresh event loop (see ``Recorder``).

    ``sim``: ``SimOptions`` to record from the venue's built-in simulator, served on a
    free port of 127.0.0.1 from its own thread and event loop (a separate server, which
    never starves the recorder's loop); ``request.url`` and ``request.sim`` are set for
    it, and it is stopped when the recording ends.
    """
    async def main() -> RecordResult:
        return await Recorder(venue, request, **kwargs).run()

    hup = ignore_sighup()   # from before the session exists until it is closed
    try:
        if sim is None:
            return asyncio.run(main())
        from wsrec.sim import SimThread, get_simulator
        server = SimThread(get_simulator(venue.name, sim))
        request.url = server.start()
        request.sim = True
        try:
            return asyncio.run(main())
        finally:
            server.stop()
    finally:
        restore_sighup(hup)
