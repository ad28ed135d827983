"""Flow's protocol logic against literal frames (no sockets)."""

import json

import pytest

from wsrec.venues import Request, UsageError, get_venue
from wsrec.venues.flow import MAX_SUBSCRIPTIONS, FlowServer


def streams(channels=(), symbols=(), **params):
    return get_venue("flow").streams(Request(channels=list(channels), symbols=list(symbols),
                                             params=params))


# an events message as the access node sends it: each event's payload is base64 JSON-CDC
EVENTS = (b'{"subscription_id":"s0-events","topic":"events","payload":{"block_id":"9a",'
          b'"block_height":"101","block_timestamp":"2025-01-02T10:00:00Z","events":['
          b'{"type":"A.1654653399040a61.FlowToken.TokensWithdrawn","transaction_id":"aa",'
          b'"transaction_index":"0","event_index":"0","payload":"eyJ0eXBlIjoiRXZlbnQifQ=="},'
          b'{"type":"A.1654653399040a61.FlowToken.TokensDeposited","transaction_id":"aa",'
          b'"transaction_index":"0","event_index":"1","payload":"eyJ0eXBlIjoiRXZlbnQifQ=="},'
          b'{"type":"A.1654653399040a61.FlowToken.TokensWithdrawn","transaction_id":"bb",'
          b'"transaction_index":"1","event_index":"0","payload":"eyJ0eXBlIjoiRXZlbnQifQ=="},'
          b'{"type":"flow.AccountCreated","transaction_id":"bb","transaction_index":"1",'
          b'"event_index":"1","payload":"eyJ0eXBlIjoiRXZlbnQifQ=="}],"message_index":"4"}}')


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
    assert s.receive(data, True) == (("block_digests",), (), None)
    again = json.loads(s.opening()[0])
    assert again["arguments"]["start_block_height"] == "123456790"


def test_events_heights_resume_too():
    [s] = streams(channels=["events"], symbols=["A.1.Tok.Deposited"])
    assert s.receive(b'{"subscription_id":"s0-events","topic":"events","payload":{'
                     b'"block_id":"x","block_height":"77","block_timestamp":"t","events":[],'
                     b'"message_index":"3"}}', True) == (("events",), ("A.1.Tok.Deposited",),
                                                         None)
    msg = json.loads(s.opening()[0])
    assert msg["arguments"] == {"event_types": ["A.1.Tok.Deposited"],
                                "start_block_height": "78"}
    # a message with events resumes as well
    assert s.receive(EVENTS, True)[1]
    assert json.loads(s.opening()[0])["arguments"]["start_block_height"] == "102"


def test_events_symbols_are_the_event_types():
    [s] = streams(channels=["events"])
    assert s.receive(EVENTS, True) == (("events",), (
        "A.1654653399040a61.FlowToken.TokensWithdrawn",
        "A.1654653399040a61.FlowToken.TokensDeposited", "flow.AccountCreated"), None)
    # a payload in JSON-CDC rather than base64: Cadence type names are not event types
    cdc = EVENTS.replace(b'"eyJ0eXBlIjoiRXZlbnQifQ=="', b'{"type":"Event","value":{"id":'
                         b'"A.1654653399040a61.FlowToken.TokensDeposited","fields":[{"name":'
                         b'"amount","value":{"type":"UFix64","value":"1.0"}}]}}')
    assert s.receive(cdc, True)[1] == s.receive(EVENTS, True)[1]


def test_heartbeat_is_tagged_with_the_subscription_filter():
    deposited = "A.1654653399040a61.FlowToken.TokensDeposited"
    [s] = streams(channels=["events", "account_statuses"],
                  symbols=[deposited, "flow.AccountCreated"])
    ids = [(m["subscription_id"], m["arguments"]) for m in map(json.loads, s.opening())]
    assert ids == [("s0-events", {"event_types": [deposited]}),
                   ("s1-events", {"event_types": ["flow.AccountCreated"]}),
                   ("s2-account_statuses", {"event_types": [deposited]}),
                   ("s3-account_statuses", {"event_types": ["flow.AccountCreated"]})]
    empty = (b'{"subscription_id":"s1-events","topic":"events","payload":{"block_id":"9b",'
             b'"block_height":"110","block_timestamp":"2025-01-02T10:00:09Z","events":[],'
             b'"message_index":"5"}}')
    assert s.receive(empty, True) == (("events",), ("flow.AccountCreated",), None)
    statuses = (b'{"subscription_id":"s2-account_statuses","topic":"account_statuses",'
                b'"payload":{"block_id":"9b","height":"110","account_events":{},'
                b'"message_index":"2"}}')
    assert s.receive(statuses, True) == (("account_statuses",), (deposited,), None)
    with_events = (b'{"subscription_id":"s2-account_statuses","topic":"account_statuses",'
                   b'"payload":{"block_id":"9c","height":"111","account_events":{"0xf233dcee'
                   b'88fe0abe":[{"type":"' + deposited.encode() + b'","transaction_id":"cc",'
                   b'"transaction_index":"0","event_index":"3","payload":"e30="}]},'
                   b'"message_index":"3"}}')
    assert s.receive(with_events, True)[1] == (deposited,)
    # several types in one filter (--param event_types=a,b): all of them
    [s] = streams(channels=["events"], event_types=f"{deposited},flow.AccountCreated")
    assert s.receive(empty.replace(b"s1-", b"s0-"), True)[1] == (deposited,
                                                                  "flow.AccountCreated")
    # no filter, or a subscription this stream doesn't know: none
    [s] = streams(channels=["events"])
    assert s.receive(empty.replace(b"s1-", b"s0-"), True)[1] == ()
    assert s.receive(empty, True)[1] == ()


def test_block_topics_replies_and_errors_have_no_symbols():
    [s] = streams(channels=["block_digests", "block_headers", "blocks", "events",
                            "transaction_statuses"], symbols=["flow.AccountCreated"],
                  tx_id="ab")
    s.opening()
    for frame in (
            b'{"subscription_id":"s0-block_digests","topic":"block_digests","payload":{'
            b'"block_id":"ab","height":"7","timestamp":"2025-01-02T10:00:00Z"}}',
            b'{"subscription_id":"s1-block_headers","topic":"block_headers","payload":{'
            b'"id":"ab","parent_id":"aa","height":"7","timestamp":"t",'
            b'"parent_voter_signature":"c2ln"}}',
            b'{"subscription_id":"s2-blocks","topic":"blocks","payload":{"header":{"id":"ab",'
            b'"height":"7"},"payload":{"collection_guarantees":[],"block_seals":[]}}}',
            b'{"subscription_id":"s4-transaction_statu","topic":"transaction_statuses",'
            b'"payload":{'
            b'"transaction_result":{"status":"Sealed","events":[{"type":"flow.AccountCreated"'
            b'}]},"message_index":"0"}}'):
        assert s.receive(frame, True)[1] == (), frame
    assert s.receive(b'{"subscription_id":"s3-events","action":"subscribe"}', True)[1] == ()
    assert s.receive(b'{"subscriptions":[{"subscription_id":"s3-events","topic":"events",'
                     b'"arguments":{"event_types":["flow.AccountCreated"]}}],'
                     b'"action":"list_subscriptions"}', True)[:2] == (
        ("list_subscriptions",), ())
    assert s.receive(b'{"subscription_id":"s3-events","error":{"code":500,"message":"m"},'
                     b'"action":"subscribe"}', True)[:2] == (("error",), ())


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


# -- the server side ---------------------------------------------------------------------------

def answers(s, *messages):
    for m in messages:
        s.receive(m if isinstance(m, str) else json.dumps(m))
    return [json.loads(p) for p, _ in s.take()]


SUBSCRIBE = {"subscription_id": "some-id-42", "action": "subscribe", "topic": "blocks",
             "arguments": {"block_status": "sealed", "start_block_height": "123456789"}}


def test_server_subscribe_list_and_unsubscribe():
    s = FlowServer("/v1/ws")
    assert answers(s, SUBSCRIBE) == [{"subscription_id": "some-id-42", "action": "subscribe"}]
    assert s.ready
    [generated] = answers(s, {"action": "subscribe", "topic": "events",
                              "arguments": {"event_types": ["flow.AccountCreated"]}})
    assert generated == {"subscription_id": "0", "action": "subscribe"}
    assert answers(s, '{"action":"list_subscriptions"}') == [{"subscriptions": [
        {"subscription_id": "some-id-42", "topic": "blocks",
         "arguments": {"block_status": "sealed", "start_block_height": "123456789"}},
        {"subscription_id": "0", "topic": "events",
         "arguments": {"event_types": ["flow.AccountCreated"]}}],
        "action": "list_subscriptions"}]
    assert answers(s, {"subscription_id": "0", "action": "unsubscribe"}) == [
        {"subscription_id": "0", "action": "unsubscribe"}]
    assert answers(s, {"subscription_id": "0", "action": "unsubscribe"}) == [
        {"subscription_id": "0", "error": {"code": 404, "message": "subscription not found"},
         "action": "unsubscribe"}]
    assert list(s.subs) == ["some-id-42"]


@pytest.mark.parametrize("message,code", [
    ({**SUBSCRIBE, "arguments": {"block_status": "sealed", "start_block_id": "a",
                                 "start_block_height": "1"}}, 400),
    ({**SUBSCRIBE, "arguments": {}}, 400),
    ({**SUBSCRIBE, "subscription_id": "x" * 21}, 400),
    ({**SUBSCRIBE, "topic": "nope"}, 400),
    ({**SUBSCRIBE, "arguments": {"block_status": "sealed", "color": "red"}}, 400),
])
def test_server_refusals(message, code):
    s = FlowServer()
    [reply] = answers(s, message)
    assert reply["error"]["code"] == code and not s.subs and not s.ready


def test_server_limit_and_retagged_data():
    s = FlowServer()
    answers(s, *({**SUBSCRIBE, "subscription_id": f"s{i}"} for i in range(MAX_SUBSCRIPTIONS)))
    [reply] = answers(s, {**SUBSCRIBE, "subscription_id": "one-more"})
    assert reply["error"]["code"] == 429
    data = b'{"subscription_id":"rec","topic":"blocks","payload":{"header":{"height":"7"}}}'
    out = s.render(data, True, ["blocks"], [])
    assert len(out) == MAX_SUBSCRIPTIONS
    assert json.loads(out[3][0]) == {"subscription_id": "s3", "topic": "blocks",
                                     "payload": {"header": {"height": "7"}}}
    assert s.render(data, True, ["events"], []) == []


def test_server_offering_some_topics_refuses_the_rest_with_400():
    s = FlowServer(offered=Request(channels=["block_digests", "events"],
                                   symbols=["flow.AccountCreated", "A.1.C.E"]))
    ok = {"subscription_id": "a", "action": "subscribe", "topic": "block_digests",
          "arguments": {"block_status": "sealed"}}
    assert answers(s, ok) == [{"subscription_id": "a", "action": "subscribe"}]
    events = {"subscription_id": "e", "action": "subscribe", "topic": "events",
              "arguments": {"event_types": ["A.1.C.E", "flow.AccountCreated"]}}
    assert answers(s, events) == [{"subscription_id": "e", "action": "subscribe"}]
    for sid, topic, args, message in (
            ("b", "blocks", {"block_status": "sealed"},
             "topic blocks with these arguments is not available on this server"),
            ("c", "block_digests", {"block_status": "finalized"},
             "topic block_digests with these arguments is not available on this server"),
            ("d", "block_digests", {"block_status": "sealed", "start_block_height": "5"},
             "start_block_height is not available on this server: it streams from the "
             "present"),
            ("f", "events", {"event_types": ["A.2.X.Y"]},
             "event types A.2.X.Y are not available on this server"),
            ("g", "events", {}, "event types * are not available on this server")):
        assert answers(s, {"subscription_id": sid, "action": "subscribe", "topic": topic,
                           "arguments": args}) == [
            {"subscription_id": sid, "error": {"code": 400, "message": message},
             "action": "subscribe"}]
    assert sorted(s.subs) == ["a", "e"]
