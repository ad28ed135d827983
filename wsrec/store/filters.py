"""Row filters shared by the store API, replay and convert: time, channel, symbol, direction, kind.

All filtering runs in Arrow compute kernels on each batch read: parts and row groups
outside the time range are skipped before (by the manifest and the ``ts`` column),
and the channel/symbol tests run over the list columns, so a frame carrying several
symbols matches a filter on any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from wsrec.store.schema import DIRECTIONS
from wsrec.timefmt import MAX_NS, MIN_NS, parse_time

__all__ = ["Filters", "split_list"]

_TS = pa.timestamp("ns", tz="UTC")


def split_list(values, what: str = "value") -> frozenset[str] | None:
    """``'a,b'`` or ``['a,b', 'c']`` -> ``{'a', 'b', 'c'}``; None or empty -> None (no filter).

    A value that is not valid text (a command-line argument that was not UTF-8 arrives
    with surrogate escapes) is a ValueError naming ``what``: no stored value can equal it.
    """
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    out = {v.strip() for item in values for v in str(item).split(",") if v.strip()}
    for v in out:
        if not _is_text(v):
            shown = repr(v.encode("utf-8", "surrogateescape") if _escaped(v) else v)
            raise ValueError(f"{what} {shown} is not valid UTF-8 text")
    return frozenset(out) or None


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _escaped(value: str) -> bool:
    try:
        value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


def _strings(values) -> pa.Array:
    """``values`` as an Arrow string array; a value that is not valid text can match no
    stored string, so it is left out."""
    return pa.array(sorted(v for v in values if isinstance(v, str) and _is_text(v)),
                    pa.string())


@dataclass(frozen=True)
class Filters:
    start: int | None = None            # ns since epoch, inclusive
    end: int | None = None              # ns since epoch, exclusive
    channels: frozenset | None = None
    symbols: frozenset | None = None
    directions: frozenset | None = None
    kinds: frozenset | None = None

    def __post_init__(self):
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not MIN_NS <= value <= MAX_NS):
                raise ValueError(f"{name} must be int nanoseconds from {MIN_NS} to {MAX_NS}, "
                                 f"not {value!r}")

    @classmethod
    def make(cls, start=None, end=None, channels=None, symbols=None, direction=None,
             kind=None) -> "Filters":
        """Build filters from user-level values; raises ValueError naming a bad one.

        ``start``/``end``: ISO 8601 strings (naive = UTC), datetimes or ns integers,
        from 1677-09-21 to 2262-04-11 (int64 nanoseconds).
        ``channels``/``symbols``/``kind``: comma lists or iterables of them.
        ``direction``: ``in``, ``out``, ``event``, ``all`` (or None: everything).
        Messages begin with what is wrong: ``start``, ``end``, ``channel``, ``symbol``,
        ``kind`` or ``direction``.
        """
        start_ns = _bound("start", start)
        end_ns = _bound("end", end)
        if start_ns is not None and end_ns is not None and start_ns > end_ns:
            raise ValueError("start is after end")
        dirs = split_list(direction, "direction")
        if dirs and "all" in dirs:
            dirs = None
        if dirs and not dirs <= set(DIRECTIONS):
            bad = ", ".join(sorted(dirs - set(DIRECTIONS)))
            raise ValueError(f"unknown direction {bad!r} (use in, out, event or all)")
        return cls(start_ns, end_ns, split_list(channels, "channel"),
                   split_list(symbols, "symbol"), dirs, split_list(kind, "kind"))

    @property
    def empty(self) -> bool:
        return self == Filters()

    def columns(self) -> list[str]:
        """The columns the filter reads."""
        wanted = (("ts", self.start is not None or self.end is not None),
                  ("dir", self.directions), ("kind", self.kinds),
                  ("channels", self.channels), ("symbols", self.symbols))
        return [column for column, used in wanted if used]

    def row_mask(self, batch: pa.RecordBatch) -> pa.BooleanArray | None:
        """The rows of ``batch`` that pass every filter (None: no filter at all)."""
        masks = []
        if self.start is not None:
            masks.append(pc.greater_equal(batch.column("ts"), pa.scalar(self.start, _TS)))
        if self.end is not None:
            masks.append(pc.less(batch.column("ts"), pa.scalar(self.end, _TS)))
        for column, wanted in (("dir", self.directions), ("kind", self.kinds)):
            if wanted:
                masks.append(pc.fill_null(pc.is_in(batch.column(column),
                                                   value_set=_strings(wanted)), False))
        for column, wanted in (("channels", self.channels), ("symbols", self.symbols)):
            if wanted:
                masks.append(_any_in(batch.column(column), _strings(wanted)))
        mask = None
        for m in masks:
            mask = m if mask is None else pc.and_(mask, m)
        return mask

    def overlaps(self, ts_min: int | None, ts_max: int | None) -> bool:
        """False when no row of a file spanning [ts_min, ts_max] can match."""
        if ts_min is None or ts_max is None:
            return True
        if self.start is not None and ts_max < self.start:
            return False
        if self.end is not None and ts_min >= self.end:
            return False
        return True

    def apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The rows of one batch that pass; the batch itself (no copy) when all do."""
        mask = self.row_mask(batch)
        if mask is None or pc.all(mask).as_py() is not False:
            return batch
        return batch.filter(mask)


def _bound(name: str, value) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _any_in(lists: pa.ListArray, values: pa.Array) -> pa.BooleanArray:
    """For each list, whether any element is in ``values`` (vectorised, no Python per row)."""
    flat = lists.flatten()
    hits = pc.cast(pc.fill_null(pc.is_in(flat, value_set=values), False), pa.int64())
    cum = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(hits)])
    offsets = lists.offsets
    rel = pc.subtract(offsets, offsets[0])
    n = len(lists)
    counts = pc.subtract(pc.take(cum, rel.slice(1, n)), pc.take(cum, rel.slice(0, n)))
    return pc.greater(counts, 0)


def as_filters(filters: Filters | None, kwargs: dict) -> Filters:
    """``Filters`` given directly, or built from keyword filters (not both)."""
    if filters is not None:
        if kwargs:
            raise TypeError("pass either filters= or keyword filters, not both")
        return filters
    return Filters.make(**kwargs)

