"""The recording engine against each venue's simulator, on 127.0.0.1."""

import asyncio
import json
import re
import threading

import pytest
from websockets.utils import accept_key

from wsrec.record.recorder import RecordOptions
from wsrec.sim import SimOptions

from conftest import (all_bytes_under, assert_recorded_what_was_sent, inbound_by_conn,
                      inbound_by_connection, record_from_sim)

pytestmark = pytest.mark.timeout(90)

CASES = {
    "alpaca": dict(symbols=["FAKEPACA"]),
    "hyperliquid": dict(symbols=["BTC", "ETH"]),
    "vega": dict(channels=["trades"]),
    "flow": dict(),
    "dfuse": dict(symbols=["eosio.token"]),
}
OPENING = {
    "alpaca": [b'{"action":"auth","key":"sim-key","secret":"sim-secret"}',
               b'{"action":"subscribe","trades":["FAKEPACA"],"quotes":["FAKEPACA"],'
               b'"bars":["FAKEPACA"]}'],
    "hyperliquid": [b'{"method":"subscribe","subscription":{"type":"trades","coin":"BTC"}}',
                    b'{"method":"subscribe","subscription":{"type":"trades","coin":"ETH"}}',
                    b'{"method":"subscribe","subscription":{"type":"l2Book","coin":"BTC"}}',
                    b'{"method":"subscribe","subscription":{"type":"l2Book","coin":"ETH"}}'],
    "vega": [],
    "flow": [b'{"subscription_id":"s0-block_digests","action":"subscribe",'
             b'"topic":"block_digests","arguments":{"block_status":"sealed"}}'],
    "dfuse": [b'{"type":"get_action_traces","listen":true,"with_progress":10,"req_id":"r0",'
              b'"data":{"accounts":"eosio.token"}}'],
}


def fast(**kw):
    kw.setdefault("backoff_initial", 0.01)
    kw.setdefault("backoff_max", 0.05)
    return RecordOptions(**kw)


@pytest.mark.parametrize("venue", sorted(CASES))
def test_records_every_frame_byte_exact(venue, data):
    result, sim, s = record_from_sim(venue, data, options=fast(duration=1.0), **CASES[venue])
    assert result.status == "complete" and result.error is None
    assert result.frames_in > 50
    # the opening exchange, exactly as sent (the simulator logged what it received)
    assert sim.received[0][:len(OPENING[venue])] == OPENING[venue]
    outbound = [f.payload for f in s.frames(direction="out")]
    redacted = [m.replace(b"sim-key", b"***").replace(b"sim-secret", b"***")
                for m in OPENING[venue]]
    assert outbound[:len(OPENING[venue])] == redacted  # stored with secrets masked
    # every message the simulator sent, stored byte-exact and in order
    assert_recorded_what_was_sent(s, sim)
    # classified
    data_frames = [f for f in s.frames(direction="in")][-20:]
    assert all(f.channels for f in data_frames)
    if venue not in ("vega", "flow"):  # flow: block topics have no symbols (venues/flow.py)
        assert all(f.symbols for f in data_frames)
    events = [f.kind for f in s.frames(direction="event")]
    assert events[0] == "open" and events[-1] == "close"
    assert s.status == "complete" and s.manifest["connections"][0]["code"] == 1000


def assert_recorded_until_the_stop(session, sim, result, max_frames):
    """The recording stopped at its ``max_frames``-th inbound frame; each connection's
    recorded frames are what the simulator sent on it, in order, complete but for the
    last connection's tail (sent after that frame)."""
    assert result.stopped_by == "max-frames" and result.frames_in == max_frames
    got = inbound_by_connection(session)
    assert sum(map(len, got)) == max_frames
    cids = sorted(sim.sent)
    assert len(got) == len(cids)
    for i, (g, cid) in enumerate(zip(got, cids)):
        sent = sim.sent[cid]
        assert g == sent[:len(g)], f"connection {i}"
        if i < len(cids) - 1:
            assert len(g) == len(sent), f"connection {i}"


@pytest.mark.parametrize("venue", sorted(CASES))
def test_reconnects_after_a_drop(venue, data):
    # stopped by a frame count, not a time: 150 frames take at least three connections
    # of 40 data frames, however slowly the machine runs
    result, sim, s = record_from_sim(venue, data, sim=SimOptions(rate=300, drop_every=40),
                                     options=fast(duration=60, max_frames=150),
                                     **CASES[venue])
    assert result.status == "complete" and result.reconnects >= 2
    assert len(sim.sent) >= 3
    assert_recorded_until_the_stop(s, sim, result, 150)
    assert s.manifest["gaps"] and all(g["duration_ns"] >= 0 for g in s.manifest["gaps"])
    kinds = [f.kind for f in s.frames(direction="event")]
    assert kinds.count("open") == len(sim.sent) and "reconnect" in kinds
    # every reconnect repeated the opening exchange (flow and dfuse resume: see below)
    if venue not in ("flow", "dfuse"):
        for cid in sorted(sim.received)[1:-1]:  # the last may be cut short by the stop
            assert sim.received[cid][:len(OPENING[venue])] == OPENING[venue]


def heights(payloads, pattern):
    return [int(m.group(1)) for p in payloads if (m := re.search(pattern, p))]


def test_flow_resumes_without_missing_or_repeating_a_height(data):
    result, sim, s = record_from_sim("flow", data, sim=SimOptions(rate=300, drop_every=25),
                                     options=fast(duration=60, max_frames=150))
    assert result.reconnects >= 2
    seen = heights([f.payload for f in s.frames(channels="block_digests")],
                   rb'"height":"(\d+)"')
    assert seen == list(range(seen[0], seen[0] + len(seen)))
    resumed = [json.loads(m) for cid in sorted(sim.received)[1:] for m in sim.received[cid]]
    assert all("start_block_height" in m["arguments"] for m in resumed)


def test_dfuse_resumes_from_last_progress_and_counts_redelivery(data):
    result, sim, s = record_from_sim("dfuse", data, sim=SimOptions(rate=300, drop_every=25),
                                     options=fast(duration=60, max_frames=150),
                                     symbols=["eosio.token"])
    assert result.reconnects >= 2
    blocks = heights([f.payload for f in s.frames(channels="action_trace")],
                     rb'"block_num":(\d+)')
    assert sorted(set(blocks)) == list(range(min(blocks), max(blocks) + 1))  # none missing
    assert len(blocks) > len(set(blocks))  # blocks after the last progress came twice
    resumed = [json.loads(m) for cid in sorted(sim.received)[1:] for m in sim.received[cid]]
    assert all(m["start_block"] % 10 == 1 for m in resumed)  # last progress + 1
    from wsrec.store.info import details
    assert details(s)["redelivered"] == len(blocks) - len(set(blocks))


@pytest.mark.parametrize("venue,error,match", [
    ("alpaca", "402", "alpaca error 402"), ("alpaca", "406", "406"),
    ("alpaca", "409", "409"), ("alpaca", "410", "410"), ("alpaca", "411", "411"),
    ("alpaca", "412", "412"),
    ("hyperliquid", "no such coin", "rejected a subscription"),
    ("flow", "400", "error 400"), ("dfuse", "auth_invalid_token_error", "DFUSE_API_TOKEN"),
    ("vega", "3", "error 3"),
    ("alpaca", "http:401", "HTTP 401"), ("hyperliquid", "http:403", "HTTP 403"),
])
def test_fatal_errors_stop_without_retrying(venue, error, match, data):
    result, sim, s = record_from_sim(venue, data, sim=SimOptions(rate=50, error=error),
                                     options=fast(duration=10), **CASES[venue])
    assert result.status == "failed" and re.search(match, result.error)
    assert "\n" not in result.error
    assert result.reconnects == 0 and result.seconds < 5
    assert s.status == "failed" and s.manifest["error"] == result.error


def test_max_retries_zero_ends_at_the_first_loss(data):
    result, sim, s = record_from_sim("alpaca", data, sim=SimOptions(rate=200, drop_every=5),
                                     options=fast(duration=10, max_retries=0),
                                     symbols=["FAKEPACA"])
    assert result.status == "failed" and "gave up after 0 retries" in result.error
    assert len(sim.sent) == 1


def test_max_retries_counts_consecutive_failures(data):
    result, sim, s = record_from_sim("hyperliquid", data, sim=SimOptions(rate=200, drop_every=3),
                                     options=fast(duration=10, max_retries=3),
                                     symbols=["BTC"])
    assert result.status == "failed" and "gave up after 3 retries" in result.error
    assert len(sim.sent) == 4


def test_max_frames_stores_exactly_n(data):
    result, sim, s = record_from_sim("alpaca", data, options=fast(duration=10, max_frames=37),
                                     symbols=["FAKEPACA"])
    assert result.status == "complete" and result.stopped_by == "max-frames"
    assert result.frames_in == 37 and len(list(s.frames(direction="in"))) == 37


def test_watchdog_reconnects_a_silent_stream(data):
    # a connection stalls after 10 data frames (and a few acks): 15 frames need a second
    # connection, which only the watchdog opens (the timing is checked on a fake clock)
    result, sim, s = record_from_sim("alpaca", data, sim=SimOptions(rate=200, stall_after=10),
                                     options=fast(duration=60, max_frames=15, watchdog=0.3),
                                     symbols=["FAKEPACA"])
    kinds = [f.kind for f in s.frames(direction="event")]
    assert "watchdog" in kinds and result.reconnects >= 1
    assert result.stopped_by == "max-frames"


def test_hyperliquid_heartbeat_keeps_an_idle_connection(data):
    # end to end with wide margins: a keepalive every 0.15 s against an idle close after
    # 1.2 s (the keepalive's timing is checked on a fake clock below)
    result, _, s = record_from_sim("hyperliquid", data,
                                   sim=SimOptions(rate=0.01, idle_timeout=1.2),
                                   options=fast(duration=2.5, heartbeat=0.15),
                                   symbols=["BTC"])
    assert result.reconnects == 0
    assert b'{"method":"ping"}' in [f.payload for f in s.frames(direction="out")]
    assert any(f.channel == "pong" for f in s.frames(direction="in"))
    # and without it the server closes the idle connection
    result, _, s = record_from_sim("hyperliquid", data,
                                   sim=SimOptions(rate=0.01, idle_timeout=0.4),
                                   options=fast(duration=2.5, heartbeat=0), symbols=["BTC"])
    assert result.reconnects >= 1


def test_server_pings_are_recorded_as_events(data):
    result, _, s = record_from_sim("flow", data, sim=SimOptions(rate=50, ping_interval=0.2),
                                   options=fast(duration=1.0))
    assert any(f.kind == "ping" for f in s.frames(direction="event"))


def test_alpaca_msgpack_feed(data):
    result, sim, s = record_from_sim("alpaca", data, params={"feed": "opra"},
                                     options=fast(duration=1.0), symbols=["AAPL240119C00190000"])
    assert result.status == "complete"
    frames = list(s.frames(direction="in"))
    assert all(f.kind == "binary" for f in frames)
    assert_recorded_what_was_sent(s, sim)
    assert any(f.channel == "trades" and f.symbol == "AAPL240119C00190000" for f in frames)
    assert s.manifest["args"]["binary"] == "msgpack"


def test_flow_fans_out_over_connections(data):
    symbols = [f"A.{i:x}.Token.Deposited" for i in range(25)]
    result, sim, s = record_from_sim("flow", data, channels=["events"], symbols=symbols,
                                     options=fast(duration=1.0), sim=SimOptions(rate=20))
    assert result.status == "complete"
    by_conn = inbound_by_conn(s)
    assert sorted(by_conn) == [0, 1] and len(sim.received) == 2
    connections = s.manifest["connections"]
    assert sorted(c["conn"] for c in connections) == [0, 1]  # numbered as they opened
    assert sorted(c["stream"] for c in connections) == ["shard-0", "shard-1"]
    assert sorted(len(v) for v in sim.received.values()) == [5, 20]


def test_secrets_never_reach_the_disk(data):
    env = {"APCA_API_KEY_ID": "AKIDVERYSECRET", "APCA_API_SECRET_KEY": "SECRETSECRETSECRET"}
    result, sim, s = record_from_sim("alpaca", data, env=env, options=fast(duration=0.5),
                                     symbols=["FAKEPACA"])
    assert result.status == "complete"
    assert b"AKIDVERYSECRET" in sim.received[0][0]  # it was sent ...
    blob = all_bytes_under(data)
    assert b"AKIDVERYSECRET" not in blob and b"SECRETSECRETSECRET" not in blob  # ... not kept
    token = "eyJhbGciOi.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJlc2VjcmV0"
    result, sim, s = record_from_sim("dfuse", data, env={"DFUSE_API_TOKEN": token},
                                     options=fast(duration=0.5), symbols=["eosio.token"])
    assert result.status == "complete"
    assert token.encode() not in all_bytes_under(data)
    assert "token=***" in s.manifest["connections"][0]["url"]


def test_record_url_from_a_plain_server(data):
    import asyncio

    from websockets.asyncio.server import serve

    import wsrec
    from wsrec.record.recorder import Recorder
    from wsrec.venues import Request, get_venue

    sent = [b"hello", b"\x00\xffbinary", "ünïcode text"]

    async def handler(ws):
        first = await ws.recv()
        await ws.send(first)  # echo what the recorder sent on connect
        for m in sent:
            await ws.send(m)
        await asyncio.sleep(0.2)
        # fragmented message: reassembled into one frame
        await ws.send(iter([b"frag", b"ment", b"ed"]))
        await ws.wait_closed()

    async def main():
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            request = Request(url=f"ws://127.0.0.1:{port}/feed",
                              params={"send": ['{"op":"subscribe"}']})
            rec = Recorder(get_venue("url"), request, data=data, name="local",
                           options=RecordOptions(duration=60, max_frames=5))
            return await rec.run()

    result = asyncio.run(main())
    assert result.status == "complete" and result.venue == "local"
    assert result.stopped_by == "max-frames"
    frames = list(wsrec.open_session("local", data=data).frames(direction="in"))
    assert [f.payload for f in frames] == [b'{"op":"subscribe"}', b"hello", b"\x00\xffbinary",
                                           "ünïcode text".encode(), b"fragmented"]
    assert [f.kind for f in frames] == ["text", "binary", "binary", "text", "binary"]


# -- stops are exact: --duration and --max-frames under a flood ---------------------------



class RawFloodServer:
    """A minimal WebSocket server on 127.0.0.1 in its own thread and event loop: it
    answers the upgrade, then sends small text frames as fast as the socket takes them,
    and never reads again (so it never answers a close frame)."""

    def __init__(self):
        self.url = None
        self.loop = None
        self.stopping = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    @staticmethod
    def frame(payload: bytes) -> bytes:
        assert len(payload) < 126
        return bytes([0x81, len(payload)]) + payload

    async def _handle(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            key = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", head).group(1)
            accept = accept_key(key.decode()).encode()
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            i = 0
            while True:
                writer.write(b"".join(self.frame(b'{"channel":"flood","i":%d}' % (i + k))
                                      for k in range(256)))
                i += 256
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()

    async def _main(self):
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = "ws://127.0.0.1:%d/flood" % server.sockets[0].getsockname()[1]
        self.ready.set()
        async with server:
            await self.stopping.wait()

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(30)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(30)


def _record_url(url, data, options, **kw):
    import asyncio

    from wsrec.record.recorder import Recorder
    from wsrec.venues import Request, get_venue

    rec = Recorder(get_venue("url"), Request(url=url), data=data, name="flood",
                   options=options, **kw)
    return asyncio.run(asyncio.wait_for(rec.run(), 60))


def _record_sim_thread(venue, data, sim, options, **request):
    """Record ``venue`` from its simulator served from another thread (a separate
    server, as ``record(..., sim=...)`` does)."""
    import asyncio

    from wsrec.record.recorder import Recorder
    from wsrec.sim import SimThread, get_simulator
    from wsrec.venues import Request, get_venue

    with SimThread(get_simulator(venue, sim)) as server:
        rec = Recorder(get_venue(venue), Request(url=server.url, env=server.simulator.credentials(),
                                                 **request),
                       data=data, options=options)
        result = asyncio.run(asyncio.wait_for(rec.run(), 60))
    return result, server.simulator


def _stop_facts(result):
    """(first open ts, last inbound ts, open events, close events, session)."""
    import wsrec
    s = wsrec.open_session(result.path)
    events = list(s.frames(direction="event"))
    opens = [f for f in events if f.kind == "open"]
    closes = [f for f in events if f.kind == "close"]
    last_in = max(f.ts for f in s.frames(direction="in"))
    return opens[0].ts, last_in, opens, closes, s


def _assert_every_connection_closed(opens, closes, s):
    assert sorted(f.conn for f in closes) == sorted(f.conn for f in opens)  # one each
    assert s.manifest["connections"] and all(c["closed"] for c in s.manifest["connections"])
    assert s.status == "complete"


@pytest.mark.parametrize("rate", [20_000, 1e9])
def test_duration_is_exact_under_a_flooding_simulator(rate, data):
    import time
    started = time.monotonic()
    result, sim = _record_sim_thread("hyperliquid", data, SimOptions(rate=rate),
                                     RecordOptions(duration=1.0), symbols=["BTC", "ETH"])
    wall = time.monotonic() - started
    assert result.status == "complete" and result.stopped_by == "duration"
    assert wall < 1.0 + 10
    first_open, last_in, opens, closes, s = _stop_facts(result)
    assert result.frames_in > 100
    assert last_in <= first_open + int(2.0e9)   # duration + at most 1 s
    _assert_every_connection_closed(opens, closes, s)
    # the simulator answered the close (it runs apart, so it is never starved)
    assert [json.loads(f.payload)["code"] for f in closes] == [1000]


def test_max_frames_is_exact_under_a_flooding_simulator(data):
    import time
    started = time.monotonic()
    result, sim = _record_sim_thread("hyperliquid", data, SimOptions(rate=1e9),
                                     RecordOptions(duration=60, max_frames=5000),
                                     symbols=["BTC", "ETH"])
    assert time.monotonic() - started < 30
    assert result.stopped_by == "max-frames" and result.frames_in == 5000
    first_open, last_in, opens, closes, s = _stop_facts(result)
    assert len(list(s.frames(direction="in"))) == 5000
    _assert_every_connection_closed(opens, closes, s)
    # the close came right after the 5000th frame, not at the duration (60 s): bounded
    # by the wait for the server's close frame, plus a wide margin for a loaded machine
    from wsrec.record.recorder import CLOSE_TIMEOUT
    assert closes[-1].ts - last_in < int((CLOSE_TIMEOUT + 4.5) * 1e9)


def test_a_server_that_floods_and_never_answers_the_close(data):
    import time
    from wsrec.record.recorder import CLOSE_TIMEOUT
    with RawFloodServer() as server:
        started = time.monotonic()
        result = _record_url(server.url, data, RecordOptions(duration=1.0))
        wall = time.monotonic() - started
    assert result.status == "complete" and result.stopped_by == "duration"
    assert wall < 1.0 + 10
    first_open, last_in, opens, closes, s = _stop_facts(result)
    assert result.frames_in > 1000
    assert last_in <= first_open + int(2.0e9)
    _assert_every_connection_closed(opens, closes, s)
    info = json.loads(closes[0].payload)
    assert info["code"] == 1006 and "no close frame from the server within" in info["reason"]
    assert s.manifest["connections"][0]["code"] == 1006
    # the close was attempted: the recorder's close frame is not a stored row, but the
    # wait for the answer is bounded by CLOSE_TIMEOUT
    assert closes[0].ts - last_in < int((CLOSE_TIMEOUT + 1.5) * 1e9)


def test_max_frames_from_a_raw_flood(data):
    with RawFloodServer() as server:
        result = _record_url(server.url, data, RecordOptions(max_frames=20_000))
    assert result.stopped_by == "max-frames" and result.frames_in == 20_000
    first_open, last_in, opens, closes, s = _stop_facts(result)
    payloads = [f.payload for f in s.frames(direction="in")]
    assert len(payloads) == 20_000
    assert payloads[-1] == b'{"channel":"flood","i":19999}'  # in order, none lost
    _assert_every_connection_closed(opens, closes, s)


def test_a_cancelled_stream_still_writes_its_close(data, monkeypatch):
    """A stream still waiting for the server's close when ``run`` gives up on it is
    cancelled; its connection gets its close event all the same."""
    import time

    from wsrec.record import recorder
    monkeypatch.setattr(recorder, "CLOSE_TIMEOUT", 60.0)   # longer than STOP_GRACE
    with RawFloodServer() as server:
        started = time.monotonic()
        result = _record_url(server.url, data, RecordOptions(duration=0.5))
        wall = time.monotonic() - started
    assert wall < 0.5 + recorder.STOP_GRACE + 10
    first_open, last_in, opens, closes, s = _stop_facts(result)
    _assert_every_connection_closed(opens, closes, s)
    info = json.loads(closes[0].payload)
    assert info == {"code": 1006, "reason": "closed by wsrec: the recording ended"}


def test_record_with_sim_serves_it_from_another_thread(data, monkeypatch):
    import threading
    import time

    from wsrec.record.recorder import record
    from wsrec.sim import Simulator
    from wsrec.venues import Request, get_venue

    threads = []
    start = Simulator.start

    async def spy(self, *args, **kwargs):
        threads.append(threading.current_thread())
        return await start(self, *args, **kwargs)

    monkeypatch.setattr(Simulator, "start", spy)
    request = Request(symbols=["BTC", "ETH"])
    started = time.monotonic()
    result = record(get_venue("hyperliquid"), request, sim=SimOptions(rate=50_000),
                    data=data, options=RecordOptions(duration=1.0))
    wall = time.monotonic() - started
    assert len(threads) == 1 and threads[0] is not threading.current_thread()
    assert not threads[0].is_alive()          # stopped with the recording
    assert request.url.startswith("ws://127.0.0.1:")
    assert result.status == "complete" and result.stopped_by == "duration"
    assert wall < 1.0 + 10
    first_open, last_in, opens, closes, s = _stop_facts(result)
    assert result.frames_in > 100
    assert last_in <= first_open + int(2.0e9)
    _assert_every_connection_closed(opens, closes, s)
    assert s.manifest["connections"][0]["code"] == 1000


# -- the duration on an injectable clock ------------------------------------------------

def _slow_server(frames):
    """A websockets handler: ``frames`` frames 10 ms apart (None: forever), then silence."""
    import asyncio
    import itertools

    async def handler(ws):
        for i in itertools.count() if frames is None else range(frames):
            await ws.send('{"i":%d}' % i)
            await asyncio.sleep(0.01)
        await ws.wait_closed()
    return handler


def _record_with_clock(data, handler, jump_after, duration=1000.0):
    """Record a local server with a clock that jumps past the duration once
    ``jump_after`` frames are stored."""
    import asyncio
    import time

    from websockets.asyncio.server import serve

    from wsrec.record.recorder import Recorder
    from wsrec.venues import Request, get_venue

    async def main():
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            rec = None

            def clock():
                jumped = rec is not None and rec.frames_in >= jump_after
                return time.monotonic() + (2 * duration if jumped else 0.0)

            rec = Recorder(get_venue("url"), Request(url=f"ws://127.0.0.1:{port}/"),
                           data=data, name="clock", options=RecordOptions(duration=duration),
                           clock=clock)
            return await asyncio.wait_for(rec.run(), 60)

    return asyncio.run(main())


def test_duration_is_checked_between_messages(data):
    result = _record_with_clock(data, _slow_server(None), jump_after=10)
    assert result.stopped_by == "duration" and result.frames_in == 10
    first_open, last_in, opens, closes, s = _stop_facts(result)
    assert [f.payload for f in s.frames(direction="in")] == [b'{"i":%d}' % i
                                                            for i in range(10)]
    _assert_every_connection_closed(opens, closes, s)
    assert json.loads(closes[0].payload)["code"] == 1000


def test_duration_timer_fires_without_traffic(data):
    result = _record_with_clock(data, _slow_server(3), jump_after=3)
    assert result.stopped_by == "duration" and result.frames_in == 3
    assert result.seconds < 10   # not the 1000 s of real time
    first_open, last_in, opens, closes, s = _stop_facts(result)
    _assert_every_connection_closed(opens, closes, s)


# -- simulators yield while they catch up --------------------------------------------------

def test_simulator_catch_up_yields_to_its_loop():
    import asyncio

    from wsrec.sim import get_simulator
    from wsrec.sim.base import YIELD_EVERY

    class NeverBlocks:
        async def send(self, message):
            pass

    async def main():
        sim = get_simulator("hyperliquid", SimOptions(rate=1e9))
        sim.loop_started = asyncio.get_running_loop().time()
        turns = 0

        async def other():
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(other())
        await asyncio.sleep(0)
        base = turns
        async for i in sim.ticks():   # always behind at this rate: never sleeps
            if i >= 50 * YIELD_EVERY:
                break
        assert turns - base >= 49
        base = turns
        state = {"data": 0, "cid": 0}
        sim.sent[0] = []
        for _ in range(50 * YIELD_EVERY):   # sends that never block
            await sim.emit(NeverBlocks(), state, b"{}")
        assert turns - base >= 49
        task.cancel()

    asyncio.run(main())


def _data_frames(session, **filters):
    return [(f.seq, f.payload) for f in session.frames(direction="in", **filters)]


def test_symbols_select_on_replay_what_they_selected_on_record(data):
    """dfuse: one request per account; replaying --symbols ACCOUNT gives that request's
    frames (traces, progress, listening), as recording --symbols ACCOUNT would."""
    _, _, session = record_from_sim("dfuse", data, symbols=["eosio.token", "alice"],
                                    options=RecordOptions(duration=1.0))
    by_request: dict = {}
    for f in session.frames(direction="in"):
        req = json.loads(f.payload).get("req_id")
        by_request.setdefault(req, []).append((f.seq, f.payload))
    alice = _data_frames(session, symbols="alice")
    assert alice and alice == by_request["r1"]
    assert _data_frames(session, symbols="eosio.token") == by_request["r0"]


def test_flow_event_type_symbols(data):
    _, _, session = record_from_sim(
        "flow", data, channels=["events", "block_digests"],
        symbols=["A.1654653399040a61.FlowToken.TokensDeposited", "flow.AccountCreated"],
        options=RecordOptions(duration=1.0))
    subs: dict = {}
    for f in session.frames(direction="in"):
        if f.channel in ("events", "block_digests"):
            subs.setdefault(json.loads(f.payload)["subscription_id"], []).append(
                (f.seq, f.payload))
    [deposits] = [v for k, v in subs.items() if k.startswith("s0")]
    assert _data_frames(session, symbols="A.1654653399040a61.FlowToken.TokensDeposited",
                        channels="events") == deposits
    assert not any(f.symbols for f in session.frames(channels="block_digests"))


# -- close causes, recorded as they were ---------------------------------------------------

def _serve_and_record(handler, data, options, url_path="/", name="causes", **kw):
    """Record ``record url`` from a websockets server running ``handler``."""
    import asyncio

    from websockets.asyncio.server import serve

    from wsrec.record.recorder import Recorder
    from wsrec.venues import Request, get_venue

    async def main():
        async with serve(handler, "127.0.0.1", 0, max_size=None, **kw) as server:
            port = server.sockets[0].getsockname()[1]
            rec = Recorder(get_venue("url"), Request(url=f"ws://127.0.0.1:{port}{url_path}"),
                           data=data, name=name, options=options)
            return await asyncio.wait_for(rec.run(), 60)
    return asyncio.run(main())


def _closes(session):
    return [json.loads(f.payload) for f in session.frames(direction="event")
            if f.kind == "close"]


def test_a_message_too_big_is_recorded_as_1009(data):
    import wsrec

    async def handler(ws):
        await ws.send("small")
        await ws.send("x" * 5000)
        await ws.wait_closed()

    result = _serve_and_record(handler, data, fast(duration=10, max_message_size=1024,
                                                    max_retries=0))
    s = wsrec.open_session(result.path)
    reason = "closed by wsrec (message too big): frame exceeds limit of 1024 bytes"
    assert _closes(s) == [{"code": 1009, "reason": reason}]
    assert s.manifest["connections"][0]["code"] == 1009
    assert [f.payload for f in s.frames(direction="in")] == [b"small"]
    assert result.status == "failed"
    assert result.error == f"url: gave up after 0 retries: connection closed (code 1009, {reason})"


def test_a_protocol_error_is_recorded_as_1002(data):
    import wsrec
    with _RawServer(b"\x81\x05hello\xc1\x02hi") as server:
        result = _record_url(server.url, data, fast(duration=10, max_retries=0))
    s = wsrec.open_session(result.path)
    assert _closes(s) == [{"code": 1002,
                           "reason": "closed by wsrec (protocol error): reserved bits must be 0"}]
    assert [f.payload for f in s.frames(direction="in")] == [b"hello"]
    assert "code 1002, closed by wsrec (protocol error)" in result.error


def test_a_connection_lost_without_close_is_1006(data):
    import wsrec

    async def handler(ws):
        await ws.send("one")
        ws.transport.abort()

    result = _serve_and_record(handler, data, fast(duration=10, max_retries=0))
    s = wsrec.open_session(result.path)
    [close] = _closes(s)
    assert close["code"] == 1006 and close["reason"]
    assert "code 1006" in result.error


def test_connect_failures_name_their_cause(data):
    import socket

    import wsrec
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()   # nothing listens there now
    result = _record_url(f"ws://127.0.0.1:{port}/", data, fast(duration=10, max_retries=0))
    assert result.error == (f"url: gave up after 0 retries: cannot connect to "
                            f"127.0.0.1:{port}: connection refused")
    errors = [json.loads(f.payload)["error"] for f in
              wsrec.open_session(result.path).frames(direction="event") if f.kind == "error"]
    assert errors == [f"cannot connect to 127.0.0.1:{port}: connection refused"]


def test_wss_to_a_plain_server_names_tls(data):
    import asyncio

    from websockets.asyncio.server import serve

    from wsrec.record.recorder import Recorder
    from wsrec.venues import Request, get_venue

    async def main():
        async with serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            rec = Recorder(get_venue("url"), Request(url=f"wss://127.0.0.1:{port}/"),
                           data=data, name="tls", options=fast(duration=10, max_retries=0))
            return await asyncio.wait_for(rec.run(), 60)
    result = asyncio.run(main())
    assert result.status == "failed" and "TLS handshake failed" in result.error
    assert result.error.endswith("(is the server plain ws://?)")


def test_all_connections_ended_names_the_last_cause(data, monkeypatch):
    from wsrec.record import recorder

    async def broken(*args, **kwargs):
        raise RuntimeError("the resolver exploded")
    monkeypatch.setattr(recorder, "connect", broken)
    result = _record_url("ws://127.0.0.1:9/", data, fast(duration=10))
    assert result.status == "failed"
    assert result.error == "all connections ended: RuntimeError: the resolver exploded"


@pytest.mark.parametrize("url,problem", [
    ("ws://127.0.0.1:99999/", "invalid port 99999"),
    ("ws://[::1/", "unbalanced '['"),
    ("ws://127.0.0.1:0/", "invalid port 0"),
    ("ws://h/#x", "no #fragment"),
])
def test_an_invalid_url_is_a_usage_error_before_anything_exists(url, problem, data):
    import asyncio

    from wsrec.record.recorder import Recorder
    from wsrec.venues import Request, UsageError, get_venue
    with pytest.raises(UsageError, match=re.escape(problem)):
        Recorder(get_venue("url"), Request(url=url), data=data)
    for venue in ("hyperliquid", "vega"):   # --url of any venue
        with pytest.raises(UsageError, match=re.escape(problem)):
            asyncio.run(Recorder(get_venue(venue), Request(url=url, symbols=["BTC"]),
                                 data=data).run())
    assert not data.exists()


class _RawServer:
    """A WebSocket server on 127.0.0.1 (its own thread) that answers the upgrade, writes
    ``reply`` (raw frames) and then reads until the client goes."""

    def __init__(self, reply):
        self.reply = reply
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _handle(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            key = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", head).group(1)
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                         + accept_key(key.decode()).encode() + b"\r\n\r\n" + self.reply)
            while await reader.read(1 << 16):
                pass
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()

    async def _main(self):
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = "ws://127.0.0.1:%d/raw" % server.sockets[0].getsockname()[1]
        self.ready.set()
        async with server:
            await self.stopping.wait()

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(30)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(30)


# -- keepalives and server pings never hold the stop up ------------------------------------

class PingFloodServer:
    """A WebSocket server on 127.0.0.1 (its own thread) that sends pings as fast as the
    socket takes them, with a small text frame every ``data_every`` pings; it reads what
    the client sends and, if ``answer_close``, answers its close frame."""

    def __init__(self, answer_close=True, data_every=64):
        self.answer_close = answer_close
        self.data_every = data_every
        self.pings = 0
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _read(self, reader, writer, closing):
        while True:
            b0, b1 = await reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(await reader.readexactly(2), "big")
            elif n == 127:
                n = int.from_bytes(await reader.readexactly(8), "big")
            mask = await reader.readexactly(4)
            data = await reader.readexactly(n)
            if b0 & 0x0F == 8:   # close
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
                if self.answer_close:
                    writer.write(bytes([0x88, len(payload)]) + payload)
                closing.set()
                return

    async def _handle(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            key = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", head).group(1)
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                         + accept_key(key.decode()).encode() + b"\r\n\r\n")
            closing = asyncio.Event()
            reading = asyncio.create_task(self._read(reader, writer, closing))
            i = 0
            while not closing.is_set() and not writer.is_closing():
                chunk = []
                for k in range(i, i + 256):
                    chunk.append(b"\x89\x04" + k.to_bytes(4, "big"))
                    if k % self.data_every == 0:
                        text = b'{"i":%d}' % k
                        chunk.append(bytes([0x81, len(text)]) + text)
                self.pings += 256
                i += 256
                writer.write(b"".join(chunk))
                await writer.drain()
            if self.answer_close:
                await asyncio.sleep(0.2)
            else:
                await asyncio.sleep(30)   # never closes: the client must cut it
            reading.cancel()
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()

    async def _main(self):
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = "ws://127.0.0.1:%d/pings" % server.sockets[0].getsockname()[1]
        self.ready.set()
        async with server:
            await self.stopping.wait()

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(30)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(30)


@pytest.mark.parametrize("answer_close", [True, False])
def test_a_ping_flood_stores_counted_rows_and_never_delays_the_stop(answer_close, data):
    import time

    from wsrec.record.recorder import CLOSE_TIMEOUT
    with PingFloodServer(answer_close) as server:
        started = time.monotonic()
        result = _record_url(server.url, data, RecordOptions(duration=1.5))
        wall = time.monotonic() - started
    assert result.status == "complete" and result.stopped_by == "duration"
    assert wall < 1.5 + CLOSE_TIMEOUT + 10
    first_open, last_in, opens, closes, s = _stop_facts(result)
    _assert_every_connection_closed(opens, closes, s)
    open_ns, close_ns = opens[0].mono_ns, closes[0].mono_ns
    assert close_ns - open_ns < (1.5 + CLOSE_TIMEOUT + 4) * 1e9   # bounded however it floods
    events = list(s.frames(direction="event"))
    pings = [f for f in events if f.kind == "ping"]
    counts = [json.loads(f.payload)["count"] for f in pings]
    # at most one row a second per connection (and the last one, written at the close)
    assert 1 <= len(pings) <= (close_ns - open_ns) / 1e9 + 2
    assert all(c >= 1 for c in counts) and sum(counts) > 1000 > len(pings)
    assert sum(counts) <= server.pings
    starts = [f.mono_ns for f in pings[:-1]]
    assert all(b - a >= 1e9 for a, b in zip(starts, starts[1:]))
    assert events[-1].kind == "close" and events[-2].kind == "ping"   # final counter
    assert all(len(json.loads(f.payload)["data"]) == 8 for f in pings)
    assert result.frames_in > 10   # the data between the pings is recorded


def test_server_pings_count_exactly(data):
    """Every ping the recorder answered is counted in exactly one row."""
    import asyncio

    async def handler(ws):
        for i in range(40):
            await ws.ping(b"%d" % i)
            await asyncio.sleep(0.02)
        await ws.send("done")
        await ws.wait_closed()

    import wsrec
    # stopped by the "done" frame after the pings, not by a time (the rows' timing is
    # checked on a fake clock below)
    result = _serve_and_record(handler, data,
                               RecordOptions(duration=60, max_frames=1, heartbeat=0))
    assert result.stopped_by == "max-frames"
    events = list(wsrec.open_session(result.path).frames(direction="event"))
    pings = [json.loads(f.payload) for f in events if f.kind == "ping"]
    assert sum(p["count"] for p in pings) == 40
    span = (events[-1].mono_ns - events[0].mono_ns) / 1e9
    assert 2 <= len(pings) <= span + 2   # at most one a second, and the last at the close
    assert pings[0] == {"count": 1, "data": b"0".hex()}


def test_heartbeat_never_delays_the_stop(data):
    import time
    started = time.monotonic()
    result, sim, s = record_from_sim("hyperliquid", data, sim=SimOptions(rate=20),
                                     options=fast(duration=1.0, heartbeat=0.1),
                                     symbols=["BTC"])
    wall = time.monotonic() - started
    assert result.status == "complete" and result.stopped_by == "duration"
    assert wall < 1.0 + 10
    pings = [f for f in s.frames(direction="out") if f.payload == b'{"method":"ping"}']
    events = list(s.frames(direction="event"))
    span = events[-1].mono_ns - events[0].mono_ns
    assert 1 <= len(pings) <= span / 0.1e9 + 1   # never more often than the interval
    from wsrec.record.recorder import CLOSE_TIMEOUT
    assert span < (1.0 + CLOSE_TIMEOUT + 4) * 1e9   # the stop is not held up


@pytest.mark.parametrize("options,message", [
    (dict(heartbeat=0.001), "heartbeat must be 0 (off) or at least 0.1"),
    (dict(heartbeat=float("nan")), "heartbeat must be a finite number"),
    (dict(duration=float("inf")), "duration must be a finite number"),
    (dict(duration=0), "duration must be a finite number > 0"),
    (dict(backoff_initial=-1), "backoff_initial"),
    (dict(flush_interval=float("inf")), "flush_interval"),
])
def test_options_no_recording_can_honour(options, message, data):
    from wsrec.record.recorder import Recorder
    from wsrec.venues import Request, UsageError, get_venue
    with pytest.raises(UsageError, match=re.escape(message)):
        Recorder(get_venue("url"), Request(url="ws://127.0.0.1:9/"), data=data,
                 options=RecordOptions(**options))
    assert not data.exists()


# -- SIGHUP --------------------------------------------------------------------------------

def test_sighup_is_ignored_and_never_leaves_a_crashed_session(data):
    import os
    import signal
    import subprocess
    import sys
    import time

    import wsrec
    from wsrec.record.recorder import SIGHUP_MESSAGE
    env = {**os.environ, "WSREC_DATA": str(data)}
    proc = subprocess.Popen([sys.executable, "-m", "wsrec", "record", "flow", "--sim",
                             "--sim-rate", "50", "--quiet"], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(data.glob("flow/*/session.json")):
            time.sleep(0.01)
        proc.send_signal(signal.SIGHUP)   # as soon as the session exists
        while time.monotonic() < deadline:  # then while frames are being recorded
            journals = list(data.glob("flow/*/part-*.journal"))
            if journals and journals[0].stat().st_size > 2000:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGHUP)
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert proc.poll() is None, "SIGHUP ended the recording"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == 0, err
    lines = err.strip().splitlines()
    assert 1 <= lines.count(SIGHUP_MESSAGE) <= 3 and len(lines) == lines.count(SIGHUP_MESSAGE)
    s = wsrec.open_session("flow", data=data)
    assert s.status == "complete" and not s.crashed and not s.journals
    assert s.rows() > 5 and [f.kind for f in s.frames(direction="event")][-1] == "close"


def test_sighup_during_a_library_recording_is_ignored(data):
    import os
    import signal

    from wsrec.record.recorder import record
    from wsrec.venues import Request, get_venue
    before = signal.getsignal(signal.SIGHUP)
    request = Request(symbols=["BTC"])
    sent = []

    def progress(rec, final):
        if not final and not sent:
            sent.append(os.kill(os.getpid(), signal.SIGHUP))

    result = record(get_venue("hyperliquid"), request, sim=SimOptions(rate=50), data=data,
                    options=RecordOptions(duration=1.0), progress=progress)
    assert sent and result.status == "complete" and result.stopped_by == "duration"
    assert signal.getsignal(signal.SIGHUP) == before   # put back as it was


# -- record's option checks (the CLI): exit 2, nothing created ----------------------------

@pytest.mark.parametrize("args,message", [
    (["--heartbeat", "0.001"], "0.001 is too short: give 0 (off) or at least 0.1 seconds"),
    (["--heartbeat", "0.05"], "at least 0.1 seconds"),
    (["--heartbeat", "nan"], "'nan' is not a finite number"),
    (["--heartbeat", "-1"], "0<=x<=86400"),
    (["--watchdog", "inf"], "'inf' is not a finite number"),
    (["--sim-rate", "inf"], "'inf' is not a finite number"),
    (["--sim-rate", "nan"], "'nan' is not a finite number"),
    (["--sim-rate", "0"], "0.001<=x<=1000000.0"),
    (["--sim-rate", "1e7"], "0.001<=x<=1000000.0"),
    (["--max-message-size", "1023"], "1024<=x<=2147483648"),
    (["--max-message-size", str(3 << 30)], "1024<=x<=2147483648"),
    (["--duration", "0s"], "must be more than 0 and at most 10 years"),
    (["--duration", "3700d"], "must be more than 0 and at most 10 years"),
    (["--flush-interval", "0.001"], "0.01<=x<=60.0"),
    (["--flush-interval", "61"], "0.01<=x<=60.0"),
    (["--flush-interval", "nan"], "'nan' is not a finite number"),
    (["--backoff", "0"], "0<x<=86400"),
    (["--backoff", "inf"], "'inf' is not a finite number"),
    (["--backoff-max", "-5"], "0<x<=86400"),
    (["--backoff-reset", "nan"], "'nan' is not a finite number"),
])
def test_record_refuses_options_out_of_range(args, message, tmp_path):
    from click.testing import CliRunner

    from wsrec.cli.commands import cli
    data = tmp_path / "data"
    result = CliRunner().invoke(cli, ["record", "alpaca", "-s", "FAKEPACA", "--sim", *args,
                                      "--data", str(data)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not data.exists()


@pytest.mark.parametrize("url,message", [
    ("ws://[::1/", "unbalanced '['"),
    ("ws://127.0.0.1:99999/", "invalid port 99999"),
    ("wss://127.0.0.1:0/x", "invalid port 0"),
])
def test_record_url_refuses_an_invalid_url(url, message, tmp_path):
    from click.testing import CliRunner

    from wsrec.cli.commands import cli
    data = tmp_path / "data"
    result = CliRunner().invoke(cli, ["record", "url", url, "--data", str(data)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not data.exists()


def test_record_accepts_the_edges(tmp_path):
    from click.testing import CliRunner

    from wsrec.cli.commands import cli
    data = tmp_path / "data"
    result = CliRunner().invoke(cli, [
        "record", "hyperliquid", "-s", "BTC", "--sim", "--max-frames", "5", "--heartbeat",
        "0.1", "--flush-interval", "0.01", "--sim-rate", "1e6", "--max-message-size", "1024",
        "--backoff", "0.001", "--duration", "30s", "--data", str(data), "-q"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, [
        "record", "hyperliquid", "-s", "BTC", "--sim", "--max-frames", "5", "--heartbeat",
        "0", "--watchdog", "0", "--data", str(data), "-q"])
    assert result.exit_code == 0, result.output


# -- the timing logic on a fake clock: backoff, verdicts, rate limits, deadlines --------

class FakeTime:
    """A monotonic clock that moves only when slept on: ``clock()`` in seconds, ``ns()``,
    and ``sleep(seconds)``, a coroutine that moves it (and lets other tasks run).
    ``on_sleep(n)`` is called after the n-th sleep (1, 2, ...). It starts at 0: rows
    stamped on it come before the rows the writer stamps on the real clock."""

    def __init__(self, now=0.0):
        self.now = now
        self.sleeps: list[float] = []
        self.on_sleep = None

    def clock(self) -> float:
        return self.now

    def ns(self) -> int:
        return round(self.now * 1e9)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)
        if self.on_sleep:
            self.on_sleep(len(self.sleeps))


class FakeConnection:
    """What a slot uses of a connection; ``drop_after`` (seconds on ``fake``) closes it
    with 1006, as a lost connection does."""

    def __init__(self, fake=None, drop_after=None):
        self.is_open = True
        self.sent: list[bytes] = []
        self.pings = 0
        self.aborted = False
        self.closed = asyncio.get_running_loop().create_future()
        if drop_after is not None:
            asyncio.ensure_future(self._drop(fake, drop_after))

    async def _drop(self, fake, seconds):
        await fake.sleep(seconds)
        self.lost(1006, "")

    def lost(self, code, reason):
        self.is_open = False
        if not self.closed.done():
            self.closed.set_result((code, reason))

    def send(self, message, text=True):
        self.sent.append(message)

    def ping(self, data=b""):
        self.pings += 1

    def close(self, code=1000, reason=""):
        self.lost(code, reason)

    def abort(self):
        self.aborted = True
        self.lost(1006, "")


class StubStream:
    """A stream with a heartbeat message and nothing to say on open."""
    url = "ws://127.0.0.1:9/"
    headers = None
    text_out = True

    def __init__(self, heartbeat=b'{"hb":1}'):
        self._heartbeat = heartbeat

    def heartbeat(self):
        return self._heartbeat

    def opening(self):
        return []

    def reset(self):
        pass

    def receive(self, payload, text):
        return (), (), None


def _fake_recorder(data, fake, **options):
    import random

    from wsrec.record.recorder import Recorder
    from wsrec.venues import Request, get_venue
    options.setdefault("heartbeat", 0)
    options.setdefault("watchdog", 0)
    return Recorder(get_venue("url"), Request(url="ws://127.0.0.1:9/"), data=data,
                    name="fake", options=RecordOptions(**options), clock=fake.clock,
                    mono_ns=fake.ns, sleep=fake.sleep, rng=random.Random(7))


def _slot(rec, stream=None, **kw):
    from wsrec.record.recorder import _Slot
    return _Slot(rec, "main", stream or StubStream(), rec.options, **kw)


class Bounds:
    """An rng whose ``uniform`` returns its upper bound."""
    def uniform(self, low, high):
        assert low == 0
        return high


def test_backoff_delay_is_full_jitter_under_a_capped_exponential():
    import random

    from wsrec.record.recorder import backoff_delay
    assert [backoff_delay(n, 0.5, 30.0, Bounds()) for n in range(1, 9)] == \
        [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    rng = random.Random(3)
    for n in range(1, 50):
        assert 0 <= backoff_delay(n, 0.5, 30.0, rng) <= min(30.0, 0.5 * 2 ** (n - 1))
    a, b = random.Random(9), random.Random(9)
    assert backoff_delay(4, 0.5, 30.0, a) == backoff_delay(4, 0.5, 30.0, b)   # rng decides


@pytest.mark.parametrize("status,verdict", [
    (401, "v: HTTP x: the server refused the credentials"),
    (403, "v: HTTP x: the server refused the credentials"),
    (400, "v: HTTP x: the endpoint refused this request"),
    (404, "v: HTTP x: the endpoint refused this request"),
    (429, None), (500, None), (503, None), (None, None),
])
def test_handshake_verdict(status, verdict):
    from wsrec.record.recorder import handshake_verdict
    assert handshake_verdict("v", "HTTP x", status) == verdict


def test_rate_limit_is_a_sliding_window():
    from wsrec.record.recorder import _RateLimit
    limit = _RateLimit((2, 1.0))
    assert [limit.take(t) for t in (0.0, 0.1)] == [0.0, 0.0]
    assert limit.take(0.2) == pytest.approx(0.8)     # until the first use is 1 s old
    assert limit.take(1.0) == 0.0                    # it is: a place again
    assert limit.take(1.05) == pytest.approx(0.05)   # the one at 0.1 leaves at 1.1
    assert _RateLimit(None).take(0.0) == 0.0 and _RateLimit(None).take(0.0) == 0.0


def test_rate_limit_waits_on_its_clock():
    from wsrec.record.recorder import _RateLimit
    fake = FakeTime(0.0)
    limit = _RateLimit((2, 1.0), clock=fake.clock, sleep=fake.sleep)
    uses = []

    async def main():
        for _ in range(5):
            await limit.wait()
            uses.append(fake.now)

    asyncio.run(main())
    assert uses == [0.0, 0.0, 1.0, 1.0, 2.0] and fake.sleeps == [1.0, 1.0]
    unlimited = _RateLimit(None, clock=fake.clock, sleep=fake.sleep)
    asyncio.run(unlimited.wait())
    assert fake.sleeps == [1.0, 1.0]


def test_retries_back_off_then_give_up(data, monkeypatch):
    """Connection failures are retried after ``backoff_delay`` (drawn from the recorder's
    rng), on the recorder's sleep, until ``max_retries`` is used up."""
    import random

    import wsrec
    from wsrec.errors import ConnectError
    from wsrec.record import recorder
    from wsrec.record.recorder import backoff_delay

    async def refused(*args, **kwargs):
        raise ConnectError("connection refused")

    monkeypatch.setattr(recorder, "connect", refused)
    fake = FakeTime()
    rec = _fake_recorder(data, fake, max_retries=3, backoff_initial=0.5, backoff_max=1.5)
    result = asyncio.run(rec.run())
    assert result.status == "failed"
    assert result.error == "url: gave up after 3 retries: connection refused"
    rng = random.Random(7)
    expected = [backoff_delay(n, 0.5, 1.5, rng) for n in (1, 2, 3)]
    assert fake.sleeps == expected and result.reconnects == 3
    events = [json.loads(f.payload) | {"kind": f.kind}
              for f in wsrec.open_session(result.path).frames(direction="event")]
    assert [e["kind"] for e in events] == ["error", "reconnect"] * 3 + ["error"]
    assert [e["attempt"] for e in events if e["kind"] == "reconnect"] == [1, 2, 3]
    assert [e["delay_s"] for e in events if e["kind"] == "reconnect"] == \
        [round(d, 3) for d in expected]


@pytest.mark.parametrize("status,retried", [(401, False), (404, False), (503, True)])
def test_a_rejected_handshake_fails_or_is_retried(status, retried, data, monkeypatch):
    from wsrec.errors import HandshakeRejected
    from wsrec.record import recorder

    async def rejected(*args, **kwargs):
        raise HandshakeRejected(status, b"go away")

    monkeypatch.setattr(recorder, "connect", rejected)
    fake = FakeTime()
    result = asyncio.run(_fake_recorder(data, fake, max_retries=1).run())
    assert result.status == "failed" and f"HTTP {status}" in result.error
    if retried:
        assert result.reconnects == 1 and "gave up after 1 retry" in result.error
    else:
        assert result.reconnects == 0 and fake.sleeps == [] and "refused" in result.error


def test_a_connection_healthy_for_backoff_reset_starts_the_backoff_over(data, monkeypatch):
    """Consecutive failures count up; a connection that stayed up ``backoff_reset``
    seconds (on the recorder's clock) makes the next retry the first again."""
    import time

    import wsrec
    from wsrec.errors import ConnectError
    from wsrec.record import recorder

    fake = FakeTime()
    lives = [70.0, 1.0, 1.0, None, 61.0, None]   # seconds up before a drop; None: refused
    rec = None

    async def scripted(url, handler, **kwargs):
        if not lives:
            rec.stop()
            raise ConnectError("that is all")
        life = lives.pop(0)
        if life is None:
            raise ConnectError("connection refused")
        connection = FakeConnection(fake, drop_after=life)
        handler.on_open(connection, 0, time.monotonic_ns())   # stamped as a connection does
        return connection

    monkeypatch.setattr(recorder, "connect", scripted)
    rec = _fake_recorder(data, fake, backoff_reset=60.0)
    result = asyncio.run(rec.run())
    assert result.status == "complete" and result.stopped_by == "signal", result.error
    attempts = [json.loads(f.payload)["attempt"] for f in
                wsrec.open_session(result.path).frames(direction="event")
                if f.kind == "reconnect"]
    assert attempts == [1, 2, 3, 4, 1, 2]


def test_duration_is_checked_on_the_recorders_clock(data):
    """Messages are stored until the clock reaches the deadline; the first one after
    it stops the recording (not stored)."""
    fake = FakeTime()
    rec = _fake_recorder(data, fake, duration=5.0)
    slot = _slot(rec)

    async def main():
        rec.deadline = fake.clock() + rec.options.duration   # as ``run`` sets it
        slot.on_open(FakeConnection(), 0, fake.ns())
        for i in range(10):
            slot.on_message(b"%d" % i, True, 0, fake.ns())
            fake.now += 1.0
    asyncio.run(main())
    rec.writer.close("complete", None)
    assert rec.frames_in == 5 and rec.stopped_by == "duration"


def test_keepalive_sends_the_heartbeat_every_interval_until_the_stop(data):
    fake = FakeTime()
    rec = _fake_recorder(data, fake)
    slot, ping_slot = _slot(rec), _slot(rec, StubStream(heartbeat=None))

    async def main():
        connection = FakeConnection()
        fake.on_sleep = lambda n: n == 4 and connection.lost(1000, "")
        await slot.keepalive(connection, 0.15)   # until the connection closes
        assert fake.sleeps == [0.15] * 4
        assert [slot.outbox.get_nowait() for _ in range(3)] == [b'{"hb":1}'] * 3
        assert slot.outbox.empty()             # not after the close
        # no heartbeat message: a WebSocket ping; never more often than MIN_HEARTBEAT
        fake.sleeps.clear()
        connection = FakeConnection()
        fake.on_sleep = lambda n: n == 3 and rec.stop()
        await ping_slot.keepalive(connection, 0.01)
        assert fake.sleeps == [0.1] * 3 and connection.pings == 2   # none after the stop
    asyncio.run(main())
    rec.writer.close("complete", None)


def test_watchdog_cuts_a_silent_connection_and_spares_a_busy_one(data):
    import wsrec
    fake = FakeTime()
    rec = _fake_recorder(data, fake)
    slot = _slot(rec)

    async def main():
        connection = FakeConnection()
        slot.on_open(connection, 0, fake.ns())

        def traffic(n):   # a message in every one of the first 20 looks, then silence
            if n <= 20:
                slot.on_message(b"{}", True, 0, fake.ns())
        fake.on_sleep = traffic
        await slot.watchdog(connection, 0.3)
        return connection

    connection = asyncio.run(main())
    assert connection.aborted and 24 <= len(fake.sleeps) <= 25
    assert set(fake.sleeps) == {0.3 / 4}       # looked at every limit / 4
    rec.writer.close("complete", None)
    events = [f for f in wsrec.open_session(rec.writer.folder).frames(direction="event")]
    silent = json.loads(events[-1].payload)["silent_s"]
    assert events[-1].kind == "watchdog" and 0.3 < silent <= 0.3 + 0.3 / 4 + 1e-3


def test_server_pings_are_written_at_most_once_a_second(data):
    import wsrec
    fake = FakeTime()
    rec = _fake_recorder(data, fake)
    slot = _slot(rec)

    async def main():
        slot.on_open(FakeConnection(), 0, fake.ns())
        for i in range(120):   # one every 20 ms
            slot.on_ping(b"%d" % i, 0, fake.ns())
            fake.now += 0.02
        slot.closed(1000, "")
    asyncio.run(main())
    rec.writer.close("complete", None)
    events = list(wsrec.open_session(rec.writer.folder).frames(direction="event"))
    counts = [json.loads(f.payload)["count"] for f in events if f.kind == "ping"]
    assert counts == [1, 50, 50, 19]
