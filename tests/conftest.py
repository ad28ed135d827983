import random

import pytest

import wsrec

SYMBOLS = ["AAPL", "MSFT", "AMD", "NVDA", "TSLA"]
CHANNELS = ["trades", "quotes", "bars"]


def synthetic_rows(n, seed=7):
    """Deterministic rows: (payload, kwargs for SessionWriter.append)."""
    r = random.Random(seed)
    ts = 1_795_000_000_000_000_000
    mono = 10**12
    for i in range(n):
        step = r.randint(1_000, 2_000_000)
        ts += step
        mono += step
        k = r.random()
        syms = tuple(r.sample(SYMBOLS, r.choice([0, 1, 1, 1, 2, 3])))
        chans = tuple(r.sample(CHANNELS, r.choice([0, 1, 1, 2])))
        if k < 0.1:
            payload, kind = bytes(r.getrandbits(8) for _ in range(r.randint(0, 40))), "binary"
        elif k < 0.15:
            payload, kind = b"", "text"
        elif k < 0.2:
            payload, kind = b'{"a":"\xff\xfe not utf-8"}', "text"
        else:
            payload = ('[{"T":"q","S":"%s","bp":%.2f,"i":%d}]' % (
                syms[0] if syms else "X", r.uniform(10, 500), i)).encode()
            kind = "text"
        direction = "out" if k > 0.97 else "in"
        yield payload, dict(kind=kind, dir=direction, channels=chans, symbols=syms,
                            ts_ns=ts, mono_ns=mono, conn=r.choice([0, 0, 1]))


def write_session(data, n=500, venue="alpaca", seed=7, events=True, flush_every=None,
                  **settings):
    """A complete session with ``n`` message rows (and open/close events); returns
    (session folder, list of (payload, kwargs)) in seq order."""
    rows = list(synthetic_rows(n, seed))
    written = []
    with wsrec.SessionWriter(venue, data=data, **settings) as w:
        first = rows[0][1]
        if events:
            w.event("open", conn=0, url="wss://example.test/v2/test",
                    ts_ns=first["ts_ns"] - 10, mono_ns=first["mono_ns"] - 10)
            written.append((b"", dict(dir="event", kind="open")))
        for i, (payload, kw) in enumerate(rows):
            w.append(payload, **kw)
            written.append((payload, kw))
            if flush_every and i % flush_every == 0:
                w.flush()
        if events:
            last = rows[-1][1]
            w.event("close", conn=0, code=1000, reason="bye",
                    ts_ns=last["ts_ns"] + 10, mono_ns=last["mono_ns"] + 10)
            written.append((b"", dict(dir="event", kind="close")))
    return w.folder, written


@pytest.fixture
def data(tmp_path):
    return tmp_path / "data"


CRASH = """
import os, sys, wsrec
w = wsrec.SessionWriter(sys.argv[2], data=sys.argv[1], flush_interval=60)
w.event("open", url="wss://example.test/ws")
for i in range(int(sys.argv[3])):
    w.append(b'{"i":%d}' % i, kind="text", symbols=("S%d" % (i % 2),))
w.flush()
print(w.folder, flush=True)
os._exit(0)   # dies without closing: status stays 'recording', the lock is freed
"""


def crashed_session(data, venue="crashy", n=50):
    """A session whose recorder died after flushing ``n`` frames (plus an open event)."""
    import subprocess
    import sys
    from pathlib import Path
    out = subprocess.run([sys.executable, "-c", CRASH, str(data), venue, str(n)],
                         capture_output=True, text=True, timeout=60, check=True)
    return Path(out.stdout.strip())


def record_from_sim(venue, data, *, sim=None, channels=(), symbols=(), params=None,
                    options=None, url=None, env=None, name=None, recorder=None):
    """Start ``venue``'s simulator on a free port, record from it, stop both.

    Returns ``(result, simulator, session)``. ``url`` replaces the simulator's URL
    (with its path) when given as a function of the simulator URL; ``recorder``: more
    ``Recorder`` arguments.
    """
    import asyncio

    from wsrec.record.recorder import Recorder, RecordOptions
    from wsrec.sim import SimOptions, get_simulator
    from wsrec.venues import Request, get_venue

    async def main():
        simulator = get_simulator(venue, sim or SimOptions(rate=200))
        base = await simulator.start()
        request = Request(channels=list(channels), symbols=list(symbols),
                          params=dict(params or {}), url=url(base) if url else base,
                          env=simulator.credentials() if env is None else env)
        try:
            rec = Recorder(get_venue(venue), request, data=data,
                           options=options or RecordOptions(duration=1.0), name=name,
                           **(recorder or {}))
            result = await asyncio.wait_for(rec.run(), 60)
        finally:
            await simulator.close()
        return result, simulator

    result, simulator = asyncio.run(main())
    return result, simulator, wsrec.open_session(result.path)


def inbound_by_conn(session):
    """Inbound payloads of a session per conn, in order."""
    out = {}
    for f in session.frames(direction="in"):
        out.setdefault(f.conn, []).append(f.payload)
    return out


def all_bytes_under(path):
    """Every byte of every file under ``path`` (to look for secrets)."""
    from pathlib import Path
    return b"".join(p.read_bytes() for p in Path(path).rglob("*") if p.is_file())


def inbound_by_connection(session):
    """Inbound payloads per physical connection (split at each ``open`` event)."""
    out = []
    for f in session.frames(direction="in,event"):
        if f.dir == "event":
            if f.kind == "open":
                out.append([])
        else:
            out[-1].append(f.payload)
    return out


def assert_recorded_what_was_sent(session, sim):
    """Each connection's recorded frames are what the simulator sent on it, in order;
    only the last connection may miss a tail (frames in flight when recording stopped)."""
    got = inbound_by_connection(session)
    sent = [sim.sent[cid] for cid in sorted(sim.sent)]
    assert len(got) == len(sent)
    for i, (g, s) in enumerate(zip(got, sent)):
        if i < len(sent) - 1:
            assert g == s, f"connection {i}"
        else:
            assert g == s[:len(g)] and len(g) >= len(s) - 5, f"connection {i}"


def talk(venue, path, script, *, options=None, headers=None, timeout=10):
    """Start ``venue``'s simulator, connect a plain websockets client to ``path`` and run
    ``await script(ws)``; returns what the script returns (client-side tests of the sims)."""
    import asyncio

    from websockets.asyncio.client import connect

    from wsrec.sim import SimOptions, get_simulator

    async def main():
        sim = get_simulator(venue, options or SimOptions(rate=50))
        url = await sim.start()
        try:
            async with connect(url + path, additional_headers=headers or {},
                               max_size=None) as ws:
                return await asyncio.wait_for(script(ws), timeout)
        finally:
            await sim.close()

    return asyncio.run(main())


async def recv_json(ws, timeout=5):
    import asyncio
    return json_loads(await asyncio.wait_for(ws.recv(), timeout))


def json_loads(message):
    import json
    return json.loads(message)


# A small Hyperliquid session of literal frames (venue-docs), for normalized views.
TRADE = (b'{"channel":"trades","data":[{"coin":"BTC","side":"A","px":"69170.0",'
         b'"sz":"0.00018","time":1787195046105,"hash":"0x00","tid":456615105517601,'
         b'"users":["0xf5d8","0x4d20"]}]}')
BOOK = (b'{"channel":"l2Book","data":{"coin":"BTC","time":1787195067883,"levels":'
        b'[[{"px":"69172.0","sz":"1.21098","n":5}],[{"px":"69173.0","sz":"8.45682","n":30}]]}}')
T0 = 1_787_195_046_200_000_000


def hyperliquid_session(data):
    with wsrec.SessionWriter("hyperliquid", data=data) as w:
        w.event("open", conn=1, stream="main", ts_ns=T0 - 10, mono_ns=0)
        w.append(b'{"method":"subscribe"}', kind="text", dir="out", conn=1, stream="main",
                 ts_ns=T0 - 5, mono_ns=5)
        w.append(TRADE, kind="text", conn=1, stream="main", channels=("trades",),
                 symbols=("BTC",), ts_ns=T0, mono_ns=10)
        w.append(BOOK, kind="text", conn=1, stream="main", channels=("l2Book",),
                 symbols=("BTC",), ts_ns=T0 + 100_000_000, mono_ns=20)
        w.append(b'{"channel":"trades","data":[{"coin":"BTC"}]}', kind="text", conn=1,
                 stream="main", channels=("trades",), symbols=("BTC",),
                 ts_ns=T0 + 200_000_000, mono_ns=30)
    return wsrec.open_session(w.folder)
