"""Replaying sessions: the schedule played through a sink at the chosen speed.

``replay_to_stream`` writes lines (raw or envelope) to a file descriptor, paced or as
fast as it takes them; ``wsrec.replay.serve`` puts the same schedule behind TCP, Unix and
WebSocket servers. The CLI's ``wsrec replay`` is a thin layer over both.
"""

from __future__ import annotations

import collections
import os
import re
import threading
import time
from concurrent.futures import Executor
from contextlib import closing
from dataclasses import dataclass
from typing import Callable, Iterator

import pyarrow as pa

from wsrec.store._compute import pc
from wsrec.store._threads import read_ahead_pool
from wsrec.errors import UsageError
from wsrec.store.filters import Filters
from wsrec.store.lines import (ENVELOPE_COLUMNS, chunks, encode_envelope, envelope_block,
                               is_msgpack_session, raw_block, raw_line)
from wsrec.replay._pacing import Lateness, Pacer, fine_switching, prefetch
from wsrec.replay._schedule import Schedule
from wsrec.store.session import Frame, Session
from wsrec.timefmt import format_ns

__all__ = ["ReplayOptions", "parse_speed", "replay_to_stream", "frame_lines", "FRAME_COLUMNS",
           "count_frames", "scheduled_frames", "send_paced", "Stopped", "TooLate", "why_empty",
           "use_lean_memory_pool", "rendered", "envelope_blocks"]

FRAME_COLUMNS = list(Frame._fields)
_SPEED = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*x?\s*$", re.IGNORECASE)


MIN_SPEED = 1e-6  # slower than this, a second of recording would replay in 11.6 days


def parse_speed(text) -> float | None:
    """``'1'``, ``'10'``, ``'0.5'``, ``'10x'`` -> factor; ``'max'`` -> None.

    ValueError for anything else, for a non-finite factor and for one below 1e-6.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        s = str(text).strip().lower()
        if s == "max":
            return None
        m = _SPEED.match(s)
        if not m:
            raise UsageError(f"not a speed: {text!r} (use a positive factor such as 1, 10, "
                             f"0.5, 10x, or max)")
        value = float(m.group(1))
    if value != value or value in (float("inf"), float("-inf")):
        shown = repr(text) if len(repr(text)) <= 40 else repr(text)[:36] + "...'"
        raise UsageError(f"speed must be a finite number, not {shown}")
    if not value > 0:
        raise UsageError(f"speed must be positive, not {text!r}")
    if value < MIN_SPEED:
        raise UsageError(f"speed {text!r} is too slow (at least {MIN_SPEED:g})")
    return value


@dataclass
class ReplayOptions:
    speed: float | None = 1.0       # None: as fast as the sink takes it
    format: str = "raw"             # raw or envelope
    loop: int = 1                   # times to play; 0: forever
    skip_gaps: bool = False
    follow: bool = False            # one session, as it is recorded (wsrec.store.follow)

    def __post_init__(self):
        if self.follow and (self.loop != 1 or self.skip_gaps):
            raise UsageError("loop and skip_gaps do not apply to following a session",
                             param="follow")


def count_frames(sessions: list[Session], filters: Filters) -> int:
    return sum(b.num_rows for s in sessions for b in s.batches(filters, columns=["seq"]))


def why_empty(sessions: list[Session], filters: Filters, shown: int = 12) -> str:
    """One line saying which filter matched no frame, naming what the sessions hold
    (for a replay or conversion that produced nothing)."""
    base = Filters(directions=filters.directions, kinds=filters.kinds)
    for column, wanted, noun in (("channels", filters.channels, "channel"),
                                 ("symbols", filters.symbols, "symbol")):
        if not wanted:
            continue
        held: dict[str, int] = {}
        for s in sessions:
            for batch in s.batches(base, columns=[column]):
                for item in pc.value_counts(batch.column(column).flatten()).to_pylist():
                    if item["values"] is not None:
                        held[item["values"]] = held.get(item["values"], 0) + item["counts"]
        if not held.keys() & wanted:
            names = sorted(held, key=lambda k: (-held[k], k))
            listed = ", ".join(names[:shown]) + (f", ... ({len(names) - shown} more)"
                                                 if len(names) > shown else "")
            asked = " or ".join(repr(w) for w in sorted(wanted))
            return f"no frame has {noun} {asked}; {noun}s here: {listed or 'none'}"
    if filters.start is not None or filters.end is not None:
        starts = [s.start_ns for s in sessions if s.start_ns is not None]
        ends = [s.end_ns for s in sessions if s.end_ns is not None]
        span = (f"{format_ns(min(starts))} .. {format_ns(max(ends))}"
                if starts and ends else "unknown")
        return (f"no frame between {format_ns(filters.start) or 'the start'} and "
                f"{format_ns(filters.end) or 'the end'}; the sessions span {span}")
    return "no frame matches all the filters together"


_CHUNK = 128  # frames turned into Python objects at a time, between due times


def follow_wait(halt: threading.Event, stop: threading.Event | None = None):
    """A follower's wait between polls (``wsrec.store.follow``): it ends the follow once
    ``halt`` (the reader gone) or ``stop`` (the caller's) is set."""
    def sleep(seconds: float) -> bool:
        return halt.wait(seconds) or (stop is not None and stop.is_set())
    return sleep


def scheduled_frames(sessions: list[Session], filters: Filters, options: ReplayOptions, *,
                     batch_size: int = 8192, depth: int = 4, lean: bool = False,
                     pool: Executor | None = None, stop: threading.Event | None = None
                     ) -> Iterator[tuple[int, list[Frame], list[int], "Session"]]:
    """Small runs of frames with their due times, looped: (loop, frames, dues, session).

    Dues are ns after the replay's start, across loops (each loop starts when the previous
    one's last frame was due). Reading and decoding (Arrow, which releases the GIL) run
    ahead in a thread, ``depth`` batches of ``batch_size`` rows ahead (or one batch ahead
    in a thread of ``pool``, see ``prefetch``); turning rows into Python objects happens
    here, ``_CHUNK`` rows at a time, so the caller's pacing thread never waits long for
    the interpreter.

    ``options.follow``: the session is followed as it is recorded (``Schedule``), in a
    thread of its own whatever ``pool`` says (it waits for the recorder); the follow
    ends when ``stop`` is set, within one poll.
    """
    offset = 0
    iteration = 0
    while options.loop == 0 or iteration < options.loop:
        last = None
        halt = threading.Event()
        schedule = Schedule(sessions, filters, speed=options.speed,
                            skip_gaps=options.skip_gaps, columns=FRAME_COLUMNS + ["session"],
                            batch_size=batch_size, lean=lean, follow=options.follow,
                            sleep=follow_wait(halt, stop))
        by_id = schedule.by_id
        ahead = prefetch(iter(schedule), depth=depth, stop=halt,
                         pool=None if options.follow else pool)
        with closing(ahead):
            for batch, due in ahead:
                sess = batch.column("session")
                for start in range(0, batch.num_rows, _CHUNK):
                    chunk = batch.slice(start, _CHUNK)
                    names = sess.slice(start, _CHUNK).to_pylist()
                    frames = batch_frames(chunk)
                    dues = [d + offset for d in due.slice(start, _CHUNK).to_pylist()]
                    run = 0
                    for i in range(1, len(names) + 1):  # one session per run of rows
                        if i == len(names) or names[i] != names[run]:
                            yield iteration, frames[run:i], dues[run:i], by_id[names[run]]
                            run = i
                    last = dues[-1]
        if last is None:
            return
        offset = last
        iteration += 1


def split_by_session(batch: pa.RecordBatch, by_id: dict):
    """(slice, session) for each run of rows of one session in a merged batch."""
    ids = batch.column("session")
    names = ids.to_pylist()
    start = 0
    for i in range(1, len(names) + 1):
        if i == len(names) or names[i] != names[start]:
            yield batch.slice(start, i - start), by_id[names[start]]
            start = i


def batch_frames(batch: pa.RecordBatch) -> list[Frame]:
    """The rows of a batch with the ``Frame`` columns, as ``Frame`` tuples."""
    cols = [batch.column(name) for name in FRAME_COLUMNS]
    cols[1] = cols[1].cast(pa.int64())
    return [Frame._make(row) for row in zip(*(c.to_pylist() for c in cols))]


def frame_lines(frames: list[Frame], session: Session, fmt: str) -> list[bytes]:
    """Each frame as one line (with its newline) in ``fmt``."""
    mp = is_msgpack_session(session.manifest)
    if fmt == "envelope":
        return [encode_envelope(f, session.venue, session.id, mp) + b"\n" for f in frames]
    return [raw_line(f.payload, f.kind, mp) + b"\n" for f in frames]


def rendered(items, render: Callable, *, workers: int = 2, ahead: int = 3):
    """``render(item)`` for each of ``items``, in order, computed ``workers`` at a time in
    threads up to ``ahead`` items ahead: Arrow's kernels release the GIL, so building the
    lines of several batches uses several cores while the caller writes."""
    pending: collections.deque = collections.deque()
    with read_ahead_pool(workers, "wsrec-render") as pool:
        for item in items:
            pending.append(pool.submit(render, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def envelope_blocks(batches, data_as_string: bool = False, ahead: int = 3):
    """(batch, session) -> (the envelope lines of the batch or a piece of it, rows), in
    order: ``envelope_block`` over at most 64 MiB of payload at a time, built in
    threads, up to ``ahead`` pieces ahead (1: each as soon as it is built, for a
    follow)."""
    def render(item):
        batch, session = item
        return envelope_block(batch, session.venue, session.id,
                              is_msgpack_session(session.manifest), data_as_string), \
            batch.num_rows

    pieces = ((piece, session) for batch, session in batches for piece in chunks(batch))
    yield from rendered(pieces, render, ahead=ahead)


class Stopped(Exception):
    """``send_paced``: its ``stop`` event was set."""


class TooLate(Exception):
    """``send_paced``: a frame could only be sent more than ``max_late_ns`` after its time."""


def send_paced(items, dues, pacer: Pacer | None, send, *, skip_before: int = 0,
               stop: threading.Event | None = None, max_late_ns: int | None = None,
               lateness: Lateness | None = None) -> int:
    """The one paced send loop (stdout and every server client): each of ``items`` is
    given to ``send`` when ``pacer`` says it is due (``dues``, ns on its clock), its
    lateness recorded in ``lateness``; with ``pacer`` None, as fast as ``send`` takes them.
    An item that is None, or due before ``skip_before``, is passed over. Returns the
    items sent. Raises ``Stopped`` once ``stop`` is set (checked before and after each
    wait) and ``TooLate`` for an item that could only go out more than ``max_late_ns``
    late."""
    sent = 0
    for item, due in zip(items, dues):
        if item is None or due < skip_before:
            continue
        if stop is not None and stop.is_set():
            raise Stopped
        if pacer is None:
            send(item)
            sent += 1
            continue
        pacer.wait(due)
        if stop is not None and stop.is_set():
            raise Stopped
        late = pacer.lateness(due)
        if max_late_ns is not None and late > max_late_ns:
            raise TooLate
        send(item)
        if lateness is not None:
            lateness.add(late)
        sent += 1
    return sent


def replay_to_stream(sessions: list[Session], filters: Filters, options: ReplayOptions,
                     out, *, lateness: Lateness | None = None,
                     progress: Callable[[int, int], None] | None = None,
                     stop: threading.Event | None = None) -> int:
    """Write the replay to ``out`` (a binary file); returns the frames written.

    Paced: each line is written (one ``write`` call) when due. At ``speed=None`` lines go
    out in large blocks straight from Arrow's buffers: raw-format batches of plain text as
    they are, envelope lines built as Arrow columns in threads (``envelope_blocks``). A
    closed pipe raises BrokenPipeError for the caller to handle.

    ``options.follow``: the session is followed as it is recorded (``wsrec.store.follow``)
    until it ends, each block flushed as soon as it is written; ``stop`` (an event set by
    another thread) ends the follow within one poll; an exception raised in this thread
    (KeyboardInterrupt from a signal) ends it at once.
    """
    written = 0
    if options.speed is None:
        halt = threading.Event()
        batches = prefetch(_max_batches(sessions, filters, options, follow_wait(halt, stop)),
                           depth=2, stop=halt)
        blocks = envelope_blocks(batches, ahead=1 if options.follow else 3) \
            if options.format == "envelope" else \
            ((raw_block(b, is_msgpack_session(s.manifest)), b.num_rows) for b, s in batches)
        with closing(batches), closing(blocks):  # the threads reading and rendering them
            for block, rows in blocks:           # stopped here, whatever happens
                out.write(block)
                written += rows
                if options.follow:
                    out.flush()
                if progress:
                    progress(written, 0)
        out.flush()
        return written
    runs = scheduled_frames(sessions, filters, options, stop=stop)
    rendered = ((zip(frame_lines(frames, session, options.format), (f.ts for f in frames)),
                 dues) for _, frames, dues, session in runs)
    pacer = None
    sent = [0]

    def send(item) -> None:
        line, ts = item
        out.write(line)
        out.flush()
        sent[0] += 1
        if progress:  # each frame as it goes: a slow stream's count is never behind
            progress(sent[0], ts)

    with fine_switching(), closing(runs):
        for items, dues in rendered:
            if pacer is None:  # the clock starts with the first frame, not with the reading
                pacer = Pacer(time.monotonic_ns() - dues[0], stop=stop)
            try:
                written += send_paced(items, dues, pacer, send, lateness=lateness, stop=stop)
            except Stopped:
                break
    return written


def _max_batches(sessions, filters, options, sleep=None):
    """At full speed: batches in merged order, looped, each with its session. One session
    needs no schedule: only the columns the format needs are read. ``options.follow``:
    the session as it is recorded, ``sleep`` being the follower's wait."""
    by_id = {s.id: s for s in sessions}
    columns = ["payload", "kind"] if options.format == "raw" else ENVELOPE_COLUMNS
    if options.follow:
        from wsrec.store.follow import Follower
        for session, batch in Follower(sessions[0], filters, columns=columns, sleep=sleep):
            yield batch, session
        return
    iteration = 0
    while options.loop == 0 or iteration < options.loop:
        any_rows = False
        if len(sessions) == 1:
            for batch in sessions[0].batches(filters, columns=columns):
                any_rows = True
                yield batch, sessions[0]
        else:
            schedule = Schedule(sessions, filters, speed=None, skip_gaps=options.skip_gaps,
                                columns=FRAME_COLUMNS + ["session"])
            for batch, _ in schedule:
                any_rows = True
                yield from split_by_session(batch, by_id)
        if not any_rows:
            return
        iteration += 1


def use_lean_memory_pool() -> None:
    """Use Arrow's jemalloc pool for replay (unless ARROW_DEFAULT_MEMORY_POOL says): a
    replay decodes one row group after another, and jemalloc hands the freed memory
    back where the default pool keeps it (about 100 MB less at peak)."""
    if "ARROW_DEFAULT_MEMORY_POOL" in os.environ:
        return  # the user chose
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except (NotImplementedError, AttributeError):  # a build without jemalloc
        pass
