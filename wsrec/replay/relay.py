"""The live relay: what a recording receives, served to many local clients as it arrives.

``wsrec record VENUE ... --serve ws://127.0.0.1:8765`` puts the frames of the one
upstream connection behind the replay's servers (``wsrec.replay.serve``): a WebSocket
server that speaks the venue's protocol (handshake, auth, subscription acks, pongs, only
what each client subscribed to, through the venue's ``Server``), or TCP and Unix sockets
that carry every inbound frame as a raw line. ``offered`` is the upstream request: a
client asking for a channel, symbol or argument it doesn't carry gets the venue's own
refusal. A client gets what arrives after it subscribed, nothing from before.

The recorder calls ``publish`` for each inbound frame once it is stored, on its event
loop's thread: one ``deque.append``, and a byte written to a pipe when the pump sleeps.
Everything else happens in the pump, one thread for every client of the relay:

* it takes what was published, and renders each frame once per group of clients that
  render alike (equal ``Server.signature()``: for clients subscribed to the same
  things, one render and one WebSocket framing for all of them), under each client's
  emulator lock, taken without waiting (a client answering a message of its own is
  served on the next round);
* it writes each client's bytes without blocking (``MSG_DONTWAIT``) under the
  connection's own lock (websockets writes its acks, pongs and close frames under the
  same lock), keeping what didn't fit for when the socket is writable again (``poll``);
  the lock stays held while a frame is half written, so nothing else cuts into it;
* a client whose oldest unwritten frame is more than ``max_lag`` seconds old, or that
  has more than ``max_buffer`` bytes waiting, is dropped: closed with 1008 (cut, when a
  frame was half written), with a line on stderr. Memory stays bounded, other clients
  and the recording never wait for it.

Frames go out uncompressed (no permessage-deflate on the relay's WebSocket server): the
framed bytes are shared by every client of a group.

The upstream connection reconnecting changes nothing for the clients: they stay
connected, and see a pause in the data (and, on lines and ``--no-emulate``, the venue's
own welcome and acks of the new connection, which the emulation keeps to itself).
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

from websockets.protocol import State

from wsrec.errors import UsageError
from wsrec.replay.serve import (Clients, ServeOptions, SlowClient, listen_lines, listen_ws,
                                log_line, parse_target)
from wsrec.replay.stdout import Stopped
from wsrec.store.lines import raw_line
from wsrec.venues.base import Request, Server

__all__ = ["Relay", "RelayOptions", "serving"]

#: frames published and not yet taken by the pump, past which the relay stops taking
#: more and drops its clients (it fell behind the recording: they would miss frames)
MAX_INBOX = 1 << 18
#: seconds between the pump's lag checks when nothing happens
POLL = 0.05
#: the websockets lock a client's reader holds for a moment: try again this soon (s)
RETRY = 0.001
#: after a round of N >= GATHER_FROM frames the pump gathers for N times
#: GATHER_PER_FRAME seconds (at most GATHER_MAX) before the next
GATHER_FROM = 32
GATHER_PER_FRAME = 20e-6
GATHER_MAX = 0.002
#: seconds a leaving client's handler waits for the pump to let go of it
LET_GO = 5.0


@dataclass
class RelayOptions:
    max_lag: float = 5.0                 # seconds behind before a client is dropped
    max_buffer: int = 64 << 20           # bytes waiting for one client before it is dropped
    emulate: bool = True                 # WebSocket: the venue's protocol (else every frame)
    max_message_size: int | None = 1 << 20   # a client message over this: closed 1009
    quiet: bool = False                  # no lines about clients on stderr
    msgpack: bool = False                # lines: binary frames are msgpack (as JSON text)
    #: called in the pump as ``on_sent(stamps)`` each time a client has been handed a
    #: block of frames whole (``stamps``: their ``ts_ns``, the upstream receive times):
    #: for measuring what the relay adds; it must be quick and must not raise
    on_sent: Callable[[tuple], None] | None = None


def _ws_header(size: int, text: bool) -> bytes:
    """An unmasked server frame's header (FIN set)."""
    op = 0x81 if text else 0x82
    if size < 126:
        return bytes((op, size))
    if size < 1 << 16:
        return struct.pack("!BBH", op, 126, size)
    return struct.pack("!BBQ", op, 127, size)


class _Headers(dict):
    """Frame headers by payload size, made once each (a dict lookup per frame)."""

    def __init__(self, text: bool):
        super().__init__()
        self.text = text

    def __missing__(self, size: int) -> bytes:
        header = _ws_header(size, self.text)
        if len(self) < 1 << 16:
            self[size] = header
        return header


def _still_there(sock: socket.socket) -> bool:
    """False once a line client has closed its end (it never sends anything else)."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except (BlockingIOError, InterruptedError):
        return True
    except OSError:
        return False


class _Sink:
    """One client as the pump sees it: its socket, the websockets lock it writes under
    (None for lines), its emulator (None: every frame as is), and what waits for it."""

    def __init__(self, sock, name: str, *, lock=None, emu=None, lines: bool = False):
        self.sock, self.name, self.lock, self.emu, self.lines = sock, name, lock, emu, lines
        self.fd = sock.fileno()
        self.backlog: list = []            # batches not yet rendered for it
        self.queue: collections.deque = collections.deque()   # (taken_ns, bytes, stamps)
        self.offset = 0                    # bytes of queue[0] written
        self.queued = 0                    # bytes waiting
        self.held = False                  # the lock is held: a frame is half written
        self.waiting = False               # registered with poll for POLLOUT
        self.detached = False              # its handler is leaving
        self.gone = threading.Event()      # the pump is done with it
        self.why: str | None = None        # why the pump dropped it
        self.cut = False                   # dropped with a frame half written

    def key(self):
        """(what its render depends on) for grouping, or None when its emulator is busy."""
        if self.lines:
            return ("lines",)
        emu = self.emu
        if emu is None:
            return ("raw",)
        if not emu.lock.acquire(blocking=False):
            return None
        try:
            if emu.closed:
                return ("closed",)
            sig = emu.server.signature()
            return (type(emu.server), sig) if sig is not None else ("own", id(self))
        finally:
            emu.lock.release()


class Relay:
    """Serve what a recording receives, live, at ``target`` (``ws://HOST:PORT``,
    ``tcp://HOST:PORT``, ``unix:PATH``) as ``venue`` would; ``carried``: the request
    the upstream connection was made with (what clients may subscribe to)."""

    def __init__(self, target: str, venue: str, carried: Request | None,
                 options: RelayOptions | None = None):
        self.options = options or RelayOptions()
        opts = self.options
        lag = opts.max_lag
        if isinstance(lag, bool) or not isinstance(lag, (int, float)) or \
                not math.isfinite(lag) or lag <= 0:
            raise UsageError(f"max_lag must be a finite number of seconds above 0, not {lag!r}",
                             param="serve_max_lag")
        if isinstance(opts.max_buffer, bool) or not isinstance(opts.max_buffer, int) or \
                opts.max_buffer < 1:
            raise UsageError(f"max_buffer must be a number of bytes above 0, not "
                             f"{opts.max_buffer!r}")
        self.target = target
        try:
            self.kind, self.host, self.port = parse_target(target)
        except UsageError as exc:
            raise UsageError(str(exc), param="serve") from None
        self.venue = venue
        self.offered = carried if opts.emulate else None
        # what the servers of wsrec.replay.serve read of their host
        self.serve = ServeOptions(emulate=opts.emulate, max_lag=lag, quiet=opts.quiet,
                                  max_message_size=opts.max_message_size)
        self.done = threading.Event()
        self.url: str | None = None
        self._connections = Clients()
        self._inbox: collections.deque = collections.deque()
        self._overflow = False
        self._sleeping = False
        self._closed = False
        self._lock = threading.Lock()
        self._sinks: list[_Sink] = []
        self._dropped = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._pump: threading.Thread | None = None
        self._shutdown = None
        self._headers = (_Headers(True), _Headers(False))

    # -- the recorder's side -----------------------------------------------------------

    def publish(self, payload: bytes, text: bool, channels, symbols, ts_ns: int) -> None:
        """A frame the recording just stored (its event loop's thread): queued for the
        pump. Never blocks, never raises."""
        try:
            if self._closed:
                return
            inbox = self._inbox
            if len(inbox) >= MAX_INBOX:
                self._overflow = True
                return
            inbox.append((payload, text, channels, symbols, ts_ns))
            if self._sleeping:
                self._sleeping = False
                os.write(self._wake_w, b"\0")
        except Exception:  # noqa: BLE001 - a full pipe already wakes it; nothing else matters
            pass

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> str:
        """Listen (``serving live on URL`` on stderr) and start the pump: the URL."""
        if self.kind == "ws":
            path = urlsplit(self.target).path or "/"
            self.url, self._shutdown = listen_ws(self, self.host, self.port, path,
                                                 compression=None, announce="serving live on",
                                                 clients=self._connections)
        else:
            self.url, self._shutdown = listen_lines(self, self.kind, self.host, self.port,
                                                    announce="serving live on",
                                                    clients=self._connections)
        self._pump = threading.Thread(target=self._run, name="wsrec-relay", daemon=True)
        self._pump.start()
        return self.url

    def stop(self, drain: float = 2.0) -> None:
        """Stop serving: what was published goes out first (at most ``drain`` seconds),
        then clients are closed with 1001 (lines: closed), a Unix socket removed."""
        if self.done.is_set():
            return
        deadline = time.monotonic() + drain
        while self._pump is not None and self._pump.is_alive() and \
                time.monotonic() < deadline and self._pending():
            time.sleep(0.01)
        self.done.set()
        self._wake()
        if self._pump is not None:
            self._pump.join(10)
        if self._shutdown is not None:
            self._shutdown()
        self._closed = True   # before the descriptors go (their numbers get reused)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def _pending(self) -> bool:
        """Frames published and not yet written to every client."""
        with self._lock:
            sinks = list(self._sinks)
        return bool(self._inbox) or any(s.queue or s.backlog for s in sinks)

    @property
    def clients(self) -> int:
        """Clients connected now (subscribed or not)."""
        return self._connections.count

    @property
    def dropped(self) -> int:
        """Clients dropped so far for falling behind."""
        return self._dropped

    # -- what the servers call (the host interface of wsrec.replay.serve) --------------

    def log(self, text: str) -> None:
        if not self.options.quiet:
            log_line(text)

    def fail(self, exc) -> None:
        """Nothing a client does stops the relay: one line."""
        self.log(f"relay: {exc}")

    def feed(self, client) -> None:
        """A WebSocket client that has subscribed: live frames until it leaves, is
        dropped, or the relay stops."""
        ws = client.ws
        sink = _Sink(ws.socket, client.name, lock=ws.protocol_mutex,
                     emu=client.emu if self.options.emulate else None)
        self._serve_sink(sink, lambda: ws.state is State.OPEN)
        if sink.why is not None:
            if sink.cut:   # half a frame went out: no close frame can follow it
                self.log(f"{client.name} disconnected: {sink.why} (cut)")
                return
            raise SlowClient(sink.why)

    def feed_lines(self, sock: socket.socket, name: str) -> None:
        """A TCP or Unix client: every frame as a raw line until it leaves or is dropped."""
        sink = _Sink(sock, name, lines=True)
        try:
            self._serve_sink(sink, lambda: _still_there(sock))
        except Stopped:
            return
        if sink.why is not None:
            self.log(f"{name} disconnected: {sink.why}")

    def _serve_sink(self, sink: _Sink, is_open) -> None:
        with self._lock:
            if self.done.is_set():
                raise Stopped
            self._sinks.append(sink)
        try:
            while not sink.gone.wait(0.25):
                if not is_open() or self.done.is_set():
                    break
        finally:
            sink.detached = True
            self._wake()
            # the pump lets go of it on its next round. Only the pump removes a sink, so
            # one it is slow to reach stays listed until then: its socket may be closed
            # meanwhile, but the pump's poll still watches that number (for POLLOUT), and
            # would return at once every round once it's reused. With no pump, nothing does.
            if not sink.gone.wait(LET_GO):
                with self._lock:
                    pump = self._pump
                    if (pump is None or not pump.is_alive()) and sink in self._sinks:
                        self._sinks.remove(sink)
        if self.done.is_set() and sink.why is None:
            raise Stopped

    # -- the pump ----------------------------------------------------------------------

    def _wake(self) -> None:
        if self._closed:
            return
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        try:
            while not self.done.is_set():
                self._round(poller)
        except Exception as exc:  # noqa: BLE001 - a bug: one line, clients are let go
            log_line(f"relay: internal error ({type(exc).__name__}: {exc}); "
                     f"clients disconnected")
        finally:
            with self._lock:
                sinks, self._sinks = self._sinks, []
            for sink in sinks:
                self._let_go(sink, shut=sink.held)

    def _round(self, poller) -> None:
        now = time.monotonic_ns()
        with self._lock:
            sinks = list(self._sinks)
        for sink in sinks:
            if sink.detached:
                self._remove(sink, poller)
        sinks = [s for s in sinks if not s.gone.is_set()]
        if self._overflow:
            self._inbox.clear()
            self._overflow = False
            for sink in sinks:
                self._drop(sink, "the relay fell behind the recording", poller)
            return
        n = len(self._inbox)
        if n:
            batch = (now, [self._inbox.popleft() for _ in range(n)])
            for sink in sinks:
                sink.backlog.append(batch)
        self._render(sinks)
        busy = False
        lag_ns = int(self.options.max_lag * 1e9)
        for sink in sinks:
            if sink.gone.is_set():
                continue
            if sink.queue:
                busy |= self._write(sink, poller)
            if sink.queue and (now - sink.queue[0][0] > lag_ns or
                               sink.queued > self.options.max_buffer):
                behind = (f"more than {self.options.max_lag:g}s behind"
                          if now - sink.queue[0][0] > lag_ns else
                          f"more than {self.options.max_buffer:,} bytes behind")
                self._drop(sink, behind, poller)
            elif sink.backlog:
                busy = True   # its emulator was busy: try again soon
        if n >= GATHER_FROM:   # the more a round took, the longer the next one gathers:
            # its cost per client is spread over more frames (at low rates: no wait)
            time.sleep(min(GATHER_MAX, n * GATHER_PER_FRAME))
        if self._inbox:
            return
        self._sleeping = True
        if self._inbox:   # published between the check and the flag
            self._sleeping = False
            return
        events = poller.poll(RETRY * 1000 if busy else POLL * 1000)
        self._sleeping = False
        for fd, _ in events:
            if fd == self._wake_r:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except (BlockingIOError, OSError):
                    pass

    def _render(self, sinks: list[_Sink]) -> None:
        """Each group's backlog rendered once (WebSocket frames or lines) and queued for
        every member."""
        groups: dict = {}
        for sink in sinks:
            if not sink.backlog or sink.gone.is_set():
                continue
            key = sink.key()
            if key is None:
                continue
            ids = tuple(id(b) for b in sink.backlog)
            groups.setdefault((key, ids), []).append(sink)
        for members in groups.values():
            leader = members[0]
            blocks = self._blocks(leader)
            if blocks is None:
                continue   # its emulator got busy: next round
            for sink in members:
                sink.backlog = []
                for block in blocks:
                    sink.queue.append(block)
                    sink.queued += len(block[1])

    def _blocks(self, sink: _Sink):
        """The bytes of ``sink``'s backlog, one block per batch: [(taken_ns, bytes,
        the frames' ts_ns)]."""
        out = []
        if sink.lines:
            mp = self.options.msgpack
            for taken, items in sink.backlog:
                data = b"".join([raw_line(p, "text" if t else "binary", mp) + b"\n"
                                 for p, t, _, _, _ in items])
                if data:
                    out.append((taken, data, tuple(it[4] for it in items)
                                if self.options.on_sent is not None else ()))
            return out
        emu = sink.emu
        if emu is not None and not emu.lock.acquire(blocking=False):
            return None
        timed = self.options.on_sent is not None
        try:
            as_is = emu is None or type(emu.server).render is Server.render
            for taken, items in sink.backlog:
                if emu is not None and emu.closed:
                    break
                if as_is:   # every frame as it came: no render call per frame
                    text_h, binary_h = self._headers
                    parts = [b for payload, text, _, _, _ in items
                             for b in ((text_h if text else binary_h)[len(payload)],
                                       payload)]
                    stamps = tuple(it[4] for it in items) if timed else ()
                else:
                    parts, stamps = self._rendered(emu.server, items, timed)
                if parts:
                    out.append((taken, b"".join(parts), stamps))
        finally:
            if emu is not None:
                emu.lock.release()
        return out

    def _rendered(self, server, items, timed: bool):
        """The framed pieces of what ``server`` makes of ``items``, and (``timed``) the
        ts_ns of each frame it sends."""
        parts: list = []
        stamps: list = []
        render = server.render
        text_h, binary_h = self._headers
        for payload, text, channels, symbols, ts in items:
            for p, t in render(payload, text, channels or (), symbols or ()):
                parts.append((text_h if t else binary_h)[len(p)])
                parts.append(p)
                if timed:
                    stamps.append(ts)
        return parts, tuple(stamps)

    def _write(self, sink: _Sink, poller) -> bool:
        """Write what waits for ``sink`` without blocking: True when its lock was busy
        (try again soon)."""
        if not sink.held:
            if sink.lock is not None and not sink.lock.acquire(blocking=False):
                return True
            sink.held = True
        try:
            on_sent = self.options.on_sent
            while sink.queue:
                _, data, stamps = sink.queue[0]
                sent = sink.sock.send(memoryview(data)[sink.offset:], socket.MSG_DONTWAIT)
                sink.offset += sent
                sink.queued -= sent
                if sink.offset == len(data):
                    sink.queue.popleft()
                    sink.offset = 0
                    if on_sent is not None:
                        on_sent(stamps)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:   # the client went away
            sink.queue.clear()
            sink.queued = sink.offset = 0
            sink.detached = True   # let go of on the next round
        if sink.offset == 0:
            sink.held = False
            if sink.lock is not None:
                sink.lock.release()
        if sink.queue and not sink.waiting:
            poller.register(sink.fd, select.POLLOUT)
            sink.waiting = True
        elif not sink.queue and sink.waiting:
            poller.unregister(sink.fd)
            sink.waiting = False
        return False

    def _drop(self, sink: _Sink, why: str, poller) -> None:
        self._dropped += 1
        sink.why = why
        self._remove(sink, poller)

    def _remove(self, sink: _Sink, poller) -> None:
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)
        if sink.waiting:
            try:
                poller.unregister(sink.fd)
            except (KeyError, ValueError):
                pass
            sink.waiting = False
        self._let_go(sink, shut=sink.held)

    @staticmethod
    def _let_go(sink: _Sink, shut: bool) -> None:
        """Release ``sink``'s lock; ``shut``: a frame was half written, so the socket is
        shut down (no other frame may follow)."""
        if shut:
            sink.cut = True
            try:
                sink.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if sink.held:
            sink.held = False
            if sink.lock is not None:
                sink.lock.release()
        sink.queue.clear()
        sink.backlog = []
        sink.queued = 0
        sink.gone.set()


@contextlib.contextmanager
def serving(targets, venue: str, carried: Request | None, options: RelayOptions | None = None):
    """Relays at each of ``targets``, started (in order; all stopped if one can't
    start): yields the ``Recorder`` keywords that feed them and report them: ``taps``
    (their ``publish`` functions) and ``relay_clients`` (their clients, for the metrics;
    None without targets). Stops them on the way out."""
    relays: list[Relay] = []
    try:
        for target in targets:
            relays.append(Relay(target, venue, carried, options))
        for relay in relays:
            relay.start()
        yield {"taps": [relay.publish for relay in relays],
               "relay_clients": (lambda: sum(r.clients for r in relays)) if relays else None}
    finally:
        for relay in relays:
            relay.stop()
