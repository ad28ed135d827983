"""Flow's protocol logic against literal frames (no sockets)."""

import json

import pytest

from wsrec.venues import Request, UsageError, get_venue
from wsrec.venues.flow import MAX_SUBSCRIPTIONS


def streams(channels=(), symbols=(), **params):
    return get_venue("flow").streams(Request(channels=list(channels), symbols=list(symbols),
                                             params=params))


def test_default_subscription():
    [s] = streams()
    assert s.url == "wss://rest-mainnet.onflow.org/v1/ws"
    assert [json.loads(m) for m in s.opening()] == [{
        "subscription_id": "s0-block_digests", "action": "subscribe",
        "topic": "block_digests", "arguments": {"block_status": "sealed"}}]


def test_resume_from_last_height_plus_one():
    [s] = streams(start_block_height="5")
    first = json.loads(s.opening()[0])
    assert first["arguments"]["start_block_height"] == "5"
    ack = b'{"subscription_id":"s0-block_digests","action":"subscribe"}'
    assert s.receive(ack, True)[2].ready
    data = (b'{"subscription_id":"s0-block_digests","topic":"block_digests","payload":'
            b'{"block_id":"ab","height":"123456789","timestamp":"2025-01-02T10:00:00Z"}}')
    assert s.receive(data, True) == (("block_digests",), ("s0-block_digests",), None)
    again = json.loads(s.opening()[0])
    assert again["arguments"]["start_block_height"] == "123456790"


def test_events_heights_resume_too():
    [s] = streams(channels=["events"], symbols=["A.1.Tok.Deposited"])
    s.receive(b'{"subscription_id":"s0-events","topic":"events","payload":{"block_id":"x",'
              b'"block_height":"77","block_timestamp":"t","events":[],"message_index":"3"}}',
              True)
    msg = json.loads(s.opening()[0])
    assert msg["arguments"] == {"event_types": ["A.1.Tok.Deposited"],
                                "start_block_height": "78"}


def test_fan_out_over_connections_of_twenty():
    symbols = [f"A.{i}.T.E" for i in range(45)]
    conns = streams(channels=["events"], symbols=symbols)
    assert [len(c.subscriptions) for c in conns] == [MAX_SUBSCRIPTIONS, MAX_SUBSCRIPTIONS, 5]
    ids = [s["subscription_id"] for c in conns for s in c.subscriptions]
    assert len(set(ids)) == 45 and all(len(i) <= 20 for i in ids)


def test_errors():
    [s] = streams()
    for code, fatal in ((400, True), (429, True), (404, True), (500, False)):
        frame = (b'{"subscription_id":"s0-block_digests","error":{"code":%d,"message":"m"},'
                 b'"action":"subscribe"}' % code)
        ch, _, step = s.receive(frame, True)
        assert ch == ("error",) and (step.fatal is not None) == fatal


def test_usage_errors():
    with pytest.raises(UsageError, match="not both"):
        streams(start_block_id="a", start_block_height="1")
    with pytest.raises(UsageError, match="unknown parameter"):
        streams(frobnicate="1")
