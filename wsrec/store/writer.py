"""SessionWriter: the one way rows get into a session.

``append`` and ``event`` only stamp the row and put it in a list (a few hundred
nanoseconds); a background thread does everything else: every ``flush_interval``
/ 2 (or sooner when many rows wait) it turns pending rows into an Arrow batch,
appends it to the journal and fsyncs it, gathers batches into large row groups
for the open part, rotates parts by size and age, and rewrites the manifest when
it changed. So a frame handed to ``append`` is durable within one flush interval,
and Arrow conversion and compression stay off the caller's path.

If a write fails (disk full, EFBIG under RLIMIT_FSIZE, I/O error) the thread
stops, the failure is raised from the next ``append``/``event``/``flush``/``close``,
and ``close`` marks the session ``failed``; everything fsync'd until then stays
readable from the parts and the journal.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

from wsrec._version import __version__
from wsrec.store._connections import ConnectionTracker
from wsrec.errors import StorageError, WsrecError, storage_error
from wsrec.store._journal import JournalWriter
from wsrec.store._lock import SessionLock
from wsrec.store.manifest import FORMAT_VERSION, new_session_id, save_manifest
from wsrec.store._part import PartWriter, fsync_dir, journal_name
from wsrec.store.schema import DIRECTIONS, columns_to_batch
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
# Few rows wait as Python objects: at 10M frames a 131k-row backlog left the recorder's heap
# fragmented past 300 MB; 32k keeps it near 240 MB at the same throughput (PERFORMANCE.md).
_WAKE_ROWS = 8_192                  # wake the flush thread early past this many rows ...
_WAKE_BYTES = 8 << 20               # ... or payload bytes
_MAX_PENDING_ROWS = 32_768          # append blocks past this many waiting rows ...
_MAX_PENDING_BYTES = 32 << 20       # ... or bytes (the flush thread is far behind)
_time_ns = time.time_ns
_monotonic_ns = time.monotonic_ns
_DIRECTIONS = frozenset(DIRECTIONS)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(what: str, value: str) -> str:
    """A venue or session id usable as a folder name, or ValueError saying what is wrong."""
    if not isinstance(value, str) or not _NAME.match(value) or value == "last":
        raise ValueError(f"invalid {what} {value!r}: use letters, digits, '.', '_' or '-' "
                         f"(and not 'last')")
    return value


class SessionWriter:
    """Record rows into a new session under ``data/venue/<session id>/``.

    Example::

        with SessionWriter("alpaca", data="wsrec-data") as w:
            w.event("open", url="wss://stream.data.alpaca.markets/v2/test")
            w.append(b'[{"T":"success","msg":"connected"}]', kind="text")
    """

    def __init__(self, venue: str, data=None, *, args: dict | None = None,
                 session_id: str | None = None, started_ns: int | None = None, **settings):
        unknown = set(settings) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown SessionWriter setting(s): {', '.join(sorted(unknown))}")
        self.settings = {**DEFAULTS, **settings}
        if self.settings["flush_interval"] <= 0:
            raise ValueError("flush_interval must be positive")
        self.venue = check_name("venue", venue)
        root = data_root(data)
        venue_dir = root / venue
        try:
            venue_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {venue_dir}: {exc.strerror or exc}; "
                               f"choose a writable --data or WSREC_DATA") from exc
        # Recording: the session starts now. Building one from other data (an import, a
        # sample): pass its first timestamp; the end is then the newest row's time.
        self._clock = started_ns is None
        started = time.time_ns() if started_ns is None else started_ns
        self.id, self.folder = self._make_folder(venue_dir, session_id, started)
        self._lock_file = SessionLock(self.folder)
        self._tracker = ConnectionTracker()
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
        save_manifest(self.folder, self.manifest)

        self._lock = threading.Lock()      # connection tracker and manifest
        self._io_lock = threading.Lock()   # files: one drain at a time
        # One list per column, appended to in step: no per-row object for the garbage
        # collector to track. ``payload`` is appended last, so its length is the number
        # of complete rows.
        self._columns: tuple[list, ...] = tuple([] for _ in range(10))
        (self._put_seq, self._put_ts, self._put_mono, self._put_conn, self._put_stream,
         self._put_dir, self._put_kind, self._put_channels, self._put_symbols,
         self._put_payload) = (c.append for c in self._columns)
        self._payloads = self._columns[9]
        self._bytes_in = 0                 # written by the appending thread only
        self._bytes_out = 0                # written by the flush thread only
        self._seq = 0
        self._last_mono = -(1 << 63)
        self._manifest_dirty = False
        self._failure: WsrecError | None = None
        self._closed = False
        self._stopped = False              # closed or failed: append refuses

        self._part_index = 0
        self._part: PartWriter | None = None
        self._part_opened = 0.0
        self._journal: JournalWriter | None = None

        self._wake = threading.Event()
        self._drained = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"wsrec-writer-{self.id}",
                                        daemon=True)
        self._thread.start()

    @staticmethod
    def _make_folder(venue_dir: Path, session_id: str | None, started: int):
        for _ in range(100):
            sid = check_name("session id", session_id) if session_id else new_session_id(started)
            folder = venue_dir / sid
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
        raise StorageError(f"cannot find a free session id under {venue_dir}")

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
            raise ValueError(f"mono_ns {mono_ns} is before the previous row's "
                             f"{self._last_mono}: rows must be appended in receive order")
        if dir not in _DIRECTIONS:
            raise ValueError(f"dir must be one of {', '.join(DIRECTIONS)}, not {dir!r}")
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
            with self._lock:
                if self._tracker.feed(kind, conn, stream, ts_ns, mono_ns, payload):
                    self._manifest_dirty = True
        if size > 65_536 or not len(self._payloads) & 1023:
            self._nudge()
        return seq

    def _nudge(self) -> None:
        """Wake the flush thread when enough waits; block while it is far behind."""
        pending = self._bytes_in - self._bytes_out
        if len(self._payloads) >= _WAKE_ROWS or pending >= _WAKE_BYTES:
            self._wake.set()
        while ((len(self._payloads) > _MAX_PENDING_ROWS
                or self._bytes_in - self._bytes_out > _MAX_PENDING_BYTES)
               and self._failure is None and self._thread.is_alive()):
            self._drained.wait(0.05)
            self._drained.clear()

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
        self._drain()
        if self._failure is not None:
            raise self._failure

    @property
    def rows(self) -> int:
        """Rows appended so far (the next ``seq``)."""
        return self._seq

    def _raise_closed(self):
        if self._failure is not None:
            raise self._failure
        raise StorageError(f"session {self.id} is closed")

    # -- the flush thread: all the I/O --------------------------------------------------

    def _run(self) -> None:
        interval = self.settings["flush_interval"] / 2
        while not self._stop.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            self._drain()
            if self._failure is not None:
                break

    def _drain(self) -> None:
        with self._io_lock:
            if self._failure is not None:
                return
            n = len(self._payloads)  # rows whose every column is appended
            chunk = [column[:n] for column in self._columns]
            for column in self._columns:
                del column[:n]  # appends only ever add at the end, so these n are ours
            with self._lock:
                dirty, self._manifest_dirty = self._manifest_dirty, False
            try:
                if n:
                    self._write_rows(chunk)
                if self._part_due():
                    self._rotate()
                elif dirty:
                    self._save_manifest()
            except WsrecError as exc:
                self._fail(exc)
            except OSError as exc:
                self._fail(storage_error(exc, str(self.folder)))
            finally:
                self._bytes_out += sum(map(len, chunk[9]))
                self._drained.set()

    def _fail(self, exc: WsrecError) -> None:
        self._failure = exc
        self._stopped = True

    def _write_rows(self, columns: list[list]) -> None:
        batch = columns_to_batch(columns)
        if self._journal is None:
            self._journal = JournalWriter(self.folder / journal_name(self._part_index))
        self._journal.write(batch)
        if self._part is None:
            self._part = PartWriter(self.folder, self._part_index, self.venue, self.id,
                                    compression_level=self.settings["compression_level"],
                                    row_group_rows=self.settings["row_group_rows"],
                                    row_group_bytes=self.settings["row_group_bytes"])
            self._part_opened = time.monotonic()
        self._part.add(batch)

    def _part_due(self) -> bool:
        part = self._part
        return part is not None and (
            part.raw_bytes >= self.settings["part_bytes"]
            or time.monotonic() - self._part_opened >= self.settings["part_seconds"])

    def _rotate(self) -> None:
        """Finish the open part: publish it, list it, then drop its journal."""
        if self._part is None:
            return
        entry = self._part.finish()
        self._part = None
        with self._lock:
            if entry is not None:
                self.manifest["parts"].append(entry)
        self._save_manifest()
        if self._journal is not None:
            self._journal.close()
            os.unlink(self._journal.path)
            fsync_dir(self.folder)
            self._journal = None
        self._part_index += 1

    def _save_manifest(self) -> None:
        with self._lock:
            self.manifest.update(self._tracker.as_dict())
            snapshot = json.loads(json.dumps(self.manifest))
        save_manifest(self.folder, snapshot)

    # -- ending ------------------------------------------------------------------------

    def close(self, status: str = "complete", error: str | None = None) -> dict:
        """Finish the open part, set the final status, release the lock.

        ``status`` is ``complete`` or ``failed`` (with ``error`` saying why). After a
        storage failure the session is marked ``failed`` whatever ``status`` says,
        and the failure is raised once the manifest is written. Returns the manifest.
        """
        if status not in ("complete", "failed"):
            raise ValueError(f"status must be 'complete' or 'failed', not {status!r}")
        if self._closed:
            return self.manifest
        self._closed = self._stopped = True  # no row gets in after this point
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self._drain()
        with self._io_lock:
            if self._failure is None:
                try:
                    self._rotate()
                except WsrecError as exc:
                    self._failure = exc
                except OSError as exc:
                    self._failure = storage_error(exc, str(self.folder))
            if self._failure is not None:
                status, error = "failed", str(self._failure)
                if self._part is not None:
                    self._part.abort()
            if self._journal is not None:
                self._journal.close()
            with self._lock:
                ended = format_ns(time.time_ns()) if self._clock else max(
                    [p["end"] for p in self.manifest["parts"]] or [self.manifest["started"]])
                self.manifest.update(status=status, error=error, ended=ended)
            try:
                self._save_manifest()
            except WsrecError:
                pass  # the disk is full: the session reads as crashed, repair finishes it
            self._lock_file.release()
        if self._failure is not None:
            raise self._failure
        return self.manifest

    def __enter__(self) -> "SessionWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None or issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            self.close()
            return
        try:
            self.close("failed", f"{exc_type.__name__}: {exc}")
        except WsrecError:
            pass  # the original exception is the one to report
