"""A session over time: frames received per time bucket, by stream and by channel, the
time each stream was down, and receive latency per bucket (``wsrec info``, ``wsrec plot``).

``Binner`` counts record batches into buckets of one width, laid from a known start to a
known end (a session's start and end: ``session_range``), so a session of any length
and any number of frames is read once, a batch at a time, and only the columns it needs
(``COLUMNS``; never the payload). Everything is Arrow compute kernels and one
``group_by`` per batch; what stays in memory is the counts. Rows outside the range
(a wall clock stepped past the recorded end) count in the first or last bucket.

* A bucket width is a round one (1 ms, 5 s, 1 min, 1 h, 1 day, ...: ``NICE_NS``), the
  narrowest that lays the range in at most the buckets asked for, and buckets start at
  a multiple of it (a 1-day bucket starts at UTC midnight): ``choose_buckets``.
* "Down" is a recorded gap (``session.json`` ``gaps``: a stream lost its connection
  until the next ``open``) overlapping the bucket, or a bucket wholly after a stream's
  last connection closed (lost, and not back before the session ended); a bucket with no
  frame that is not down is silence on an open connection. Both show in the timeline
  line: ``sparkline``.
* Receive latency (``ts - exch_ts``, where the venue gives a time) is kept as a
  histogram per bucket and channel, 20 bins per decade from 1 us to 10^18 ns (31 years),
  each sign, so a percentile (``Timeline.percentiles``) is the geometric middle of its
  bin: within 6% of the exact value (0 below 1 us; the last bin holds all beyond).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import pyarrow as pa

from wsrec.store._compute import pc
from wsrec.errors import UsageError
from wsrec.store._connections import track
from wsrec.timefmt import NS, format_duration, format_ns, parse_time

__all__ = ["Binner", "Timeline", "timeline", "session_range", "choose_buckets", "sparkline",
           "timeline_lines", "fit_width", "links_of", "width_label", "COLUMNS", "NICE_NS", "BLOCKS",
           "DOWN", "MAX_BUCKETS", "NO_STREAM", "OTHER_CHANNEL"]

#: The columns a ``Binner`` reads.
COLUMNS = ("ts", "dir", "stream", "channel", "exch_ts")
#: Levels of the timeline line, lowest to highest; a bucket with any frame gets at least
#: the first.
BLOCKS = "▁▂▃▄▅▆▇█"
#: A bucket with no frame in which the stream was down (a recorded gap).
DOWN = "·"
#: The most buckets a timeline may have (``--bucket`` too narrow for the span).
MAX_BUCKETS = 100_000
#: Labels for rows without a stream, or without exactly one channel.
NO_STREAM = "(none)"
OTHER_CHANNEL = "(other)"

_MS = 1_000_000
_DAY = 86_400 * NS
#: Bucket widths, narrowest first: 1-2-5 steps below a second, then the clock's own.
NICE_NS = tuple(
    [m * 10**e for e in range(0, 9) for m in (1, 2, 5)]
    + [s * NS for s in (1, 2, 5, 10, 15, 30)]
    + [m * 60 * NS for m in (1, 2, 5, 10, 15, 30)]
    + [h * 3600 * NS for h in (1, 2, 3, 6, 12)]
    + [d * 10**e * _DAY for e in range(0, 6) for d in (1, 2, 5)])

# latency histogram: bin 0 is |x| < 1 us; bin m >= 1 holds 10^((m-1)/20) us <= |x| <
# 10^(m/20) us, up to _SIDE (the last also holds everything beyond); signed index
# m * sign + _SIDE, so the index order is the value order.
_PER_DECADE = 20
_SIDE = _PER_DECADE * 15
_US = 1_000


def choose_buckets(start_ns: int, end_ns: int, buckets: int, bucket_ns: int | None = None,
                   min_bucket_ns: int = 1) -> tuple[int, int, int]:
    """(first bucket's start, width, number of buckets) laying ``start_ns .. end_ns``
    (both included) in at most ``buckets`` buckets of the narrowest ``NICE_NS`` width of
    at least ``min_bucket_ns``; or in buckets of ``bucket_ns`` (UsageError when that makes
    more than ``MAX_BUCKETS``)."""
    if end_ns < start_ns:
        start_ns, end_ns = end_ns, start_ns
    if bucket_ns is not None:
        if bucket_ns <= 0:
            raise UsageError(f"bucket width must be positive, not {bucket_ns} ns",
                             param="bucket")
        first = start_ns // bucket_ns * bucket_ns
        n = (end_ns - first) // bucket_ns + 1
        if n > MAX_BUCKETS:
            raise UsageError(
                f"a {width_label(bucket_ns)} bucket makes {n:,} buckets of the "
                f"{format_duration(end_ns - start_ns)} span, more than {MAX_BUCKETS:,}: "
                f"choose a wider bucket", param="bucket")
        return first, bucket_ns, n
    if buckets < 1:
        raise UsageError(f"a timeline needs at least 1 bucket, not {buckets}", param="width")
    for width in NICE_NS:
        if width < min_bucket_ns:
            continue
        first = start_ns // width * width
        n = (end_ns - first) // width + 1
        if n <= buckets:
            return first, width, n
    width = NICE_NS[-1]  # pragma: no cover - 500,000 days exceed any int64 span
    return start_ns // width * width, width, (end_ns - start_ns // width * width) // width + 1


def width_label(ns: int) -> str:
    """A bucket width in one unit: ``'1d'``, ``'6h'``, ``'15m'``, ``'30s'``, ``'200ms'``,
    ``'5us'``, ``'1ns'``; otherwise ``format_duration``'s form."""
    for unit, size in (("d", _DAY), ("h", 3600 * NS), ("m", 60 * NS), ("s", NS),
                       ("ms", _MS), ("us", _US), ("ns", 1)):
        if ns >= size and ns % size == 0:
            return f"{ns // size}{unit}"
    return format_duration(ns)  # pragma: no cover - every integer is a whole number of ns


@dataclass(frozen=True)
class Timeline:
    """Counts of received frames per bucket: bucket ``i`` is ``start_ns + i * bucket_ns``
    up to the next. ``down[stream][i]``: a recorded gap of the stream overlaps bucket
    ``i``. ``gaps``: the recorded gaps, and a stream's down time from its last
    connection's close to the end, ``(stream, start_ns, end_ns)``."""
    start_ns: int
    bucket_ns: int
    buckets: int
    streams: dict[str, list[int]]
    channels: dict[str, list[int]]
    down: dict[str, list[bool]]
    gaps: list[tuple[str, int, int]]
    latency: dict[str, dict[int, dict[int, int]]] = field(default_factory=dict)

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.buckets * self.bucket_ns

    def edges(self) -> list[int]:
        """The buckets' boundaries (``buckets + 1`` times, ns)."""
        return [self.start_ns + i * self.bucket_ns for i in range(self.buckets + 1)]

    def percentiles(self, channel: str, qs: Sequence[float] = (0.5, 0.99)
                    ) -> list[list[float | None]]:
        """Per bucket, the receive-latency percentiles ``qs`` (ms) of ``channel``'s
        frames (nearest rank, to within 6%: see the module); None for a bucket without."""
        hist = self.latency.get(channel, {})
        out: list[list[float | None]] = []
        for i in range(self.buckets):
            bins = hist.get(i)
            if not bins:
                out.append([None] * len(qs))
                continue
            order = sorted(bins.items())
            total = sum(count for _, count in order)
            row = []
            for q in qs:
                rank, seen = max(1, math.ceil(q * total)), 0
                for index, count in order:
                    seen += count
                    if seen >= rank:
                        row.append(_bin_value(index) / _MS)
                        break
            out.append(row)
        return out

    def as_dict(self) -> dict:
        """The per-stream timeline as JSON data (``wsrec info --json``)."""
        return {
            "start": _time(self.start_ns),
            "end": _time(self.end_ns),
            "bucket_ns": self.bucket_ns,
            "buckets": self.buckets,
            "streams": {name: {"frames": counts, "down": self.down[name]}
                        for name, counts in self.streams.items()},
        }


def _time(ns: int) -> str:
    """``format_ns`` without the fraction's trailing zeros (buckets start on round
    times): ``'2026-11-18T11:06:40.1Z'``, ``'2026-11-18T11:06:00Z'``."""
    return format_ns(ns)[:-1].rstrip("0").rstrip(".") + "Z"


def _bin_value(index: int) -> float:
    """The value (ns) a latency bin stands for: the geometric middle of its bounds."""
    m = index - _SIDE
    if m == 0:
        return 0.0
    return math.copysign(_US * 10 ** ((abs(m) - 0.5) / _PER_DECADE), m)


class Binner:
    """Counts batches of session rows (at least ``COLUMNS``; received frames only count)
    into the buckets ``choose_buckets`` lays over ``start_ns .. end_ns``."""

    def __init__(self, start_ns: int, end_ns: int, buckets: int = 100, *,
                 bucket_ns: int | None = None, min_bucket_ns: int = 1, latency: bool = False):
        self.start_ns, self.bucket_ns, self.buckets = choose_buckets(
            start_ns, end_ns, buckets, bucket_ns, min_bucket_ns)
        self.end_ns = end_ns
        self.latency = latency
        self._streams: dict[str, list[int]] = {}
        self._channels: dict[str, list[int]] = {}
        self._latency: dict[str, dict[int, dict[int, int]]] = {}

    def _after(self, t: int) -> int:
        """The first bucket that starts at ``t`` or later."""
        return max(0, -((self.start_ns - t) // self.bucket_ns))

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        rows = batch.filter(pc.equal(batch.column("dir"), "in"))
        if not rows.num_rows:
            return
        ts = rows.column("ts").cast(pa.int64())
        last = self.start_ns + (self.buckets - 1) * self.bucket_ns
        inside = pc.min_element_wise(pc.max_element_wise(ts, self.start_ns), last)
        index = pc.divide(pc.subtract(inside, self.start_ns), self.bucket_ns)
        streams = pc.fill_null(rows.column("stream"), NO_STREAM)
        channels = pc.fill_null(rows.column("channel"), OTHER_CHANNEL)
        self._count(self._streams, streams, index)
        self._count(self._channels, channels, index)
        if self.latency:
            self._add_latency(rows, ts, channels, index)

    def _count(self, into: dict, keys: pa.Array, index: pa.Array) -> None:
        groups = pa.table({"k": keys, "i": index}).group_by(["k", "i"]).aggregate(
            [("i", "count")])
        for key, i, count in zip(*(groups.column(c).to_pylist() for c in ("k", "i",
                                                                          "i_count"))):
            counts = into.get(key)
            if counts is None:
                counts = into[key] = [0] * self.buckets
            counts[i] += count

    def _add_latency(self, rows, ts: pa.Array, channels: pa.Array, index: pa.Array) -> None:
        exch = rows.column("exch_ts")
        if exch.null_count == len(exch):
            return
        valid = pc.is_valid(exch)
        late = pc.subtract(ts.filter(valid), exch.filter(valid).cast(pa.int64()))
        size = pc.abs(late.cast(pa.float64()))
        decades = pc.log10(pc.divide(pc.max_element_wise(size, float(_US)), float(_US)))
        step = pc.add(pc.floor(pc.multiply(decades, float(_PER_DECADE))), 1.0)
        step = pc.if_else(pc.less(size, float(_US)), 0.0,
                          pc.min_element_wise(step, float(_SIDE)))
        signed = pc.add(pc.multiply(step.cast(pa.int64()), pc.sign(late)), _SIDE)
        groups = pa.table({"k": channels.filter(valid), "i": index.filter(valid),
                           "b": signed}).group_by(["k", "i", "b"]).aggregate([("b", "count")])
        for key, i, b, count in zip(*(groups.column(c).to_pylist()
                                      for c in ("k", "i", "b", "b_count"))):
            bins = self._latency.setdefault(key, {}).setdefault(i, {})
            bins[b] = bins.get(b, 0) + count

    def result(self, links: dict | None = None) -> Timeline:
        """The timeline. ``links``: the session's ``connections`` and ``gaps`` (as in
        ``session.json``): each gap's stream is marked down from its ``start`` to its
        ``end``, and a stream whose last connection closed before the session ended
        (dropped, and not back) from then on (the buckets wholly after it: a clean stop
        closes within the last one); every stream that connected is listed, even
        without a frame."""
        links = links or {}
        counts = dict(self._streams)
        spans = []   # (stream, start, end, whole buckets only)
        for gap in links.get("gaps", []):
            name = gap.get("stream") or NO_STREAM
            spans.append((name, parse_time(gap["start"]), parse_time(gap["end"]), False))
            counts.setdefault(name, [0] * self.buckets)
        last: dict[str, dict] = {}
        for connection in links.get("connections", []):
            name = connection.get("stream") or NO_STREAM
            counts.setdefault(name, [0] * self.buckets)
            if name not in last or _opened(connection) >= _opened(last[name]):
                last[name] = connection
        for name, connection in last.items():
            closed = connection.get("closed")
            if isinstance(closed, str) and \
                    self.start_ns + self._after(parse_time(closed)) * self.bucket_ns < \
                    min(self.end_ns, self.start_ns + self.buckets * self.bucket_ns):
                spans.append((name, parse_time(closed), self.end_ns, True))
        down = {name: [False] * self.buckets for name in counts}
        for name, start, end, whole in spans:
            if end <= self.start_ns or start >= self.start_ns + self.buckets * self.bucket_ns:
                continue
            first = self._after(start) if whole else \
                max(0, (start - self.start_ns) // self.bucket_ns)
            last = self.buckets - 1 if whole else min(
                self.buckets - 1, (max(end, start + 1) - 1 - self.start_ns) // self.bucket_ns)
            for i in range(first, last + 1):
                down[name][i] = True
        return Timeline(self.start_ns, self.bucket_ns, self.buckets,
                        dict(sorted(counts.items())), dict(sorted(self._channels.items())),
                        down, [span[:3] for span in spans], self._latency)


def _opened(connection: dict) -> int:
    opened = connection.get("opened")
    return parse_time(opened) if isinstance(opened, str) else 0


def session_range(session) -> tuple[int, int] | None:
    """The times a session's rows can have: from its start (or its first part's) to its
    end (or its last part's); None for a session with neither."""
    times = [session.start_ns, session.end_ns]
    for part in session.manifest["parts"]:
        times += [parse_time(part[k]) for k in ("start", "end") if part.get(k)]
    times = [t for t in times if t is not None]
    return (min(times), max(times)) if times else None


def links_of(session) -> dict:
    """A session's ``connections`` and ``gaps``: its manifest's, or for a session still
    recording (live or crashed: the manifest may lag the rows) from its event rows."""
    if session.status == "recording":
        return track(session.frames(direction="event")).as_dict()
    return session.manifest


def timeline(session, buckets: int = 100, *, bucket_ns: int | None = None,
             min_bucket_ns: int = 1, latency: bool = False) -> Timeline:
    """Read ``session``'s ``COLUMNS`` once and bin its received frames (see ``Binner``)
    in at most ``buckets`` buckets (at least ``min_bucket_ns`` wide), or buckets
    ``bucket_ns`` wide."""
    span = session_range(session)
    binner = Binner(*(span or (0, 0)), buckets if span else 1, bucket_ns=bucket_ns,
                    min_bucket_ns=min_bucket_ns, latency=latency)
    if span is not None:
        for batch in session.batches(columns=list(COLUMNS)):
            binner.add(batch)
    return binner.result(links_of(session))


def sparkline(counts: Sequence[int], down: Sequence[bool] = ()) -> str:
    """One character per bucket: a block from ``BLOCKS`` scaled to the largest count
    (any frame shows at least the lowest), ``DOWN`` for an empty bucket in which the
    stream was down, a space for an empty one in which it was not."""
    peak = max(counts, default=0)
    down = list(down) or [False] * len(counts)
    out = []
    for count, is_down in zip(counts, down):
        if count > 0:
            out.append(BLOCKS[(count * len(BLOCKS) + peak - 1) // peak - 1])
        else:
            out.append(DOWN if is_down else " ")
    return "".join(out)


def _rate(per_second: float) -> str:
    return f"{per_second:,.1f}" if per_second < 100 else f"{per_second:,.0f}"


def timeline_lines(t: dict | None) -> list[str]:
    """``wsrec info``'s timeline from ``Timeline.as_dict()``: a heading (bucket width,
    first bucket's start), then one line per stream: its name, its ``sparkline`` and its
    peak rate. ``["-"]`` for no timeline, or one without a stream."""
    if not t or not t["streams"]:
        return ["-"]
    head = (f"{width_label(t['bucket_ns'])}/column from {t['start']} "
            f"({DOWN!r} down, ' ' silent)")
    names = max(len(name) for name in t["streams"])
    lines = [head]
    for name, stream in t["streams"].items():
        peak = max(stream["frames"])
        tail = f"peak {_rate(peak * NS / t['bucket_ns'])}/s" if peak else "no frames"
        lines.append(f"{name.ljust(names)}  {sparkline(stream['frames'], stream['down'])}"
                     f"  {tail}")
    return lines


#: Columns a terminal line of ``wsrec info`` spends beside the timeline itself.
_RESERVED = 41


def fit_width(columns: int, cap: int = 120) -> int:
    """Timeline buckets for a terminal ``columns`` wide: what the line leaves, between 10
    and ``cap``."""
    return max(10, min(cap, columns - _RESERVED))
