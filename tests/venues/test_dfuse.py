"""dfuse's protocol logic against literal frames (no sockets)."""

import json

import pytest

from wsrec.venues import Request, Step, UsageError, get_venue
from wsrec.venues.dfuse import MAX_STREAMS, DfuseServer, DfuseStream

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
    assert s.receive(trace, True) == (("action_trace",), (), None)
    assert s.receive(b'{"type":"progress","req_id":"r0","data":{"block_num":20,'
                     b'"block_id":"y"}}', True) == (("progress",), ("eosio.token",), None)
    assert s.progress == {"r0": 20}
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


# an action_trace as dfuse sends it (receipt, act, ..., inline_traces), for eosio.token's
# transfer notified to the recipient: act.data holds keys named "account" and "receiver"
TRACE = (b'{"type":"action_trace","req_id":"r0","data":{"block_num":25,"block_id":"0000001a",'
         b'"block_time":"2019-01-01T00:00:00.5","trx_id":"ab","idx":1,"depth":1,"trace":{'
         b'"receipt":{"receiver":"bob","act_digest":"cd","global_sequence":7,'
         b'"recv_sequence":3,"auth_sequence":[["alice",5]],"code_sequence":1,'
         b'"abi_sequence":1},'
         b'"act":{"account":"eosio.token","name":"transfer","authorization":[{"actor":"alice",'
         b'"permission":"active"}],"data":{"account":"mallory","from":"alice","to":"bob",'
         b'"quantity":"1.0000 EOS","memo":"","receipt":{"receiver":"eve"}},"hex_data":"00"},'
         b'"context_free":false,"elapsed":5,"console":"","trx_id":"ab","block_num":25,'
         b'"block_time":"2019-01-01T00:00:00.5","producer_block_id":null,'
         b'"account_ram_deltas":[],"except":null,"inline_traces":[{"receipt":{"receiver":'
         b'"carol"},"act":{"account":"other","name":"log","data":{}},"inline_traces":[]}]}}}')


def test_trace_symbols_are_account_then_receiver():
    [s] = streams(symbols=["eosio.token"])
    assert s.receive(TRACE, True) == (("action_trace",), ("eosio.token", "bob"), None)
    # the contract's own copy: account and receiver are the same, listed once
    own = TRACE.replace(b'"receiver":"bob"', b'"receiver":"eosio.token"')
    assert s.receive(own, True)[1] == ("eosio.token",)


def test_trace_symbols_whatever_the_key_order():
    [s] = streams()
    # act before receipt, "name" ahead of "account": found by parsing this frame
    frame = json.dumps({"type": "action_trace", "req_id": "r0", "data": {
        "block_num": 1, "trace": {
            "act": {"name": "transfer", "data": {"account": "mallory"},
                    "account": "eosio.token"},
            "inline_traces": [{"receipt": {"receiver": "carol"},
                               "act": {"account": "other", "name": "x", "data": {}}}],
            "receipt": {"receiver": "bob"}}}}).encode()
    assert s.receive(frame, True)[1] == ("eosio.token", "bob")
    # sorted keys put the top-level receipt after inline_traces: not taken from an inline one
    frame = json.dumps(json.loads(TRACE), sort_keys=True, separators=(",", ":")).encode()
    assert s.receive(frame, True)[1] == ("eosio.token", "bob")
    # pretty-printed
    assert s.receive(json.dumps(json.loads(TRACE), indent=2).encode(), True)[1] == (
        "eosio.token", "bob")


def test_request_frames_carry_the_request_accounts():
    conns = streams(symbols=["eosio.token", "eosio.evm|eosio"])
    [s] = conns
    s.opening()
    listening = s.receive(b'{"type":"listening","req_id":"r1","data":{"next_block":5}}', True)
    assert listening[:2] == (("listening",), ("eosio.evm", "eosio"))
    assert s.receive(b'{"type":"listening","req_id":"r0","data":{"next_block":5}}',
                     True)[1:] == (("eosio.token",), Step(ready=True))
    assert s.receive(b'{"type":"progress","req_id":"r1","data":{"block_num":30,'
                     b'"block_id":"z"}}', True)[:2] == (("progress",), ("eosio.evm", "eosio"))
    assert s.receive(b'{"type":"error","req_id":"r1","data":{"code":"internal",'
                     b'"message":""}}', True)[1] == ("eosio.evm", "eosio")
    assert s.receive(b'{"type":"unlistened","req_id":"r0","data":{"success":true}}',
                     True)[1] == ("eosio.token",)
    # a req_id this stream didn't send, or none at all
    assert s.receive(b'{"type":"progress","req_id":"zz","data":{"block_num":30}}', True)[1] == ()
    assert s.progress == {"r1": 30, "zz": 30}
    assert s.receive(b'{"type":"error","data":{"code":"internal","message":""}}',
                     True)[1] == ()


def test_table_rows_and_head_info_symbols():
    [s] = streams(channels=["get_table_rows", "get_head_info"], symbols=(),
                  code="eosio", scope="eosio", table="global")
    assert [json.loads(m)["req_id"] for m in s.opening()] == ["r0", "r1"]
    snapshot = (b'{"type":"table_snapshot","req_id":"r0","data":{"rows":[{"key":"global",'
                b'"json":{"total_ram_stake":"1"}}]}}')
    assert s.receive(snapshot, True) == (("table_snapshot",), ("eosio",), None)
    delta = (b'{"type":"table_delta","req_id":"r0","data":{"block_num":9,"dbop":{"op":"upd",'
             b'"action_idx":0,"account":"eosio","table":"global","scope":"eosio",'
             b'"key":"global","old":{"payer":"eosio","json":{"account":"x"}},'
             b'"new":{"payer":"eosio","json":{"account":"y"}}},"step":"new"}}')
    assert s.receive(delta, True) == (("table_delta",), ("eosio",), None)
    head = (b'{"type":"head_info","req_id":"r1","data":{"last_irreversible_block_num":1,'
            b'"head_block_num":331,"head_block_id":"00","head_block_time":"t",'
            b'"head_block_producer":"eosproducer1"}}')
    assert s.receive(head, True) == (("head_info",), (), None)
    # a delta of a request the stream doesn't know (an imported recording): the payload's
    assert DfuseStream("", "", []).receive(delta.replace(b'"r0"', b'"r9"'), True)[1] == ("eosio",)
    moved = json.dumps({"type": "table_delta", "req_id": "r9", "data": {"dbop": {
        "old": {"json": {"account": "x"}}, "account": "eosio.token"}}}).encode()
    assert DfuseStream("", "", []).receive(moved, True)[1] == ("eosio.token",)


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


def test_a_token_with_url_special_characters_is_quoted_and_secret():
    token = "eyJ/a+b=.c/d+e=.f/g+h=="
    [s] = get_venue("dfuse").streams(Request(symbols=["eosio.token"],
                                             env={"DFUSE_API_TOKEN": token}))
    assert s.url == ("wss://mainnet.eos.dfuse.io/v1/stream?token="
                     "eyJ%2Fa%2Bb%3D.c%2Fd%2Be%3D.f%2Fg%2Bh%3D%3D")
    assert s.secrets() == [token]
    from wsrec.secrets import Redactor
    r = Redactor(s.secrets())
    assert r.text(s.url) == "wss://mainnet.eos.dfuse.io/v1/stream?token=***"


# -- the server side ---------------------------------------------------------------------------

def answers(s, *messages):
    for m in messages:
        s.receive(m if isinstance(m, str) else json.dumps(m))
    return [json.loads(p) for p, _ in s.take()]


TRACES = {"type": "get_action_traces", "req_id": "your-request-id", "listen": True,
          "with_progress": 5, "data": {"accounts": "eosio.token|eosio"}}


def trace(account):
    return json.dumps({"type": "action_trace", "req_id": "r0", "data": {
        "block_num": 1, "trace": {"receipt": {"receiver": account},
                                  "act": {"account": account, "name": "transfer"}}}}).encode()


@pytest.mark.parametrize("path,code", [("/v1/stream", "auth_token_missing_error"),
                                       ("/v1/stream?token=nodots", "auth_invalid_token_error")])
def test_server_token(path, code):
    s = DfuseServer(path)
    s.start()
    [reply] = answers(s)
    assert reply["type"] == "error" and reply["data"]["code"] == code and s.close == (1008, code)
    ok = DfuseServer("/v1/stream?token=a.b.c")
    ok.start()
    assert answers(ok) == [] and ok.close is None
    assert DfuseServer.refuse("/v1/stream?token=x") is None and DfuseServer.refuse("/v2")


def test_server_listening_from_head_and_start_block():
    s = DfuseServer(auth=False)
    s.head = 1000
    assert answers(s, TRACES) == [{"type": "listening", "req_id": "your-request-id",
                                   "data": {"next_block": 1000}}]
    [reply] = answers(s, {**TRACES, "req_id": "b", "start_block": -10})
    assert reply["data"]["next_block"] == 990
    assert answers(s, {"type": "get_head_info", "req_id": "f", "fetch": True}) == []  # fetch only
    assert answers(s, {"type": "unlisten", "req_id": "u", "data": {"req_id": "b"}}) == [
        {"type": "unlistened", "req_id": "u", "data": {"success": True}}]
    assert sorted(s.requests) == ["f", "your-request-id"]


def test_server_sends_only_the_requests_accounts_tagged_with_its_req_id():
    s = DfuseServer(auth=False)
    answers(s, TRACES, {**TRACES, "req_id": "other", "data": {"accounts": "alice"}},
            {"type": "get_head_info", "req_id": "h", "listen": True})
    [(payload, _)] = s.render(trace("eosio"), True, ["action_trace"], ["eosio"])
    assert json.loads(payload)["req_id"] == "your-request-id"
    [(payload, _)] = s.render(trace("alice"), True, ["action_trace"], ["alice"])
    assert json.loads(payload)["req_id"] == "other"
    assert s.render(trace("bob"), True, ["action_trace"], ["bob"]) == []
    head = b'{"type":"head_info","req_id":"r9","data":{"head_block_num":1}}'
    assert [json.loads(p)["req_id"] for p, _ in s.render(head, True, ["head_info"], [])] == ["h"]


@pytest.mark.parametrize("message,code", [
    ('{"type":"get_action_traces","req_id":"r"}', "invalid_request"),
    ('{"type":"frobnicate","req_id":"r"}', "unknown_message_type"),
    ('{"type":5}', "invalid_message"),
    (b'{"type":"get_head_info"}', "invalid_message"),
])
def test_server_refusals(message, code):
    s = DfuseServer(auth=False)
    s.receive(message)
    [(payload, _)] = s.take()
    assert json.loads(payload)["data"]["code"] == code and not s.requests and s.close is None


def test_server_stream_limit():
    s = DfuseServer(auth=False)
    answers(s, *({"type": "get_head_info", "req_id": f"r{i}", "listen": True}
                 for i in range(MAX_STREAMS)))
    [reply] = answers(s, {"type": "get_head_info", "req_id": "one-more", "listen": True})
    assert reply["data"]["code"] == "ws_too_much_stream_error"


def test_server_offering_some_requests_refuses_the_rest_as_invalid_requests():
    s = DfuseServer(auth=False, offered=Request(channels=["get_action_traces"],
                                                symbols=["eosio.token", "eosio"]))
    assert answers(s, TRACES)[0]["type"] == "listening"   # both accounts are carried
    for req in ({**TRACES, "req_id": "x", "data": {"accounts": "alice"}},
                {**TRACES, "req_id": "y", "data": {"accounts": "eosio", "receivers": "bob"}},
                {"type": "get_head_info", "req_id": "h", "listen": True}):
        [reply] = answers(s, req)
        assert reply["type"] == "error" and reply["req_id"] == req["req_id"]
        assert reply["data"]["code"] == "invalid_request"
        assert reply["data"]["message"].endswith("is not available on this server")
    assert list(s.requests) == ["your-request-id"]
