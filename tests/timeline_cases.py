"""Sessions with a known shape over time, for the tests of ``wsrec.store.timeline``,
``wsrec.store.plot`` and ``wsrec info`` / ``wsrec plot``. Deterministic: no clock."""

import pyarrow as pa

import wsrec
from wsrec.timefmt import NS

T0 = 1_794_960_000 * NS          # 2026-11-18T00:00:00Z
MS = 1_000_000
#: how long after the venue's own time (``time``, ms) each frame is received
LATE = 20 * MS
TS = pa.timestamp("ns", tz="UTC")


def rows(ts, stream="a", channel="x", dirs=None, exch=None):
    """A table with a ``Binner``'s columns: frames at ``ts`` (ns), received unless
    ``dirs`` says otherwise, with one ``stream`` and ``channel`` or a list of each, and
    ``exch`` times (ns or None)."""
    n = len(ts)

    def col(value):
        return value if isinstance(value, list) else [value] * n

    return pa.table({
        "ts": pa.array(ts, pa.int64()).cast(TS),
        "dir": dirs or ["in"] * n,
        "stream": pa.array(col(stream), pa.string()),
        "channel": pa.array(col(channel), pa.string()),
        "exch_ts": pa.array(exch if exch is not None else [None] * n, pa.int64()).cast(TS),
    })


def write(data, frames, venue="hyperliquid", gaps=(), channels=("trades",)):
    """A Hyperliquid session started at ``T0``: one received frame at each time of
    ``frames`` (ns, ascending), ``LATE`` after its ``time``, on stream ``main``; its
    connection is lost at the start of each of ``gaps`` (``(start, end)`` ns) and a new
    one opens at its end. Frame ``i`` is on channel ``channels[i % len(channels)]``."""
    gaps = list(gaps)

    def mono(ts):
        return 10**12 + ts - T0

    with wsrec.SessionWriter(venue, data=data, started_ns=T0) as w:
        w.event("open", conn=0, stream="main", ts_ns=T0, mono_ns=mono(T0))
        conn = 0
        for i, ts in enumerate(frames):
            while conn < len(gaps) and gaps[conn][0] <= ts:
                start, end = gaps[conn]
                w.event("close", conn=conn, stream="main", ts_ns=start, mono_ns=mono(start))
                conn += 1
                w.event("open", conn=conn, stream="main", ts_ns=end, mono_ns=mono(end))
            channel = channels[i % len(channels)]
            w.append(b'{"channel":"%s","data":[{"coin":"BTC","time":%d}]}'
                     % (channel.encode(), (ts - LATE) // MS), conn=conn, stream="main",
                     kind="text", channels=(channel,), ts_ns=ts, mono_ns=mono(ts))
    return wsrec.open_session(w.folder)
