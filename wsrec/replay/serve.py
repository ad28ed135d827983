"""Replay servers: WebSocket (emulating the venue), TCP and Unix sockets.

Each client gets its own thread that plays the schedule with a ``Pacer`` (a thread, not
asyncio's millisecond timer), from the start, its clock starting when it connects (for an
emulated venue, when it subscribes), reading and decoding the sessions itself in small
batches; or, with ``shared_clock``, on one clock shared by all clients (a client that
joins late starts at the current point, as on a live venue), where one thread decodes
the schedule once for every client (``_Tape``). A client more than ``max_lag`` seconds
behind is disconnected (WebSocket close 1008) with a line on stderr; sends time out
after ``max_lag`` too (SO_SNDTIMEO), so a client that stops reading can't make anything
queue up: memory stays bounded and other clients are unaffected.

Client messages are handled inside a guard: a message of an unexpected shape gets the
venue's error reply (``wsrec.replay._emulate``), a bug while answering one gets the venue's
generic error and one line on stderr, and the client stays connected. A message over
``max_message_size`` bytes closes that client with 1009. Every line on stderr is one
write under a lock, so lines of concurrent clients never run together. SIGINT and
SIGTERM stop a server cleanly (connections closed with 1001, a Unix socket removed).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import os
import signal
import socket
import socketserver
import stat
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qsl, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.sync.server import serve as ws_serve

from wsrec.replay._emulate import client_path, emulator_for
from wsrec.errors import UsageError, WsrecError
from wsrec.logs import log
from wsrec.store.filters import Filters
from wsrec.replay._pacing import JOIN_SECONDS, Lateness, Pacer, fine_switching
from wsrec.replay.stdout import (ReplayOptions, Stopped, TooLate, frame_lines,
                                 scheduled_frames, send_paced)
from wsrec.store.session import Session

__all__ = ["ServeOptions", "serve_replay", "parse_target", "listen_ws", "listen_lines",
           "WsClient", "SlowClient", "Clients", "log_line", "check_serve_options"]

# a client on its own clock reads the sessions itself, in small batches, one batch ahead,
# in one of a few reading threads that all clients share (bench/serve_memory.py)
_CLIENT_BATCH = 256
_READERS = 2
# the shared clock's one reader: a little more ahead (see _Tape)
_TAPE_BATCH = 1024


@dataclass
class ServeOptions:
    shared_clock: bool = False
    emulate: bool = True
    max_lag: float = 5.0
    once: bool = False
    quiet: bool = False
    stats: bool = False
    max_message_size: int | None = 1 << 20   # bytes; None: no limit


class SlowClient(Exception):
    pass


#: the server is stopping (a signal, --once, or a failure): end this client quietly
_Stopped = Stopped


def log_line(text: str, level: str = "info", **fields) -> None:
    """One log line on stderr (``wsrec.logs.log``: a single write under a lock, so lines
    written by concurrent clients never run together)."""
    log(text.rstrip("\n"), level, **fields)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


class _OneLine(logging.Handler):
    """websockets' own log records (handshake failures and the like) as one line each,
    without a traceback."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text += f" ({_describe(record.exc_info[1])})"
            log_line(f"websocket: {text}")
        except Exception:  # noqa: BLE001 - logging must never take the server down
            pass


def _ws_logger() -> logging.Logger:
    logger = logging.getLogger("wsrec.replay.serve.websockets")
    if not logger.handlers:
        logger.addHandler(_OneLine(logging.WARNING))
        logger.propagate = False
        logger.setLevel(logging.WARNING)
    return logger


def parse_target(target: str) -> tuple[str, str, int | str]:
    """``ws://h:p/path``, ``tcp://h:p``, ``unix:PATH`` -> (kind, host or path, port or path)."""
    if target.startswith("unix:"):
        path = target[5:]
        if not path:
            raise UsageError("unix: needs a path, e.g. unix:/tmp/wsrec.sock", param="target")
        return "unix", path, path
    parts = urlsplit(target)
    if parts.scheme not in ("ws", "tcp"):
        raise UsageError(f"unknown target {target!r}: use stdout, ws://HOST:PORT, "
                         f"tcp://HOST:PORT or unix:PATH", param="target")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        raise UsageError(f"{target!r} needs a port (0 picks a free one)", param="target")
    return parts.scheme, parts.hostname or "127.0.0.1", port


class _Tape:
    """The schedule of a shared-clock server, decoded once for every client.

    One thread reads and decodes runs of frames (``scheduled_frames``) into a queue of
    chunks as the shared clock reaches them (at most ``AHEAD`` chunks and
    ``LOOKAHEAD_NS`` ahead of it); each client has a cursor into the queue, and a chunk is
    dropped once every cursor has passed it and it is due (a client joining now starts
    at the first chunk not yet over). A client that falls behind is dropped by its own
    lateness check, so the queue spans at most ``max_lag`` plus the look-ahead. At
    ``--speed max`` there is no clock: the queue runs as fast as its slowest client,
    at most ``AHEAD`` chunks ahead of it, and a client joining starts where the slowest
    client is."""

    AHEAD = 64
    LOOKAHEAD_NS = 500_000_000

    def __init__(self, player: "_Player"):
        self.player = player
        self.paced = player.options.speed is not None
        self.lock = threading.Lock()
        self.produced = threading.Condition(self.lock)   # consumers wait on it
        self.consumed = threading.Condition(self.lock)   # the producer waits on it
        self.chunks: collections.deque = collections.deque()   # (frames, dues, session)
        self.base = 0            # index of chunks[0]
        self.cursors: dict = {}  # client token -> index of the chunk it takes next
        self.ended = False
        self.error: WsrecError | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._produce, name="wsrec-tape", daemon=True)
        self.thread.start()

    def _now(self) -> int:
        return time.monotonic_ns() - self.player.clock

    def _produce(self) -> None:
        p = self.player
        try:
            runs = scheduled_frames(p.sessions, p.filters, p.options,
                                    batch_size=_TAPE_BATCH, depth=2, lean=True, stop=p.done)
            with contextlib.closing(runs):
                for _, frames, dues, session in runs:
                    with self.lock:
                        while True:
                            if p.done.is_set():
                                return
                            pause = self._room(dues[0])
                            if pause is None:
                                break
                            self.consumed.wait(pause)
                        self.chunks.append((frames, dues, session))
                        self._trim()
                        self.produced.notify_all()
        except WsrecError as exc:
            self.error = exc
            p.fail(exc)
        except Exception as exc:  # noqa: BLE001 - a bug: one line, and the server stops
            self.error = WsrecError(f"replay failed: {_describe(exc)}")
            p.fail(self.error)
        finally:
            with self.lock:
                self.ended = True
                self.produced.notify_all()

    def _room(self, first_due: int) -> float | None:
        """None when the next chunk may be queued now, else how long to wait (s)."""
        self._trim()
        if not self.paced:
            low = min(self.cursors.values(), default=self.base)
            return None if self.base + len(self.chunks) - low < self.AHEAD else 0.05
        now = self._now()
        ahead = 0
        for _, dues, _ in reversed(self.chunks):
            if dues[0] <= now or ahead >= self.AHEAD:
                break
            ahead += 1
        if ahead >= self.AHEAD:
            return 0.005
        wait = first_due - self.LOOKAHEAD_NS - now
        return None if wait <= 0 else min(0.05, max(0.0005, wait / 1e9))

    def _trim(self) -> None:
        low = min(self.cursors.values(), default=None)
        if low is None and not self.paced:
            return  # nobody yet: keep what is queued for the first client
        now = self._now() if self.paced else 0
        while self.chunks and (low is None or self.base < low) and \
                (not self.paced or self.chunks[0][1][-1] < now):
            self.chunks.popleft()
            self.base += 1

    def join(self, joined: int) -> object:
        """A new client, joining at ``joined`` ns on the shared clock: its token."""
        token = object()
        with self.lock:
            self._trim()
            start = self.base
            if self.paced:
                for _, dues, _ in self.chunks:
                    if dues[-1] >= joined:
                        break
                    start += 1
            elif self.cursors:
                start = min(self.cursors.values())
            self.cursors[token] = start
        return token

    def next(self, token):
        """The client's next chunk, waiting for it to be decoded; None at the end."""
        with self.lock:
            while True:
                if self.error is not None:
                    raise self.error
                i = self.cursors[token]
                if i < self.base + len(self.chunks):
                    self.cursors[token] = i + 1
                    chunk = self.chunks[i - self.base]
                    self.consumed.notify()
                    return chunk
                if self.ended:
                    return None
                if self.player.done.is_set():
                    raise _Stopped
                self.produced.wait(0.2)

    def leave(self, token) -> None:
        with self.lock:
            self.cursors.pop(token, None)
            self._trim()
            self.consumed.notify()


class _Player:
    """Shared by every client of one server: sessions, options, totals, the stop signal.

    It is what the servers below (``listen_ws``, ``listen_lines``) serve: the host of
    their clients, as ``wsrec.replay.relay`` is for a live recording. A host has
    ``serve`` (``ServeOptions``), ``venue``, ``offered`` (what the venue's emulation
    offers; None: everything), ``done`` (set: every client ends), ``log(text)``,
    ``fail(exc)``, and the data phase of each client: ``feed(client)`` for a WebSocket
    client once it has subscribed (a ``WsClient``), ``feed_lines(sock, name)`` for a
    TCP or Unix one."""

    offered = None

    def __init__(self, sessions, filters, options: ReplayOptions, serve: ServeOptions):
        self.sessions, self.filters, self.options, self.serve = sessions, filters, options, serve
        self.venue = sessions[0].venue
        self.lateness = Lateness()
        self.sent = 0
        self.lock = threading.Lock()
        self.clock = time.monotonic_ns()
        self.done = threading.Event()
        self.error: str | None = None
        self.tape = _Tape(self) if serve.shared_clock else None
        self.readers = None if self.tape else ThreadPoolExecutor(_READERS, "wsrec-read")
        self.stop: threading.Event | None = None   # set by the caller: stop serving
        self._first = None   # with --once: the first client given the replay

    def fail(self, exc: WsrecError) -> None:
        """The sessions can't be read (a corrupt part): stop serving, report it once."""
        self.error = self.error or str(exc)
        self.done.set()

    def log(self, text: str) -> None:
        if not self.serve.quiet:
            log_line(text)

    def play(self, render, send) -> int:
        """Play the schedule to one client: ``render(frames, session)`` gives what to send
        for each frame (None: skip); ``send(item)`` sends one. Returns frames sent.
        Raises ``SlowClient`` when the client falls behind, ``_Stopped`` when the server
        stops first."""
        sent = self._play_tape(render, send) if self.tape is not None else \
            self._play_own(render, send)
        with self.lock:
            self.sent += sent
        return sent

    def _play_own(self, render, send) -> int:
        pacer = None
        sent = 0
        runs = scheduled_frames(self.sessions, self.filters, self.options,
                                batch_size=_CLIENT_BATCH, lean=True, pool=self.readers,
                                stop=self.done)
        with contextlib.closing(runs):
            for _, frames, dues, session in runs:
                if pacer is None:  # this client's clock starts with its first frame
                    pacer = Pacer(time.monotonic_ns() - dues[0], stop=self.done)
                sent += self._send(render(frames, session), dues, pacer, 0, send)
        return sent

    def _play_tape(self, render, send) -> int:
        pacer = Pacer(self.clock, stop=self.done)
        joined = pacer.lateness(0) if self.options.speed is not None else 0
        token = self.tape.join(joined)
        sent = 0
        try:
            while (chunk := self.tape.next(token)) is not None:
                frames, dues, session = chunk
                if dues[-1] >= joined:
                    sent += self._send(render(frames, session), dues, pacer, joined, send)
        finally:
            self.tape.leave(token)
        return sent

    def _send(self, items, dues, pacer: Pacer, joined: int, send) -> int:
        try:  # --speed max: no pacer, as fast as the client reads
            return send_paced(items, dues, None if self.options.speed is None else pacer, send,
                              skip_before=joined, stop=self.done,
                              max_late_ns=int(self.serve.max_lag * 1e9), lateness=self.lateness)
        except TooLate:
            raise SlowClient(f"more than {self.serve.max_lag:g}s behind") from None

    def report(self) -> dict:
        summary = self.lateness.summary()
        summary["frames"] = self.sent
        return summary

    def _first_client(self, client) -> bool:
        """With --once: whether ``client`` is the first given the replay, whose end (the
        replay done, or the connection ended before) is the server's end."""
        if not self.serve.once:
            return False
        with self.lock:
            if self._first is None:
                self._first = client
            return self._first is client

    def _first_left(self, client: "WsClient") -> None:
        """The first client's connection ended before its replay did: stop (--once)."""
        if not self.done.is_set():
            self.log(f"{client.name}: connection ended before its replay did; stopping "
                     f"(--once)")
        self.done.set()

    def feed(self, client: "WsClient") -> None:
        """The replay, to a WebSocket client that has subscribed; then close 1000. With
        --once, the first client's replay ends the server, and so does its connection
        ending first (``WsClient.on_close``: at once, not at the next frame due)."""
        if self._first_client(client):
            client.on_close = lambda: self._first_left(client)
            if client.ws.state is not State.OPEN:   # gone before that was in place
                client.on_close()
        n = self.play(client.render, client.send_items)
        client.on_close = None
        if client.ws.state is State.OPEN:   # else it left: nothing done, nothing to close
            self.log(f"{client.name}: replay done, {n:,} frames")
            client.ws.close(1000, "replay done")
        if self.serve.once:
            self.done.set()

    def feed_lines(self, sock: socket.socket, name: str) -> None:
        """The replay, as lines, to a TCP or Unix client. With --once, the first client's
        replay ends the server, whether it is done or the client left (seen at the next
        send: a lines client sends nothing)."""
        if self._first_client(sock):
            try:
                self._feed_lines(sock, name)
            finally:
                self.done.set()
        else:
            self._feed_lines(sock, name)

    def _feed_lines(self, sock: socket.socket, name: str) -> None:
        fmt = self.options.format
        try:
            n = self.play(lambda frames, s: frame_lines(frames, s, fmt), sock.sendall)
            self.log(f"{name}: replay done, {n:,} frames")
        except (SlowClient, BlockingIOError, TimeoutError) as exc:
            self.log(f"{name} disconnected: {exc or 'too slow'} (more than "
                     f"{self.serve.max_lag:g}s behind)")
            return
        except _Stopped:
            return
        except WsrecError as exc:
            self.fail(exc)
            return
        except OSError:
            return  # the client went away
        except Exception as exc:  # noqa: BLE001 - a bug: one line, other clients go on
            self.log(f"{name}: internal error ({_describe(exc)}); disconnected")
            return
        if self.serve.once:
            self.done.set()


def check_serve_options(serve: ServeOptions) -> None:
    lag = serve.max_lag
    if isinstance(lag, bool) or not isinstance(lag, (int, float)) or \
            not math.isfinite(lag) or lag <= 0:
        raise UsageError(f"max_lag must be a finite number of seconds above 0, not {lag!r}")
    size = serve.max_message_size
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise UsageError(f"max_message_size must be a number of bytes above 0, not {size!r}")


def serve_replay(sessions: list[Session], filters: Filters, options: ReplayOptions,
                 target: str, serve: ServeOptions, *,
                 stop: threading.Event | None = None) -> dict:
    """Serve the replay at ``target`` until interrupted (SIGINT or SIGTERM, when called
    from the main thread), until ``stop`` is set, or, with ``once``, until the first
    client's replay is over (done, or its connection ended first). Prints ``listening on
    URL`` first on stderr (a WebSocket URL with the venue's path when ``target`` has
    none: a client can connect to it as is)."""
    check_serve_options(serve)
    kind, host, port = parse_target(target)
    player = _Player(sessions, filters, options, serve)
    player.stop = stop
    with fine_switching(), _stop_on_signals(player) as caught:
        if kind == "ws":
            _, shutdown = listen_ws(player, host, port, urlsplit(target).path or "/",
                                    client_path=client_path(player.venue, sessions,
                                                            filters.channels))
        else:
            _, shutdown = listen_lines(player, kind, host, port)
        return _wait(player, shutdown, caught)


@contextlib.contextmanager
def _stop_on_signals(player: _Player):
    """SIGINT and SIGTERM stop the server: the signal's name is put in the list this
    yields, which ``_wait`` polls (the main thread only: elsewhere signals can't be
    handled). A second signal gets the default handling back."""
    caught: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    old = {}

    def handler(signum, frame):
        # only a list append here: setting an Event from a signal handler can deadlock
        # on the Event's own lock; _wait polls the list
        caught.append(signal.Signals(signum).name)
        for sig, previous in old.items():
            signal.signal(sig, previous)

    for sig in (signal.SIGINT, signal.SIGTERM):
        old[sig] = signal.signal(sig, handler)
    try:
        yield caught
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def _send_timeout(sock: socket.socket, seconds: float) -> None:
    seconds = min(seconds, 1e9)
    secs = int(seconds)
    usecs = int((seconds - secs) * 1e6)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", secs, usecs))


class Clients:
    """The sockets of the connected clients, so that stopping never waits on a client
    that doesn't read: a send to it can block for up to ``--max-lag`` seconds."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()

    @contextlib.contextmanager
    def connected(self, sock: socket.socket):
        with self.lock:
            self.sockets.add(sock)
        try:
            yield
        finally:
            with self.lock:
                self.sockets.discard(sock)

    @property
    def count(self) -> int:
        """How many are connected."""
        return len(self.sockets)

    def stop(self, close, grace: float) -> None:
        """Run ``close`` (which returns once every client's thread has ended); sockets
        still connected after ``grace`` seconds (for clients that read, to take their
        close) are shut down, which ends a blocked send."""
        closing = threading.Thread(target=close, name="wsrec-close", daemon=True)
        closing.start()
        closing.join(grace)
        if closing.is_alive():
            with self.lock:
                for sock in self.sockets:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
            closing.join()


def _wait(player: _Player, shutdown, caught: list[str]) -> dict:
    if player.tape is not None:
        player.tape.start()
    try:
        while not caught and not player.done.wait(0.1):
            if player.stop is not None and player.stop.is_set():
                break
    except KeyboardInterrupt:
        pass
    finally:
        player.done.set()
        if caught:
            player.log(f"stopping ({caught[0]})")
        shutdown()
        # a thread still inside Arrow when the process exits can abort it: see prefetch
        if player.tape is not None and player.tape.thread is not None:
            player.tape.thread.join(JOIN_SECONDS)
        if player.readers is not None:
            player.readers.shutdown(wait=True, cancel_futures=True)
    if player.error:
        raise WsrecError(player.error)
    return player.report()


# -- lines over TCP / Unix ------------------------------------------------------------------

def _claim_unix_path(path: Path) -> bool:
    """Make way for a Unix socket at ``path``. A socket file nothing listens on (left by
    a server that was killed) is removed: True. A socket something accepts connections
    on, or a file that is not a socket, is refused (WsrecError)."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise WsrecError(f"cannot create unix:{path}: {exc.strerror or exc}") from None
    if not stat.S_ISSOCK(mode):
        raise WsrecError(f"unix:{path} already exists and is not a socket; remove it or "
                         f"choose another path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        pass  # nothing listens on it: a leftover
    except TimeoutError:
        raise WsrecError(f"unix:{path} is in use (a server is listening on it); stop it "
                         f"or choose another path") from None
    except OSError as exc:
        raise WsrecError(f"cannot create unix:{path}: {exc.strerror or exc}") from None
    else:
        raise WsrecError(f"unix:{path} is in use (a server is listening on it); stop it "
                         f"or choose another path")
    finally:
        probe.close()
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise WsrecError(f"cannot replace the stale unix:{path}: {exc.strerror or exc}") \
            from None
    return True


def listen_lines(host, kind: str, hostname: str, port, *, announce: str = "listening on",
                 clients: Clients | None = None) -> tuple[str, Callable[[], None]]:
    """A TCP (``kind`` tcp) or Unix (unix, ``port`` its path) server of ``host``'s
    clients, each in a thread of its own (``host.feed_lines``), serving from a thread;
    prints ``announce URL`` on stderr: (its URL, the function that stops it). Its
    connections are kept in ``clients``."""
    clients = clients or Clients()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            with clients.connected(self.request):
                name = f"client {self.client_address or 'unix'}"
                try:
                    _send_timeout(self.request, host.serve.max_lag)
                except OSError:
                    return  # the client went away
                host.feed_lines(self.request, name)

    stale = False
    if kind == "unix":
        path = Path(port)
        stale = _claim_unix_path(path)
        try:
            server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        except OSError as exc:
            raise WsrecError(f"cannot create unix:{path}: {exc.strerror or exc}") from None
        inode = os.stat(path).st_ino
        url = f"unix:{path}"
    else:
        try:
            server = socketserver.ThreadingTCPServer((hostname, port), Handler)
        except OSError as exc:
            raise WsrecError(f"cannot listen on {hostname}:{port}: {exc.strerror or exc}") \
                from None
        url = f"tcp://{hostname}:{server.server_address[1]}"
    server.daemon_threads = False  # server_close waits for every client's thread
    log_line(f"{announce} {url}")
    if stale:
        host.log(f"note: replaced unix:{port}, a socket nothing was listening on (left "
                 f"by a server that did not stop cleanly)")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def shutdown():
        server.shutdown()
        clients.stop(server.server_close, grace=0)  # lines have no closing handshake
        if kind == "unix":
            try:
                if os.stat(port).st_ino == inode:  # still ours
                    os.unlink(port)
            except OSError:
                pass
    return url, shutdown


# -- WebSocket ------------------------------------------------------------------------------

class WsClient:
    """One connected WebSocket client: the venue's emulator answering its messages (in a
    thread of its own, ``_read``), and the host's data phase (``host.feed``: a replay,
    or a live recording) once it has subscribed."""

    def __init__(self, host, ws):
        self.host, self.ws = host, ws
        self.name = f"client {ws.remote_address[0]}:{ws.remote_address[1]}"
        self.emu = None
        #: called when the connection ends (the client left, or it was closed)
        self.on_close: Callable[[], None] | None = None

    def send(self, payload: bytes, text: bool) -> None:
        try:
            self.ws.send(payload, text=text)
        except ConnectionClosed as exc:
            # websockets reports a send that timed out (SO_SNDTIMEO) as a closed
            # connection: tell that apart from a client that left
            if isinstance(exc.__cause__, (BlockingIOError, TimeoutError)):
                raise SlowClient(f"more than {self.host.serve.max_lag:g}s behind") from None
            raise

    def drop(self, exc, code=1008, reason="client too slow") -> None:
        if code == 1008:
            self.host.log(f"{self.name} disconnected: {exc or 'too slow'} (close 1008)")
        try:
            self.ws.close(code, reason)
        except Exception:  # noqa: BLE001 - its buffer is full: just drop it
            self.ws.socket.close()

    def _internal_error(self, exc) -> None:
        """A bug: one line, close 1011; other clients go on."""
        self.host.log(f"{self.name}: internal error ({_describe(exc)}); closed 1011")
        self.drop(exc, 1011, "internal error")

    def serve(self) -> None:
        host, ws = self.host, self.ws
        try:
            _send_timeout(ws.socket, host.serve.max_lag)
            self.emu = emulator_for(host.venue, host.serve.emulate, self.send,
                                    ws.request.path, ws.request.headers, close=ws.close,
                                    offered=host.offered)
        except OSError:
            return  # the client went away
        except Exception as exc:  # noqa: BLE001 - a bug: one line, close 1011
            return self._internal_error(exc)
        try:
            self.emu.start()
            threading.Thread(target=self._read, name="wsrec-client-reader", daemon=True).start()
            while not self.emu.ready.wait(0.5):  # emulated venues start at the subscription
                if ws.state is not State.OPEN:
                    return
                if host.done.is_set():
                    raise _Stopped
            host.feed(self)
        except (SlowClient, BlockingIOError, TimeoutError) as exc:
            return self.drop(exc)
        except _Stopped:
            return self.drop(None, 1001, "server stopping")
        except WsrecError as exc:
            host.fail(exc)
            ws.close(1011, "replay failed")
            return
        except (ConnectionClosed, OSError):
            return
        except Exception as exc:  # noqa: BLE001 - a bug: one line, other clients go on
            return self._internal_error(exc)

    def _read(self) -> None:
        """The client's messages, each answered by the emulator inside a guard."""
        host, emu = self.host, self.emu
        try:
            for message in self.ws:
                try:
                    emu.on_message(message)
                except (ConnectionClosed, SlowClient):
                    raise
                except Exception as exc:  # noqa: BLE001 - the guard: answer, go on
                    host.log(f"{self.name}: unexpected error answering a message "
                             f"({_describe(exc)}); sent the venue's generic error")
                    emu.internal_error()
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == 1009:
                limit = host.serve.max_message_size
                over = f" over {limit:,} bytes" if limit is not None else ""
                host.log(f"{self.name}: message{over}, closed 1009")
        except SlowClient as exc:
            self.drop(exc)
        except Exception as exc:  # noqa: BLE001 - even the generic error failed
            self._internal_error(exc)
        finally:
            on_close = self.on_close
            if on_close is not None:
                on_close()

    def render(self, frames, session):
        return [self.emu.render(f) for f in frames]

    def send_items(self, item) -> None:
        for payload, text in (item if isinstance(item, list) else [item]):
            self.send(payload, text)


def listen_ws(host, hostname: str, port: int, path: str, *, compression: str | None = "deflate",
              announce: str = "listening on", clients: Clients | None = None,
              client_path: str = "") -> tuple[str, Callable[[], None]]:
    """A WebSocket server of ``host``'s clients (a ``WsClient`` each, in a thread of its
    own), serving from a thread; prints ``announce URL`` on stderr: (its URL, the
    function that stops it: clients closed with 1001, at most 2 s for their close).
    Its connections are kept in ``clients``. ``client_path``: added to the URL when
    ``path`` is ``/``, so a client can connect to it as is (the venue's path)."""
    clients = clients or Clients()

    def handler(ws):
        with clients.connected(ws.socket):
            WsClient(host, ws).serve()

    try:
        server = ws_serve(handler, hostname, port, max_size=host.serve.max_message_size,
                          compression=compression, close_timeout=2, logger=_ws_logger())
    except OSError as exc:
        raise WsrecError(f"cannot listen on {hostname}:{port}: {exc.strerror or exc}") \
            from None
    bound = server.socket.getsockname()[1]
    url = f"ws://{hostname}:{bound}{path if path != '/' else client_path}"
    # the venue's path holds no secret (dfuse: a placeholder, any token is taken); a
    # path the caller gave keeps its secrets masked
    public = [v for _, v in parse_qsl(urlsplit(client_path).query)] if path == "/" else []
    log_line(f"{announce} {url}", public=public)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return url, lambda: clients.stop(server.shutdown, grace=2.0)
