"""The metrics endpoint of running recordings (``wsrec record --metrics HOST:PORT``).

``MetricsServer`` serves, from a daemon thread, over plain HTTP:

* ``GET /metrics``: the Prometheus text format (``prometheus_client``) with each
  recording's numbers, labelled ``stream`` (its label: a config file's stream name, else
  the session's venue folder name) and ``venue`` (its protocol): frames, bytes and
  events, reconnects, gaps, open
  connections, whether it is up and for how long it has been down, the age of its last
  frame, the writer's lag, free disk under the data root (or spool) and, when it has
  one, the upload backlog and relay clients (``METRICS`` lists every name; docs/
  RECORDING.md says what each means). They are read from the recorders when a scrape
  comes (``Recorder.stats``, through a custom collector), so the receive path pays
  nothing for them;
* ``GET /healthz``: ``200 ok``, or ``503`` with one line naming each stream that has
  been down (without every connection it keeps open) longer than its watchdog, or
  ``DEFAULT_DOWN_LIMIT`` seconds when it has none, and for how long, and each
  ``FailedStream`` (a stream of ``record --config`` that ended failed) and why;
* anything else: 404.

Ages are computed on each recorder's own (injectable) clocks, so tests drive the health
check with a fake one. ``record_with_metrics`` is ``wsrec.record.recorder.record`` with
a server up from before it connects until it ends.

Example::

    recorders = []
    with MetricsServer("127.0.0.1:9108", lambda: recorders) as server:
        record(venue, request, on_start=recorders.append)   # server.url: the scrape URL
"""

from __future__ import annotations

import http.server
import math
import os
import shutil
import socket
import threading
from dataclasses import dataclass
from typing import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from wsrec.errors import UsageError, WsrecError
from wsrec.logs import log
from wsrec.record.recorder import RecordResult, StreamStats, record

__all__ = ["MetricsServer", "StatsCollector", "FailedStream", "parse_address", "unhealthy",
           "record_with_metrics", "DEFAULT_DOWN_LIMIT", "METRICS"]

#: seconds a stream with no watchdog may be down before /healthz turns 503
DEFAULT_DOWN_LIMIT = 60.0
#: seconds an HTTP client gets to send its request
REQUEST_TIMEOUT = 10.0

_STREAM = ("stream", "venue")
#: every metric (as exposed: counters end in ``_total``): (type, labels, help)
METRICS = {
    "wsrec_up": ("gauge", _STREAM, "1 while every connection the stream keeps is open, "
                                   "else 0"),
    "wsrec_connections_open": ("gauge", _STREAM, "WebSocket connections open now"),
    "wsrec_down_seconds": ("gauge", _STREAM, "Seconds since a connection of the stream was "
                                             "last open (0 while up)"),
    "wsrec_frames_total": ("counter", _STREAM + ("direction",),
                           "Frames received (in) and sent (out)"),
    "wsrec_bytes_total": ("counter", _STREAM + ("direction",),
                          "Payload bytes received (in) and sent (out)"),
    "wsrec_events_total": ("counter", _STREAM, "Connection event rows written (open, close, "
                                               "reconnect, error, ping, watchdog)"),
    "wsrec_reconnects_total": ("counter", _STREAM, "Reconnect attempts"),
    "wsrec_gaps_total": ("counter", _STREAM, "Connections lost while recording: each one "
                                             "leaves a gap in the session"),
    "wsrec_last_frame_age_seconds": ("gauge", _STREAM, "Seconds since the last frame was "
                                                       "received (absent before the first)"),
    "wsrec_writer_lag_seconds": ("gauge", _STREAM, "Age of the oldest frame not yet fsync'd "
                                                   "to the journal (0: all durable)"),
    "wsrec_disk_free_bytes": ("gauge", ("path",), "Free bytes on the disk of each local "
                                                  "folder recordings write to"),
    "wsrec_spool_free_bytes": ("gauge", _STREAM, "Free bytes on the spool's disk (recording "
                                                 "to a bucket)"),
    "wsrec_upload_backlog_bytes": ("gauge", _STREAM, "Bytes of sealed parts waiting for upload "
                                                     "(recording to a bucket)"),
    "wsrec_relay_clients": ("gauge", _STREAM, "Clients of the stream's live relay"),
}


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``127.0.0.1:9108``, ``[::1]:0``, ``localhost:9108``; port 0 picks
    a free one) -> (host, port), or UsageError about ``metrics``."""
    host, sep, port = str(text).strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    bad = not sep or not host or not port.isdigit() or int(port) > 65535 or \
        any(c.isspace() or c in "/[]@?#" for c in host)
    if bad:
        raise UsageError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:9108; port 0 picks a "
                         f"free one)", param="metrics")
    return host, int(port)


@dataclass(frozen=True)
class FailedStream:
    """A stream that ended failed and is not being recorded again (``record --config``:
    a fatal error, retries used up): reported down (``wsrec_up`` 0, its last numbers
    with it) and unhealthy, naming ``error``, for as long as the source lists it.
    ``last``: its numbers now (``Recorder.stats`` of the ended recorder); None when it
    never started."""
    stream: str
    venue: str
    error: str
    last: StreamStats | None = None


def _snapshot(item) -> StreamStats | FailedStream:
    return item.stats() if hasattr(item, "stats") else item


def unhealthy(streams: Iterable[StreamStats | FailedStream],
              default_limit: float = DEFAULT_DOWN_LIMIT) -> list[str]:
    """One phrase per stream down longer than its watchdog (``default_limit`` seconds
    when it has none), e.g. ``alpaca (alpaca) down for 75.0 s, limit 60 s``, and per
    stream that failed, e.g. ``btc (hyperliquid) failed: gave up after 3 retries: ...``;
    empty: healthy."""
    out = []
    for s in streams:
        if isinstance(s, FailedStream):
            out.append(f"{s.stream} ({s.venue}) failed: {s.error}")
            continue
        limit = s.watchdog or default_limit
        if s.down_s is not None and s.down_s > limit:
            out.append(f"{s.stream} ({s.venue}) down for {s.down_s:.1f} s, limit {limit:g} s")
    return out


class StatsCollector(Collector):
    """A ``prometheus_client`` collector of ``streams()`` (``StreamStats``, or objects
    whose ``stats()`` gives one, such as ``Recorder``; a ``FailedStream``: ``wsrec_up``
    0 and its last numbers), read at each scrape.
    ``disk_usage(path)`` gives ``.free`` (``shutil.disk_usage``; injectable)."""

    def __init__(self, streams: Callable[[], Iterable], *, disk_usage=shutil.disk_usage):
        self.streams = streams
        self.disk_usage = disk_usage

    def snapshot(self) -> list[StreamStats | FailedStream]:
        return [_snapshot(item) for item in self.streams()]

    def collect(self):
        stats = self.snapshot()
        families = {}
        for name, (kind, labels, text) in METRICS.items():
            make = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            families[name] = make(name, text, labels=labels)

        def add(name, labels, value):
            families[name].add_metric(labels, value)

        free = {}
        for s in stats:
            if isinstance(s, FailedStream):
                key = [s.stream, s.venue]
                add("wsrec_up", key, 0)
                if s.last is None:   # never started: no numbers
                    add("wsrec_connections_open", key, 0)
                    continue
                s = s.last
            else:
                key = [s.stream, s.venue]
                add("wsrec_up", key, 0 if s.down_s is not None else 1)
            add("wsrec_connections_open", key, s.connections)
            add("wsrec_down_seconds", key, s.down_s or 0.0)
            for direction, frames, size in (("in", s.frames_in, s.bytes_in),
                                            ("out", s.frames_out, s.bytes_out)):
                add("wsrec_frames_total", key + [direction], frames)
                add("wsrec_bytes_total", key + [direction], size)
            add("wsrec_events_total", key, s.events)
            add("wsrec_reconnects_total", key, s.reconnects)
            add("wsrec_gaps_total", key, s.gaps)
            if s.last_frame_age_s is not None:
                add("wsrec_last_frame_age_seconds", key, s.last_frame_age_s)
            add("wsrec_writer_lag_seconds", key, s.writer_lag_s)
            path = os.path.abspath(s.folder)
            if path not in free:
                free[path] = self._free(s.folder)
            if s.bucket:
                add("wsrec_spool_free_bytes", key, free[path])
                add("wsrec_upload_backlog_bytes", key, s.upload_backlog_bytes or 0)
            if s.relay_clients is not None:
                add("wsrec_relay_clients", key, s.relay_clients)
        for path, value in free.items():
            add("wsrec_disk_free_bytes", [path], value)
        yield from families.values()

    def _free(self, folder) -> float:
        """Free bytes on ``folder``'s disk (its nearest existing parent's); NaN when
        unreadable."""
        for path in (folder, *getattr(folder, "parents", ())):
            try:
                return self.disk_usage(path).free
            except FileNotFoundError:
                continue
            except OSError:
                break
        return math.nan


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_port = False   # a port another process listens on is an error, not shared

    def handle_error(self, request, client_address) -> None:
        pass   # a client that went away mid-request: nothing to say


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "wsrec"
    sys_version = ""
    timeout = REQUEST_TIMEOUT
    metrics: "MetricsServer"   # set on the subclass each server makes

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        path = self.path.split("?", 1)[0]
        try:
            if path == "/metrics":
                body, ctype = generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST
                self._reply(200, body, ctype)
            elif path == "/healthz":
                problems = unhealthy(self.metrics.collector.snapshot(),
                                     self.metrics.down_limit)
                if problems:
                    self._reply(503, ("down: " + "; ".join(problems) + "\n").encode())
                else:
                    self._reply(200, b"ok\n")
            else:
                self._reply(404, b"not found: try /metrics or /healthz\n")
        except Exception as exc:  # noqa: BLE001 - a scrape must never take the recording down
            log(f"metrics: internal error answering {path} ({type(exc).__name__}: {exc})",
                "error")
            self._reply(500, b"internal error\n")

    def _reply(self, status: int, body: bytes,
               ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:
        pass   # no line per request on stderr


class MetricsServer:
    """``/metrics`` and ``/healthz`` of ``streams()`` on ``address`` (``HOST:PORT``;
    port 0 picks a free one), served from a daemon thread between ``start`` and
    ``stop`` (or as a context manager).

    ``streams`` returns, at each request, the recordings to report: ``StreamStats``, or
    objects with a ``stats()`` that gives one (``Recorder``; a relay's client count is
    its ``relay_clients`` callable). ``down_limit``: seconds a stream without a
    watchdog may be down before /healthz is 503. ``disk_usage``: as in
    ``StatsCollector``.
    """

    def __init__(self, address: str, streams: Callable[[], Iterable], *,
                 down_limit: float = DEFAULT_DOWN_LIMIT, disk_usage=shutil.disk_usage):
        self.host, self.port = parse_address(address)
        self.down_limit = down_limit
        self.collector = StatsCollector(streams, disk_usage=disk_usage)
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)   # process_* (CPU, memory, open files)
        self.url: str | None = None
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Listen and serve; returns the scrape URL (``http://HOST:PORT/metrics``), also
        logged as ``metrics on URL``. WsrecError when it can't listen (in use)."""
        handler = type("Handler", (_Handler,), {"metrics": self})
        server_class = _HTTPServer
        if ":" in self.host:
            server_class = type("HTTPServer6", (_HTTPServer,),
                                {"address_family": socket.AF_INET6})
        try:
            self._server = server_class((self.host, self.port), handler)
        except OSError as exc:
            raise WsrecError(f"cannot listen on {self.host}:{self.port} for --metrics: "
                             f"{exc.strerror or exc}") from None
        port = self._server.server_address[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{port}/metrics"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name="wsrec-metrics", daemon=True)
        self._thread.start()
        log(f"metrics on {self.url}", url=self.url)
        return self.url

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "MetricsServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def record_with_metrics(address: str | None, venue, request, **kwargs) -> RecordResult:
    """``wsrec.record.recorder.record(venue, request, **kwargs)`` with a
    ``MetricsServer`` on ``address`` (None: none) from before it connects until it
    ends; a port in use fails before anything is recorded."""
    if address is None:
        return record(venue, request, **kwargs)
    recorders: list = []
    with MetricsServer(address, lambda: recorders):
        return record(venue, request, on_start=recorders.append, **kwargs)
