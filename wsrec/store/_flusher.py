"""The flush thread of a ``SessionWriter``: all of its I/O.

Every ``flush_interval`` / 2 (or sooner when many rows wait) it takes the waiting rows
(``ColumnBuffer.take``), turns them into an Arrow batch, appends it to the journal and
fsyncs it, gathers batches into large row groups for the open part, rotates parts by size
and age, and rewrites the manifest when it changed. A write that fails (disk full, EFBIG,
an I/O error) stops the thread; the failure is kept in ``failure`` for the writer to
raise.

``SessionBook`` is the manifest as the writer keeps it, shared by the appending thread
(event rows update connections and gaps) and this one (parts, saving).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Callable

from wsrec.errors import WsrecError, storage_error
from wsrec.store._connections import ConnectionTracker
from wsrec.store._journal import JournalWriter
from wsrec.store._part import PartWriter, journal_name
from wsrec.store._rows import ColumnBuffer
from wsrec.store.atomic import fsync_dir
from wsrec.store.manifest import save_manifest
from wsrec.store.schema import columns_to_batch, rules_of
from wsrec.timefmt import format_ns

__all__ = ["Flusher", "SessionBook"]

# Few rows wait as Python objects: at 10M frames a 131k-row backlog left the recorder's heap
# fragmented past 300 MB; 32k keeps it near 240 MB at the same throughput (PERFORMANCE.md).
WAKE_ROWS = 8_192                   # wake the flush thread early past this many rows ...
WAKE_BYTES = 8 << 20                # ... or payload bytes
MAX_PENDING_ROWS = 32_768           # append blocks past this many waiting rows ...
MAX_PENDING_BYTES = 32 << 20        # ... or bytes (the flush thread is far behind)


class SessionBook:
    """The session's manifest, its connection tracker and whether it changed, under one
    lock."""

    def __init__(self, manifest: dict):
        self.manifest = manifest
        self.lock = threading.Lock()
        self._tracker = ConnectionTracker()
        self._dirty = False

    def feed(self, kind: str, conn, stream, ts_ns: int, mono_ns: int, payload: bytes) -> None:
        """An event row: connections and gaps."""
        with self.lock:
            if self._tracker.feed(kind, conn, stream, ts_ns, mono_ns, payload):
                self._dirty = True

    def take_dirty(self) -> bool:
        """Whether the manifest changed since the last call."""
        with self.lock:
            dirty, self._dirty = self._dirty, False
        return dirty

    def add_part(self, entry: dict) -> None:
        with self.lock:
            self.manifest["parts"].append(entry)

    def end(self, status: str, error: str | None, clock: bool) -> None:
        """The final status; ``ended`` is now (``clock``) or the newest part's end."""
        with self.lock:
            ended = format_ns(time.time_ns()) if clock else max(
                [p["end"] for p in self.manifest["parts"]] or [self.manifest["started"]])
            self.manifest.update(status=status, error=error, ended=ended)

    def save(self, folder: Path) -> None:
        with self.lock:
            self.manifest.update(self._tracker.as_dict())
            snapshot = json.loads(json.dumps(self.manifest))
        save_manifest(folder, snapshot)


class Flusher:
    """Journals and seals the parts of one session from the rows in ``rows``."""

    def __init__(self, folder: Path, venue: str, session_id: str, settings: dict,
                 rows: ColumnBuffer, book: SessionBook, on_failure: Callable[[], None],
                 on_sealed: Callable[[Path, dict], None] | None = None):
        self.folder, self.venue, self.session_id = folder, venue, session_id
        # told of each part once it is published and listed (an upload queue: it must not
        # wait; a WsrecError it raises, e.g. DiskFull, fails the session)
        self._on_sealed = on_sealed
        self.settings, self.rows, self.book = settings, rows, book
        self._on_failure = on_failure
        self.failure: WsrecError | None = None
        self._io_lock = threading.Lock()   # files: one drain at a time
        self._part_index = 0
        self._part: PartWriter | None = None
        self._part_opened = 0.0
        self._journal: JournalWriter | None = None
        self._wake = threading.Event()
        self._drained = threading.Event()
        # ``mono`` of the oldest row of the chunk being journaled (None: none): set before
        # the rows leave ``rows``, cleared once they are fsync'd (``pending_since``)
        self.writing_since: int | None = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"wsrec-writer-{session_id}",
                                       daemon=True)

    def start(self) -> None:
        self.thread.start()

    def nudge(self, bytes_in: int) -> None:
        """Wake the thread when enough waits; block while it is far behind (``bytes_in``:
        payload bytes appended so far)."""
        rows = self.rows
        if len(rows) >= WAKE_ROWS or bytes_in - rows.bytes_out >= WAKE_BYTES:
            self._wake.set()
        while ((len(rows) > MAX_PENDING_ROWS or bytes_in - rows.bytes_out > MAX_PENDING_BYTES)
               and self.failure is None and self.thread.is_alive()):
            self._drained.wait(0.05)
            self._drained.clear()

    def _run(self) -> None:
        interval = self.settings["flush_interval"] / 2
        while not self._stop.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            self.drain()
            if self.failure is not None:
                break

    def drain(self, batch=None) -> None:
        """Journal (and fsync) every row waiting now, then ``batch`` if given (journal
        schema, seq assigned: ``SessionWriter.append_columns``, on the caller's thread);
        rotate the part when it is due."""
        with self._io_lock:
            if self.failure is not None:
                return
            self.writing_since = self.rows.oldest_mono()
            chunk = self.rows.take()
            dirty = self.book.take_dirty()
            try:
                if chunk[-1]:
                    self._write_batch(columns_to_batch(chunk))
                if batch is not None:
                    self._write_batch(batch)
                if self._part_due():
                    self._rotate()
                elif dirty:
                    self.book.save(self.folder)
            except WsrecError as exc:
                self._fail(exc)
            except OSError as exc:
                self._fail(storage_error(exc, str(self.folder)))
            finally:
                self.rows.taken(chunk)
                self.writing_since = None
                self._drained.set()

    def pending_since(self) -> int | None:
        """``mono`` of the oldest row not yet durable in the journal (None: every row
        handed over is): a waiting row, or one of the chunk being written now. Lock-free,
        for any thread; the buffer is read first, so a row moving into the chunk in
        between is still seen."""
        waiting = self.rows.oldest_mono()
        writing = self.writing_since
        if writing is None or waiting is not None and waiting < writing:
            return waiting
        return writing

    def _fail(self, exc: WsrecError) -> None:
        self.failure = exc
        self._on_failure()

    def _write_batch(self, batch) -> None:
        if self._journal is None:
            self._journal = JournalWriter(self.folder / journal_name(self._part_index))
        self._journal.write(batch)
        if self._part is None:
            self._part = PartWriter(self.folder, self._part_index, self.venue, self.session_id,
                                    rules=rules_of(self.book.manifest),
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
        if entry is not None:
            self.book.add_part(entry)
        self.book.save(self.folder)
        if self._journal is not None:
            self._journal.close()
            os.unlink(self._journal.path)
            fsync_dir(self.folder)
            self._journal = None
        self._part_index += 1
        if entry is not None and self._on_sealed is not None:
            self._on_sealed(self.folder, entry)

    def finish(self, status: str, error: str | None, clock: bool) -> WsrecError | None:
        """Stop the thread, journal what waits, seal the open part and write the final
        manifest (``failed`` after a failure, whatever ``status`` says). Returns the
        failure, if any."""
        self._stop.set()
        self._wake.set()
        self.thread.join()
        self.drain()
        with self._io_lock:
            if self.failure is None:
                try:
                    self._rotate()
                except WsrecError as exc:
                    self.failure = exc
                except OSError as exc:
                    self.failure = storage_error(exc, str(self.folder))
            if self.failure is not None:
                status, error = "failed", str(self.failure)
                if self._part is not None:
                    self._part.abort()
            if self._journal is not None:
                self._journal.close()
            self.book.end(status, error, clock)
            try:
                self.book.save(self.folder)
            except WsrecError:
                pass  # the disk is full: the session reads as crashed, repair finishes it
        return self.failure
