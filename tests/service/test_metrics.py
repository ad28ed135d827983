"""The metrics endpoint: Prometheus text and /healthz of recordings, scraped over HTTP on
127.0.0.1, from real recordings of the simulators and from a recorder on a fake clock."""

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import namedtuple
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

import wsrec
from wsrec.cli.commands import cli
from wsrec.errors import UsageError, WsrecError
from wsrec.logs import set_format
from wsrec.record.recorder import Recorder, RecordOptions, StreamStats
from wsrec.service.metrics import (DEFAULT_DOWN_LIMIT, METRICS, FailedStream, MetricsServer,
                                   parse_address, unhealthy)
from wsrec.sim import SimOptions, get_simulator
from wsrec.venues import Request, get_venue

pytestmark = pytest.mark.timeout(90)

HTTP_TIMEOUT = 10


@pytest.fixture(autouse=True)
def text_logs_after():
    yield
    set_format("text")   # a command run here with --log-format json set it process-wide


def get(url, path="/metrics"):
    """(status, body) of GET ``path`` on the server of ``url``."""
    base = url.rsplit("/", 1)[0]
    try:
        with urllib.request.urlopen(base + path, timeout=HTTP_TIMEOUT) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(url) -> dict:
    """{(sample name, frozenset of labels): value} of one scrape."""
    status, text = get(url)
    assert status == 200
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def stream_values(samples, name):
    """{stream: value} of a metric with no other label than stream and venue."""
    return {dict(labels).get("stream"): v for (n, labels), v in samples.items() if n == name}


# -- addresses -------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("127.0.0.1:9108", ("127.0.0.1", 9108)),
    ("localhost:0", ("localhost", 0)),
    ("[::1]:9108", ("::1", 9108)),
    ("0.0.0.0:65535", ("0.0.0.0", 65535)),
])
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["9108", ":9108", "127.0.0.1:", "127.0.0.1:99999",
                                  "127.0.0.1:-1", "127.0.0.1:http", "a b:1", "http://x:1",
                                  "[::1]", ""])
def test_parse_address_refuses(text):
    with pytest.raises(UsageError, match="is not HOST:PORT") as info:
        parse_address(text)
    assert info.value.param == "metrics"


# -- a real recording against the simulator ---------------------------------------------------

class Recording:
    """A ``Recorder`` of ``venue``'s simulator run in a thread's event loop, with a
    ``MetricsServer`` on 127.0.0.1:0 reporting it from before it connects."""

    def __init__(self, venue, data, sim=None, options=None, **request):
        self.recorders, self.result, self.error = [], None, None
        self.server = MetricsServer("127.0.0.1:0", lambda: self.recorders)
        self.url = self.server.start()
        self.started = threading.Event()
        self.sim = get_simulator(venue, sim or SimOptions(rate=200))
        self.options = options or RecordOptions(duration=60, backoff_initial=0.01,
                                                backoff_max=0.05)
        self.venue, self.data, self.request = venue, data, request
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.started.wait(30)

    def _run(self):
        async def main():
            base = await self.sim.start()
            self.loop = asyncio.get_running_loop()
            try:
                rec = Recorder(get_venue(self.venue), Request(
                    url=base, env=self.sim.credentials(), **self.request), data=self.data,
                    options=self.options)
                self.recorders.append(rec)
                self.started.set()
                self.result = await asyncio.wait_for(rec.run(), 60)
            finally:
                await self.sim.close()
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
            self.started.set()

    @property
    def recorder(self):
        return self.recorders[0]

    def wait_for(self, predicate, what, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            samples = scrape(self.url)
            if predicate(samples):
                return samples
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def stop(self):
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.recorder.stop)
        self.thread.join(60)
        assert self.error is None, self.error
        return self.result

    def close(self):
        try:
            self.stop()
        finally:
            self.server.stop()


def test_metrics_of_a_recording_against_the_simulator(data):
    rec = Recording("alpaca", data, symbols=["FAKEPACA"])
    try:
        live = rec.wait_for(lambda s: stream_values(s, "wsrec_up") and value(
            s, "wsrec_frames_total", stream="alpaca", venue="alpaca", direction="in") >= 20,
            "20 frames")
        key = dict(stream="alpaca", venue="alpaca")
        assert value(live, "wsrec_up", **key) == 1
        assert value(live, "wsrec_connections_open", **key) == 1
        assert value(live, "wsrec_down_seconds", **key) == 0
        assert 0 <= value(live, "wsrec_last_frame_age_seconds", **key) < 30
        assert 0 <= value(live, "wsrec_writer_lag_seconds", **key) < 30
        free = value(live, "wsrec_disk_free_bytes", path=os.path.abspath(data))
        assert free > 0
        assert get(rec.url, "/healthz") == (200, "ok\n")
        result = rec.stop()
        done = scrape(rec.url)
    finally:
        rec.close()
    assert result.status == "complete"
    # the numbers are the recording's own
    assert value(done, "wsrec_frames_total", direction="in", **key) == result.frames_in
    assert value(done, "wsrec_frames_total", direction="out", **key) == result.frames_out == 2
    assert value(done, "wsrec_bytes_total", direction="in", **key) == result.bytes_in
    sent = [m for cid in rec.sim.received for m in rec.sim.received[cid]]
    assert value(done, "wsrec_bytes_total", direction="out", **key) == sum(map(len, sent))
    assert value(done, "wsrec_events_total", **key) == result.events
    assert value(done, "wsrec_reconnects_total", **key) == 0
    assert value(done, "wsrec_gaps_total", **key) == 0   # stopped: not a loss
    assert value(done, "wsrec_writer_lag_seconds", **key) == 0   # closed: all durable
    assert value(done, "wsrec_connections_open", **key) == 0
    assert value(done, "wsrec_up", **key) == 0
    s = wsrec.open_session(result.path)
    assert s.rows() == result.frames_in + result.frames_out + result.events
    # every documented metric is there (these streams have no bucket and no relay)
    names = {n for n, _ in done}
    optional = {"wsrec_spool_free_bytes", "wsrec_upload_backlog_bytes", "wsrec_relay_clients"}
    assert set(METRICS) - optional <= names
    assert any(n.startswith("process_") for n in names)


def test_reconnects_and_gaps_are_counted(data):
    rec = Recording("hyperliquid", data, sim=SimOptions(rate=300, drop_every=40),
                    options=RecordOptions(duration=60, max_frames=150, backoff_initial=0.01,
                                          backoff_max=0.05),
                    symbols=["BTC"], channels=["trades"])
    try:
        rec.thread.join(60)
        result = rec.stop()
        done = scrape(rec.url)
    finally:
        rec.close()
    key = dict(stream="hyperliquid", venue="hyperliquid")
    gaps = wsrec.open_session(result.path).manifest["gaps"]
    assert result.reconnects >= 2 and len(gaps) >= 2
    assert value(done, "wsrec_reconnects_total", **key) == result.reconnects
    assert value(done, "wsrec_gaps_total", **key) == len(gaps)   # each loss, a gap


def test_a_relay_callable_is_reported(data):
    rec = Recording("alpaca", data, symbols=["FAKEPACA"])
    try:
        rec.recorder.relay_clients = lambda: 3
        samples = rec.wait_for(lambda s: stream_values(s, "wsrec_relay_clients"), "relay")
    finally:
        rec.close()
    assert value(samples, "wsrec_relay_clients", stream="alpaca", venue="alpaca") == 3


# -- health on a fake clock ---------------------------------------------------------------------

class FakeClock:
    """The recorder's monotonic clock, moved by hand. It starts at 0, so rows stamped on
    it come before those the writer stamps on the real clock."""

    def __init__(self):
        self.now = 0.0

    def ns(self):
        return round(self.now * 1e9)


class OpenConnection:
    is_open = True


def fake_recorder(data, clock, **options):
    options.setdefault("heartbeat", 0)
    return Recorder(get_venue("url"), Request(url="ws://127.0.0.1:9/"), data=data,
                    name="fake", options=RecordOptions(**options), mono_ns=clock.ns,
                    wall_ns=lambda: 1_795_000_000_000_000_000 + clock.ns())


@contextlib.contextmanager
def serving(rec):
    """The URL of a MetricsServer reporting ``rec``; stopped, and its writer closed, after."""
    server = MetricsServer("127.0.0.1:0", lambda: [rec])
    try:
        yield server.start()
    finally:
        server.stop()
        rec.writer.close()


def slot_of(rec):
    from wsrec.record.recorder import _Slot
    [stream] = rec.streams
    slot = _Slot(rec, "main", stream, rec.options)
    rec.slots = [slot]
    return slot


def test_healthz_turns_503_when_down_longer_than_the_watchdog_and_back(data):
    clock = FakeClock()
    rec = fake_recorder(data, clock, watchdog=10)
    slot = slot_of(rec)
    with serving(rec) as url:   # rows are stamped on the real clock, health on the fake one
        slot.on_open(OpenConnection(), 0, time.monotonic_ns())
        clock.now += 3600
        assert get(url, "/healthz") == (200, "ok\n")           # up for an hour
        slot.closed(1006, "")                                 # lost: down from now
        clock.now += 9.5
        assert get(url, "/healthz") == (200, "ok\n")           # within its watchdog
        samples = scrape(url)
        assert value(samples, "wsrec_up", stream="fake", venue="url") == 0
        assert value(samples, "wsrec_down_seconds", stream="fake", venue="url") == 9.5
        assert value(samples, "wsrec_gaps_total", stream="fake", venue="url") == 1
        clock.now += 1.0
        status, body = get(url, "/healthz")
        assert status == 503
        assert body == "down: fake (url) down for 10.5 s, limit 10 s\n"
        slot.on_open(OpenConnection(), 0, time.monotonic_ns())   # back
        assert get(url, "/healthz") == (200, "ok\n")
        samples = scrape(url)
        assert value(samples, "wsrec_up", stream="fake", venue="url") == 1
        assert value(samples, "wsrec_connections_open", stream="fake", venue="url") == 1


def test_without_a_watchdog_the_default_limit_applies_from_the_start(data):
    clock = FakeClock()
    rec = fake_recorder(data, clock, watchdog=0)   # off: DEFAULT_DOWN_LIMIT
    assert rec.watchdog is None
    with serving(rec) as url:
        clock.now += DEFAULT_DOWN_LIMIT - 1   # never connected yet: down since created
        assert get(url, "/healthz")[0] == 200
        clock.now += 2
        status, body = get(url, "/healthz")
        assert status == 503 and f"limit {DEFAULT_DOWN_LIMIT:g} s" in body
        samples = scrape(url)
        # no frame yet: no age at all, rather than a made-up one
        assert not stream_values(samples, "wsrec_last_frame_age_seconds")
        assert value(samples, "wsrec_connections_open", stream="fake", venue="url") == 0


def test_last_frame_age_and_writer_lag_on_the_recorders_clocks(data):
    clock = FakeClock()
    rec = fake_recorder(data, clock, watchdog=0, flush_interval=60)   # no flush meanwhile
    slot = slot_of(rec)
    try:
        slot.on_open(OpenConnection(), rec.wall_ns(), clock.ns())
        slot.on_message(b'{"a":1}', True, rec.wall_ns(), clock.ns())
        clock.now += 2.5
        stats = rec.stats()
        assert stats.last_frame_age_s == 2.5
        assert stats.writer_lag_s == 2.5   # the open event, first of the rows waiting
        assert (stats.frames_in, stats.bytes_in, stats.connections, stats.down_s) == \
            (1, 7, 1, None)
        rec.writer.flush()
        assert rec.stats().writer_lag_s == 0
    finally:
        rec.writer.close()


def test_unhealthy_names_every_stream_down_too_long():
    S = namedtuple("S", "stream venue down_s watchdog")
    streams = [S("a", "alpaca", None, 60.0), S("b", "flow", 61.0, 60.0),
               S("c", "vega", 59.0, None), S("d", "vega", 120.5, None)]
    assert unhealthy(streams) == ["b (flow) down for 61.0 s, limit 60 s",
                                  "d (vega) down for 120.5 s, limit 60 s"]
    assert unhealthy(streams, default_limit=200) == ["b (flow) down for 61.0 s, limit 60 s"]


def stats(**kw):
    base = dict(stream="s", venue="url", frames_in=1, frames_out=0, bytes_in=5, bytes_out=0,
                events=1, reconnects=0, gaps=0, connections=1, slots=1, down_s=None,
                watchdog=None, last_frame_age_s=0.5, writer_lag_s=0.0, folder=Path("/x"),
                bucket=False, upload_backlog_bytes=None, relay_clients=None, done=False)
    return StreamStats(**{**base, **kw})


def test_disk_and_spool_figures_come_from_disk_usage():
    Usage = namedtuple("Usage", "total used free")
    asked = []

    def disk_usage(path):
        asked.append(str(path))
        if str(path) == "/missing/yet":
            raise FileNotFoundError(path)
        return Usage(100, 40, 60 if str(path) == "/x" else 7)

    items = [stats(), stats(stream="t"), stats(stream="b", folder=Path("/missing/yet"),
                                               bucket=True, upload_backlog_bytes=1234)]
    server = MetricsServer("127.0.0.1:0", lambda: items, disk_usage=disk_usage)
    url = server.start()
    try:
        samples = scrape(url)
    finally:
        server.stop()
    assert value(samples, "wsrec_disk_free_bytes", path="/x") == 60
    assert value(samples, "wsrec_disk_free_bytes", path="/missing/yet") == 7   # its parent's
    assert asked.count("/x") == 1                                 # once per path per scrape
    assert stream_values(samples, "wsrec_spool_free_bytes") == {"b": 7}
    assert stream_values(samples, "wsrec_upload_backlog_bytes") == {"b": 1234}


def test_a_failed_stream_is_down_and_unhealthy_with_its_last_numbers():
    """``FailedStream`` (a config's stream that ended failed): ``wsrec_up`` 0, its last
    numbers when it has them, and a /healthz line naming it and why."""
    items = [stats(stream="ok"),
             FailedStream("gone", "flow", "flow: gave up after 3 retries: refused",
                          stats(stream="gone", venue="flow", frames_in=7, down_s=12.0)),
             FailedStream("never", "alpaca", "alpaca: invalid URL")]
    assert unhealthy(items) == ["gone (flow) failed: flow: gave up after 3 retries: refused",
                                "never (alpaca) failed: alpaca: invalid URL"]
    server = MetricsServer("127.0.0.1:0", lambda: items)
    url = server.start()
    try:
        samples = scrape(url)
        status, body = get(url, "/healthz")
    finally:
        server.stop()
    assert stream_values(samples, "wsrec_up") == {"ok": 1, "gone": 0, "never": 0}
    assert value(samples, "wsrec_frames_total", stream="gone", venue="flow",
                 direction="in") == 7
    assert value(samples, "wsrec_down_seconds", stream="gone", venue="flow") == 12.0
    assert stream_values(samples, "wsrec_connections_open")["never"] == 0
    assert status == 503 and body == ("down: gone (flow) failed: flow: gave up after 3 "
                                      "retries: refused; never (alpaca) failed: alpaca: "
                                      "invalid URL\n")


def test_a_recorder_is_labelled_by_its_label_else_its_folder(data):
    venue = get_venue("flow")
    request = Request(url="ws://127.0.0.1:1/", env={})
    recs = [Recorder(venue, request, data=data, name="shared", signals=False),
            Recorder(venue, request, data=data, name="shared", signals=False, label="two")]
    try:
        assert [r.stats().stream for r in recs] == ["shared", "two"]
    finally:
        for r in recs:
            r.writer.close()


# -- the server ---------------------------------------------------------------------------------

def test_other_paths_are_404_and_a_failing_source_is_500(capsys):
    def broken():
        raise RuntimeError("boom")
    server = MetricsServer("127.0.0.1:0", broken)
    url = server.start()
    try:
        assert get(url, "/")[0] == 404
        assert get(url, "/metrics/x")[0] == 404
        assert get(url, "/healthz")[0] == 500
        assert get(url)[0] == 500
    finally:
        server.stop()
    err = capsys.readouterr().err
    assert f"metrics on {url}" in err and "internal error answering /healthz" in err
    assert "Traceback" not in err


def test_a_port_in_use_is_one_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(WsrecError, match=f"cannot listen on 127.0.0.1:{port} for "
                                             f"--metrics"):
            MetricsServer(f"127.0.0.1:{port}", list).start()


def test_stop_frees_the_port():
    server = MetricsServer("127.0.0.1:0", list)
    port = int(server.start().rsplit(":", 1)[1].split("/")[0])
    server.stop()
    server.stop()   # idempotent
    again = MetricsServer(f"127.0.0.1:{port}", list)
    again.start()
    again.stop()


# -- the command line ----------------------------------------------------------------------------

def test_record_with_metrics_and_json_logs(data):
    env = {**os.environ, "WSREC_DATA": str(data)}
    proc = subprocess.Popen([sys.executable, "-m", "wsrec", "--log-format", "json", "record",
                             "alpaca", "-s", "FAKEPACA", "--sim", "--sim-rate", "100",
                             "--metrics", "127.0.0.1:0", "--duration", "60s"],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(proc.stderr.readline())
        assert first["level"] == "info" and first["msg"].startswith("metrics on http://")
        url = first["url"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            samples = scrape(url)
            if stream_values(samples, "wsrec_up") and value(
                    samples, "wsrec_frames_total", stream="alpaca", venue="alpaca",
                    direction="in") >= 10:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("no frames recorded within 30 s")
        assert value(samples, "wsrec_up", stream="alpaca", venue="alpaca") == 1
        assert get(url, "/healthz") == (200, "ok\n")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    [summary] = [json.loads(line) for line in err.splitlines()]   # only JSON lines
    assert summary["status"] == "complete" and summary["stopped_by"] == "signal"
    assert summary["frames_in"] >= 10 and summary["level"] == "info"
    assert wsrec.open_session("alpaca", data=data).status == "complete"
    with pytest.raises(urllib.error.URLError):   # stopped with the recording
        urllib.request.urlopen(url, timeout=HTTP_TIMEOUT)


def test_record_metrics_usage_and_port_errors(data):
    runner = CliRunner()
    env = {"WSREC_DATA": str(data)}
    result = runner.invoke(cli, ["record", "alpaca", "-s", "X", "--sim", "--metrics",
                                 "127.0.0.1"], env=env)
    assert result.exit_code == 2
    assert "Invalid value for --metrics: '127.0.0.1' is not HOST:PORT" in result.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for fmt in ("text", "json"):
            result = runner.invoke(cli, ["--log-format", fmt, "record", "alpaca", "-s", "X",
                                         "--sim", "--duration", "1s", "--metrics",
                                         f"127.0.0.1:{port}"], env=env)
            assert result.exit_code == 1 and "Traceback" not in result.output
            [line] = result.stderr.strip().splitlines()
            message = f"cannot listen on 127.0.0.1:{port} for --metrics"
            if fmt == "text":
                assert line.startswith("Error: ") and message in line
            else:
                assert json.loads(line)["level"] == "error" and message in line
    assert not data.exists() or not list(data.rglob("session.json"))   # nothing recorded
