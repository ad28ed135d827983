"""What a session holds: the numbers behind ``wsrec ls`` and ``wsrec info``."""

from __future__ import annotations

import re
from collections import Counter

import pyarrow as pa

from wsrec.store._compute import call, pc
from wsrec.store.session import Session
from wsrec.store.timeline import Binner, links_of, session_range
from wsrec.timefmt import format_ns

__all__ = ["summary", "details", "latency_summary", "directions", "is_empty"]


def summary(session: Session, *, count: bool = True) -> dict:
    """One ``ls`` row: the manifest, a directory listing, journals only when present, and
    the ``dir`` column (``directions``; not read with ``count=False``). ``frames`` is what
    ``info`` calls frames: the inbound ones (None when they can't be counted); ``rows``
    counts every row."""
    start, end = session.start_ns, session.end_ns
    counts = directions(session) if count else None
    return {
        "venue": session.venue,
        "id": session.id,
        "path": str(session.path),
        "start": format_ns(start),
        "end": format_ns(end),
        "duration_ns": end - start if start is not None and end is not None else None,
        "frames": counts and counts["in"],
        "frames_in": counts and counts["in"],
        "frames_out": counts and counts["out"],
        "events": counts and counts["event"],
        "rows": session.rows(),
        "bytes": session.disk_bytes(),
        "status": session.status,
        "state": session.state,
        "live": session.live,
        "crashed": session.crashed,
    }


def directions(session: Session) -> dict | None:
    """Rows by direction, ``{"in": n, "out": n, "event": n}``: from the manifest when
    every part has its counts there and no journal is left (a finished session: nothing
    but session.json is read, which keeps ``ls`` of a bucket cheap), else from the
    ``dir`` column alone (dictionary-encoded: a few bytes a row group); None for a
    session in an older format or with a damaged part (``verify`` says which)."""
    from wsrec.errors import CorruptData
    if session.outdated:
        return None
    parts = session.manifest["parts"]
    keys = {"in": "frames_in", "out": "frames_out", "event": "events"}
    if not session.journals and all(k in p for p in parts for k in keys.values()) and \
            all(sum(p[k] for k in keys.values()) == p["rows"] for p in parts):
        return {d: sum(p[k] for p in parts) for d, k in keys.items()}
    counts = Counter({"in": 0, "out": 0, "event": 0})
    try:
        for batch in session.batches(columns=["dir"]):
            _count(counts, batch.column("dir"))
    except CorruptData:
        return None
    return dict(counts)


def is_empty(row: dict) -> bool:
    """Whether an ``ls`` row (``summary``) is a finished session without one inbound
    frame: a recorder that never got through (its outbound frames and events stay on
    disk, and ``ls --all`` lists it)."""
    return row.get("frames") == 0 and row.get("state") not in ("live", "crashed")


def details(session: Session, timeline_width: int = 100) -> dict:
    """Everything ``info`` shows; reads the session once, column-wise, batch by batch.
    ``timeline``: received frames per stream over time in at most ``timeline_width``
    buckets (``wsrec.store.timeline``)."""
    out = summary(session, count=False)
    by_dir: Counter = Counter({"in": 0, "out": 0, "event": 0})
    by_kind: Counter = Counter()
    by_channel: Counter = Counter()
    by_symbol: Counter = Counter()
    raw = 0
    first_ts = last_ts = None
    latencies: dict[str, list] = {}
    columns = ["ts", "exch_ts", "dir", "kind", "stream", "channel", "channels", "symbols",
               "payload"]
    span = session_range(session)
    binner = Binner(*span, timeline_width) if span else None
    for batch in session.batches(columns=columns):
        if binner is not None:
            binner.add(batch)
        _latencies(latencies, batch)
        raw += pc.sum(pc.binary_length(batch.column("payload"))).as_py() or 0
        _count(by_dir, batch.column("dir"))
        _count(by_kind, batch.column("kind"))
        _count(by_channel, batch.column("channels").flatten())
        _count(by_symbol, batch.column("symbols").flatten())
        ts = pc.min_max(batch.column("ts").cast(pa.int64()))
        lo, hi = ts["min"].as_py(), ts["max"].as_py()
        first_ts = lo if first_ts is None else min(first_ts, lo)
        last_ts = hi if last_ts is None else max(last_ts, hi)
    disk = out["bytes"]
    links = links_of(session)
    out.update({
        "frames": by_dir["in"],
        "frames_in": by_dir["in"],
        "frames_out": by_dir["out"],
        "events": by_dir["event"],
        "kinds": dict(by_kind.most_common()),
        "raw_bytes": raw,
        "compression_ratio": round(raw / disk, 2) if disk else None,
        "first_frame": format_ns(first_ts),
        "last_frame": format_ns(last_ts),
        "span_ns": last_ts - first_ts if first_ts is not None else None,
        "parts": len(session.manifest["parts"]),
        "journals": [p.name for p in session.journals],
        "connections": links.get("connections", []),
        "gaps": links.get("gaps", []),
        "channels": dict(by_channel.most_common()),
        "symbols": dict(by_symbol.most_common()),
        "latency": latency_summary(latencies),
        "timeline": binner.result(links).as_dict() if binner is not None else None,
        "error": session.manifest.get("error"),
        "args": session.manifest.get("args", {}),
    })
    if session.venue == "dfuse":
        out["redelivered"] = redelivered(session)
    return out


_BLOCK = re.compile(rb'"block_num":(\d+)')
_REQ = re.compile(rb'"req_id":"([^"]*)"')


def redelivered(session: Session) -> int:
    """dfuse: data frames of blocks that an earlier connection of the same stream had
    already delivered (a resume restarts at the last progress block + 1, so the blocks
    after it come twice)."""
    from wsrec.venues.dfuse import BLOCK_DATA   # (the venues: not for ``ls``)
    count = 0
    seen: dict[tuple, int] = {}       # (stream, req_id) -> highest block so far
    before: dict[tuple, int] = {}     # the same, as of the stream's current connection
    for f in session.frames(direction="in,event"):
        if f.dir == "event":
            if f.kind == "open":
                before.update({k: v for k, v in seen.items() if k[0] == f.stream})
            continue
        if f.channel not in BLOCK_DATA:
            continue
        block, req = _BLOCK.search(f.payload), _REQ.search(f.payload)
        if block is None or req is None:
            continue
        key, number = (f.stream, req.group(1)), int(block.group(1))
        if number <= before.get(key, -1):
            count += 1
        seen[key] = max(seen.get(key, -1), number)
    return count


def _latencies(into: dict, batch: pa.RecordBatch) -> None:
    """Add a batch's receive latencies (local ``ts`` - ``exch_ts``, ns) by channel."""
    exch = batch.column("exch_ts")
    if exch.null_count == len(exch):
        return
    rows = batch.filter(pc.is_valid(exch))
    late = pc.subtract(rows.column("ts").cast(pa.int64()), rows.column("exch_ts").cast(pa.int64()))
    channels = pc.fill_null(rows.column("channel"), "(several)")
    for channel in pc.unique(channels).to_pylist():
        into.setdefault(channel, []).append(late.filter(pc.equal(channels, channel)))


def latency_summary(latencies: dict) -> dict:
    """channel -> count and percentiles (ms) of receive latency: how long after the venue's
    own timestamp the frame arrived (negative when the venue's clock is ahead)."""
    out = {}
    for channel, arrays in sorted(latencies.items()):
        values = pa.chunked_array(arrays, pa.int64())
        q = pc.quantile(values, q=[0.5, 0.9, 0.99], interpolation="nearest").to_pylist()
        lo_hi = pc.min_max(values)
        out[channel] = {"count": len(values), "p50_ms": q[0] / 1e6, "p90_ms": q[1] / 1e6,
                        "p99_ms": q[2] / 1e6, "min_ms": lo_hi["min"].as_py() / 1e6,
                        "max_ms": lo_hi["max"].as_py() / 1e6}
    return out


def _count(counter: Counter, values: pa.Array) -> None:
    """Add an array's value counts to ``counter`` (one Python step per distinct value);
    by name (``wsrec.store._compute``): ``ls`` counts directions without pyarrow.compute."""
    if len(values) == 0:
        return
    for item in call("value_counts", values).to_pylist():
        if item["values"] is not None:
            counter[item["values"]] += item["counts"]
