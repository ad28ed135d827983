"""The live relay: a recording from the simulator served to clients as it arrives."""

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import wsrec
from wsrec.errors import UsageError
from wsrec.record.recorder import RecordOptions, record
from wsrec.replay.relay import Relay, RelayOptions, serving
from wsrec.sim import SimOptions
from wsrec.sim.vega import MARKETS
from wsrec.venues import Request, get_venue

pytestmark = pytest.mark.timeout(120)


class Live:
    """A recording of ``venue``'s simulator (in a thread) with relays at ``targets``."""

    def __init__(self, venue, data, *, targets=("ws://127.0.0.1:0",), duration=2.5, rate=200,
                 options=None, sim=None, record_options=None, **request):
        self.request = Request(**request)
        self.relays = [Relay(t, venue, self.request, options) for t in targets]
        self.urls = [r.start() for r in self.relays]
        self.url = self.urls[0]
        self.result = None
        opts = record_options or RecordOptions(duration=duration)

        def run():
            self.result = record(get_venue(venue), Request(**request), data=data,
                                 sim=sim or SimOptions(rate=rate), options=opts,
                                 taps=[r.publish for r in self.relays])
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def finish(self):
        """Wait for the recording's end, stop the relays; the session."""
        self.thread.join(60)
        assert self.result is not None and self.result.status == "complete", self.result
        for r in self.relays:
            r.stop()
        return wsrec.open_session(self.result.path)


class Client(threading.Thread):
    """A client written as the venue's docs show (websockets' sync client): sends
    ``messages``, keeps every message until the server closes."""

    def __init__(self, url, messages=(), headers=None):
        super().__init__(daemon=True)
        self.url, self.messages, self.headers = url, messages, headers
        self.got, self.code, self.error = [], None, None
        self.subscribed = threading.Event()

    def run(self):
        try:
            with connect(self.url, max_size=None, open_timeout=30,
                         additional_headers=self.headers) as ws:
                for m in self.messages:
                    ws.send(m if isinstance(m, str) else json.dumps(m))
                self.subscribed.set()
                try:
                    while True:
                        self.got.append(ws.recv(timeout=60))
                except ConnectionClosed as exc:
                    self.code = exc.rcvd.code if exc.rcvd else None
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.subscribed.set()

    def wait(self):
        self.join(60)
        assert not self.is_alive() and self.error is None, self.error
        return self.got


def stored(session, channels=None, symbol=None):
    """The session's inbound frames (of one of ``channels`` alone, of ``symbol``)."""
    return [f.payload.decode() for f in session.frames(direction="in")
            if (channels is None or len(f.channels or ()) == 1 and f.channels[0] in channels)
            and (symbol is None or symbol in (f.symbols or ()))]


def is_live_suffix(got, expected):
    """What a client got is what the session stored from some point on, to the end."""
    return bool(got) and got == expected[-len(got):]


def after_acks(got, n):
    """What came after the ``n``th subscription ack, from the first frame the relay took
    after it: data of the earlier subscriptions comes between the acks, and frames
    received upstream just before the last ack (taken in the same round) go out by the
    subscriptions before it (at most a few)."""
    acks = [i for i, m in enumerate(got) if '"subscriptionResponse"' in m]
    assert len(acks) == n
    return got[acks[-1] + 1:]


def is_live_suffix_but_a_few(got, expected, few=20):
    """``is_live_suffix`` once at most ``few`` frames at the start are left out."""
    return any(is_live_suffix(got[k:], expected) for k in range(min(few, len(got) - 1) + 1))


def hl_sub(type_, coin):
    return {"method": "subscribe", "subscription": {"type": type_, "coin": coin}}


def test_hyperliquid_clients_get_what_they_subscribed_to_as_stored(tmp_path):
    live = Live("hyperliquid", tmp_path, channels=["trades", "l2Book"], symbols=["BTC", "ETH"])
    url = live.url + "/ws"
    a = Client(url, [hl_sub("trades", "BTC")])
    b = Client(url, [hl_sub("l2Book", "ETH"), hl_sub("trades", "SOL"), '{"method":"ping"}'])
    for c in (a, b):
        c.start()
    session = live.finish()
    got_a, got_b = a.wait(), b.wait()
    assert a.code == b.code == 1001   # the relay stopped with the recording
    assert json.loads(got_a[0])["channel"] == "subscriptionResponse"
    assert is_live_suffix(got_a[1:], stored(session, ["trades"], "BTC"))
    replies = [json.loads(m) for m in got_b[:3]]
    assert replies[0]["channel"] == "subscriptionResponse"
    assert replies[1] == {"channel": "error", "data": 'Invalid subscription {"type":"trades",'
                          '"coin":"SOL"}: not available on this server'}
    assert replies[2] == {"channel": "pong"}
    assert is_live_suffix(got_b[3:], stored(session, ["l2Book"], "ETH"))


def test_alpaca_auth_subscribe_and_refusals_as_the_venue(tmp_path):
    live = Live("alpaca", tmp_path, channels=["trades", "quotes"], symbols=["FAKEPACA", "AAPL"])
    auth = {"action": "auth", "key": "any", "secret": "thing"}
    good = Client(live.url + "/v2/test", [auth, {"action": "subscribe", "quotes": ["AAPL"]}])
    bad = Client(live.url + "/v2/test", [auth, {"action": "subscribe", "bars": ["AAPL"]},
                                         {"action": "subscribe", "trades": ["MSFT"]}])
    for c in (good, bad):
        c.start()
    session = live.finish()
    got = [json.loads(m) for m in good.wait()]
    assert got[:2] == [[{"T": "success", "msg": "connected"}],
                       [{"T": "success", "msg": "authenticated"}]]
    assert got[2][0]["T"] == "subscription" and got[2][0]["quotes"] == ["AAPL"]
    items = [i for m in got[3:] for i in m]
    expected = [i for f in session.frames(direction="in") if "quotes" in f.channels
                for i in json.loads(f.payload) if i["T"] == "q" and i["S"] == "AAPL"]
    assert items and items == expected[-len(items):]   # cut down to AAPL's quotes
    assert [json.loads(m) for m in bad.wait()][2:] == [
        [{"T": "error", "code": 410, "msg": "invalid subscribe action for this feed"}],
        [{"T": "error", "code": 409, "msg": "insufficient subscription"}]]


def test_vega_with_websocket_client_and_a_stream_not_carried(tmp_path):
    import websocket  # the websocket-client package, as the Vega docs use
    live = Live("vega", tmp_path, channels=["trades"], symbols=[MARKETS[0]])
    ws = websocket.create_connection(
        f"{live.url}/api/v2/stream/trades?marketIds={MARKETS[0]}", timeout=30)
    refused = websocket.create_connection(f"{live.url}/api/v2/stream/orders", timeout=30)
    assert json.loads(refused.recv()) == {"error": {
        "code": 5, "message": "stream orders is not available on this server",
        "details": [{"code": 10005, "message": "stream orders is not available on this server"}]}}
    refused.close()
    got = []
    done = threading.Event()

    def read():
        try:
            while message := ws.recv():
                got.append(message)
        except websocket.WebSocketConnectionClosedException:
            pass
        done.set()
    threading.Thread(target=read, daemon=True).start()
    session = live.finish()
    assert done.wait(30)
    assert is_live_suffix(got, stored(session, ["trades"]))


def test_flow_and_dfuse_retag_and_refuse(tmp_path):
    flow = Live("flow", tmp_path, channels=["block_digests"])
    mine = Client(flow.url + "/v1/ws", [{"subscription_id": "mine", "action": "subscribe",
                                        "topic": "block_digests",
                                        "arguments": {"block_status": "sealed"}},
                                       {"subscription_id": "no", "action": "subscribe",
                                        "topic": "events", "arguments": {}}])
    mine.start()
    flow.finish()
    msgs = [json.loads(m) for m in mine.wait()]
    assert msgs[0] == {"subscription_id": "mine", "action": "subscribe"}
    assert msgs[1] == {"subscription_id": "no", "action": "subscribe", "error": {
        "code": 400, "message": "topic events with these arguments is not available on this "
                                "server"}}
    data = msgs[2:]
    assert data and all(m["subscription_id"] == "mine" for m in data)
    dfuse = Live("dfuse", tmp_path, symbols=["eosio.token"])
    req = Client(dfuse.url + "/v1/stream?token=anything",
                 [{"type": "get_action_traces", "req_id": "my-req", "listen": True,
                   "data": {"accounts": "eosio.token"}},
                  {"type": "get_action_traces", "req_id": "other", "listen": True,
                   "data": {"accounts": "alice"}}])
    req.start()
    dfuse.finish()
    msgs = [json.loads(m) for m in req.wait()]
    assert msgs[0]["type"] == "listening"
    assert msgs[1]["type"] == "error" and msgs[1]["req_id"] == "other"
    assert msgs[1]["data"]["code"] == "invalid_request"
    assert msgs[2:] and all(m["req_id"] == "my-req" for m in msgs[2:])


def test_many_clients_at_once_each_get_every_frame_from_their_subscription(tmp_path):
    live = Live("hyperliquid", tmp_path, channels=["trades", "l2Book"], symbols=["BTC", "ETH"],
                rate=300, duration=3.0)
    subs = [hl_sub(t, c) for t in ("trades", "l2Book") for c in ("BTC", "ETH")]
    clients = [Client(live.url + "/ws", subs) for _ in range(25)]
    for c in clients:
        c.start()
    for c in clients:
        assert c.subscribed.wait(30)
    time.sleep(0.5)
    assert live.relays[0].clients == 25
    session = live.finish()
    data = stored(session, ["trades", "l2Book"])
    for c in clients:
        got = after_acks(c.wait(), 4)
        assert is_live_suffix_but_a_few(got, data)
        assert len(got) > len(data) / 3   # they connected early on
    assert live.relays[0].dropped == 0


def raw_ws(host, port, path="/ws", messages=()):
    """A client that handshakes by hand, sends ``messages`` (masked with a zero key) and
    then never reads, with a tiny receive buffer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: "
                 f"Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 f"Sec-WebSocket-Version: 13\r\n\r\n".encode())
    for m in messages:
        body = json.dumps(m).encode()
        assert len(body) < 126
        sock.sendall(bytes([0x81, 0x80 | len(body)]) + b"\0\0\0\0" + body)
    return sock


def test_a_stuck_client_is_dropped_and_slows_neither_the_recording_nor_others(tmp_path,
                                                                              capfd):
    live = Live("hyperliquid", tmp_path, channels=["trades", "l2Book"], symbols=["BTC", "ETH"],
                rate=4000, duration=4.0, options=RelayOptions(max_lag=1.0))
    host, port = live.url[len("ws://"):].split(":")
    subs = [hl_sub(t, c) for t in ("trades", "l2Book") for c in ("BTC", "ETH")]
    stuck = raw_ws(host, int(port), messages=subs)
    healthy = Client(live.url + "/ws", subs)
    healthy.start()
    try:
        session = live.finish()
    finally:
        stuck.close()
    got = after_acks(healthy.wait(), 4)
    assert is_live_suffix_but_a_few(got, stored(session, ["trades", "l2Book"]))
    assert live.relays[0].dropped == 1
    assert "behind" in capfd.readouterr().err
    monos = [f.mono_ns for f in session.frames(direction="in")]
    assert len(monos) > 4000   # the recording kept its pace: thousands of frames a second,
    assert max(b - a for a, b in zip(monos, monos[1:])) < 0.5e9   # with no stall


def read_all(sock):
    buf = b""
    while chunk := sock.recv(65536):
        buf += chunk
    return buf


def test_tcp_and_unix_lines_carry_every_frame(tmp_path):
    path = tmp_path / "live.sock"
    live = Live("hyperliquid", tmp_path / "data", symbols=["BTC"],
                targets=("tcp://127.0.0.1:0", f"unix:{path}"))
    host, port = live.urls[0][len("tcp://"):].rsplit(":", 1)
    out = {}

    def read(name, sock):
        with sock:
            out[name] = read_all(sock)
    tcp = socket.create_connection((host, int(port)), timeout=60)
    unix = socket.socket(socket.AF_UNIX)
    unix.settimeout(60)
    unix.connect(str(path))
    readers = [threading.Thread(target=read, args=a) for a in (("tcp", tcp), ("unix", unix))]
    for r in readers:
        r.start()
    session = live.finish()
    for r in readers:
        r.join(60)
    expected = stored(session)
    for name in ("tcp", "unix"):
        lines = out[name].decode().splitlines()
        assert is_live_suffix(lines, expected), name
    assert not path.exists()   # removed at the stop


def test_clients_stay_connected_across_upstream_reconnects(tmp_path):
    live = Live("hyperliquid", tmp_path, symbols=["BTC"], channels=["trades"], rate=200,
                duration=3.0, sim=SimOptions(rate=200, drop_every=150),
                record_options=RecordOptions(duration=3.0, backoff_initial=0.05,
                                             backoff_max=0.1))
    c = Client(live.url + "/ws", [hl_sub("trades", "BTC")])
    c.start()
    session = live.finish()
    assert live.result.reconnects >= 2
    got = c.wait()[1:]
    data = stored(session, ["trades"])
    assert is_live_suffix(got, data)
    conns = {f.conn for f in session.frames(direction="in") if f.payload.decode() in got}
    assert len(conns) >= 2   # one client, frames of several upstream connections


def test_relay_arguments_are_checked(tmp_path):
    with pytest.raises(UsageError, match="unknown target"):
        Relay("http://x:1", "hyperliquid", None)
    with pytest.raises(UsageError, match="max_lag"):
        Relay("ws://127.0.0.1:0", "hyperliquid", None, RelayOptions(max_lag=float("nan")))
    relay = Relay("ws://127.0.0.1:0", "hyperliquid", None)
    relay.start()
    relay.stop()
    relay.publish(b"{}", True, (), (), 0)   # after the stop: ignored, never raises
    with pytest.raises(UsageError):
        with serving(["tcp://127.0.0.1:0", "nope"], "url", None):
            pass


def wsrec_cmd(*args, data):
    return subprocess.Popen([sys.executable, "-m", "wsrec", *args],
                            env={**os.environ, "WSREC_DATA": str(data)},
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_cli_record_serve_ws_and_tcp_with_sim(tmp_path):
    proc = wsrec_cmd("record", "hyperliquid", "--sim", "--sim-rate", "100", "-s", "BTC",
                     "-c", "trades", "--duration", "3s", "--quiet",
                     "--serve", "ws://127.0.0.1:0", "--serve", "tcp://127.0.0.1:0",
                     "--serve-max-lag", "2", data=tmp_path)
    try:
        urls = []
        for _ in range(2):
            line = proc.stderr.readline()
            assert line.startswith("serving live on "), line
            urls.append(line.split()[-1])
        ws = Client(urls[0] + "/ws", [hl_sub("trades", "BTC")])
        ws.start()
        host, port = urls[1][len("tcp://"):].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=60) as sock:
            lines = read_all(sock).decode().splitlines()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    session = wsrec.open_session("hyperliquid", data=tmp_path)
    assert is_live_suffix(lines, stored(session))
    assert is_live_suffix(ws.wait()[1:], stored(session, ["trades"]))


@pytest.mark.parametrize("args,message", [
    (["--serve", "http://127.0.0.1:1"], "unknown target"),
    (["--serve", "ws://127.0.0.1"], "needs a port"),
    (["--serve", "ws://127.0.0.1:0", "--serve-max-lag", "0"], "--serve-max-lag")])
def test_cli_serve_usage_errors(tmp_path, args, message):
    proc = wsrec_cmd("record", "hyperliquid", "--sim", "-s", "BTC", "--duration", "1s",
                     *args, data=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and message in err and "Traceback" not in err, err


def test_publish_is_bounded_and_an_overflow_drops_the_clients(tmp_path, monkeypatch):
    import wsrec.replay.relay as relay_module
    monkeypatch.setattr(relay_module, "MAX_INBOX", 10)
    idle = Relay("tcp://127.0.0.1:0", "url", None)   # no pump: nothing takes the frames
    for i in range(20):
        idle.publish(b"%d" % i, True, (), (), i)
    assert len(idle._inbox) == 10 and idle._overflow
    idle.stop()
    stamps = []
    relay = Relay("tcp://127.0.0.1:0", "url", None, RelayOptions(on_sent=stamps.append))
    host, port = relay.start()[len("tcp://"):].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        deadline = time.monotonic() + 30
        while not relay._sinks and time.monotonic() < deadline:
            time.sleep(0.01)
        relay.publish(b'{"a":1}', True, (), (), 123)
        assert sock.recv(100) == b'{"a":1}\n'
        while not stamps and time.monotonic() < deadline:   # called just after the send
            time.sleep(0.01)
        assert stamps == [(123,)]   # on_sent: the ts_ns of each block's frames
        relay._overflow = True      # as if the pump had fallen MAX_INBOX frames behind
        relay.publish(b'{"a":2}', True, (), (), 124)
        assert read_all(sock) == b""   # dropped: the frames it would miss never come
    assert relay.dropped == 1
    relay.stop()


def test_clients_that_leave_are_let_go(tmp_path):
    relay = Relay("tcp://127.0.0.1:0", "url", None)
    host, port = relay.start()[len("tcp://"):].rsplit(":", 1)
    ws_relay = Relay("ws://127.0.0.1:0", "url", None)
    url = ws_relay.start()
    try:
        for _ in range(3):
            socket.create_connection((host, int(port)), timeout=30).close()
            with connect(url, open_timeout=30):
                pass
        deadline = time.monotonic() + 30
        while (relay.clients or ws_relay.clients or relay._sinks or ws_relay._sinks) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        assert relay.clients == ws_relay.clients == 0
        assert not relay._sinks and not ws_relay._sinks and relay.dropped == 0
    finally:
        relay.stop()
        ws_relay.stop()


def test_a_client_with_too_much_waiting_is_dropped_by_bytes(tmp_path, capfd):
    relay = Relay("tcp://127.0.0.1:0", "url", None,
                  RelayOptions(max_lag=600, max_buffer=1 << 20))
    host, port = relay.start()[len("tcp://"):].rsplit(":", 1)
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect((host, int(port)))
    try:
        deadline = time.monotonic() + 30
        while not relay._sinks and time.monotonic() < deadline:
            time.sleep(0.01)
        pad = b"x" * 20_000
        for i in range(1000):   # 20 MB: more than the socket buffers hold
            relay.publish(b'{"i":%d,"pad":"%s"}' % (i, pad), True, (), (), i)
            if relay.dropped:
                break
            time.sleep(0.001)
        while not relay.dropped and time.monotonic() < deadline:
            time.sleep(0.01)
        assert relay.dropped == 1
    finally:
        stuck.close()
        relay.stop()
    assert "more than 1,048,576 bytes behind" in capfd.readouterr().err


def test_a_client_the_pump_is_slow_to_let_go_of_stays_its_to_unregister(monkeypatch):
    # the handler gives up waiting and its socket is closed while the pump (stuck for
    # now) still polls that descriptor for POLLOUT: only the pump may let go of it, and on
    # its next round it unregisters it (else poll returns at once, every round)
    import select

    import wsrec.replay.relay as relay_module
    from wsrec.replay.relay import _Sink
    monkeypatch.setattr(relay_module, "LET_GO", 0)
    relay = Relay("tcp://127.0.0.1:0", "url", None, RelayOptions(quiet=True))
    stuck = threading.Event()
    pump = threading.Thread(target=stuck.wait, args=(30,), daemon=True)
    pump.start()
    relay._pump = pump                     # alive, not taking a round now
    ours, theirs = socket.socketpair()
    poller = select.poll()
    poller.register(relay._wake_r, select.POLLIN)
    sink = _Sink(ours, "client", lines=True)
    sink.queue.append((time.monotonic_ns(), b"x" * (16 << 20), ()))
    try:
        assert relay._write(sink, poller) is False and sink.waiting   # the socket is full
        relay._serve_sink(sink, lambda: False)    # the client left; the handler gives up
        assert not sink.gone.is_set()
        ours.close()                              # its server closes the socket
        stuck.set()
        pump.join(30)
        relay._round(poller)                      # the pump's next round
        assert poller.poll(0) == []               # POLLNVAL at once, were it still there
        assert sink.gone.is_set() and relay._sinks == [] and not sink.waiting
        # with no pump running, the handler takes its sink out itself
        other = _Sink(theirs, "other", lines=True)
        relay._serve_sink(other, lambda: False)
        assert relay._sinks == [] and not other.gone.is_set()
    finally:
        stuck.set()
        theirs.close()
        relay.stop()
