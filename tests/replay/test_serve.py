"""Replay servers: each venue's emulation driven by a client written as its docs show."""

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import msgpack
import pytest
from client_cases import CLIENTS
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.sync.client import connect as sync_connect

import wsrec
from wsrec.record.recorder import RecordOptions
from wsrec.sim import SimOptions
from wsrec.sim.vega import MARKETS

from conftest import record_from_sim

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    opts = RecordOptions(duration=0.8)
    record_from_sim("alpaca", data, sim=SimOptions(rate=300), symbols=["FAKEPACA", "AAPL"],
                    options=opts)
    record_from_sim("hyperliquid", data, sim=SimOptions(rate=300), symbols=["BTC", "ETH"],
                    options=opts)
    record_from_sim("vega", data, sim=SimOptions(rate=300), channels=["trades"], options=opts)
    record_from_sim("flow", data, sim=SimOptions(rate=300), options=opts)
    record_from_sim("dfuse", data, sim=SimOptions(rate=300), symbols=["eosio.token"],
                    options=opts)
    return data


_STARTED: list = []


@pytest.fixture(autouse=True)
def _no_server_left_behind():
    """A test that fails before stopping its server must not leave the process running."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


class Server:
    def __init__(self, data, *args):
        env = {**os.environ, "WSREC_DATA": str(data)}
        self.proc = subprocess.Popen([sys.executable, "-m", "wsrec", "replay", *map(str, args)],
                                     env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        _STARTED.append(self.proc)
        first = self.proc.stderr.readline()
        assert first.startswith("listening on "), first + self.proc.stderr.read()
        self.announced = first.split()[-1]   # with the venue's path: a client's URL as is
        self.url = "/".join(self.announced.split("/")[:3])   # without: tests add their own

    def finish(self, timeout=60):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return self.proc.returncode, err


def collect(url, script):
    async def main():
        async with connect(url, max_size=None) as ws:
            return await asyncio.wait_for(script(ws), 60)
    return asyncio.run(main())


async def drain(ws):
    out = []
    try:
        async for m in ws:
            out.append(m)
    except Exception:  # noqa: BLE001 - the server closes when the replay is done
        pass
    return out


def test_alpaca_emulation_sends_only_what_was_subscribed(recorded):
    s = wsrec.open_session("alpaca", data=recorded)
    expected = [i for f in s.frames(direction="in") if "trades" in f.channels
                for i in json.loads(f.payload) if i["T"] == "t" and i["S"] == "AAPL"]
    assert expected
    server = Server(recorded, "alpaca", "--to", "ws://127.0.0.1:0", "--once", "--speed", "max")

    async def client(ws):  # the docs' wscat session, in Python
        assert json.loads(await ws.recv()) == [{"T": "success", "msg": "connected"}]
        await ws.send(json.dumps({"action": "auth", "key": "any", "secret": "thing"}))
        assert json.loads(await ws.recv()) == [{"T": "success", "msg": "authenticated"}]
        await ws.send(json.dumps({"action": "subscribe", "trades": ["AAPL"]}))
        ack = json.loads(await ws.recv())[0]
        assert ack["T"] == "subscription" and ack["trades"] == ["AAPL"]
        assert ack["quotes"] == [] and ack["corrections"] == ["AAPL"]
        return [i for m in await drain(ws) for i in json.loads(m)]

    got = collect(server.url, client)
    assert got == expected  # mixed arrays cut down to the subscribed elements
    code, err = server.finish()
    assert code == 0 and "replay done" in err


def test_alpaca_emulation_in_msgpack(recorded):
    server = Server(recorded, "alpaca", "--to", "ws://127.0.0.1:0", "--once", "--speed", "max")

    async def main():
        async with connect(server.url, additional_headers={
                "Content-Type": "application/msgpack"}) as ws:
            assert msgpack.unpackb(await ws.recv()) == [{"T": "success", "msg": "connected"}]
            await ws.send(msgpack.packb({"action": "auth", "key": "k", "secret": "s"}))
            await ws.recv()
            await ws.send(msgpack.packb({"action": "subscribe", "quotes": ["*"]}))
            await ws.recv()
            frames = await drain(ws)
            return [msgpack.unpackb(f, timestamp=0) for f in frames]
    items = [i for batch in asyncio.run(main()) for i in batch]
    assert items and all(i["T"] == "q" for i in items)
    assert all(isinstance(i["t"], msgpack.Timestamp) for i in items)
    assert server.finish()[0] == 0


def test_hyperliquid_emulation(recorded):
    server = Server(recorded, "hyperliquid", "--to", "ws://127.0.0.1:0", "--once",
                    "--speed", "max")

    async def client(ws):
        await ws.send(json.dumps({"method": "subscribe",
                                  "subscription": {"type": "trades", "coin": "ETH"}}))
        ack = json.loads(await ws.recv())
        assert ack["channel"] == "subscriptionResponse"
        await ws.send('{"method":"ping"}')
        return [json.loads(m) for m in await drain(ws)]

    msgs = collect(server.url, client)
    assert {"channel": "pong"} in msgs
    data = [m for m in msgs if m["channel"] == "trades"]
    assert data and all(t["coin"] == "ETH" for m in data for t in m["data"])
    assert not [m for m in msgs if m["channel"] == "l2Book"]
    assert server.finish()[0] == 0


def test_vega_emulation_with_websocket_client(recorded):
    import websocket  # the websocket-client package, as the Vega docs use
    server = Server(recorded, "vega", "--to", "ws://127.0.0.1:0", "--once", "--speed", "max")
    ws = websocket.create_connection(
        f"{server.url}/api/v2/stream/trades?marketIds={MARKETS[0]}", timeout=30)
    got = []
    try:
        while True:
            message = ws.recv()
            if not message:
                break
            got.append(json.loads(message))
    except websocket.WebSocketConnectionClosedException:
        pass
    assert got and all(t["marketId"] == MARKETS[0] for m in got for t in m["result"]["trades"])
    assert server.finish()[0] == 0


def test_vega_announces_the_stream_the_session_has(tmp_path):
    """A session of market depth is served at its own stream's path, not trades'."""
    record_from_sim("vega", tmp_path, sim=SimOptions(rate=300), channels=["markets/depth"],
                    options=RecordOptions(duration=0.5))
    server = Server(tmp_path, "vega", "--to", "ws://127.0.0.1:0", "--once", "--speed", "max")
    assert server.announced == server.url + "/api/v2/stream/markets/depth"
    got = []
    with sync_connect(server.announced, open_timeout=30, max_size=None) as ws:
        with pytest.raises(ConnectionClosedOK):
            while True:
                got.append(json.loads(ws.recv(timeout=30)))
    assert got and all(d["marketId"] in MARKETS for m in got for d in m["result"]["marketDepth"])
    assert server.finish()[0] == 0


def test_flow_emulation_retags_with_the_clients_id(recorded):
    server = Server(recorded, "flow", "--to", "ws://127.0.0.1:0", "--once", "--speed", "max")

    async def client(ws):
        await ws.send(json.dumps({"subscription_id": "mine", "action": "subscribe",
                                  "topic": "block_digests",
                                  "arguments": {"block_status": "sealed"}}))
        assert json.loads(await ws.recv()) == {"subscription_id": "mine",
                                               "action": "subscribe"}
        return [json.loads(m) for m in await drain(ws)]

    msgs = collect(server.url, client)
    assert msgs and all(m["subscription_id"] == "mine" for m in msgs)
    heights = [int(m["payload"]["height"]) for m in msgs]
    assert heights == sorted(heights)
    assert server.finish()[0] == 0


def test_dfuse_emulation_retags_with_the_clients_req_id(recorded):
    server = Server(recorded, "dfuse", "--to", "ws://127.0.0.1:0", "--once", "--speed", "max")

    async def client(ws):
        await ws.send(json.dumps({"type": "get_action_traces", "req_id": "my-req",
                                  "listen": True, "data": {"accounts": "eosio.token"}}))
        assert json.loads(await ws.recv())["type"] == "listening"
        return [json.loads(m) for m in await drain(ws)]

    msgs = collect(server.url, client)
    assert msgs and all(m["req_id"] == "my-req" for m in msgs)
    assert {m["type"] for m in msgs} <= {"action_trace", "progress"}
    assert server.finish()[0] == 0


def test_no_emulate_streams_every_inbound_frame(recorded):
    s = wsrec.open_session("hyperliquid", data=recorded)
    expected = [f.payload.decode() for f in s.frames(direction="in")]
    server = Server(recorded, "hyperliquid", "--to", "ws://127.0.0.1:0", "--once",
                    "--no-emulate", "--speed", "max")
    assert collect(server.url, drain) == expected
    assert server.finish()[0] == 0


def read_lines(sock):
    buf = b""
    while chunk := sock.recv(65536):
        buf += chunk
    return buf


def test_tcp_and_unix_lines(recorded, tmp_path):
    expected = subprocess.run([sys.executable, "-m", "wsrec", "replay", "alpaca", "--speed",
                               "max"], env={**os.environ, "WSREC_DATA": str(recorded)},
                              capture_output=True, timeout=60).stdout
    server = Server(recorded, "alpaca", "--to", "tcp://127.0.0.1:0", "--once", "--speed", "max")
    host, port = server.url[len("tcp://"):].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        assert read_lines(sock) == expected
    assert server.finish()[0] == 0
    path = tmp_path / "replay.sock"
    server = Server(recorded, "alpaca", "--to", f"unix:{path}", "--once", "--speed", "max")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        assert read_lines(sock) == expected
    assert server.finish()[0] == 0 and not path.exists()


def test_slow_client_is_dropped_and_others_are_not(data):
    with wsrec.SessionWriter("bulk", data=data) as w:
        for i in range(3_000):  # 3,000 frames of 20 KB in 9 s: 60 MB, more than buffers hold
            w.append(b'{"i":%d,"pad":"%s"}' % (i, b"x" * 20_000), kind="text",
                     ts_ns=10**18 + i * 3_000_000, mono_ns=i * 3_000_000)
    # a lag allowance the healthy client keeps within even on a loaded machine; the one
    # that never reads passes it a third of the way through the replay, with seconds to
    # spare before the healthy one is done
    # (--once: the server ends with the first client, the healthy one: it joins first)
    server = Server(data, "bulk", "--to", "ws://127.0.0.1:0", "--max-lag", "3", "--once")

    host, port = server.url[len("ws://"):].split(":")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and it never reads

    async def main():
        ws = await connect(server.url, max_size=None)
        first = await asyncio.wait_for(ws.recv(), 60)
        slow.connect((host, int(port)))
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\n\r\n")
        return [first] + await asyncio.wait_for(drain(ws), 60)

    got = asyncio.run(main())
    slow.close()
    assert len(got) == 3_000  # the healthy client got everything
    code, err = server.finish()
    assert "disconnected" in err and "1008" in err


def _slow_session(data, venue):
    """Two frames, then one due a minute later: a replay at speed 1 lasts a minute."""
    with wsrec.SessionWriter(venue, data=data) as w:
        for i, at in enumerate((0, 0.01, 60)):
            w.append(b'{"i":%d}' % i, kind="text", ts_ns=10**18 + int(at * 1e9),
                     mono_ns=int(at * 1e9) + 1)


@pytest.mark.timeout(60)
def test_once_ends_when_its_client_leaves_early(data):
    """--once: a client that leaves before the end of its replay ends the server then,
    not when the next frame (a minute away) finds it gone."""
    _slow_session(data, "early")
    server = Server(data, "early", "--to", "ws://127.0.0.1:0", "--once")
    t0 = time.monotonic()
    with sync_connect(server.url, open_timeout=30) as ws:
        assert ws.recv(timeout=30) == '{"i":0}'
    code, err = server.finish(timeout=30)
    assert code == 0 and "Traceback" not in err, err
    assert "connection ended before its replay did; stopping (--once)" in err
    assert "replay done" not in err   # it was not: the client left
    assert time.monotonic() - t0 < 30
    # a second client, still going, is not the one --once waits for
    server = Server(data, "early", "--to", "ws://127.0.0.1:0", "--once")
    with sync_connect(server.url, open_timeout=30) as first:
        assert first.recv(timeout=30) == '{"i":0}'
        with sync_connect(server.url, open_timeout=30) as second:
            assert second.recv(timeout=30) == '{"i":0}'
        with pytest.raises(subprocess.TimeoutExpired):
            server.proc.wait(2)
    assert server.finish(timeout=30)[0] == 0


@pytest.mark.timeout(60)
def test_once_ends_when_its_lines_client_leaves_early(data):
    with wsrec.SessionWriter("lines", data=data) as w:
        for i in range(300):   # a frame every 0.1 s for 30 s
            w.append(b'{"i":%d}' % i, kind="text", ts_ns=10**18 + i * 100_000_000,
                     mono_ns=i * 100_000_000 + 1)
    server = Server(data, "lines", "--to", "tcp://127.0.0.1:0", "--once")
    host, port = server.url[len("tcp://"):].rsplit(":", 1)
    t0 = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        assert sock.recv(64).startswith(b'{"i":0}')
    code, err = server.finish(timeout=30)
    assert code == 0 and "Traceback" not in err, err
    assert time.monotonic() - t0 < 15


def test_shared_clock_late_joiner_starts_mid_way(data):
    with wsrec.SessionWriter("clock", data=data) as w:
        for i in range(60):  # 3 s of frames
            w.append(b'{"i":%d}' % i, kind="text", ts_ns=10**18 + i * 50_000_000,
                     mono_ns=i * 50_000_000)
    # not --once: that ends the server when either client is done, which may cut the
    # other one short (the two finish at the same moment, in either order)
    server = Server(data, "clock", "--to", "ws://127.0.0.1:0", "--shared-clock")

    async def main():
        first, joined = [], asyncio.Event()

        async def read_first(ws):
            try:
                async for m in ws:
                    first.append(m)
                    if len(first) == 10:
                        joined.set()
            except ConnectionClosed:
                pass
            joined.set()

        reading = asyncio.create_task(read_first(await connect(server.url)))
        await asyncio.wait_for(joined.wait(), 60)   # joins once the first has 10 frames
        late = await drain(await connect(server.url))
        await asyncio.wait_for(reading, 60)
        return first, late

    first, late = asyncio.run(main())
    # one clock since the server started: frames due before a client joined are gone
    # (the joins are ordered by frame counts, not by sleeping; 1.5 s are left for the
    # late client to connect however loaded the machine is)
    server.proc.send_signal(signal.SIGTERM)
    code, err = server.finish()
    assert code == 0, err
    assert len(first) >= 30 and 0 < len(late) <= len(first) - 10
    assert late == first[-len(late):]


def test_server_errors(recorded, tmp_path):
    from click.testing import CliRunner

    from wsrec.cli.commands import cli
    run = lambda *a: CliRunner().invoke(cli, [str(x) for x in a],  # noqa: E731
                                        env={"WSREC_DATA": str(recorded)})
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        for scheme in ("ws", "tcp"):
            result = run("replay", "alpaca", "--to", f"{scheme}://127.0.0.1:{port}")
            assert result.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in \
                result.stderr
    existing = tmp_path / "taken"
    existing.write_text("keep me")
    result = run("replay", "alpaca", "--to", f"unix:{existing}")
    assert result.exit_code == 1 and "already exists" in result.stderr
    assert existing.read_text() == "keep me"
    result = run("replay", "alpaca", "--to", f"unix:{tmp_path}/no/such/dir/s.sock")
    assert result.exit_code == 1 and "cannot create" in result.stderr


def test_corrupt_part_stops_the_server_with_one_line(data):
    folder, _ = __import__("conftest").write_session(data, n=50, venue="broken")
    part = folder / "part-000000.parquet"
    part.write_bytes(part.read_bytes()[:200])
    server = Server(data, "broken", "--to", "tcp://127.0.0.1:0")
    host, port = server.url[len("tcp://"):].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        assert read_lines(sock) == b""
    code, err = server.finish()
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("Error: ") and "part-000000.parquet" in err


# -- options, many clients, signals, log lines ------------------------------------------------

@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "0", "-1", "1e400", "soon"])
def test_max_lag_must_be_finite_and_positive(recorded, value):
    from click.testing import CliRunner

    from wsrec.cli.commands import cli
    result = CliRunner().invoke(cli, ["replay", "alpaca", "--to", "ws://127.0.0.1:0",
                                      "--max-lag", value], env={"WSREC_DATA": str(recorded)})
    assert result.exit_code == 2 and "--max-lag" in result.stderr, result.output
    assert "Traceback" not in result.stderr


def test_serve_options_are_checked_for_library_callers(recorded):
    from wsrec.store.filters import Filters
    from wsrec.replay.stdout import ReplayOptions
    from wsrec.replay.serve import ServeOptions, serve_replay
    s = wsrec.open_session("alpaca", data=recorded)
    for bad in (ServeOptions(max_lag=float("inf")), ServeOptions(max_lag=float("nan")),
                ServeOptions(max_lag=0), ServeOptions(max_message_size=0)):
        with pytest.raises(ValueError):
            serve_replay([s], Filters(), ReplayOptions(), "ws://127.0.0.1:0", bad)


def lead_in_session(data, venue, n=200, lead_s=6.0, span_s=2.0):
    """A hyperliquid-like session: one frame nobody subscribes to at 0, then ``n`` BTC
    trades from ``lead_s`` seconds on (time for every client to connect first)."""
    with wsrec.SessionWriter(venue, data=data) as w:
        w.append(b'{"channel":"allMids","data":{}}', kind="text", channels=("allMids",),
                 ts_ns=10**18, mono_ns=0)
        for i in range(n):
            t = int((lead_s + span_s * i / n) * 1e9)
            w.append(b'{"channel":"trades","data":[{"coin":"BTC","tid":%d}]}' % i, kind="text",
                     channels=("trades",), symbols=("BTC",), ts_ns=10**18 + t, mono_ns=t)


@pytest.mark.parametrize("speed", ["1", "max"])
def test_shared_clock_many_clients_get_identical_frames(data, speed):
    lead_in_session(data, "hyperliquid")
    server = Server(data, "hyperliquid", "--to", "ws://127.0.0.1:0", "--shared-clock",
                    "--speed", speed, "--max-lag", "30")

    async def client():
        async with connect(server.url + "/ws") as ws:
            await ws.send(json.dumps({"method": "subscribe",
                                      "subscription": {"type": "trades", "coin": "BTC"}}))
            assert json.loads(await ws.recv())["channel"] == "subscriptionResponse"
            return await drain(ws)

    async def main():
        return await asyncio.wait_for(asyncio.gather(*(client() for _ in range(20))), 90)

    got = asyncio.run(main())
    expected = ['{"channel":"trades","data":[{"coin":"BTC","tid":%d}]}' % i for i in range(200)]
    if speed == "max":
        # no clock: the shared schedule waits for its first client, runs at the pace of
        # the slowest, and a client joining later starts where that one is
        assert max(map(len, got)) == 200
        assert all(g == expected[len(expected) - len(g):] for g in got)
    else:
        assert all(g == expected for g in got)
    server.proc.send_signal(signal.SIGTERM)
    code, err = server.finish()
    assert code == 0 and "Traceback" not in err
    assert err.count("replay done") == 20


def test_log_lines_of_concurrent_clients_never_run_together(data):
    lead_in_session(data, "hyperliquid", n=20, lead_s=3.0, span_s=0.2)
    server = Server(data, "hyperliquid", "--to", "ws://127.0.0.1:0", "--shared-clock",
                    "--max-lag", "30")

    async def client():
        async with connect(server.url + "/ws") as ws:
            await ws.send('{"method":"subscribe","subscription":{"type":"trades","coin":"BTC"}}')
            await ws.recv()
            return await drain(ws)

    async def main():
        return await asyncio.wait_for(asyncio.gather(*(client() for _ in range(40))), 90)

    got = asyncio.run(main())
    assert all(len(g) == 20 for g in got)
    server.proc.send_signal(signal.SIGTERM)
    code, err = server.finish()
    lines = err.splitlines()
    done = [line for line in lines if "replay done" in line]
    assert len(done) == 40 and code == 0
    pattern = re.compile(r"^client 127\.0\.0\.1:\d+: replay done, 20 frames$")
    assert all(pattern.match(line) for line in done), done
    assert all(pattern.match(line) or line == "stopping (SIGTERM)" for line in lines), lines


def stale_socket(path):
    """A socket file nothing listens on, as a killed server leaves it."""
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()
    assert path.is_socket()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_servers_cleanly(recorded, tmp_path, sig):
    path = tmp_path / "replay.sock"
    for target in ("ws://127.0.0.1:0", "tcp://127.0.0.1:0", f"unix:{path}", f"unix:{path}"):
        server = Server(recorded, "alpaca", "--to", target, "--loop", "0")
        if target.startswith("unix:"):
            assert path.is_socket()
        server.proc.send_signal(sig)
        code, err = server.finish(timeout=30)
        assert code == 0, err
        assert "Traceback" not in err and f"stopping ({sig.name})" in err
        assert not path.exists()  # removed, so the same path works again at once


def test_signal_with_a_client_in_a_long_silence(data):
    with wsrec.SessionWriter("quiet", data=data) as w:
        w.append(b'{"i":0}', kind="text", ts_ns=10**18, mono_ns=0)
        w.append(b'{"i":1}', kind="text", ts_ns=10**18 + 3600 * 10**9, mono_ns=3600 * 10**9)
    server = Server(data, "quiet", "--to", "ws://127.0.0.1:0")

    async def main():
        async with connect(server.url) as ws:
            assert await asyncio.wait_for(ws.recv(), 30) == '{"i":0}'
            t0 = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 30)
            return closed.value.rcvd.code, time.monotonic() - t0

    code, seconds = asyncio.run(main())
    assert code == 1001 and seconds < 20  # not an hour: the pacer's wait ends on stop
    exit_code, err = server.finish(timeout=30)
    assert exit_code == 0 and "Traceback" not in err


@pytest.mark.parametrize("scheme", ["ws", "tcp"])
def test_signal_with_a_client_that_never_reads(data, scheme):
    """A send to a client that doesn't read blocks for up to --max-lag: stopping must not
    wait for it."""
    with wsrec.SessionWriter("stuck", data=data) as w:
        for i in range(500):  # 10 MB, more than socket buffers hold
            w.append(b'{"i":%d,"pad":"%s"}' % (i, b"x" * 20_000), kind="text",
                     ts_ns=10**18 + i * 1_000_000, mono_ns=i * 1_000_000)
    server = Server(data, "stuck", "--to", f"{scheme}://127.0.0.1:0", "--max-lag", "600")
    host, port = server.url.split("//")[1].split(":")
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect((host, int(port)))
    if scheme == "ws":
        stuck.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      b"Sec-WebSocket-Version: 13\r\n\r\n")
    try:
        time.sleep(1.5)  # the server's sends fill the buffers and block
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code, err = server.finish(timeout=60)
        assert time.monotonic() - t0 < 30  # not --max-lag
    finally:
        stuck.close()
    assert code == 0 and "Traceback" not in err and "stopping (SIGTERM)" in err, err


def test_leftover_unix_socket_is_replaced_a_live_one_refused(recorded, tmp_path):
    path = tmp_path / "replay.sock"
    stale_socket(path)
    server = Server(recorded, "alpaca", "--to", f"unix:{path}", "--once", "--speed", "max")
    assert server.proc.stderr.readline().startswith(f"note: replaced unix:{path}, a socket "
                                                    f"nothing was listening on")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        assert read_lines(sock)
    code, err = server.finish()
    assert code == 0 and not path.exists(), (code, err)

    live = Server(recorded, "alpaca", "--to", f"unix:{path}", "--loop", "0")
    try:
        second = subprocess.run([sys.executable, "-m", "wsrec", "replay", "alpaca", "--to",
                                 f"unix:{path}"], env={**os.environ, "WSREC_DATA": str(recorded)},
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert second.stderr.strip().splitlines() == [
            f"Error: unix:{path} is in use (a server is listening on it); stop it or choose "
            f"another path"]
        assert path.is_socket()  # the live server's socket is untouched
    finally:
        live.proc.send_signal(signal.SIGTERM)
        assert live.finish()[0] == 0
    assert not path.exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sim_stops_cleanly_on_signals(sig):
    proc = subprocess.Popen([sys.executable, "-m", "wsrec", "sim", "hyperliquid"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        first = proc.stderr.readline()
        assert first.startswith("listening on ws://127.0.0.1:")
        proc.send_signal(sig)
        assert proc.wait(30) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_shared_clock_corrupt_part_stops_the_server_with_one_line(data):
    folder, _ = __import__("conftest").write_session(data, n=50, venue="broken")
    part = folder / "part-000000.parquet"
    part.write_bytes(part.read_bytes()[:200])
    server = Server(data, "broken", "--to", "ws://127.0.0.1:0", "--shared-clock")
    code, err = server.finish()
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("Error: ") and "part-000000.parquet" in err


# -- the paced send loop every sink shares (stdout and each server client), on a fake clock --

class _FakePacer:
    """A pacer whose clock moves only when it waits: to the due time, plus ``slip`` ns."""

    def __init__(self, slip=0):
        self.now, self.slip, self.waits = 0, slip, []

    def wait(self, due):
        self.waits.append(due)
        self.now = max(self.now, due + self.slip)

    def lateness(self, due):
        return self.now - due


def test_send_paced_sends_each_item_when_due_and_records_lateness():
    from wsrec.replay._pacing import Lateness
    from wsrec.replay.stdout import send_paced
    pacer, got, late = _FakePacer(slip=7), [], Lateness()
    n = send_paced(["a", None, "b", "c"], [10, 20, 30, 40], pacer,
                   lambda item: got.append((item, pacer.now)), skip_before=15, lateness=late)
    assert n == 2 and got == [("b", 37), ("c", 47)]  # None and what was due before 15: passed over
    assert pacer.waits == [30, 40] and list(late.samples) == [7, 7]


def test_send_paced_unpaced_stop_and_too_late():
    import threading

    from wsrec.replay.stdout import Stopped, TooLate, send_paced
    got = []
    assert send_paced([1, 2, 3], [0, 10**12, 2 * 10**12], None, got.append) == 3
    assert got == [1, 2, 3]  # no pacer: at once, whatever the due times
    stop = threading.Event()

    def send(item):
        got.append(item)
        stop.set()
    got.clear()
    with pytest.raises(Stopped):
        send_paced([1, 2], [0, 1], _FakePacer(), send, stop=stop)
    assert got == [1]
    with pytest.raises(TooLate):
        send_paced([1, 2], [0, 1], _FakePacer(slip=6), got.append, max_late_ns=5)


@pytest.mark.parametrize("venue", sorted(CLIENTS))
def test_the_announced_url_is_a_working_session(recorded, venue):
    """'listening on URL' names the venue's path (and a dfuse token placeholder, which a
    replay takes), so a client connects to it as is."""
    server = Server(recorded, venue, "--to", "ws://127.0.0.1:0", "--speed", "max")
    assert server.announced != server.url
    if venue == "dfuse":   # the placeholder, not masked: it is no secret
        assert server.announced.endswith("/v1/stream?token=TOKEN"), server.announced
    with sync_connect(server.announced, open_timeout=30, max_size=None) as ws:
        assert CLIENTS[venue](ws)
    server.proc.send_signal(signal.SIGTERM)
    assert server.finish()[0] == 0


def test_a_path_in_the_target_is_kept(recorded):
    server = Server(recorded, "hyperliquid", "--to", "ws://127.0.0.1:0/feed", "--speed", "max")
    assert server.announced.endswith("/feed")
    with sync_connect(server.announced, open_timeout=30) as ws:
        assert CLIENTS["hyperliquid"](ws)
    server.proc.send_signal(signal.SIGTERM)
    assert server.finish()[0] == 0
