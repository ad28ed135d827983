"""Hostile clients of the replay WebSocket server, per venue.

Each case opens its own connection, plays the venue's opening (Alpaca: welcome and
auth), sends one odd message and expects the venue's own reply to it (an error in the
venue's format, or for a valid-but-odd message the venue's normal answer), then checks
that the connection is still usable: a valid subscription is acknowledged and data
follows. Messages over the size limit close that client with 1009 instead. Every server
is stopped with SIGTERM at the end: it must exit 0, with no traceback on stderr and no
line saying the catch-all guard had to answer (the emulators' own checks did).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import msgpack
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import wsrec
from wsrec.record.recorder import RecordOptions
from wsrec.sim import SimOptions

from conftest import record_from_sim

pytestmark = pytest.mark.timeout(180)

TIMEOUT = 30          # seconds for any one reply: the suite runs on a loaded 2-core machine
DEEP = "[" * 100_000 + "]" * 100_000
BIG = 2 << 20         # 2 MiB: over the default 1 MiB limit


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    data = tmp_path_factory.mktemp("faults")
    opts = RecordOptions(duration=0.8)
    record_from_sim("alpaca", data, sim=SimOptions(rate=200), symbols=["FAKEPACA", "AAPL"],
                    options=opts)
    record_from_sim("hyperliquid", data, sim=SimOptions(rate=200), symbols=["BTC", "ETH"],
                    options=opts)
    record_from_sim("vega", data, sim=SimOptions(rate=200), channels=["trades"], options=opts)
    record_from_sim("flow", data, sim=SimOptions(rate=200), options=opts)
    record_from_sim("dfuse", data, sim=SimOptions(rate=200), symbols=["eosio.token"],
                    options=opts)
    return data


class Server:
    """``wsrec replay VENUE --to ws://127.0.0.1:0`` looping forever; stderr collected."""

    def __init__(self, data, venue, *extra):
        env = {**os.environ, "WSREC_DATA": str(data)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wsrec", "replay", venue, "--to", "ws://127.0.0.1:0",
             "--speed", "4", "--loop", "0", "--max-lag", "60", *extra],
            env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        first = self.proc.stderr.readline()
        assert first.startswith("listening on "), first + self.proc.stderr.read()
        self.announced = first.split()[-1]   # with the venue's path: a client's URL as is
        self.url = "/".join(self.announced.split("/")[:3])   # without: tests add their own
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stderr),
                                       daemon=True)
        self.reader.start()

    def stop(self) -> tuple[int | str, str]:
        """SIGTERM, then the exit status and stderr (never raises: a server that does not
        stop within a minute is killed and reported as such)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            code = "killed after 60 s"
        self.reader.join(10)
        return code, "".join(self.lines)


@pytest.fixture(scope="module")
def servers(recorded):
    started: dict[str, Server] = {}

    def get(venue):
        if venue not in started:
            started[venue] = Server(recorded, venue)
        return started[venue]

    yield get
    stopped = {venue: server.stop() for venue, server in started.items()}  # all, then check
    for venue, (code, err) in stopped.items():
        assert code == 0, f"{venue}: exit {code}\n{err}"
        assert "Traceback" not in err, f"{venue}:\n{err}"
        # the emulators' checks answered every odd message: the catch-all never had to
        assert "unexpected error" not in err and "internal error" not in err, err


# -- the venues ---------------------------------------------------------------------------

def _json(message):
    return json.loads(message)


class Alpaca:
    path = "/v2/test"

    @staticmethod
    def open(ws, auth=True):
        assert _json(ws.recv(TIMEOUT)) == [{"T": "success", "msg": "connected"}]
        if auth:
            ws.send('{"action":"auth","key":"k","secret":"s"}')
            assert _json(ws.recv(TIMEOUT))[0]["msg"] == "authenticated"

    @staticmethod
    def error(code=400):
        return lambda m: _json(m) == [{"T": "error", "code": code,
                                       "msg": {400: "invalid syntax",
                                               401: "not authenticated",
                                               403: "already authenticated"}[code]}]

    @staticmethod
    def usable(ws):
        ws.send(json.dumps({"action": "subscribe", "trades": ["*"], "quotes": ["*"]}))
        ack = _json(ws.recv(TIMEOUT))[0]
        assert ack["T"] == "subscription" and "*" in ack["trades"], ack
        data = _json(ws.recv(TIMEOUT))
        assert data and data[0]["T"] in ("t", "q"), data


class Hyperliquid:
    path = "/ws"

    @staticmethod
    def open(ws):
        pass

    @staticmethod
    def error(m):
        m = _json(m)
        return m["channel"] == "error" and isinstance(m["data"], str)

    @staticmethod
    def usable(ws):
        sub = {"type": "trades", "coin": "BTC"}
        ws.send(json.dumps({"method": "subscribe", "subscription": sub}))
        assert _json(ws.recv(TIMEOUT)) == {"channel": "subscriptionResponse", "data": {
            "method": "subscribe", "subscription": sub}}
        ws.send('{"method":"ping"}')
        seen = set()
        while not {"pong", "trades"} <= seen:
            seen.add(_json(ws.recv(TIMEOUT))["channel"])


class Flow:
    path = "/v1/ws"

    @staticmethod
    def open(ws):
        pass

    @staticmethod
    def error(code=400):
        def check(m):
            m = _json(m)
            return set(m) <= {"subscription_id", "error", "action"} and \
                m["error"]["code"] == code and isinstance(m["error"]["message"], str)
        return check

    @staticmethod
    def usable(ws):
        ws.send(json.dumps({"subscription_id": "ok", "action": "subscribe",
                            "topic": "block_digests", "arguments": {"block_status": "sealed"}}))
        assert _json(ws.recv(TIMEOUT)) == {"subscription_id": "ok", "action": "subscribe"}
        data = _json(ws.recv(TIMEOUT))
        assert data["subscription_id"] == "ok" and "payload" in data, data


class Dfuse:
    path = "/v1/stream?token=a.b.c"

    @staticmethod
    def open(ws):
        pass

    @staticmethod
    def error(code):
        def check(m):
            m = _json(m)
            return m["type"] == "error" and m["data"]["code"] == code
        return check

    @staticmethod
    def usable(ws):
        ws.send(json.dumps({"type": "get_action_traces", "req_id": "ok", "listen": True,
                            "data": {"accounts": "eosio.token"}}))
        assert _json(ws.recv(TIMEOUT)) == {"type": "listening", "req_id": "ok",
                                           "data": {"next_block": 0}}
        while True:
            m = _json(ws.recv(TIMEOUT))
            if m.get("req_id") == "ok" and m["type"] in ("action_trace", "progress"):
                return


A400, A401, A403 = Alpaca.error(400), Alpaca.error(401), Alpaca.error(403)
HL = Hyperliquid.error
F400, F404 = Flow.error(400), Flow.error(404)
D_MSG, D_REQ, D_TYPE = (Dfuse.error("invalid_message"), Dfuse.error("invalid_request"),
                        Dfuse.error("unknown_message_type"))

ALPACA = [
    ("not json", "hello", A400),
    ("cut json", '{"action":', A400),
    ("array", '[{"action":"subscribe","trades":["AAPL"]}]', A400),
    ("number", "5", A400),
    ("null", "null", A400),
    ("string", '"subscribe"', A400),
    ("action number", '{"action":5}', A400),
    ("action object", '{"action":{"subscribe":true}}', A400),
    ("action null", '{"action":null}', A400),
    ("no action", '{"trades":["AAPL"]}', A400),
    ("unknown action", '{"action":"listen","trades":["AAPL"]}', A400),
    ("symbols of objects", '{"action":"subscribe","trades":[{}]}', A400),
    ("symbols a string", '{"action":"subscribe","trades":"AAPL"}', A400),
    ("symbols numbers", '{"action":"subscribe","trades":[1,2]}', A400),
    ("symbols nested", '{"action":"subscribe","trades":[["AAPL"]]}', A400),
    ("symbols null", '{"action":"subscribe","trades":null}', A400),
    ("unsubscribe object", '{"action":"unsubscribe","quotes":{"AAPL":1}}', A400),
    ("key an object", '{"action":"auth","key":{"k":1},"secret":"s"}', A400),
    ("auth twice", '{"action":"auth","key":"k","secret":"s"}', A403),
    ("deep nesting", DEEP, A400),
    ("NaN", '{"action":"subscribe","trades":NaN}', A400),
    ("5000-digit number", '{"action":' + "9" * 5000 + "}", A400),
    ("binary garbage", b"\xc1\xff\x00", A400),
    ("msgpack array", msgpack.packb([1, 2]), A400),
    ("msgpack deep", b"\x91" * 100_000 + b"\xc0", A400),
    ("msgpack int key", msgpack.packb({1: 2}), A400),
    ("msgpack bytes symbol", msgpack.packb({"action": "subscribe", "trades": [b"AAPL"]}),
     A400),
    ("huge symbol", json.dumps({"action": "subscribe", "trades": ["S" * 200_000]}),
     lambda m: _json(m)[0]["T"] == "subscription"),
]

HYPERLIQUID = [
    ("not json", "hello", HL),
    ("cut json", '{"method":', HL),
    ("array", "[]", HL),
    ("number", "5", HL),
    ("null", "null", HL),
    ("method number", '{"method":5}', HL),
    ("method null", '{"method":null}', HL),
    ("method list", '{"method":["subscribe"]}', HL),
    ("no method", '{"subscription":{"type":"trades","coin":"BTC"}}', HL),
    ("type a list", '{"method":"subscribe","subscription":{"type":["trades"]}}', HL),
    ("type an object", '{"method":"subscribe","subscription":{"type":{"a":1}}}', HL),
    ("subscription a string", '{"method":"subscribe","subscription":"trades"}', HL),
    ("no subscription", '{"method":"subscribe"}', HL),
    ("coin a list", '{"method":"subscribe","subscription":{"type":"trades","coin":["BTC"]}}',
     HL),
    ("coin an object",
     '{"method":"subscribe","subscription":{"type":"trades","coin":{"$gt":""}}}', HL),
    ("nSigFigs a string",
     '{"method":"subscribe","subscription":{"type":"l2Book","coin":"BTC","nSigFigs":"5"}}', HL),
    ("bad interval",
     '{"method":"subscribe","subscription":{"type":"candle","coin":"BTC","interval":"7m"}}', HL),
    ("extra field",
     '{"method":"subscribe","subscription":{"type":"trades","coin":"BTC","x":1}}', HL),
    ("unknown type", '{"method":"subscribe","subscription":{"type":"nope"}}', HL),
    ("unsubscribe unknown",
     '{"method":"unsubscribe","subscription":{"type":"trades","coin":"BTC"}}', HL),
    ("unknown method", '{"method":"frobnicate"}', HL),
    ("post without id", '{"method":"post","id":"x","request":{}}', HL),
    ("post with a huge id", '{"method":"post","id":' + "1" * 40 + ',"request":{}}',
     lambda m: _json(m)["channel"] == "post" and _json(m)["data"]["id"] == int("1" * 40)),
    ("deep nesting", DEEP, HL),
    ("NaN", '{"method":"subscribe","subscription":{"type":"trades","coin":NaN}}', HL),
    ("binary json", b'{"method":"ping"}', HL),
    ("binary garbage", b"\x00\xff", HL),
    ("huge coin",
     json.dumps({"method": "subscribe", "subscription": {"type": "trades",
                                                         "coin": "C" * 200_000}}),
     lambda m: _json(m)["channel"] == "subscriptionResponse"),
]

FLOW = [
    ("not json", "hello", F400),
    ("cut json", '{"action":', F400),
    ("array", "[]", F400),
    ("number", "5", F400),
    ("null", "null", F400),
    ("empty object", "{}", F400),
    ("action number", '{"action":5}', F400),
    ("unknown action", '{"action":"frobnicate"}', F400),
    ("id an object", '{"action":"subscribe","subscription_id":{}}', F400),
    ("id a number", '{"action":"subscribe","subscription_id":5,"topic":"blocks"}', F400),
    ("huge id", json.dumps({"action": "subscribe", "subscription_id": "x" * 10_000,
                            "topic": "blocks"}), F400),
    ("empty id", '{"action":"subscribe","subscription_id":"","topic":"blocks"}', F400),
    ("topic a list", '{"action":"subscribe","topic":["blocks"]}', F400),
    ("unknown topic", '{"action":"subscribe","topic":"nope"}', F400),
    ("arguments a list", '{"action":"subscribe","topic":"block_digests","arguments":[1]}',
     F400),
    ("argument an object", '{"action":"subscribe","topic":"block_digests",'
                           '"arguments":{"block_status":{"a":1}}}', F400),
    ("height a number", '{"action":"subscribe","topic":"block_digests","arguments":'
                        '{"block_status":"sealed","start_block_height":123}}', F400),
    ("unknown argument", '{"action":"subscribe","topic":"block_digests","arguments":'
                         '{"block_status":"sealed","bogus":"1"}}', F400),
    ("unknown field", '{"action":"subscribe","topic":"block_digests","extra":1}', F400),
    ("unsubscribe unknown", '{"action":"unsubscribe","subscription_id":"nope"}', F404),
    ("unsubscribe id a list", '{"action":"unsubscribe","subscription_id":[1]}', F400),
    ("deep nesting", DEEP, F400),
    ("NaN", '{"action":"subscribe","topic":NaN}', F400),
    ("binary", b'{"action":"list_subscriptions"}', F400),
    ("list", '{"action":"list_subscriptions"}',
     lambda m: _json(m) == {"subscriptions": [], "action": "list_subscriptions"}),
]

DFUSE = [
    ("not json", "hello", D_MSG),
    ("array", "[]", D_MSG),
    ("number", "5", D_MSG),
    ("null", "null", D_MSG),
    ("unlisten data a number", '{"type":"unlisten","data":5}', D_REQ),
    ("unlisten req_id a number", '{"type":"unlisten","data":{"req_id":5}}', D_REQ),
    ("unlisten without data", '{"type":"unlisten"}', D_REQ),
    ("type a number", '{"type":5}', D_MSG),
    ("type a list", '{"type":["get_head_info"]}', D_MSG),
    ("unknown type", '{"type":"frobnicate","req_id":"r"}', D_TYPE),
    ("req_id an object", '{"type":"get_action_traces","req_id":{}}', D_MSG),
    ("data a list", '{"type":"get_action_traces","req_id":"r","data":[1]}', D_REQ),
    ("accounts a list",
     '{"type":"get_action_traces","req_id":"r","data":{"accounts":["eosio"]}}', D_REQ),
    ("listen a string", '{"type":"get_action_traces","req_id":"r","listen":"yes",'
                        '"data":{"accounts":"eosio"}}', D_REQ),
    ("start_block a string", '{"type":"get_action_traces","req_id":"r","start_block":"10",'
                             '"data":{"accounts":"eosio"}}', D_REQ),
    ("flag a string", '{"type":"get_action_traces","req_id":"r","data":{"accounts":"eosio",'
                      '"with_inline_traces":"true"}}', D_REQ),
    ("table rows without table", '{"type":"get_table_rows","req_id":"r",'
                                 '"data":{"code":"a"}}', D_REQ),
    ("traces without accounts", '{"type":"get_action_traces","req_id":"r"}', D_REQ),
    ("deep nesting", DEEP, D_MSG),
    ("NaN", '{"type":"get_head_info","req_id":NaN}', D_MSG),
    ("binary", b'{"type":"get_head_info","req_id":"r"}', D_MSG),
    ("huge req_id", json.dumps({"type": "get_head_info", "req_id": "r" * 100_000,
                                "listen": True}),
     lambda m: _json(m)["type"] == "listening"),
]

VENUES = {"alpaca": (Alpaca, ALPACA), "hyperliquid": (Hyperliquid, HYPERLIQUID),
          "flow": (Flow, FLOW), "dfuse": (Dfuse, DFUSE)}
CASES = [(venue, name, message, check) for venue, (_, cases) in VENUES.items()
         for name, message, check in cases]


@pytest.mark.parametrize("venue,name,message,check", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_odd_message_gets_the_venues_reply_and_the_client_stays(servers, venue, name,
                                                                message, check):
    proto, _ = VENUES[venue]
    server = servers(venue)
    with connect(server.url + proto.path, open_timeout=TIMEOUT, max_size=None) as ws:
        proto.open(ws)
        ws.send(message)
        reply = ws.recv(TIMEOUT)
        assert check(reply), reply[:300]
        proto.usable(ws)


def test_alpaca_subscribe_before_auth_gets_401_and_the_client_stays(servers):
    with connect(servers("alpaca").url + Alpaca.path, open_timeout=TIMEOUT) as ws:
        Alpaca.open(ws, auth=False)
        ws.send('{"action":"subscribe","trades":["AAPL"]}')
        assert A401(ws.recv(TIMEOUT))
        ws.send('{"action":"auth","key":"k","secret":"s"}')
        assert _json(ws.recv(TIMEOUT))[0]["msg"] == "authenticated"
        Alpaca.usable(ws)


def test_alpaca_msgpack_client_gets_msgpack_errors(servers):
    with connect(servers("alpaca").url + Alpaca.path, open_timeout=TIMEOUT,
                 additional_headers={"Content-Type": "application/msgpack"}) as ws:
        assert msgpack.unpackb(ws.recv(TIMEOUT)) == [{"T": "success", "msg": "connected"}]
        ws.send(msgpack.packb({"action": "auth", "key": "k", "secret": "s"}))
        assert msgpack.unpackb(ws.recv(TIMEOUT))[0]["msg"] == "authenticated"
        for bad in (b"\xc1", msgpack.packb({"action": "subscribe", "trades": [{}]}), "hello"):
            ws.send(bad)
            assert msgpack.unpackb(ws.recv(TIMEOUT)) == [
                {"T": "error", "code": 400, "msg": "invalid syntax"}]
        ws.send(msgpack.packb({"action": "subscribe", "quotes": ["*"]}))
        assert msgpack.unpackb(ws.recv(TIMEOUT))[0]["T"] == "subscription"
        assert msgpack.unpackb(ws.recv(TIMEOUT), timestamp=0)[0]["T"] == "q"


def test_dfuse_stream_limit(servers):
    with connect(servers("dfuse").url + Dfuse.path, open_timeout=TIMEOUT) as ws:
        for i in range(12):
            ws.send(json.dumps({"type": "get_head_info", "req_id": f"h{i}", "listen": True}))
            assert _json(ws.recv(TIMEOUT))["type"] == "listening"
        ws.send('{"type":"get_head_info","req_id":"h12","listen":true}')
        assert Dfuse.error("ws_too_much_stream_error")(ws.recv(TIMEOUT))
        ws.send('{"type":"unlisten","req_id":"u","data":{"req_id":"h0"}}')
        assert _json(ws.recv(TIMEOUT)) == {"type": "unlistened", "req_id": "u",
                                           "data": {"success": True}}
        Dfuse.usable(ws)


VEGA_PATH = "/api/v2/stream/trades"
VEGA = [("not json", "hello"), ("json", '{"subscribe":"orders"}'), ("deep nesting", DEEP),
        ("binary garbage", b"\x00\xff\xfe"), ("NaN", "NaN")]


@pytest.mark.parametrize("name,message", VEGA, ids=[c[0] for c in VEGA])
def test_vega_ignores_client_messages_and_keeps_streaming(servers, name, message):
    with connect(servers("vega").url + VEGA_PATH, open_timeout=TIMEOUT, max_size=None) as ws:
        assert "trades" in _json(ws.recv(TIMEOUT))["result"]
        ws.send(message)
        for _ in range(3):  # the stream goes on; no reply is made
            assert "trades" in _json(ws.recv(TIMEOUT))["result"]


SIZED = ["alpaca", "hyperliquid", "flow", "dfuse", "vega"]


@pytest.mark.parametrize("venue", SIZED)
def test_message_over_the_limit_closes_1009_and_the_server_goes_on(servers, venue):
    server = servers(venue)
    path = VEGA_PATH if venue == "vega" else VENUES[venue][0].path
    with connect(server.url + path, open_timeout=TIMEOUT, max_size=None) as ws:
        try:
            ws.send('{"x":"' + "a" * BIG + '"}')
        except (ConnectionClosed, OSError):
            pass  # closed while it was being sent
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    if venue == "vega":
        with connect(server.url + path, open_timeout=TIMEOUT) as ws:
            assert "trades" in _json(ws.recv(TIMEOUT))["result"]
    else:
        proto = VENUES[venue][0]
        with connect(server.url + proto.path, open_timeout=TIMEOUT) as ws:
            proto.open(ws)
            proto.usable(ws)
    deadline = time.monotonic() + TIMEOUT
    while not any("closed 1009" in line for line in server.lines):
        assert time.monotonic() < deadline, server.lines
        time.sleep(0.05)
    line = next(line for line in server.lines if "closed 1009" in line)
    assert line.startswith("client 127.0.0.1:") and "over 1,048,576 bytes" in line


def test_max_message_size_option(recorded):
    server = Server(recorded, "hyperliquid", "--max-message-size", "100")
    try:
        with connect(server.url + "/ws", open_timeout=TIMEOUT) as ws:
            ws.send('{"method":"ping"}')
            assert _json(ws.recv(TIMEOUT)) == {"channel": "pong"}
            ws.send('{"method":"ping","pad":"' + "x" * 200 + '"}')
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(TIMEOUT)
            assert closed.value.rcvd.code == 1009
    finally:
        code, err = server.stop()
    assert code == 0 and "over 100 bytes, closed 1009" in err and "Traceback" not in err


RAW = [
    ("garbage bytes", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64)),
    ("http without upgrade", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("bad websocket version", b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                              b"Connection: Upgrade\r\nSec-WebSocket-Key: x\r\n"
                              b"Sec-WebSocket-Version: 99\r\n\r\n"),
    ("header flood", b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 5000 + b"\r\n"),
]


@pytest.mark.parametrize("name,payload", RAW, ids=[c[0] for c in RAW])
def test_broken_handshakes_leave_the_server_serving(servers, name, payload):
    server = servers("hyperliquid")
    host, port = server.url[len("ws://"):].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except OSError:
            pass  # the server may reset a connection it refused
    with connect(server.url + "/ws", open_timeout=TIMEOUT) as ws:
        Hyperliquid.usable(ws)


# -- the guard: a bug while answering a message ---------------------------------------------

GENERIC = {
    "alpaca": (Alpaca.path, lambda m: _json(m) == [{"T": "error", "code": 500,
                                                   "msg": "internal error"}]),
    "hyperliquid": (Hyperliquid.path, lambda m: _json(m) == {"channel": "error",
                                                            "data": "Internal error"}),
    "flow": (Flow.path, Flow.error(500)),
    "dfuse": (Dfuse.path, Dfuse.error("internal_error")),
}


@pytest.mark.parametrize("venue", sorted(GENERIC))
def test_a_bug_answering_a_message_gets_the_generic_error_and_one_line(
        recorded, capfd, monkeypatch, venue):
    from wsrec.replay import _emulate as emulate
    from wsrec.store.filters import Filters
    from wsrec.replay.stdout import ReplayOptions
    from wsrec.replay.serve import ServeOptions, serve_replay

    cls = emulate.Emulator
    original = cls.on_message
    calls = []

    def broken(self, message):
        calls.append(message)
        if len(calls) == 1:
            raise RuntimeError("simulated bug\nsecond line")
        return original(self, message)
    monkeypatch.setattr(cls, "on_message", broken)

    session = wsrec.open_session(venue, data=recorded)
    stop = threading.Event()
    result = {}

    def run():
        try:
            result["report"] = serve_replay(
                [session], Filters.make(direction="in"), ReplayOptions(speed=4.0, loop=0),
                "ws://127.0.0.1:0", ServeOptions(max_lag=60), stop=stop)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            result["error"] = exc
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    err = ""
    deadline = time.monotonic() + TIMEOUT
    while "listening on" not in err:
        assert time.monotonic() < deadline and thread.is_alive(), (err, result)
        time.sleep(0.05)
        err += capfd.readouterr().err
    url = "/".join(err.split("listening on ")[1].split()[0].split("/")[:3])
    path, check = GENERIC[venue]
    proto = VENUES[venue][0]
    try:
        with connect(url + path, open_timeout=TIMEOUT) as ws:
            if venue == "alpaca":
                assert _json(ws.recv(TIMEOUT))[0]["msg"] == "connected"
            ws.send('{"anything":1}')
            assert check(ws.recv(TIMEOUT))
            if venue == "alpaca":
                ws.send('{"action":"auth","key":"k","secret":"s"}')
                ws.recv(TIMEOUT)
            proto.usable(ws)
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive() and "error" not in result, result
    err += capfd.readouterr().err
    lines = [line for line in err.splitlines() if "unexpected error" in line]
    assert len(lines) == 1 and "RuntimeError: simulated bug" in lines[0], err
    assert "Traceback" not in err and "second line" not in err
