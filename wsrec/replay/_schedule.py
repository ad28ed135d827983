"""Which frame is due when: the replay schedule, without any I/O.

Within a session a frame is due at ``(mono_ns - mono_ns of its first frame)``, anchored
to that first frame, never accumulated from deltas, so there is no drift over hours.
Several sessions are merged by time, each offset by its first frame's ``ts`` from the
earliest first frame (monotonic clocks of different runs can't be compared); a session
without ``mono_ns`` (an import) paces by ``ts``. Gaps (disconnects) stay as silence of
the same length, or collapse to nothing with ``skip_gaps``. Dividing by the speed comes
last. Everything is computed per Arrow batch, not per row.

Following a live session (``follow``): the rows come from a ``wsrec.store.follow.Follower``
as the recorder writes them, and the sessions that continue it (a rotation) are anchored
by their first ``ts`` as merged ones are. A replay faster than the recording catches up
with it; from then on it can only wait for the recorder: a batch read after its first
frame was due is moved to the moment it was read, with every due time after it (the
frames of one flush keep their spacing, and lateness never grows with the hours).
"""

from __future__ import annotations

import time
from typing import Callable, Iterator

import pyarrow as pa

from wsrec.store._compute import pc
from wsrec.errors import UsageError, WsrecError
from wsrec.store.filters import Filters
from wsrec.store.session import Session

__all__ = ["Schedule", "ScheduleOverflow", "down_intervals"]

_INT64_MAX = 2**63 - 1


class ScheduleOverflow(WsrecError):
    """Due times that int64 nanoseconds cannot hold (a speed too slow for the sessions'
    span, or clocks spanning more than int64): an error, never wrapped times."""


class SpeedTooSlow(ScheduleOverflow, UsageError):
    """A speed so slow that the sessions' due times overflow: a usage error."""


def down_intervals(manifest: dict) -> list[tuple[int, int]]:
    """(mono_start, mono_end) intervals when every stream of the session was down."""
    per_stream: dict = {}
    for g in manifest.get("gaps", []):
        if g.get("mono_start") is not None and g.get("mono_end") is not None:
            per_stream.setdefault(g.get("stream"), []).append((g["mono_start"], g["mono_end"]))
    streams = {c.get("stream") for c in manifest.get("connections", [])} or set(per_stream)
    if not per_stream or set(per_stream) != streams:
        return []  # some stream never dropped: no time when nothing could arrive
    result = sorted(per_stream.popitem()[1])
    for intervals in per_stream.values():
        merged = []
        for a0, a1 in result:
            for b0, b1 in intervals:
                lo, hi = max(a0, b0), min(a1, b1)
                if lo < hi:
                    merged.append((lo, hi))
        result = sorted(merged)
    return result


class _SessionSchedule:
    def __init__(self, session: Session, batches, skip_gaps: bool):
        self.session = session
        self.iter = batches
        self.gaps = down_intervals(session.manifest) if skip_gaps else []
        self.first_ts = None
        self.first_clock = None
        self.by_ts = False

    def anchor(self, batch: pa.RecordBatch) -> int:
        """Take the session's first ``ts`` and clock from its first (non-empty) batch."""
        self.first_ts = batch.column("ts")[0].value
        mono = batch.column("mono_ns")
        self.by_ts = mono.null_count == len(mono)
        clock = batch.column("ts").cast(pa.int64()) if self.by_ts else mono
        self.first_clock = clock[0].as_py()
        return self.first_ts

    def peek_first(self):
        """Read the first batch to learn the session's first ``ts`` (None when empty)."""
        for batch in self.iter:
            if batch.num_rows:
                self.pending = batch
                return self.anchor(batch)
        self.pending = None
        return None

    def batches(self, offset: int) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
        """(batch, due ns at speed 1) pairs; ``offset`` is this session's start."""
        if self.pending is not None:
            yield self.pending, self._due(self.pending, offset)
        for batch in self.iter:
            if batch.num_rows:
                yield batch, self._due(batch, offset)

    def _due(self, batch: pa.RecordBatch, offset: int) -> pa.Array:
        clock = batch.column("ts").cast(pa.int64()) if self.by_ts else \
            batch.column("mono_ns").fill_null(self.first_clock)
        try:
            shift = None
            for start, end in self.gaps:  # a handful per session: Python per gap, not per row
                part = pc.min_element_wise(
                    pc.max_element_wise(pc.subtract_checked(clock, start), 0), end - start)
                shift = part if shift is None else pc.add_checked(shift, part)
            due = pc.subtract_checked(clock, self.first_clock - offset)
            return pc.subtract_checked(due, shift) if shift is not None else due
        except (pa.ArrowInvalid, OverflowError):
            raise ScheduleOverflow(f"{self.session.venue}/{self.session.id}: its clock spans "
                                   f"more than int64 nanoseconds; cannot schedule it") from None


class Schedule:
    """The frames of one or more sessions, in replay order, with their due times.

    Iterating yields ``(batch, due)``: a record batch of the selected columns plus
    ``venue``/``session`` bookkeeping, and an int64 array of due times in nanoseconds
    after the replay's start, already divided by ``speed`` (``None``: as fast as
    possible, due times at speed 1). ``by_id``: the sessions by id, those a follow
    reaches included (each is there before its first batch is yielded).

    ``follow``: follow ``sessions[0]`` (the only one) as it is recorded, and the sessions
    that continue it, until the last one ends (``Follower``; ``sleep`` is its wait
    between polls, whose true result ends the follow). ``clock`` (ns, default
    ``time.monotonic_ns``) is the replay's: it starts when the first batch is yielded.
    """

    def __init__(self, sessions: list[Session], filters: Filters | None = None, *,
                 speed: float | None = 1.0, skip_gaps: bool = False, columns=None,
                 batch_size: int = 65_536, lean: bool = False, follow: bool = False,
                 sleep: Callable[[float], object] | None = None,
                 clock: Callable[[], int] | None = None):
        if speed is not None and not speed > 0:
            raise UsageError("speed must be positive")
        if follow and (len(sessions) != 1 or skip_gaps):
            raise UsageError("following plays one session (and those that continue it), "
                             "without skip_gaps")
        self.sessions = sessions
        self.filters = filters or Filters()
        self.speed = speed
        self.skip_gaps = skip_gaps
        self.columns = columns
        self.batch_size = batch_size
        self.lean = lean   # read as Session.batches(lean=True): little memory per schedule
        self.follow = follow
        self.sleep = sleep
        self.clock = clock or time.monotonic_ns
        self.by_id = {s.id: s for s in sessions}

    def __iter__(self) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
        if self.follow:
            yield from self._followed()
            return
        parts = [_SessionSchedule(s, s.batches(self.filters, columns=self.columns,
                                               batch_size=self.batch_size, lean=self.lean),
                                  self.skip_gaps) for s in self.sessions]
        firsts = [(p.peek_first(), i, p) for i, p in enumerate(parts)]
        firsts = [f for f in firsts if f[0] is not None]
        if not firsts:
            return
        t0 = min(f[0] for f in firsts)
        streams = [p.batches(first - t0) for first, _, p in firsts]
        merged = streams[0] if len(streams) == 1 else _merge(streams)
        for batch, due in merged:
            if self.speed not in (None, 1, 1.0):
                due = _scaled(due, self.speed)
            yield batch, due


    def _followed(self) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
        from wsrec.store.follow import Follower
        follower = Follower(self.sessions[0], self.filters, columns=self.columns,
                            batch_size=self.batch_size, lean=self.lean, sleep=self.sleep)
        anchors: dict[str, _SessionSchedule] = {}
        t0 = None
        start = None   # the replay's clock when due time 0 was (set at the first batch)
        shift = 0      # added to every due time: the waits for the recorder so far
        for session, batch in follower:
            self.by_id.setdefault(session.id, session)
            part = anchors.get(session.id)
            if part is None:
                part = anchors[session.id] = _SessionSchedule(session, None, False)
                first = part.anchor(batch)
                t0 = first if t0 is None else t0
            due = part._due(batch, part.first_ts - t0)
            if self.speed is None:
                yield batch, due
                continue
            if self.speed != 1:
                due = _scaled(due, self.speed)
            if shift:
                due = pc.add(due, shift)
            now = self.clock()
            if start is None:
                start = now - due[0].as_py()
            late = now - start - due[0].as_py()
            if late > 0:   # read after it was due: the recorder is the limit now
                shift += late
                due = pc.add(due, late)
            yield batch, due


def _scaled(due: pa.Array, speed: float) -> pa.Array:
    """Due times divided by ``speed``; ScheduleOverflow rather than wrapped int64 values."""
    scaled = pc.divide(pc.cast(due, pa.float64()), speed)
    # the largest float64 below 2**63 is 2**63 - 1024: anything at or past 2**63 overflows
    if len(scaled) and (pc.max(scaled).as_py() >= 2.0**63 or pc.min(scaled).as_py() < -2.0**63):
        raise SpeedTooSlow(f"speed {speed:g} is too slow for these sessions: due times "
                           f"past {_INT64_MAX} ns (292 years); use a faster speed", param="speed")
    return pc.cast(scaled, pa.int64(), safe=False)


def _merge(streams) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
    """Merge (batch, due) streams by due time, a window of batches at a time (vectorised)."""
    heads: list = [None] * len(streams)
    while True:
        for i, s in enumerate(streams):
            if heads[i] is None and s is not None:
                heads[i] = next(s, None)
                if heads[i] is None:
                    streams[i] = None
        live = [h for h in heads if h is not None]
        if not live:
            return
        # everything due up to the earliest "last due" among the current batches is final
        cut = min(h[1][len(h[1]) - 1].as_py() for h in live)
        take_batches, take_due = [], []
        for i, h in enumerate(heads):
            if h is None:
                continue
            batch, due = h
            mask = pc.less_equal(due, cut)
            n = pc.sum(pc.cast(mask, pa.int64())).as_py() or 0
            if n:
                take_batches.append(batch.slice(0, n))
                take_due.append(due.slice(0, n))
                rest = batch.num_rows - n
                heads[i] = (batch.slice(n), due.slice(n)) if rest else None
        table = pa.Table.from_batches(take_batches)
        due_all = pa.concat_arrays(take_due)
        order = pc.sort_indices(due_all)  # stable: equal times keep session order
        table = table.take(order).combine_chunks()
        due_all = due_all.take(order)
        for b in table.to_batches():
            n = b.num_rows
            yield b, due_all.slice(0, n)
            due_all = due_all.slice(n)
