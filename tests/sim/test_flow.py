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
