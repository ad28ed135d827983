"""Row filters shared by the store API, replay and convert: time, channel, symbol, direction, kind.

All filtering runs in Arrow compute kernels on each batch read: parts and row groups
outside the time range are skipped before (by the manifest and the ``ts`` column),
and the channel/symbol tests run over the list columns, so a frame carrying several
symbols matches a filter on any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from wsrec.store._compute import call, pc
from wsrec.errors import UsageError
from wsrec.lists import is_text, split_list
from wsrec.store.schema import DIRECTIONS
from wsrec.timefmt import MAX_NS, MIN_NS, is_offset, parse_time

__all__ = ["Filters"]

_TS = pa.timestamp("ns", tz="UTC")


def _set(values, what: str, param: str) -> frozenset[str] | None:
    """A comma list (or iterable of them) as a set; None when empty (no filter)."""
    return frozenset(split_list(values, what, param=param)) or None


def _strings(values) -> pa.Array:
    """``values`` as an Arrow string array; a value that is not valid text can match no
    stored string, so it is left out."""
    return pa.array(sorted(v for v in values if isinstance(v, str) and is_text(v)),
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
                raise UsageError(f"{name} must be int nanoseconds from {MIN_NS} to {MAX_NS}, "
                                 f"not {value!r}", param=name)

    @classmethod
    def make(cls, start=None, end=None, channels=None, symbols=None, direction=None,
             kind=None, *, origin: int | None = None) -> "Filters":
        """Build filters from user-level values; raises UsageError naming a bad one.

        ``start``/``end``: ISO 8601 strings (naive = UTC), datetimes or ns integers,
        from 1677-09-21 to 2262-04-11 (int64 nanoseconds), or offsets such as ``'+30s'``
        from ``origin`` (ns; ``for_sessions`` takes the sessions' earliest start).
        ``channels``/``symbols``/``kind``: comma lists or iterables of them.
        ``direction``: ``in``, ``out``, ``event``, ``all`` (or None: everything).
        Messages begin with what is wrong: ``start``, ``end``, ``channel``, ``symbol``,
        ``kind`` or ``direction``; the error's ``param`` names the argument.
        """
        start_ns = _bound("start", start, origin)
        end_ns = _bound("end", end, origin)
        if start_ns is not None and end_ns is not None and start_ns > end_ns:
            raise UsageError("start is after end", param=("start", "end"))
        dirs = _set(direction, "direction", "direction")
        if dirs and "all" in dirs:
            dirs = None
        if dirs and not dirs <= set(DIRECTIONS):
            bad = ", ".join(sorted(dirs - set(DIRECTIONS)))
            raise UsageError(f"unknown direction {bad!r} (use in, out, event or all)",
                             param="direction")
        return cls(start_ns, end_ns, _set(channels, "channel", "channels"),
                   _set(symbols, "symbol", "symbols"), dirs, _set(kind, "kind", "kind"))

    @classmethod
    def for_sessions(cls, sessions, **kw) -> "Filters":
        """``make`` for reading ``sessions`` (one or a list): an offset such as ``'+30s'``
        counts from the earliest session's start, as the CLI's ``--start +30s`` does."""
        if not isinstance(sessions, (list, tuple)):
            sessions = [sessions]
        starts = [s.start_ns for s in sessions if s.start_ns is not None]
        if not starts:
            for name in ("start", "end"):
                if is_offset(kw.get(name)):
                    raise UsageError("no session has a start time to count the offset from",
                                     param=name)
        return cls.make(**kw, origin=min(starts) if starts else None)

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
        """The rows of ``batch`` that pass every filter (None: no filter at all). Time,
        direction and kind call their kernels by name (``wsrec.store._compute``): a
        replay filtered so doesn't import pyarrow.compute."""
        masks = []
        if self.start is not None:
            masks.append(call("greater_equal", batch.column("ts"), pa.scalar(self.start, _TS)))
        if self.end is not None:
            masks.append(call("less", batch.column("ts"), pa.scalar(self.end, _TS)))
        for column, wanted in (("dir", self.directions), ("kind", self.kinds)):
            if wanted:
                masks.append(_one_of(batch.column(column), _strings(wanted)))
        for column, wanted in (("channels", self.channels), ("symbols", self.symbols)):
            if wanted:
                masks.append(_any_in(batch.column(column), _strings(wanted)))
        mask = None
        for m in masks:
            mask = m if mask is None else call("and", mask, m)
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
        if mask is None or call("all", mask).as_py() is not False:
            return batch
        return call("filter", batch, mask)   # batch.filter(mask), without pyarrow.compute


def _bound(name: str, value, origin: int | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value, origin)
    except UsageError as exc:
        raise UsageError(f"{name}: {exc}", param=name) from None


def _one_of(values: pa.Array, wanted: pa.Array) -> pa.BooleanArray:
    """Whether each of ``values`` is one of ``wanted``, a null being none of them (as
    ``pc.fill_null(pc.is_in(values, value_set=wanted), False)``)."""
    mask = pa.repeat(pa.scalar(False), len(values))
    for value in wanted:
        mask = call("or_kleene", mask, call("equal", values, value))
    return call("coalesce", mask, pa.scalar(False))


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


def as_filters(filters: Filters | None, kwargs: dict, origin: int | None = None) -> Filters:
    """``Filters`` given directly, or built from keyword filters (not both); offsets such
    as ``start='+1s'`` count from ``origin``."""
    if filters is not None:
        if kwargs:
            raise TypeError("pass either filters= or keyword filters, not both")
        return filters
    return Filters.make(**kwargs, origin=origin)
