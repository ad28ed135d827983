"""Row filters shared by the store API, replay and convert: time, channel, symbol, direction, kind.

All filtering runs in Arrow: time, direction and kind become a dataset expression
(so Parquet row-group statistics skip whole row groups), and the channel/symbol
tests run as compute kernels over the list columns, so a frame carrying several
symbols matches a filter on any of them.
"""

from __future__ import annotations

from dataclasses import dataclass
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

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

    def expression(self) -> ds.Expression | None:
        """The part of the filter that Arrow datasets evaluate (with statistics)."""
        parts = []
        if self.start is not None:
            parts.append(ds.field("ts") >= pa.scalar(self.start, _TS))
        if self.end is not None:
            parts.append(ds.field("ts") < pa.scalar(self.end, _TS))
        if self.directions:
            parts.append(ds.field("dir").isin(sorted(self.directions)))
        if self.kinds:
            parts.append(ds.field("kind").isin(sorted(self.kinds)))
        expr = None
        for p in parts:
            expr = p if expr is None else expr & p
        return expr

    def row_mask(self, batch: pa.RecordBatch) -> pa.BooleanArray:
        """The rows of ``batch`` that pass the time, direction and kind filters (the same
        test as ``expression()``, as compute kernels on a batch in hand)."""
        mask = None

        def both(m):
            return m if mask is None else pc.and_(mask, m)
        if self.start is not None:
            mask = both(pc.greater_equal(batch.column("ts"), pa.scalar(self.start, _TS)))
        if self.end is not None:
            mask = both(pc.less(batch.column("ts"), pa.scalar(self.end, _TS)))
        for column, wanted in (("dir", self.directions), ("kind", self.kinds)):
            if wanted:
                values = batch.column(column)
                if pa.types.is_dictionary(values.type):
                    values = values.dictionary_decode()
                mask = both(pc.fill_null(pc.is_in(values, value_set=pa.array(sorted(wanted))),
                                         False))
        return mask if mask is not None else pa.array([True] * batch.num_rows)

    def overlaps(self, ts_min: int | None, ts_max: int | None) -> bool:
        """False when no row of a file spanning [ts_min, ts_max] can match."""
        if ts_min is None or ts_max is None:
            return True
        if self.start is not None and ts_max < self.start:
            return False
        if self.end is not None and ts_min >= self.end:
            return False
        return True

    def list_mask(self, batch: pa.RecordBatch) -> pa.BooleanArray | None:
        """Rows whose ``channels``/``symbols`` meet the filter (None: no list filter)."""
        mask = None
        for column, wanted in (("channels", self.channels), ("symbols", self.symbols)):
            if wanted:
                hit = _any_in(batch.column(column), pa.array(sorted(wanted), pa.string()))
                mask = hit if mask is None else pc.and_(mask, hit)
        return mask

    def apply(self, batch: pa.RecordBatch, with_expression: bool = True) -> pa.RecordBatch:
        """Filter one batch (the expression too, unless the scanner already applied it)."""
        if with_expression:
            expr = self.expression()
            if expr is not None:
                batch = batch.filter(expr)
        mask = self.list_mask(batch)
        return batch if mask is None else batch.filter(mask)


def _any_in(lists: pa.ListArray, values: pa.Array) -> pa.BooleanArray:
    """For each list, whether any element is in ``values`` (vectorised, no Python per row)."""
    flat = lists.flatten()
    if pa.types.is_dictionary(flat.type):
        flat = flat.dictionary_decode()
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

