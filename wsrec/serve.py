"""Replay servers: WebSocket (emulating the venue), TCP and Unix sockets.

Each client gets its own thread that plays the schedule with a ``Pacer`` (a thread, not
asyncio's millisecond timer), from the start, its clock starting when it connects (for an
emulated venue, when it subscribes), or on one clock shared by all clients with
``shared_clock`` (a client that joins late starts at the current point, as on a live
venue). A client more than ``max_lag`` seconds behind is disconnected (WebSocket close
1008) with a line on stderr; sends time out after ``max_lag`` too (SO_SNDTIMEO), so a
client that stops reading can't make anything queue up: memory stays bounded and other
clients are unaffected.
"""

from __future__ import annotations

import os
import socket
import socketserver
import struct
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve as ws_serve

from .emulate import emulator_for
from .errors import WsrecError
from .filters import Filters
from .pacing import Lateness, Pacer, fine_switching
from .replay import ReplayOptions, frame_lines, scheduled_frames
from .session import Session

__all__ = ["ServeOptions", "serve_replay", "parse_target"]


@dataclass
class ServeOptions:
    shared_clock: bool = False
    emulate: bool = True
    max_lag: float = 5.0
    once: bool = False
    quiet: bool = False
    stats: bool = False


class _SlowClient(Exception):
    pass


def parse_target(target: str) -> tuple[str, str, int | str]:
    """``ws://h:p/path``, ``tcp://h:p``, ``unix:PATH`` -> (kind, host or path, port or path)."""
    if target.startswith("unix:"):
        path = target[5:]
        if not path:
            raise ValueError("unix: needs a path, e.g. unix:/tmp/wsrec.sock")
        return "unix", path, path
    parts = urlsplit(target)
    if parts.scheme not in ("ws", "tcp"):
        raise ValueError(f"unknown target {target!r}: use stdout, ws://HOST:PORT, "
                         f"tcp://HOST:PORT or unix:PATH")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        raise ValueError(f"{target!r} needs a port (0 picks a free one)")
    return parts.scheme, parts.hostname or "127.0.0.1", port


class _Player:
    """Shared by every client of one server: sessions, options, totals, the stop signal."""

    def __init__(self, sessions, filters, options: ReplayOptions, serve: ServeOptions):
        self.sessions, self.filters, self.options, self.serve = sessions, filters, options, serve
        self.lateness = Lateness()
        self.sent = 0
        self.lock = threading.Lock()
        self.clock = time.monotonic_ns()
        self.done = threading.Event()
        self.error: str | None = None

    def fail(self, exc: WsrecError) -> None:
        """The sessions can't be read (a corrupt part): stop serving, report it once."""
        self.error = self.error or str(exc)
        self.done.set()

    def log(self, text: str) -> None:
        if not self.serve.quiet:
            print(text, file=sys.stderr, flush=True)

    def play(self, render, send) -> int:
        """Play the schedule to one client: ``render(frames, session)`` gives what to send
        for each frame (None: skip); ``send(item)`` sends one. Returns frames sent."""
        shared = self.serve.shared_clock
        unpaced = self.options.speed is None  # --speed max: as fast as the client reads
        pacer = Pacer(self.clock) if shared else None
        max_lag_ns = int(self.serve.max_lag * 1e9)
        joined = pacer.lateness(0) if shared else 0
        sent = 0
        batches = ((render(frames, session), dues)
                   for _, frames, dues, session in scheduled_frames(
                       self.sessions, self.filters, self.options))
        for items, dues in batches:
            if pacer is None:  # this client's clock starts with its first frame
                pacer = Pacer(time.monotonic_ns() - dues[0])
            for item, due in zip(items, dues):
                if item is None or (shared and due < joined):
                    continue
                if unpaced:
                    send(item)
                    sent += 1
                    continue
                pacer.wait(due)
                late = pacer.lateness(due)
                if late > max_lag_ns:
                    raise _SlowClient(f"more than {self.serve.max_lag:g}s behind")
                send(item)
                self.lateness.add(late)
                sent += 1
        with self.lock:
            self.sent += sent
        return sent

    def report(self) -> dict:
        summary = self.lateness.summary()
        summary["frames"] = self.sent
        return summary


def serve_replay(sessions: list[Session], filters: Filters, options: ReplayOptions,
                 target: str, serve: ServeOptions) -> dict:
    """Serve the replay at ``target`` until interrupted (or, with ``once``, until the first
    client's replay is done). Prints ``listening on URL`` first on stderr."""
    kind, host, port = parse_target(target)
    player = _Player(sessions, filters, options, serve)
    with fine_switching():
        if kind == "ws":
            path = urlsplit(target).path or "/"
            return _serve_ws(player, host, port, path)
        return _serve_lines(player, kind, host, port)


def _send_timeout(sock: socket.socket, seconds: float) -> None:
    secs = int(seconds)
    usecs = int((seconds - secs) * 1e6)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", secs, usecs))


def _wait(player: _Player, shutdown) -> dict:
    try:
        while not player.done.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        shutdown()
    if player.error:
        raise WsrecError(player.error)
    return player.report()


# -- lines over TCP / Unix ------------------------------------------------------------------

def _serve_lines(player: _Player, kind: str, host: str, port) -> dict:
    fmt = player.options.format

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            sock = self.request
            _send_timeout(sock, player.serve.max_lag)
            name = f"client {self.client_address or 'unix'}"
            try:
                n = player.play(lambda frames, s: frame_lines(frames, s, fmt), sock.sendall)
                player.log(f"{name}: replay done, {n:,} frames")
            except (_SlowClient, BlockingIOError, TimeoutError) as exc:
                player.log(f"{name} disconnected: {exc or 'too slow'} (more than "
                           f"{player.serve.max_lag:g}s behind)")
                return
            except WsrecError as exc:
                player.fail(exc)
                return
            except OSError:
                return  # the client went away
            if player.serve.once:
                player.done.set()

    if kind == "unix":
        path = Path(port)
        if path.exists():
            raise WsrecError(f"unix:{path} already exists; remove it or choose another path")
        try:
            server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        except OSError as exc:
            raise WsrecError(f"cannot create unix:{path}: {exc.strerror or exc}") from None
        url = f"unix:{path}"
    else:
        try:
            server = socketserver.ThreadingTCPServer((host, port), Handler)
        except OSError as exc:
            raise WsrecError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        url = f"tcp://{host}:{server.server_address[1]}"
    server.daemon_threads = True
    print(f"listening on {url}", file=sys.stderr, flush=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def shutdown():
        server.shutdown()
        server.server_close()
        if kind == "unix":
            try:
                os.unlink(port)
            except OSError:
                pass
    return _wait(player, shutdown)


# -- WebSocket ------------------------------------------------------------------------------

def _serve_ws(player: _Player, host: str, port: int, path: str) -> dict:
    venue = player.sessions[0].venue
    manifest = player.sessions[0].manifest

    def handler(ws):
        request = ws.request
        _send_timeout(ws.socket, player.serve.max_lag)
        name = f"client {ws.remote_address[0]}:{ws.remote_address[1]}"

        def send(payload: bytes, text: bool):
            try:
                ws.send(payload, text=text)
            except ConnectionClosed as exc:
                # websockets reports a send that timed out (SO_SNDTIMEO) as a closed
                # connection: tell that apart from a client that left
                if isinstance(exc.__cause__, (BlockingIOError, TimeoutError)):
                    raise _SlowClient(f"more than {player.serve.max_lag:g}s behind") from None
                raise

        emu = emulator_for(venue, player.serve.emulate, send, request.path,
                           request.headers, manifest)

        def reader():
            try:
                for message in ws:
                    emu.on_message(message)
            except (ConnectionClosed, OSError):
                pass

        try:
            emu.start()
            threading.Thread(target=reader, daemon=True).start()
            while not emu.ready.wait(0.5):  # emulated venues start when the client subscribes
                if ws.state.name != "OPEN":
                    return
            def render(frames, session):
                return [emu.render(f) for f in frames]

            def send_item(item):
                for payload, text in (item if isinstance(item, list) else [item]):
                    send(payload, text)

            n = player.play(render, send_item)
            player.log(f"{name}: replay done, {n:,} frames")
            ws.close(1000, "replay done")
        except (_SlowClient, BlockingIOError, TimeoutError) as exc:
            player.log(f"{name} disconnected: {exc or 'too slow'} (close 1008)")
            try:
                ws.close(1008, "client too slow")
            except Exception:  # noqa: BLE001 - its buffer is full: just drop it
                ws.socket.close()
            return
        except WsrecError as exc:
            player.fail(exc)
            ws.close(1011, "replay failed")
            return
        except (ConnectionClosed, OSError):
            return
        if player.serve.once:
            player.done.set()

    try:
        server = ws_serve(handler, host, port, max_size=None, compression="deflate")
    except OSError as exc:
        raise WsrecError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = server.socket.getsockname()[1]
    print(f"listening on ws://{host}:{bound}{path if path != '/' else ''}", file=sys.stderr,
          flush=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return _wait(player, server.shutdown)
