"""The recording engine against each venue's simulator, on 127.0.0.1."""

import json
import re

import pytest

from wsrec.recorder import RecordOptions
from wsrec.sim import SimOptions

from conftest import (all_bytes_under, assert_recorded_what_was_sent, inbound_by_conn,
                      record_from_sim)

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
    if venue != "vega":
        assert all(f.symbols for f in data_frames)
    events = [f.kind for f in s.frames(direction="event")]
    assert events[0] == "open" and events[-1] == "close"
    assert s.status == "complete" and s.manifest["connections"][0]["code"] == 1000


@pytest.mark.parametrize("venue", sorted(CASES))
def test_reconnects_after_a_drop(venue, data):
    result, sim, s = record_from_sim(venue, data, sim=SimOptions(rate=300, drop_every=40),
                                     options=fast(duration=1.5), **CASES[venue])
    assert result.status == "complete" and result.reconnects >= 2
    assert len(sim.sent) >= 3
    assert_recorded_what_was_sent(s, sim)
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
                                     options=fast(duration=1.5))
    assert result.reconnects >= 2
    seen = heights([f.payload for f in s.frames(channels="block_digests")],
                   rb'"height":"(\d+)"')
    assert seen == list(range(seen[0], seen[0] + len(seen)))
    resumed = [json.loads(m) for cid in sorted(sim.received)[1:] for m in sim.received[cid]]
    assert all("start_block_height" in m["arguments"] for m in resumed)


def test_dfuse_resumes_from_last_progress_and_counts_redelivery(data):
    result, sim, s = record_from_sim("dfuse", data, sim=SimOptions(rate=300, drop_every=25),
                                     options=fast(duration=1.5), symbols=["eosio.token"])
    assert result.reconnects >= 2
    blocks = heights([f.payload for f in s.frames(channels="action_trace")],
                     rb'"block_num":(\d+)')
    assert sorted(set(blocks)) == list(range(min(blocks), max(blocks) + 1))  # none missing
    assert len(blocks) > len(set(blocks))  # blocks after the last progress came twice
    resumed = [json.loads(m) for cid in sorted(sim.received)[1:] for m in sim.received[cid]]
    assert all(m["start_block"] % 10 == 1 for m in resumed)  # last progress + 1
    from wsrec.info import details
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
    result, sim, s = record_from_sim("alpaca", data, sim=SimOptions(rate=200, stall_after=10),
                                     options=fast(duration=1.5, watchdog=0.3),
                                     symbols=["FAKEPACA"])
    kinds = [f.kind for f in s.frames(direction="event")]
    assert "watchdog" in kinds and result.reconnects >= 1


def test_hyperliquid_heartbeat_keeps_an_idle_connection(data):
    sim = SimOptions(rate=0.01, idle_timeout=0.4)
    result, _, s = record_from_sim("hyperliquid", data, sim=sim,
                                   options=fast(duration=1.5, heartbeat=0.15),
                                   symbols=["BTC"])
    assert result.reconnects == 0
    assert b'{"method":"ping"}' in [f.payload for f in s.frames(direction="out")]
    assert any(f.channel == "pong" for f in s.frames(direction="in"))
    # and without it the server closes the idle connection
    result, _, s = record_from_sim("hyperliquid", data, sim=sim,
                                   options=fast(duration=1.5, heartbeat=0), symbols=["BTC"])
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
    from wsrec.recorder import Recorder
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
                           options=RecordOptions(duration=0.6))
            return await rec.run()

    result = asyncio.run(main())
    assert result.status == "complete" and result.venue == "local"
    frames = list(wsrec.open_session("local", data=data).frames(direction="in"))
    assert [f.payload for f in frames] == [b'{"op":"subscribe"}', b"hello", b"\x00\xffbinary",
                                           "ünïcode text".encode(), b"fragmented"]
    assert [f.kind for f in frames] == ["text", "binary", "binary", "text", "binary"]
