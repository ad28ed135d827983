"""Row filters shared by the store API, replay and convert: time, channel, symbol, direction, kind.

All filtering runs in Arrow compute kernels on each batch read: parts and row groups
outside the time range are skipped before (by the manifest and the ``ts`` statistics),
and the channel/symbol tests run over the list columns, so a frame carrying several
symbols matches a filter on any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from .schema import DIRECTIONS
from .timefmt import parse_time

__all__ = ["Filters", "split_list"]

_TS = pa.timestamp("ns", tz="UTC")


def split_list(values) -> frozenset[str] | None:
    """``'a,b'`` or ``['a,b', 'c']`` -> ``{'a', 'b', 'c'}``; None or empty -> None (no filter)."""
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    out = {v.strip() for item in values for v in str(item).split(",") if v.strip()}
    return frozenset(out) or None


@dataclass(frozen=True)
class Filters:
    start: int | None = None            # ns since epoch, inclusive
    end: int | None = None              # ns since epoch, exclusive
    channels: frozenset | None = None
    symbols: frozenset | None = None
    directions: frozenset | None = None
    kinds: frozenset | None = None

    @classmethod
    def make(cls, start=None, end=None, channels=None, symbols=None, direction=None,
             kind=None) -> "Filters":
        """Build filters from user-level values; raises ValueError naming a bad one.

        ``start``/``end``: ISO 8601 strings (naive = UTC), datetimes or ns integers.
        ``channels``/``symbols``/``kind``: comma lists or iterables of them.
        ``direction``: ``in``, ``out``, ``event``, ``all`` (or None: everything).
        """
        start_ns = parse_time(start) if start is not None else None
        end_ns = parse_time(end) if end is not None else None
        if start_ns is not None and end_ns is not None and start_ns > end_ns:
            raise ValueError("start is after end")
        dirs = split_list(direction)
        if dirs and "all" in dirs:
            dirs = None
        if dirs and not dirs <= set(DIRECTIONS):
            bad = ", ".join(sorted(dirs - set(DIRECTIONS)))
            raise ValueError(f"unknown direction {bad!r} (use in, out, event or all)")
        return cls(start_ns, end_ns, split_list(channels), split_list(symbols), dirs,
                   split_list(kind))

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
                                                   value_set=pa.array(sorted(wanted))), False))
        for column, wanted in (("channels", self.channels), ("symbols", self.symbols)):
            if wanted:
                masks.append(_any_in(batch.column(column), pa.array(sorted(wanted), pa.string())))
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

