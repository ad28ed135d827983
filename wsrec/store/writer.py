"""SessionWriter: the one way rows get into a session.

``append`` and ``event`` only stamp the row and put it in a list (a few hundred
nanoseconds; ``wsrec.store._rows``); a background thread (``wsrec.store._flusher``)
does everything else: every ``flush_interval`` / 2 (or sooner when many rows wait) it
turns pending rows into an Arrow batch, appends it to the journal and fsyncs it, gathers
batches into large row groups for the open part, rotates parts by size and age, and
rewrites the manifest when it changed. So a frame handed to ``append`` is durable within
one flush interval, and Arrow conversion and compression stay off the caller's path.
This module is the facade over the two: stamping and checking rows, the session folder,
the lock, closing.

If a write fails (disk full, EFBIG under RLIMIT_FSIZE, I/O error) the thread
stops, the failure is raised from the next ``append``/``event``/``flush``/``close``,
and ``close`` marks the session ``failed``; everything fsync'd until then stays
readable from the parts and the journal.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from wsrec._version import __version__
from wsrec.errors import StorageError, UsageError, WsrecError
from wsrec.store._flusher import Flusher, SessionBook
from wsrec.store._lock import SessionLock
from wsrec.store._rows import ColumnBuffer
from wsrec.store.layout import session_rel
from wsrec.store.manifest import FORMAT_VERSION, new_session_id, save_manifest
from wsrec.store.schema import DIRECTIONS, JOURNAL_SCHEMA
from wsrec.secrets import redact
from wsrec.store.roots import data_root
from wsrec.timefmt import format_ns

__all__ = ["SessionWriter", "DEFAULTS", "check_name"]

#: Writer settings and their defaults (all overridable by keyword).
DEFAULTS = {
    "flush_interval": 1.0,          # seconds between journal fsyncs, at most
    "part_bytes": 256 << 20,        # rotate a part after this many payload bytes ...
    "part_seconds": 3600.0,         # ... or after this many seconds, whichever first
    "row_group_rows": 131_072,      # a row group holds this many rows ...
    "row_group_bytes": 32 << 20,    # ... or this many payload bytes, whichever first
    "compression_level": 6,         # zstd level of the parts
}
_time_ns = time.time_ns
_monotonic_ns = time.monotonic_ns
_DIRECTIONS = frozenset(DIRECTIONS)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(what: str, value: str) -> str:
    """A venue or session id usable as a folder name, or ValueError saying what is wrong."""
    if not isinstance(value, str) or not _NAME.match(value) or value == "last":
        raise UsageError(f"invalid {what} {value!r}: use letters, digits, '.', '_' or '-' "
                         f"(and not 'last')", param=what)
    return value


class ClosingOnExit:
    """A writer as a context manager: ``close()`` on leaving, ``close("failed", why)``
    when an exception leaves the block (it is the one reported)."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None or issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            self.close()
            return
        try:
            self.close("failed", f"{exc_type.__name__}: {exc}")
        except WsrecError:
            pass  # the original exception is the one to report


class SessionWriter(ClosingOnExit):
    """Record rows into a new session under ``data/venue=<venue>/date=<YYYY-MM-DD>/<id>/``
    (``wsrec.store.layout``; the date is the UTC date of the start).

    ``continues``: the id of the session this one continues (a rotation,
    ``wsrec.store.rolling``); ``continue_as`` tells the manifest which one continues it.

    ``on_sealed(folder, entry)`` is called on the flush thread after each part is
    published and listed, ``on_closed(folder, manifest)`` once the session is closed and
    unlocked (a recording to a bucket queues uploads with them: ``wsrec.store._uploader``).
    Neither may wait; a ``WsrecError`` from ``on_sealed`` (``DiskFull``) fails the session.

    Example::

        with SessionWriter("alpaca", data="wsrec-data") as w:
            w.event("open", url="wss://stream.data.alpaca.markets/v2/test")
            w.append(b'[{"T":"success","msg":"connected"}]', kind="text")
    """

    def __init__(self, venue: str, data=None, *, args: dict | None = None,
                 session_id: str | None = None, started_ns: int | None = None,
                 continues: str | None = None, ended_by_clock: bool | None = None,
                 on_sealed=None, on_closed=None, **settings):
        unknown = set(settings) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown SessionWriter setting(s): {', '.join(sorted(unknown))}")
        self.settings = {**DEFAULTS, **settings}
        if self.settings["flush_interval"] <= 0:
            raise UsageError("flush_interval must be positive")
        self.venue = check_name("venue", venue)
        if continues is not None:
            check_name("session id", continues)
        root = data_root(data)
        # Recording: the session starts now. Building one from other data (an import, a
        # sample): pass its first timestamp; the end is then the newest row's time.
        self._clock = started_ns is None if ended_by_clock is None else ended_by_clock
        started = time.time_ns() if started_ns is None else started_ns
        self.id, self.folder = self._make_folder(root, venue, session_id, started)
        self._lock_file = SessionLock(self.folder)
        self.manifest = {
            "format_version": FORMAT_VERSION,
            "venue": venue,
            "session": self.id,
            "wsrec_version": __version__,
            "args": redact(args or {}),
            "settings": dict(self.settings),
            "status": "recording",
            "started": format_ns(started),
            "ended": None,
            "error": None,
            "parts": [],
            "connections": [],
            "gaps": [],
        }
        if continues is not None:
            self.manifest["continues"] = continues
        save_manifest(self.folder, self.manifest)
        self._book = SessionBook(self.manifest)

        self._rows = ColumnBuffer()
        (self._put_seq, self._put_ts, self._put_mono, self._put_conn, self._put_stream,
         self._put_dir, self._put_kind, self._put_channels, self._put_symbols,
         self._put_payload) = self._rows.appenders()
        self._payloads = self._rows.payloads
        self._bytes_in = 0                 # written by the appending thread only
        self._seq = 0
        self._last_mono = -(1 << 63)
        self._closed = False
        self._stopped = False              # closed or failed: append refuses
        self._on_closed = on_closed
        self._flusher = Flusher(self.folder, venue, self.id, self.settings, self._rows,
                                self._book, on_failure=self._on_failure, on_sealed=on_sealed)
        self._flusher.start()

    @staticmethod
    def _make_folder(root: Path, venue: str, session_id: str | None, started: int):
        parent = None
        for _ in range(100):
            sid = check_name("session id", session_id) if session_id else new_session_id(started)
            folder = root / session_rel(venue, sid, started)
            if folder.parent != parent:
                parent = folder.parent
                try:
                    parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StorageError(f"cannot create {parent}: {exc.strerror or exc}; "
                                       f"choose a writable --data or WSREC_DATA") from exc
            try:
                folder.mkdir()
            except FileExistsError:
                if session_id:
                    raise StorageError(f"{folder} already exists; choose another session id") \
                        from None
                continue
            except OSError as exc:
                raise StorageError(f"cannot create {folder}: {exc.strerror or exc}; "
                                   f"choose a writable --data or WSREC_DATA") from exc
            return sid, folder
        raise StorageError(f"cannot find a free session id under {parent}")

    # -- the caller's side: cheap ------------------------------------------------------

    def append(self, payload, *, conn: int | None = 0, stream: str | None = None,
               dir: str = "in", kind: str | None = None, channels=(), symbols=(),
               ts_ns: int | None = None, mono_ns: int | None = None) -> int:
        """Add one row; returns its ``seq``.

        ``payload`` is bytes (kept exactly) or str (stored as UTF-8, kind ``text``).
        ``kind`` defaults to ``binary`` for bytes. ``conn`` is the physical connection
        the row belongs to (None: none, e.g. a ``reconnect`` event) and ``stream`` the
        logical stream (see docs/FORMAT.md). ``ts_ns``/``mono_ns`` default to now
        (``time.time_ns()`` / ``time.monotonic_ns()``); pass the values taken when the
        message arrived. Rows must come in receive order from one thread (the recording
        loop): ``mono_ns`` may not go backwards. Event rows (``dir="event"``) also
        update the manifest's connections and gaps, whoever writes them.
        """
        if self._stopped:
            self._raise_closed()
        if type(payload) is not bytes:
            if isinstance(payload, str):
                payload = payload.encode()
                kind = kind or "text"
            else:
                payload = bytes(payload)
        if ts_ns is None:
            ts_ns = _time_ns()
        if mono_ns is None:
            mono_ns = _monotonic_ns()
        if mono_ns < self._last_mono:
            raise UsageError(f"mono_ns {mono_ns} is before the previous row's "
                             f"{self._last_mono}: rows must be appended in receive order")
        if dir not in _DIRECTIONS:
            raise UsageError(f"dir must be one of {', '.join(DIRECTIONS)}, not {dir!r}")
        self._last_mono = mono_ns
        seq = self._seq
        self._seq = seq + 1
        kind = kind or "binary"
        # list.append is atomic; the flush thread takes rows from the front, never swaps
        self._put_seq(seq)
        self._put_ts(ts_ns)
        self._put_mono(mono_ns)
        self._put_conn(conn)
        self._put_stream(stream)
        self._put_dir(dir)
        self._put_kind(kind)
        self._put_channels(channels)
        self._put_symbols(symbols)
        self._put_payload(payload)
        size = len(payload)
        self._bytes_in += size
        if dir == "event":
            self._book.feed(kind, conn, stream, ts_ns, mono_ns, payload)
        if size > 65_536 or not len(self._payloads) & 1023:
            self._flusher.nudge(self._bytes_in)  # wake it; wait while it is far behind
        return seq

    def append_columns(self, columns: dict) -> int:
        """Add many rows at once (an import): Arrow arrays of equal length named as
        ``wsrec.store.schema.JOURNAL_SCHEMA``'s columns except ``seq`` (assigned here):
        ``ts`` and ``mono_ns`` (int64 ns), ``conn``, ``stream``, ``dir``, ``kind``,
        ``channels``, ``symbols``, ``payload``. The rules of ``append`` hold (``mono_ns``
        never goes back, ``dir`` is known; event rows update connections and gaps); the
        rows are journaled and added to the open part before this returns, on the
        caller's thread, with no per-row Python. Returns the first row's ``seq``."""
        if self._stopped:
            self._raise_closed()
        columns = {k: v.combine_chunks() if isinstance(v, pa.ChunkedArray) else v
                   for k, v in columns.items()}
        n = len(columns["payload"])
        first = self._seq
        if not n:
            return first
        mono = columns["mono_ns"].cast(pa.int64())
        if pc.min(mono).as_py() < self._last_mono or (n > 1 and not pc.all(pc.greater_equal(
                mono.slice(1), mono.slice(0, n - 1))).as_py()):
            raise UsageError("mono_ns goes back: rows must be appended in receive order")
        dirs = columns["dir"]
        known = pc.is_in(dirs, pa.array(DIRECTIONS))
        if not pc.all(pc.fill_null(known, False)).as_py():
            raise UsageError(f"dir must be one of {', '.join(DIRECTIONS)}")
        ts = columns["ts"].cast(pa.int64())
        batch = pa.RecordBatch.from_arrays(
            [pa.array(range(first, first + n), pa.int64()),
             ts.cast(JOURNAL_SCHEMA.field("ts").type), mono,
             *(columns[name].cast(JOURNAL_SCHEMA.field(name).type) for name in
               ("conn", "stream", "dir", "kind", "channels", "symbols", "payload"))],
            schema=JOURNAL_SCHEMA)
        events = pc.equal(dirs, "event")
        if pc.any(events).as_py():
            picked = [a.filter(events).to_pylist() for a in
                      (batch.column("kind"), batch.column("conn"), batch.column("stream"), ts,
                       mono, batch.column("payload"))]
            for kind, conn, stream, ts_ns, mono_ns, payload in zip(*picked):
                self._book.feed(kind, conn, stream, ts_ns, mono_ns, payload)
        self._seq = first + n
        self._last_mono = mono[n - 1].as_py()
        self._flusher.drain(batch)
        if self._flusher.failure is not None:
            raise self._flusher.failure
        return first

    def event(self, kind: str, *, conn: int | None = 0, stream: str | None = None,
              ts_ns: int | None = None, mono_ns: int | None = None, **info) -> int:
        """Add a connection event (``open``, ``close``, ``error``, ``reconnect``, ...).

        ``info`` becomes the row's payload as a JSON object (e.g. ``url=``, ``code=``,
        ``reason=``). ``open`` and ``close``/``error`` also update the manifest's
        connections and gaps (as any event row given to ``append`` does).
        """
        payload = json.dumps(info, separators=(",", ":"), ensure_ascii=False,
                             default=str).encode()
        return self.append(payload, conn=conn, stream=stream, dir="event", kind=kind,
                           ts_ns=ts_ns, mono_ns=mono_ns)

    def flush(self) -> None:
        """Make every row appended so far durable now (journal write + fsync)."""
        if self._stopped:
            self._raise_closed()
        self._flusher.drain()
        if self._flusher.failure is not None:
            raise self._flusher.failure

    @property
    def rows(self) -> int:
        """Rows appended so far (the next ``seq``)."""
        return self._seq

    @property
    def pending_since_ns(self) -> int | None:
        """``mono_ns`` of the oldest row not yet durable in the journal, None when every
        row appended so far is (the writer's lag is the time since then). Cheap, no lock,
        safe from any thread (a metrics scrape)."""
        return self._flusher.pending_since()

    def carry(self) -> dict:
        """The connections open and the streams down now, for the next session's
        ``rotate`` row (``wsrec.store._connections``)."""
        with self._book.lock:
            return self._book._tracker.carry()

    def continue_as(self, session_id: str) -> None:
        """Name the session that continues this one (``continued_by`` in the manifest,
        written at the latest when it closes)."""
        check_name("session id", session_id)
        with self._book.lock:
            self.manifest["continued_by"] = session_id

    def _raise_closed(self):
        if self._flusher.failure is not None:
            raise self._flusher.failure
        raise StorageError(f"session {self.id} is closed")

    def _on_failure(self) -> None:
        """The flush thread failed: append refuses from now on."""
        self._stopped = True

    # -- ending ------------------------------------------------------------------------

    def close(self, status: str = "complete", error: str | None = None, *,
              at_last_row: bool = False) -> dict:
        """Finish the open part, set the final status, release the lock.

        ``status`` is ``complete`` or ``failed`` (with ``error`` saying why). After a
        storage failure the session is marked ``failed`` whatever ``status`` says,
        and the failure is raised once the manifest is written. Returns the manifest.
        ``ended`` is now, or the newest row's time for a session built from other data
        or with ``at_last_row`` (a session closed by a rotation).
        """
        if status not in ("complete", "failed"):
            raise UsageError(f"status must be 'complete' or 'failed', not {status!r}")
        if self._closed:
            return self.manifest
        self._closed = self._stopped = True  # no row gets in after this point
        failure = self._flusher.finish(status, error, self._clock and not at_last_row)
        self._lock_file.release()
        if self._on_closed is not None:
            self._on_closed(self.folder, self.manifest)
        if failure is not None:
            raise failure
        return self.manifest
