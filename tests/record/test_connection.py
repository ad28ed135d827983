"""The one network loop, against plain local websockets servers."""

import asyncio

import pytest
from websockets.asyncio.server import serve

from wsrec.record._connection import ConnectError, HandshakeRejected, connect
from wsrec.sim.base import Simulator

pytestmark = pytest.mark.timeout(30)


class Collect:
    def __init__(self):
        self.events = []

    def on_open(self, conn, ts, mono):
        self.events.append(("open",))

    def on_message(self, payload, text, ts, mono):
        assert ts > 1_600_000_000 * 10**9 and mono > 0
        self.events.append(("msg", bytes(payload), text))

    def on_ping(self, data, ts, mono):
        self.events.append(("ping", data))


def run(handler, client, **serve_kw):
    async def main():
        async with serve(handler, "127.0.0.1", 0, **serve_kw) as server:
            port = server.sockets[0].getsockname()[1]
            return await client(f"ws://127.0.0.1:{port}/x")
    return asyncio.run(main())


def test_messages_fragments_pings_close_and_compression():
    big = b"x" * 3_000_000   # past websockets' default 1 MiB limit

    async def handler(ws):
        await ws.send("text")
        await ws.send(big)
        await ws.send(iter(["frag", "ments"]))
        await ws.ping(b"hi")
        await ws.close(4000, "bye")

    async def client(url):
        c = Collect()
        conn = await connect(url, c)
        assert "permessage-deflate" in conn.response.headers.get("Sec-WebSocket-Extensions")
        code, reason = await asyncio.wait_for(conn.closed, 10)
        return c.events, code, reason

    events, code, reason = run(handler, client)
    assert events == [("open",), ("msg", b"text", True), ("msg", big, False),
                      ("msg", b"fragments", True), ("ping", b"hi")]
    assert (code, reason) == (4000, "bye")


def test_send_and_lost_connection():
    async def handler(ws):
        msg = await ws.recv()
        await ws.send(msg)
        ws.transport.abort()

    async def client(url):
        c = Collect()
        conn = await connect(url, c)
        conn.send(b'{"hello":1}')
        code, reason = await asyncio.wait_for(conn.closed, 10)
        return c.events, code

    events, code = run(handler, client)
    assert events[1] == ("msg", b'{"hello":1}', True) and code == 1006


def test_http_status_on_upgrade():
    async def client(url):
        with pytest.raises(HandshakeRejected) as info:
            await connect(url, Collect())
        return info.value

    exc = run(lambda ws: None, client,
              process_request=lambda conn, req: Simulator.http_error(401, "no key"))
    assert exc.status == 401 and "HTTP 401" in str(exc) and "no key" in str(exc)


def test_connect_errors():
    async def main():
        with pytest.raises(ConnectError, match="connection refused"):
            await connect("ws://127.0.0.1:9/", Collect(), timeout=5)
        with pytest.raises(ConnectError, match="invalid WebSocket URL"):
            await connect("http://x", Collect())
    asyncio.run(main())


# -- why a connection failed or closed: named as it was ------------------------------------

def _raw_server(reply):
    """An asyncio server on 127.0.0.1 that answers the WebSocket upgrade, then writes
    ``reply`` (raw frame bytes) and waits for the client to go."""
    import re

    from websockets.utils import accept_key

    async def handle(reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            key = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", head).group(1)
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                         + accept_key(key.decode()).encode() + b"\r\n\r\n" + reply)
            await reader.read(1 << 16)   # the client's close frame
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
    return asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize("frame,reason", [
    (b"\xc1\x02hi", "reserved bits must be 0"),
    (b"\x81\x82abcdhi", "incorrect masking"),
    (b"\x83\x00", "invalid opcode"),
    (b"\x89\x7e\x00\x80" + b"p" * 128, "control frame too long"),
    (b"\x01\x01a\x81\x01b", "expected a continuation frame"),
    (b"\x88\x02\x03\xe7", "invalid status code"),
])
def test_a_protocol_error_is_a_1002_with_the_local_reason(frame, reason):
    async def main():
        server = await _raw_server(frame)
        port = server.sockets[0].getsockname()[1]
        try:
            conn = await connect(f"ws://127.0.0.1:{port}/", Collect(), compression=False)
            return await asyncio.wait_for(conn.closed, 10)
        finally:
            server.close()
    code, text = asyncio.run(main())
    assert code == 1002 and text == f"closed by wsrec (protocol error): {reason}"


def test_a_message_over_the_limit_is_a_1009_with_the_local_reason():
    async def handler(ws):
        await ws.send("x" * 5000)
        await ws.wait_closed()

    async def client(url):
        c = Collect()
        conn = await connect(url, c, max_size=1024)
        return c.events, await asyncio.wait_for(conn.closed, 10)

    events, (code, reason) = run(handler, client)
    assert events == [("open",)]   # the message is not delivered
    assert code == 1009
    assert reason == "closed by wsrec (message too big): frame exceeds limit of 1024 bytes"
    # fragments adding up past the limit: the same
    async def fragments(ws):
        await ws.send(iter(["y" * 700, "y" * 700]))
        await ws.wait_closed()
    events, (code, reason) = run(fragments, client)
    assert code == 1009 and reason.startswith("closed by wsrec (message too big): ")


def test_the_servers_close_code_and_reason_are_kept():
    async def handler(ws):
        await ws.close(4001, "go away")

    async def client(url):
        conn = await connect(url, Collect())
        return await asyncio.wait_for(conn.closed, 10)
    assert run(handler, client) == (4001, "go away")


@pytest.mark.parametrize("url,problem", [
    ("ws://127.0.0.1:99999/", "invalid port 99999"),
    ("ws://127.0.0.1:0/", "invalid port 0"),
    ("ws://127.0.0.1:http/", "invalid port http"),
    ("ws://[::1/", "unbalanced '['"),
    ("http://127.0.0.1/", "the scheme must be ws:// or wss://"),
    ("ws:///path", "no host name"),
    ("ws://127.0.0.1/#frag", "no #fragment"),
    ("", "empty URL"),
])
def test_invalid_urls_name_the_problem(url, problem):
    from wsrec.record._connection import InvalidURL, url_problem
    assert problem in url_problem(url)

    async def main():
        with pytest.raises(InvalidURL, match="invalid WebSocket URL") as info:
            await connect(url, Collect(), timeout=5)
        return info.value
    assert problem in str(asyncio.run(main()))
    assert url_problem("wss://example.test:8443/ws?x=1") is None


def test_secrets_stay_out_of_url_errors():
    from wsrec.record._connection import InvalidURL, parse_url
    with pytest.raises(InvalidURL) as info:
        parse_url("ws://bob:hunter2@h:70000/?token=tok123")
    assert "hunter2" not in str(info.value) and "tok123" not in str(info.value)
    assert "ws://***@h:70000/?token=***" in str(info.value)


def test_tls_to_a_plain_server_says_so():
    async def ws_server(url):   # a websockets server: it drops the TLS hello
        with pytest.raises(ConnectError) as info:
            await connect(url.replace("ws://", "wss://"), Collect(), timeout=5)
        return str(info.value)

    text = run(lambda ws: ws.wait_closed(), ws_server)
    assert "TLS handshake failed" in text and text.endswith("(is the server plain ws://?)")
    assert "reset" in text or "EOF" in text or "SSL" in text

    async def http_answer():   # a plain server that answers in HTTP
        async def handle(reader, writer):
            await reader.read(10)
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(ConnectError) as info:
                await connect(f"wss://127.0.0.1:{port}/", Collect(), timeout=5)
        finally:
            server.close()
        return str(info.value)

    text = asyncio.run(http_answer())
    assert "TLS handshake failed: SSL: WRONG_VERSION_NUMBER" in text \
        or "TLS handshake failed: SSL: RECORD_LAYER_FAILURE" in text, text
    assert text.endswith("(is the server plain ws://?)")


def test_resolver_errors_are_named(monkeypatch):
    import socket

    async def main():
        loop = asyncio.get_running_loop()

        async def fail(*args, **kwargs):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        monkeypatch.setattr(loop, "getaddrinfo", fail)
        with pytest.raises(ConnectError) as info:
            await connect("ws://no-such-host.test/", Collect(), timeout=5)
        return str(info.value)
    assert asyncio.run(main()) == \
        "cannot connect to no-such-host.test:80: Name or service not known"


def test_any_other_connect_failure_is_a_connect_error(monkeypatch):
    async def main():
        loop = asyncio.get_running_loop()

        async def fail(*args, **kwargs):
            raise UnicodeError("label too long")
        monkeypatch.setattr(loop, "create_connection", fail)
        with pytest.raises(ConnectError, match="UnicodeError: label too long"):
            await connect("ws://x.test/", Collect(), timeout=5)
    asyncio.run(main())


def test_a_flood_does_not_starve_the_loop():
    """A read holding tens of thousands of frames is parsed in slices: a timer due while
    it is being parsed fires in between, not once all of it is parsed."""
    import time

    total = 60_000
    frames = b"".join(b"\x89\x04" + i.to_bytes(4, "big") for i in range(total))

    def slow_ping(data, ts, mono):   # 50 us of work per ping: 3 s for them all
        c.events.append(("ping", data))
        until = time.perf_counter() + 0.00005
        while time.perf_counter() < until:
            pass

    c = Collect()
    c.on_ping = slow_ping

    async def main():
        server = await _raw_server(frames)
        port = server.sockets[0].getsockname()[1]
        fired = []
        try:
            conn = await connect(f"ws://127.0.0.1:{port}/", c, compression=False)
            asyncio.get_running_loop().call_later(0.2, lambda: fired.append(
                (time.monotonic(), len(c.events))))
            started = time.monotonic()
            while not fired and time.monotonic() - started < 60:
                await asyncio.sleep(0.01)
            conn.abort()
            return fired[0][0] - started, fired[0][1]
        finally:
            server.close()
    late, parsed = asyncio.run(main())
    assert parsed < total, "the timer waited for the whole read to be parsed"
    assert late < 5
