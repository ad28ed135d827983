"""The one network loop, against plain local websockets servers."""

import asyncio

import pytest
from websockets.asyncio.server import serve

from wsrec.connection import ConnectError, HandshakeRejected, connect
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
