import json

import pytest

from conftest import recv_json, talk

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
