"""dfuse's protocol logic against literal frames (no sockets)."""

import json

import pytest

from wsrec.venues import Request, UsageError, get_venue
from wsrec.venues.dfuse import MAX_STREAMS

JWT = "eyJh.eyJi.c2ln"


def streams(channels=(), symbols=("eosio.token",), **params):
    return get_venue("dfuse").streams(Request(channels=list(channels), symbols=list(symbols),
                                              params=params, env={"DFUSE_API_TOKEN": JWT}))


def test_request_and_token():
    [s] = streams()
    assert s.url == f"wss://mainnet.eos.dfuse.io/v1/stream?token={JWT}"
    assert s.secrets() == [JWT]
    assert [json.loads(m) for m in s.opening()] == [{
        "type": "get_action_traces", "listen": True, "with_progress": 10, "req_id": "r0",
        "data": {"accounts": "eosio.token"}}]


def test_resume_from_last_progress_plus_one():
    [s] = streams()
    s.opening()
    assert s.receive(b'{"type":"listening","req_id":"r0","data":{"next_block":1}}',
                     True)[2].ready
    trace = (b'{"type":"action_trace","req_id":"r0","data":{"block_num":25,"block_id":"x",'
             b'"trx_id":"t","idx":0,"trace":{"type":"ignored"}}}')
    assert s.receive(trace, True) == (("action_trace",), ("r0",), None)
    s.receive(b'{"type":"progress","req_id":"r0","data":{"block_num":20,"block_id":"y"}}', True)
    assert json.loads(s.opening()[0])["start_block"] == 21


def test_ping_is_a_data_frame():
    [s] = streams()
    assert s.receive(b'{"type":"ping","data":"2026-11-18T11:06:40Z"}', True) == (
        ("ping",), (), None)


def test_errors():
    [s] = streams()
    step = s.receive(b'{"type":"error","data":{"code":"auth_invalid_token_error",'
                     b'"message":"bad"}}', True)[2]
    assert step.fatal and "DFUSE_API_TOKEN" in step.fatal
    step = s.receive(b'{"type":"error","req_id":"r0","data":{"code":"invalid_request",'
                     b'"message":"no"}}', True)[2]
    assert step.fatal
    step = s.receive(b'{"type":"error","req_id":"r0","data":{"code":"internal","message":""}}',
                     True)[2]
    assert step.retry


def test_fan_out_over_connections_of_twelve():
    conns = streams(symbols=[f"acct{i}" for i in range(30)])
    assert [len(c.requests) for c in conns] == [MAX_STREAMS, MAX_STREAMS, 6]


def test_usage_errors():
    with pytest.raises(UsageError, match="DFUSE_API_TOKEN"):
        get_venue("dfuse").streams(Request(symbols=["a"], env={}))
    with pytest.raises(UsageError, match="needs accounts"):
        streams(symbols=())
    with pytest.raises(UsageError, match="code=, scope=, table="):
        streams(channels=["get_table_rows"])
