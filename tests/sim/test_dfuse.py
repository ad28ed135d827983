import json

import pytest

from conftest import recv_json, talk
from wsrec.sim import SimOptions

pytestmark = pytest.mark.timeout(60)
REQ = {"type": "get_action_traces", "req_id": "r1", "listen": True, "with_progress": 5,
       "data": {"accounts": "eosio.token"}}


def test_listen_with_progress_after_the_blocks_data():
    async def script(ws):
        await ws.send(json.dumps({**REQ, "start_block": 300_000_000}))
        assert (await recv_json(ws))["type"] == "listening"
        return [await recv_json(ws) for _ in range(14)]
    msgs = talk("dfuse", "/v1/stream?token=a.b.c", script)
    kinds = [(m["type"], m["data"]["block_num"]) for m in msgs]
    assert kinds[:2] == [("action_trace", 300_000_000), ("progress", 300_000_000)]
    assert ("action_trace", 300_000_005) in kinds
    i = kinds.index(("progress", 300_000_005))
    assert kinds[i - 1] == ("action_trace", 300_000_005)


@pytest.mark.parametrize("path,code", [("/v1/stream", "auth_token_missing_error"),
                                       ("/v1/stream?token=bad", "auth_invalid_token_error"),
                                       ("/v1/stream?token=nodots", "auth_invalid_token_error")])
def test_token_check(path, code):
    async def script(ws):
        return await recv_json(ws)
    assert talk("dfuse", path, script)["data"]["code"] == code


def test_binary_and_too_many_streams_and_bad_requests():
    async def binary(ws):
        await ws.send(b"\x00")
        return await recv_json(ws)
    assert talk("dfuse", "/v1/stream?token=a.b.c", binary)["data"]["code"] == "invalid_message"

    async def many(ws):
        for i in range(13):
            await ws.send(json.dumps({**REQ, "req_id": f"r{i}"}))
        while (msg := await recv_json(ws))["type"] != "error":
            pass
        return msg
    assert talk("dfuse", "/v1/stream?token=a.b.c", many)["data"]["code"] == \
        "ws_too_much_stream_error"

    async def invalid(ws):
        await ws.send(json.dumps({**REQ, "data": {}}))
        return await recv_json(ws)
    assert talk("dfuse", "/v1/stream?token=a.b.c", invalid)["data"]["code"] == "invalid_request"


def test_traces_of_the_requested_accounts_only():
    async def script(ws):
        await ws.send(json.dumps({**REQ, "data": {"accounts": "alice|bob"}}))
        assert (await recv_json(ws))["type"] == "listening"
        return [await recv_json(ws) for _ in range(20)]
    msgs = talk("dfuse", "/v1/stream?token=a.b.c", script)
    accounts = {m["data"]["trace"]["act"]["account"] for m in msgs if m["type"] == "action_trace"}
    assert accounts == {"alice", "bob"} and {m["req_id"] for m in msgs} == {"r1"}


def test_blocks_come_every_half_second_by_the_clock():
    from wsrec.sim import get_simulator
    from wsrec.sim.dfuse import GENESIS
    from wsrec.timefmt import parse_time
    t0 = 1_795_000_000_000_000_000
    now = [t0]
    dfuse = get_simulator("dfuse", clock=lambda: now[0])   # no rate: EOSIO's pace
    assert dfuse.head() == GENESIS
    for k in (1, 2, 7200):
        now[0] = t0 + k * 500_000_000
        assert dfuse.head() == GENESIS + k   # made when the clock passes its time ...
        now[0] -= 1
        assert dfuse.head() == GENESIS + k - 1   # ... not before
    times = [parse_time(dfuse.block_time(GENESIS + k)) for k in range(40)]
    apart = [b - a for a, b in zip(times, times[1:])]   # a few ms of latency each
    assert all(490_000_000 <= d <= 510_000_000 for d in apart)
    assert times[-1] - times[0] == pytest.approx(39 * 500_000_000, abs=10_000_000)
    now[0] = t0
    fast = get_simulator("dfuse", SimOptions(rate=100), clock=lambda: now[0])
    now[0] += 50_000_000
    assert fast.head() == GENESIS + 5


def test_a_listener_gets_each_block_at_the_venue_pace():
    """With no rate the simulator streams at EOSIO's pace (a block_time clash once left
    it silent after 'listening')."""
    from wsrec.sim import SimThread, get_simulator
    from websockets.sync.client import connect
    simulator = get_simulator("dfuse")
    with SimThread(simulator):
        with connect(simulator.client_url, open_timeout=10) as ws:
            ws.send(json.dumps(REQ))
            assert json.loads(ws.recv(10))["type"] == "listening"
            first = json.loads(ws.recv(10))
            assert first["type"] == "action_trace"
