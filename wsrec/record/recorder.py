"""The recording engine: runs any venue's streams over the one connection loop.

For each ``Stream`` (one per connection the venue needs) a slot connects, runs the
opening exchange, and stores every message in both directions and every connection
event through one ``RollingWriter`` (a ``SessionWriter`` that rolls into a new session at
each ``rotate`` boundary: UTC midnight by default on the command line, decided by each
row's own time and by a timer for a quiet stream; the connections stay open across a
roll). It reconnects on any non-fatal loss with
exponential backoff and full jitter, resumes where the stream knows how, watches for
silence, sends keepalives, respects the venue's send and connect rate limits, and
stops cleanly on a signal, ``duration``, ``max_frames`` or a fatal error; with
``min_free``, also (``failed``, every part sealed) once the disk it writes to has less free
space, looked at every ``DISK_POLL`` seconds and after each sealed part.

The policy is plain code apart from the I/O: ``backoff_delay`` (how long before a retry)
and ``handshake_verdict`` (retry, or fail with which message) are pure functions, and
every clock, sleep and random draw the recorder uses (the duration, the rate limits, the
backoff, keepalives and the watchdog) is injectable, so tests drive them with a fake clock.

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
classify by scanning bytes (the stream), append to the writer's lists. Nothing else:
its counters and the last frame's time are attributes that ``Recorder.stats`` reads
(from a metrics scrape, ``wsrec.service.metrics``) when asked.
"""

from __future__ import annotations

import asyncio
import collections
import math
import os
import random
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from wsrec.record._connection import ConnectError, connect, url_problem
from wsrec.errors import DiskFull, StorageUnavailable, UsageError, WsrecError
from wsrec.retry import backoff_delay
from wsrec.secrets import Redactor
from wsrec.venues.base import NONE, Request, Step, Stream, Venue
from wsrec.store.disk import below, format_size
from wsrec.store.location import Root, RootPath, is_remote_url, open_root
from wsrec.store.roots import data_root, print_warning
from wsrec.store.rolling import Rotation, RollingWriter, parse_rotation
from wsrec.store.spool import Uploader, target_folder

__all__ = ["Recorder", "RecordOptions", "RecordResult", "StreamStats", "record",
           "check_options", "backoff_delay", "handshake_verdict", "ignore_sighup", "MIN_HEARTBEAT",
           "SIGHUP_MESSAGE"]

_time_ns = time.time_ns
_monotonic_ns = time.monotonic_ns

#: seconds a stopping connection waits for the server's close frame before the abort
CLOSE_TIMEOUT = 0.5
#: seconds ``Recorder.run`` gives its streams to close after the stop, then cancels them
STOP_GRACE = CLOSE_TIMEOUT + 1.0
#: the duration timer re-reads the clock at least this often (seconds)
CLOCK_POLL = 0.25
#: the rotation timer sleeps at least this long (seconds) between checks
ROLL_POLL_MIN = 0.005
#: the shortest keepalive interval (seconds); 0 turns keepalives off
MIN_HEARTBEAT = 0.1
#: at most one ``ping`` event row per connection this often (seconds); it counts the rest
PING_ROW_INTERVAL = 1.0
#: seconds between two looks at the free space of the disk recorded to (``min_free``)
DISK_POLL = 1.0
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
    rotate: str | int | None = None        # "1h", "1d", None/"never", or ns (tests); the
                                           # boundaries are UTC (``wsrec record``: 1d)
    # a remote data root (s3://, gs://): sessions are written to a local spool and
    # uploaded part by part (``wsrec.store._uploader``)
    spool: str | None = None               # None: $WSREC_SPOOL, else the user's cache dir
    spool_min_free: int | None = None      # bytes; None: 1 GiB or 5% of the disk if less
    upload_timeout: float = 60.0           # seconds the end waits for the uploads
    s3_endpoint: str | None = None
    # bytes the disk recorded to (the data root, or the spool) must keep free: below it the
    # recording stops, ``failed``, everything written sealed; None: no floor
    min_free: int | None = None


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
    sessions: list = field(default_factory=list)   # every session's folder, oldest first
    upload: str | None = None    # what was not uploaded to the bucket and how to finish


@dataclass(frozen=True)
class StreamStats:
    """A recording's live numbers at one instant (``Recorder.stats``), for the metrics
    endpoint (``wsrec.service.metrics``). Ages are taken on the recorder's own clocks
    (``wall_ns`` for the last frame, ``mono_ns`` for the rest), so they are as testable
    as the recorder is."""

    stream: str               # the recording's label (``Recorder(label=)``): a config
                              # file's stream name, else the session's venue folder
    venue: str                # the venue's protocol name
    frames_in: int
    frames_out: int
    bytes_in: int
    bytes_out: int            # bytes sent, as sent (before redaction)
    events: int
    reconnects: int
    gaps: int                 # connections lost while recording: each is a gap in the data
    connections: int          # open now
    slots: int                # the connections the recording keeps (one per venue stream)
    down_s: float | None      # seconds since some connection it keeps was last open
                              # (or since the start); None while all of them are open
    watchdog: float | None    # the silence that cuts a connection (None: off)
    last_frame_age_s: float | None    # None before the first inbound frame
    writer_lag_s: float       # age of the oldest row not yet fsync'd in the journal
    folder: Path              # the local folder sessions go to (the spool for a bucket)
    bucket: bool              # recording to a bucket through ``folder``
    upload_backlog_bytes: int | None  # parts' bytes waiting for upload (bucket only)
    relay_clients: int | None # clients of a live relay of it (None: no relay)
    done: bool


class _RateLimit:
    """At most ``count`` uses per ``period`` seconds (a sliding window), on ``clock``
    (monotonic seconds); ``sleep`` is the coroutine that waits (both injectable)."""

    def __init__(self, limit: tuple[int, float] | None, *, clock=time.monotonic,
                 sleep=asyncio.sleep):
        self.count, self.period = limit if limit else (0, 0.0)
        self.times: collections.deque = collections.deque()
        self.clock = clock
        self.sleep = sleep

    def take(self, now: float) -> float:
        """Use the limit at ``now`` if the window has room (then 0.0), else how many
        seconds to wait before asking again."""
        if not self.count:
            return 0.0
        while self.times and now - self.times[0] >= self.period:
            self.times.popleft()
        if len(self.times) < self.count:
            self.times.append(now)
            return 0.0
        return self.period - (now - self.times[0])

    async def wait(self) -> None:
        while (delay := self.take(self.clock())) > 0:
            await self.sleep(delay)


def handshake_verdict(venue: str, error: str, status: int | None = None) -> str | None:
    """What a connection that failed to open means: None to retry it, else the error the
    recording fails with. ``error`` is the (redacted) cause; ``status`` the HTTP status
    the server answered the upgrade with (None: no answer: refused, DNS, TLS, timeout)."""
    if status in (401, 403):
        return f"{venue}: {error}: the server refused the credentials"
    if status in (400, 404):
        return f"{venue}: {error}: the endpoint refused this request"
    return None


class _Slot:
    """One logical stream (``stream`` name) and the physical connections it makes, each
    numbered (``conn``) across the whole session as it opens.

    It talks to its ``Recorder`` only through ``done`` and these of its methods:
    ``stopping``, ``store_in``, ``store_out``, ``opened``, ``event``, ``fail``,
    ``failed_attempt``, ``give_up``, ``reconnecting``, ``sleep``, ``pause``, ``wait_done``,
    ``send_turn``, ``connect_turn`` and ``now_ns``; the recorder calls only its ``run``
    and ``hang_up``."""

    def __init__(self, rec: "Recorder", name: str, stream: Stream, options: RecordOptions,
                 *, heartbeat: float | None = None, watchdog: float | None = None, rng=None):
        self.rec = rec
        self.name = name
        self.conn: int | None = None   # the open connection's number
        self.stream = stream
        self.options = options
        self.heartbeat = heartbeat     # seconds between keepalives; None: none
        self.watchdog_limit = watchdog  # seconds of silence that cut the connection
        self.rng = rng or random.Random()   # the backoff's jitter
        self.connection = None
        self.last_rx = 0
        self.ready = False
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.pings = 0           # server pings not yet in a ``ping`` row
        self.ping_data = b""     # the latest of them
        self.ping_row_ns = None  # monotonic time of the last ``ping`` row
        self.down_since: int | None = rec.created_ns   # no open connection since (None: open)

    # Handler interface (called by the connection for every message)
    def on_message(self, payload, text: bool, ts: int, mono: int) -> None:
        rec = self.rec
        if rec.stopping():   # one read can hold many messages: stop between them
            return
        try:
            channels, symbols, step = self.stream.receive(payload, text)
        except Exception:  # noqa: BLE001 - a malformed frame: store it unclassified
            channels, symbols, step = NONE, NONE, None
        self.last_rx = mono
        if rec.store_in(payload, self.conn, self.name, text, channels, symbols, ts, mono) \
                and step is not None:
            self.handle(step)

    def on_open(self, connection, ts: int, mono: int) -> None:
        self.connection = connection
        self.last_rx = mono
        self.down_since = None
        self.conn = self.rec.opened(self.name, self.stream.url, ts, mono)

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
        self.down_since = self.rec.now_ns()
        if not self.rec.done:
            self.rec.gaps += 1   # lost while recording: a hole until the next open
        conn, self.conn, self.connection = self.conn, None, None
        self.rec.event("close", conn=conn, stream=self.name, code=code, reason=reason)

    def on_ping(self, data: bytes, ts: int, mono: int) -> None:
        """A server ping (the protocol answers it): counted, and written as a ``ping``
        row at most every ``PING_ROW_INTERVAL`` seconds, so a flood costs no disk and
        never holds the stop up."""
        if self.rec.stopping():
            return
        self.last_rx = mono
        self.pings += 1
        self.ping_data = data
        if self.ping_row_ns is None or mono - self.ping_row_ns >= PING_ROW_INTERVAL * 1e9:
            self.ping_row_ns = mono
            count, self.pings = self.pings, 0
            self.rec.event("ping", conn=self.conn, stream=self.name, ts_ns=ts, mono_ns=mono,
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
            await rec.send_turn()
            if rec.done or not connection.is_open:
                continue
            connection.send(message, text=self.stream.text_out)   # the real bytes
            rec.store_out(message, self.conn, self.name, self.stream.text_out)

    async def keepalive(self, connection, interval: float) -> None:
        """Every ``interval`` seconds (at least ``MIN_HEARTBEAT``) the stream's heartbeat
        message, or a WebSocket ping when it has none; never after the stop."""
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
        """Abort the connection once nothing came for more than ``limit`` seconds
        (looked at every ``limit / 4`` seconds, at most 1 s)."""
        limit_ns = int(limit * 1e9)
        while connection.is_open:
            await self.rec.pause(min(limit / 4, 1.0))
            silent = self.rec.now_ns() - self.last_rx
            if silent > limit_ns and connection.is_open:
                self.rec.event("watchdog", conn=self.conn, stream=self.name,
                               silent_s=round(silent / 1e9, 3))
                connection.abort()
                return

    async def _run(self) -> None:
        """Connect, serve, and reconnect with backoff until the recording stops."""
        rec, failures = self.rec, 0   # consecutive failed attempts
        while not rec.done:
            if failures and await self._back_off(failures):
                return
            await rec.connect_turn()
            if rec.done:
                return
            connection = await self._connect()
            if connection is None:
                failures += 1
                continue
            opened = rec.now_ns()
            code, reason = await self.attend(connection)
            if rec.done:
                return
            rec.failed_attempt(f"connection closed (code {code}"
                               f"{', ' + reason if reason else ''})")
            healthy = rec.now_ns() - opened >= self.options.backoff_reset * 1e9
            failures = 1 if healthy else failures + 1

    async def _back_off(self, failures: int) -> bool:
        """Wait before retry number ``failures``; True when the recording stopped (or
        ``max_retries`` is used up: the recording fails)."""
        opts = self.options
        if opts.max_retries is not None and failures > opts.max_retries:
            self.rec.give_up(opts.max_retries)
            return True
        delay = backoff_delay(failures, opts.backoff_initial, opts.backoff_max, self.rng)
        self.rec.reconnecting(self.name, failures, delay)
        return await self.rec.sleep(delay)

    async def _connect(self):
        """A new connection, or None when it could not be opened (the recording fails
        when ``handshake_verdict`` says so)."""
        self.stream.reset()
        self.ready = False
        self.outbox = asyncio.Queue()
        opts = self.options
        try:
            return await connect(self.stream.url, self, headers=self.stream.headers,
                                 timeout=opts.open_timeout, max_size=opts.max_message_size,
                                 compression=opts.compression)
        except ConnectError as exc:   # HandshakeRejected too
            self.rec.failed_attempt(str(exc), stream=self.name,
                                    status=getattr(exc, "status", None))
            return None

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
        tasks = [asyncio.create_task(self.sender(connection))]
        if self.heartbeat:
            tasks.append(asyncio.create_task(self.keepalive(connection, self.heartbeat)))
        if self.watchdog_limit:
            tasks.append(asyncio.create_task(self.watchdog(connection, self.watchdog_limit)))
        done_wait = asyncio.create_task(self.rec.wait_done())
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
                seen = 1006, ("closed by wsrec: the recording ended" if self.rec.done
                              else "closed by wsrec")
            self.closed(*seen)
        code, reason = seen
        return code, reason


class Recorder:
    """Record ``venue`` as ``request`` asks into a new session under ``data``."""

    def __init__(self, venue: Venue, request: Request, *, data=None,
                 options: RecordOptions | None = None, name: str | None = None,
                 args: dict | None = None, progress=None, clock=None, redact=(),
                 mono_ns=None, sleep=None, rng=None, wall_ns=None, upload=None,
                 signals: bool = True, disk_usage=None, taps=(), relay_clients=None,
                 label: str | None = None):
        self.venue = venue
        # ``signals``: SIGINT/SIGTERM stop this recording and SIGHUP is ignored while it
        # runs; False when the caller owns the signals (``wsrec.service``: many recorders)
        self.signals = signals
        # called as ``tap(payload, text, channels, symbols, ts_ns)`` for every inbound
        # frame once stored (a live relay's ``publish``); one that raises is ignored
        self.taps = tuple(taps)
        # the timing, injectable (tests drive it with a fake clock): ``clock`` (seconds)
        # measures the duration and paces the rate limits; ``mono_ns`` is the clock the
        # connection stamps messages with (the watchdog's silence, a healthy connection,
        # the ping rows); ``sleep`` the coroutine that waits (backoff, keepalives, the
        # watchdog, the rate limits); ``rng`` the backoff's jitter (``random.Random``);
        # ``wall_ns`` the wall clock (ns) the rotation timer rolls a quiet session on
        self.clock = clock or time.monotonic
        self.wall_ns = wall_ns or _time_ns
        self.now_ns = mono_ns or _monotonic_ns
        self._sleep = sleep or asyncio.sleep
        self.rng = rng or random.Random()
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
        # a bucket: the sessions go to the spool, the uploader takes each sealed part;
        # ``upload``: more ``Uploader`` arguments (tests: backoff, disk_usage)
        self.root, self.uploader, hooks = None, None, {}
        if is_remote_url(data) or isinstance(data, Root) and not data.local:
            self.root = open_root(data, endpoint=opts.s3_endpoint)
            try:
                self.root.check()
            except StorageUnavailable as exc:
                print_warning(f"{exc}; recording into the spool until it is back")
            spool = target_folder(self.root, opts.spool)
            self.uploader = Uploader(self.root, spool, min_free=opts.spool_min_free,
                                     warn=print_warning, **(upload or {}))
            self.uploader.check_space()
            data = spool
            hooks = dict(on_sealed=self.uploader.sealed, on_closed=self.uploader.closed)
        # ``min_free``: a floor of free space where the sessions go; ``disk_usage`` asks it
        # (``shutil.disk_usage``; tests: a fake disk)
        hooks = self._disk_floor(data, disk_usage, hooks)
        self.writer = RollingWriter(name or venue.name, data, args=self._redact_args(args),
                                    rotation=Rotation(opts.rotate), now_ns=self.wall_ns,
                                    flush_interval=opts.flush_interval,
                                    **opts.writer_settings, **hooks)
        self.send_limit = _RateLimit(venue.send_limit, clock=self.clock, sleep=self._sleep)
        self.connect_limit = _RateLimit(venue.connect_limit, clock=self.clock,
                                        sleep=self._sleep)
        self.progress = progress
        self.done = False
        self.error: str | None = None
        self.stopped_by = ""
        self.last_error = ""
        self.frames_in = self.frames_out = self.events = self.bytes_in = self.reconnects = 0
        self.bytes_out = self.gaps = 0
        self.last_frame_ns: int | None = None   # ``ts`` (wall clock) of the last inbound frame
        self.created_ns = self.now_ns()         # down since then until a connection opens
        self.data_folder = data_root(data)      # where sessions are written (or spooled)
        # the live relay's client count, when something relays this recording (``stats``)
        self.relay_clients: Callable[[], int] | None = relay_clients
        # what the metrics call it (``StreamStats.stream``): a config file's stream name
        # (two streams may share a folder), else the session's venue folder
        self.label = label or self.writer.venue
        # set once the writer is handed to the closing thread: no row is written after
        self._sealing = False
        self.next_conn = 0   # the number the next connection to open gets
        self.done_event = asyncio.Event()
        self.deadline: float | None = None   # on ``clock``: when ``duration`` is up
        self.slots: list[_Slot] = []
        self._timer: asyncio.TimerHandle | None = None
        self._roll_timer: asyncio.TimerHandle | None = None
        self._disk_timer: asyncio.TimerHandle | None = None

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
        if self._sealing:   # a straggler after the stop: the writer is being closed
            return
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
        if self.done:
            return True
        nap = asyncio.ensure_future(self._sleep(seconds))
        stop = asyncio.ensure_future(self.done_event.wait())
        try:
            await asyncio.wait([nap, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            nap.cancel()
            stop.cancel()
        return self.done

    async def pause(self, seconds: float) -> None:
        """Sleep (on the injected ``sleep``), stopped or not."""
        await self._sleep(seconds)

    async def wait_done(self) -> None:
        """Return once the recording is done."""
        await self.done_event.wait()

    # -- what the streams call -----------------------------------------------------------

    def stopping(self) -> bool:
        """True once the recording is over; finishes it first when ``clock`` has passed
        the deadline (checked for every message)."""
        if self.done:
            return True
        if self.deadline is not None and self.clock() >= self.deadline:
            self.finish("duration")
            return True
        return False

    def store_in(self, payload, conn, stream: str, text: bool, channels, symbols,
                 ts: int, mono: int) -> bool:
        """Store an inbound message; False when that ended the recording (``max_frames``
        reached, or the writer failed)."""
        if self._sealing:
            return False
        try:
            self.writer.append(payload, conn=conn, stream=stream, dir="in",
                               kind="text" if text else "binary", channels=channels,
                               symbols=symbols, ts_ns=ts, mono_ns=mono)
        except WsrecError as exc:
            self.fail(str(exc))
            return False
        for tap in self.taps:
            try:
                tap(payload, text, channels, symbols, ts)
            except Exception:  # noqa: BLE001 - a tap never stops the recording
                pass
        self.frames_in += 1
        self.bytes_in += len(payload)
        self.last_frame_ns = ts
        if self.frames_in == self.options.max_frames:
            self.finish("max-frames")
            return False
        return True

    def store_out(self, message: bytes, conn, stream: str, text: bool) -> None:
        """Count a message just sent, and store it with every secret redacted."""
        if self._sealing:
            return
        self.frames_out += 1
        self.bytes_out += len(message)
        try:
            self.writer.append(self.redact_bytes(message), conn=conn, stream=stream,
                               dir="out", kind="text" if text else "binary")
        except WsrecError as exc:
            self.fail(str(exc))

    def opened(self, stream: str, url: str, ts: int, mono: int) -> int:
        """Number a connection that just opened and write its ``open`` event."""
        conn, self.next_conn = self.next_conn, self.next_conn + 1
        self.event("open", conn=conn, stream=stream, ts_ns=ts, mono_ns=mono,
                   url=self.redact(url))
        return conn

    def failed_attempt(self, error: str, *, stream: str | None = None,
                       status: int | None = None) -> None:
        """A connection could not be opened (``stream`` given: an ``error`` event is
        written) or was lost; fail the recording when ``handshake_verdict`` says so."""
        self.last_error = self.redact(error)
        if stream is not None:
            extra = {} if status is None else {"status": status}
            self.event("error", conn=None, stream=stream, error=self.last_error, **extra)
        fatal = handshake_verdict(self.venue.name, self.last_error, status)
        if fatal:
            self.fail(fatal)

    def give_up(self, retries: int) -> None:
        """``max_retries`` consecutive attempts failed: the recording fails."""
        self.fail(f"{self.venue.name}: gave up after {retries} "
                  f"retr{'y' if retries == 1 else 'ies'}: {self.last_error}")

    def reconnecting(self, stream: str, attempt: int, delay: float) -> None:
        self.reconnects += 1
        self.event("reconnect", conn=None, stream=stream, attempt=attempt,
                   delay_s=round(delay, 3))

    async def send_turn(self) -> None:
        """Wait for the venue's send rate limit."""
        await self.send_limit.wait()

    async def connect_turn(self) -> None:
        """Wait for the venue's connect rate limit."""
        await self.connect_limit.wait()

    def stop(self) -> None:
        """Graceful stop (Ctrl-C, SIGTERM): finish the session as complete."""
        self.finish("signal")

    # -- metrics -------------------------------------------------------------------------

    def stats(self) -> StreamStats:
        """The live numbers now (``StreamStats``), read from any thread: nothing is
        counted for it on the receive path beyond attribute stores."""
        now = self.now_ns()
        slots = list(self.slots)
        downs = [s.down_since for s in slots if s.down_since is not None] if slots \
            else [self.created_ns]
        pending = self.writer.pending_since_ns
        last = self.last_frame_ns
        relay = self.relay_clients
        uploader = self.uploader
        return StreamStats(
            stream=self.label, venue=self.venue.name, frames_in=self.frames_in,
            frames_out=self.frames_out, bytes_in=self.bytes_in, bytes_out=self.bytes_out,
            events=self.events, reconnects=self.reconnects, gaps=self.gaps,
            connections=sum(s.conn is not None for s in slots),
            slots=len(slots) or len(self.streams),
            down_s=max(now - min(downs), 0) / 1e9 if downs else None,
            watchdog=self.watchdog,
            last_frame_age_s=None if last is None else max(self.wall_ns() - last, 0) / 1e9,
            writer_lag_s=0.0 if pending is None else max(now - pending, 0) / 1e9,
            folder=self.data_folder,
            bucket=uploader is not None,
            upload_backlog_bytes=None if uploader is None else uploader.backlog()[1],
            relay_clients=None if relay is None else relay(), done=self.done)

    # -- running -------------------------------------------------------------------------

    async def run(self) -> RecordResult:
        """Record until stopped; the session is closed when this returns (and, to a
        bucket, uploaded, or ``RecordResult.upload`` says what is left)."""
        if self.uploader is not None and not self.uploader.thread.is_alive():
            self.uploader.start()
        # until the session is closed, not only while running
        hup = ignore_sighup() if self.signals else _NO_HANDLER
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
        if self.signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, self.stop)
                    handled.append(sig)
                except (NotImplementedError, RuntimeError):
                    pass
        if self.options.duration:
            self.deadline = self.clock() + self.options.duration
            self._check_deadline()
        self.slots = [_Slot(self, name, s, self.options, heartbeat=self.heartbeat,
                            watchdog=self.watchdog, rng=self.rng)
                      for name, s in zip(stream_names(self.streams), self.streams)]
        tasks = [asyncio.create_task(slot.run()) for slot in self.slots]
        ticker = asyncio.create_task(self._tick()) if self.progress else None
        self._roll_check()
        self._disk_tick()
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
            if self._roll_timer:
                self._roll_timer.cancel()
            if self._disk_timer:
                self._disk_timer.cancel()
            for sig in handled:
                loop.remove_signal_handler(sig)
            # let the cancelled streams run their ``finally`` (close events) before the
            # writer closes
            pending = [t for t in tasks if not t.done()]
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if self.uploader is not None and self.uploader.failure is not None and not self.error:
            self.error = self.redact(f"uploads stopped: {self.uploader.failure}")
        status = "failed" if self.error else "complete"
        # sealing the last part (encode, fsync) and waiting for the uploads block: in a
        # thread, so the other recordings of the loop (``record --config``) go on meanwhile.
        # Nothing else writes after this point (``_sealing``; the streams and timers are
        # over, a disk check only calls ``fail``, which is a no-op once done)
        self._sealing = True
        status, upload = await asyncio.to_thread(self._close, status)
        if self.progress:
            self.progress(self, final=True)
        return RecordResult(self._where(self.writer.folder), self.writer.venue,
                            self.writer.id, status, self.error, self.frames_in,
                            self.frames_out, self.events, self.bytes_in, self.reconnects,
                            time.monotonic() - started, self.stopped_by,
                            [self._where(w.folder) for w in self.writer.sessions], upload)

    def _close(self, status: str) -> tuple[str, str | None]:
        """Close the writer, then wait for the uploads (blocking: ``run`` calls it in a
        thread); returns the final status and what was not uploaded."""
        try:
            self.writer.close(status, self.error)
        except WsrecError as exc:
            status, self.error = "failed", self.error or self.redact(str(exc))
        upload = None
        if self.uploader is not None:
            upload = self.uploader.close(self.options.upload_timeout)
        return status, upload

    def _where(self, folder: Path):
        """A session's folder: in the bucket (``RootPath``) when recording to one."""
        if self.uploader is None:
            return folder
        return RootPath(self.root, folder.relative_to(self.uploader.spool).as_posix())

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

    def _roll_check(self) -> None:
        """Roll the session at the rotation boundary even when no row comes (a loop
        timer, on ``wall_ns``); rows at or past it roll it by themselves."""
        self._roll_timer = None
        if self.done or self.writer.next_roll is None:
            return
        try:
            self.writer.roll_if_due(self.wall_ns(), self.now_ns())
        except WsrecError as exc:
            self.fail(str(exc))
            return
        left = (self.writer.next_roll - self.wall_ns()) / 1e9
        self._roll_timer = asyncio.get_running_loop().call_later(
            min(max(left, ROLL_POLL_MIN), CLOCK_POLL), self._roll_check)

    # -- the free-space floor (``min_free``) --------------------------------------------

    def _disk_floor(self, data, disk_usage, hooks: dict) -> dict:
        """Set up the ``min_free`` checks of the disk the sessions go to (``data``: the
        local root or the spool): DiskFull, before any session exists, when it is below
        already; returns the writer's ``hooks`` with a check after each sealed part."""
        self._disk_usage = disk_usage or shutil.disk_usage
        self._disk_loop: asyncio.AbstractEventLoop | None = None
        need = self.options.min_free
        if not need:
            return hooks
        self._disk_path = data_root(data)
        low = below(self._disk_path, need, disk_usage=self._disk_usage)
        if low is not None:
            raise DiskFull(f"cannot start: {self._low_disk(low)}")
        sealed = hooks.get("on_sealed")

        def on_sealed(folder, entry):   # the flush thread: the check runs on the loop
            loop = self._disk_loop
            if loop is not None:
                try:
                    loop.call_soon_threadsafe(self._check_disk)
                except RuntimeError:   # the loop is closed: the recording is over
                    pass
            if sealed is not None:
                sealed(folder, entry)
        return {**hooks, "on_sealed": on_sealed}

    def _low_disk(self, low) -> str:
        return (f"{format_size(low.free)} free on {self._disk_path}, below --min-free "
                f"{format_size(low.need)}; free space or lower --min-free")

    def _check_disk(self) -> None:
        """Stop the recording, ``failed``, once the disk has less than ``min_free``."""
        if self.done or not self.options.min_free:
            return
        low = below(self._disk_path, self.options.min_free, disk_usage=self._disk_usage)
        if low is not None:
            self.fail(f"stopped: {self._low_disk(low)}")

    def _disk_tick(self) -> None:
        """``_check_disk`` now and every ``DISK_POLL`` seconds (a loop timer)."""
        self._disk_timer = None
        if not self.options.min_free:
            return
        self._disk_loop = asyncio.get_running_loop()
        self._check_disk()
        if not self.done:
            self._disk_timer = self._disk_loop.call_later(DISK_POLL, self._disk_tick)

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
    if opts.min_free is not None and (type(opts.min_free) is not int or opts.min_free < 0):
        raise UsageError(f"min_free must be a number of bytes >= 0, not {opts.min_free!r}",
                         param="min_free")
    parse_rotation(opts.rotate)
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


def record(venue: Venue, request: Request, *, sim=None, on_start=None,
           **kwargs) -> RecordResult:
    """Run a recording to its end in a fresh event loop (see ``Recorder``).

    ``on_start(recorder)`` is called with the ``Recorder`` once it exists, before it
    connects (a metrics endpoint reads ``Recorder.stats`` from then on).

    ``sim``: ``SimOptions`` to record from the venue's built-in simulator, served on a
    free port of 127.0.0.1 from its own thread and event loop (a separate server, which
    never starves the recorder's loop); ``request.url`` is set to it and ``request.env``
    holds the credentials it accepts. It is stopped when the recording ends.
    """
    async def main() -> RecordResult:
        recorder = Recorder(venue, request, **kwargs)
        if on_start is not None:
            on_start(recorder)
        return await recorder.run()

    hup = ignore_sighup()   # from before the session exists until it is closed
    try:
        if sim is None:
            return asyncio.run(main())
        from wsrec.sim import SimThread, get_simulator
        server = SimThread(get_simulator(venue.name, sim))
        request.url = server.start()
        request.env = {**request.env, **server.simulator.credentials()}
        try:
            return asyncio.run(main())
        finally:
            server.stop()
    finally:
        restore_sighup(hup)
