"""Session rows as ``Normalizer.feed`` reads them, built from literal frames (shared by the
normalized-table tests of every venue)."""

import pyarrow as pa

TS = pa.timestamp("ns", tz="UTC")


def frames_batch(venue, frames, *, t0: int = 1_800_000_000_000_000_000, conn: int = 0,
                 stream: str | None = "main") -> pa.RecordBatch:
    """A batch of ``(channels, payload[, kind[, dir]])`` frames (``channels``: one name or
    a list; ``kind`` text, ``dir`` in by default), received 1 ns apart from ``t0`` on
    connection ``conn``, with ``exch_ts`` by the venue's rules. ``stream`` None: each
    frame's stream is its channel (Vega: one stream per path)."""
    n = len(frames)
    channels = [[f[0]] if isinstance(f[0], str) else list(f[0]) for f in frames]
    payloads = pa.array([f[1] for f in frames], pa.binary())
    kinds = pa.array([f[2] if len(f) > 2 else "text" for f in frames])
    return pa.RecordBatch.from_pydict({
        "seq": pa.array(range(1, n + 1), pa.int64()),
        "ts": pa.array([t0 + i for i in range(n)], pa.int64()).cast(TS),
        "exch_ts": venue.exch_ts(payloads, kinds),
        "stream": [stream or (c[0] if c else None) for c in channels],
        "conn": pa.array([conn] * n, pa.int32()),
        "dir": [f[3] if len(f) > 3 else "in" for f in frames],
        "kind": kinds,
        "channel": [c[0] if len(c) == 1 else None for c in channels],
        "channels": pa.array(channels, pa.list_(pa.string())),
        "payload": payloads,
    })
