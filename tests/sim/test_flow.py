import asyncio
import json

import pytest
from websockets.exceptions import ConnectionClosed

from wsrec.sim import SimOptions

from conftest import recv_json, talk

pytestmark = pytest.mark.timeout(60)


def sub(sid, topic="block_digests", **args):
    body = {"subscription_id": sid, "action": "subscribe", "topic": topic,
            "arguments": {"block_status": "sealed", **args}}
    return json.dumps(body)


def test_subscribe_from_a_height_streams_every_height():
    async def script(ws):
        await ws.send(sub("a", start_block_height="100000000"))
        assert await recv_json(ws) == {"subscription_id": "a", "action": "subscribe"}
        return [int((await recv_json(ws))["payload"]["height"]) for _ in range(30)]
    heights = talk("flow", "/v1/ws", script, options=SimOptions(rate=100))
    assert heights == list(range(100_000_000, 100_000_030))


@pytest.mark.parametrize("message,code", [
    (sub("x" * 21), 400),
    (sub("a", start_block_height="1", start_block_id="ab"), 400),
    (json.dumps({"subscription_id": "a", "action": "subscribe", "topic": "blocks",
                 "arguments": {}}), 400),
    (sub("a", topic="nope"), 400),
    (sub("a", bogus="1"), 400),
    ("{", 400),
    (json.dumps({"subscription_id": "zz", "action": "unsubscribe"}), 404),
])
def test_rejections(message, code):
    async def script(ws):
        await ws.send(message)
        return await recv_json(ws)
    assert talk("flow", "/v1/ws", script)["error"]["code"] == code


def test_twenty_subscriptions_per_connection_and_list():
    async def script(ws):
        for i in range(21):
            await ws.send(sub(f"s{i}"))
        replies = []
        while len(replies) < 21:
            msg = await recv_json(ws)
            if "payload" not in msg:
                replies.append(msg)
        await ws.send('{"action":"list_subscriptions"}')
        while "subscriptions" not in (msg := await recv_json(ws)):
            pass
        return replies, msg
    replies, listing = talk("flow", "/v1/ws", script, options=SimOptions(rate=1))
    assert [r.get("error", {}).get("code") for r in replies] == [None] * 20 + [429]
    assert len(listing["subscriptions"]) == 20


def test_inactive_connection_is_dropped_without_close_frame():
    async def script(ws):
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        return info.value.rcvd
    assert talk("flow", "/v1/ws", script, options=SimOptions(inactivity=0.2)) is None


def test_list_subscriptions_with_their_arguments():
    async def script(ws):
        await ws.send(sub("a", start_block_height="100000000"))
        await ws.send(json.dumps({"action": "subscribe", "topic": "events",
                                  "arguments": {"event_types": ["flow.AccountCreated"]}}))
        await ws.send('{"action":"list_subscriptions"}')
        while "subscriptions" not in (reply := await recv_json(ws)):
            pass
        return reply
    assert talk("flow", "/v1/ws", script) == {"subscriptions": [
        {"subscription_id": "a", "topic": "block_digests",
         "arguments": {"block_status": "sealed", "start_block_height": "100000000"}},
        {"subscription_id": "0", "topic": "events",
         "arguments": {"event_types": ["flow.AccountCreated"]}}],
        "action": "list_subscriptions"}


T = 1_900_000_000_123_456_789   # a fake wall clock's time (2030)


def test_blocks_come_at_mainnet_pace_by_the_clock():
    from wsrec.sim import get_simulator
    from wsrec.sim.base import LATENCY_BASE, LATENCY_JITTER
    from wsrec.sim.flow import GENESIS
    from wsrec.timefmt import parse_time
    now = [T]
    flow = get_simulator("flow", clock=lambda: now[0])   # no rate: the venue's pace
    made = [flow.block_offset_ns(k) for k in range(400)]
    apart = [b - a for a, b in zip(made, made[1:])]
    assert all(800_000_000 <= d <= 1_300_000_000 for d in apart) and len(set(apart)) > 100
    assert 1.0e9 < sum(apart) / len(apart) < 1.1e9
    for k in (0, 1, 2, 57, 399):
        now[0] = T + made[k]
        assert flow.head() == GENESIS + k   # made when the clock passes its time ...
        now[0] -= 1
        assert flow.head() == GENESIS + k - 1   # ... not before
        stamp = flow.payload("block_digests", GENESIS + k, 0)["timestamp"]
        assert T + made[k] - LATENCY_BASE[1] - LATENCY_JITTER <= parse_time(stamp) \
            <= T + made[k] - LATENCY_BASE[0]
    other = get_simulator("flow", SimOptions(seed=2), clock=lambda: T)
    assert [other.block_offset_ns(k) for k in range(400)] != made   # from the seed
    assert get_simulator("flow", clock=lambda: T).block_offset_ns(57) == made[57]
    fast = get_simulator("flow", SimOptions(rate=100), clock=lambda: T)
    assert [fast.block_offset_ns(k) for k in range(3)] == [0, 10_000_000, 20_000_000]


def test_a_subscription_at_the_head_gets_each_block_when_it_is_made():
    from websockets.asyncio.client import connect

    from wsrec.sim import get_simulator
    from wsrec.sim.flow import GENESIS
    now = [T]

    async def main():
        flow = get_simulator("flow", clock=lambda: now[0])
        url = await flow.start()
        try:
            async with connect(url + "/v1/ws") as ws:
                await ws.send(sub("head"))
                assert (await recv_json(ws))["action"] == "subscribe"
                first = await recv_json(ws)
                with pytest.raises(TimeoutError):   # the next block is not made yet
                    await recv_json(ws, timeout=0.5)
                now[0] = flow.wall_started + flow.block_offset_ns(3)
                later = [await recv_json(ws) for _ in range(3)]
                await ws.send(sub("old", start_block_height=str(GENESIS - 5)))
                assert (await recv_json(ws))["action"] == "subscribe"
                backlog = [await recv_json(ws) for _ in range(9)]
                return first, later, backlog
        finally:
            await flow.close()

    first, later, backlog = asyncio.run(asyncio.wait_for(main(), 30))
    heights = [int(m["payload"]["height"]) for m in [first, *later]]
    assert heights == [GENESIS + k for k in range(4)]
    assert [int(m["payload"]["height"]) for m in backlog] == \
        [GENESIS + k for k in range(-5, 4)]   # from the start height to the head at once
