"""The append-only journal that makes an open part crash-safe.

A journal is an Arrow IPC *stream* (lz4-compressed buffers) of ``JOURNAL_SCHEMA``
batches, one batch per flush, each followed by ``fsync``. It sits beside the part
it shadows (``part-000003.journal`` for ``part-000003.parquet``) and is deleted
once that part is complete and listed in the manifest.

Reading stops at the last complete batch: a batch torn by a crash (or still being
written by a live recorder) is dropped, never an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pyarrow as pa

from .errors import CorruptData, first_line, storage_error
from .schema import JOURNAL_SCHEMA

__all__ = ["JournalWriter", "read_journal", "journal_rows"]

_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


class JournalWriter:
    """Appends batches to a journal file and makes each one durable."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._file = open(self.path, "xb")
            self._stream = pa.ipc.new_stream(self._file, JOURNAL_SCHEMA, options=_OPTIONS)
            self._sync()
        except OSError as exc:
            raise storage_error(exc, str(self.path)) from exc

    def _sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def write(self, batch: pa.RecordBatch) -> None:
        try:
            self._stream.write_batch(batch)
            self._sync()
        except OSError as exc:
            raise storage_error(exc, str(self.path)) from exc

    def close(self) -> None:
        """Close the file without an end-of-stream marker (it will be deleted anyway)."""
        try:
            self._file.close()
        except OSError:
            pass


def read_journal(path: Path, schema: pa.Schema = JOURNAL_SCHEMA) -> Iterator[pa.RecordBatch]:
    """Yield the complete batches of a journal, in order; a torn tail is dropped.
    (``schema``: what the journal must hold; an older format's for an upgrade.)"""
    try:
        source = pa.OSFile(str(path), "r")
    except OSError as exc:
        raise CorruptData(f"{path}: cannot open journal ({first_line(exc)})") from exc
    with source:
        if source.size() == 0:
            return
        try:
            reader = pa.ipc.open_stream(source)
        except (pa.ArrowInvalid, OSError):
            return  # torn before the schema was complete: nothing recoverable
        if not reader.schema.equals(schema):
            raise CorruptData(f"{path}: not a wsrec journal (unexpected schema)")
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, OSError):
                return  # torn last batch
            yield batch


def journal_rows(path: Path) -> int:
    return sum(b.num_rows for b in read_journal(path))
