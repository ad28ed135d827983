"""Parquet parts: naming, writing under a temporary name, and the manifest entry.

A part is written as ``part-NNNNNN.parquet.tmp`` and renamed to
``part-NNNNNN.parquet`` only once its footer is written and the file is fsync'd,
so a file under a final name is always complete. Nothing rewrites it afterwards.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from wsrec.store._compute import pc
from wsrec.errors import storage_error
from wsrec.store.atomic import publish
from wsrec.store.schema import PARQUET_OPTIONS, SCHEMA, to_part
from wsrec.timefmt import format_ns

__all__ = ["PartWriter", "PartSpan", "part_name", "journal_name", "part_index", "file_sha256"]

_NAME = re.compile(r"^part-(\d{6,})\.(parquet|journal|parquet\.tmp)$")


def part_name(index: int) -> str:
    return f"part-{index:06d}.parquet"


def journal_name(index: int) -> str:
    return f"part-{index:06d}.journal"


def part_index(name: str) -> tuple[int, str] | None:
    """``'part-000003.journal'`` -> ``(3, 'journal')``; None for other names."""
    m = _NAME.match(name)
    return (int(m.group(1)), m.group(2)) if m else None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class PartSpan:
    """The ends of a part's rows, gathered a batch (or table) at a time as they are written
    or read, and the part's manifest entry made from them: the one place that entry is
    built, for a part ``PartWriter`` writes and for one ``wsrec repair`` finds."""

    def __init__(self):
        self.seq = self.mono = self.ts = None  # [first, last], [first, last], [min, max]
        self.dirs = {"in": 0, "out": 0, "event": 0}   # rows by direction

    def add(self, rows) -> None:
        """Rows (a record batch or table with ``seq``, ``mono_ns``, ``ts`` and ``dir``), in
        order."""
        n = rows.num_rows
        if not n:
            return
        for item in pc.value_counts(rows.column("dir")).to_pylist():
            if item["values"] in self.dirs:
                self.dirs[item["values"]] += item["counts"]
        seq, mono = rows.column("seq"), rows.column("mono_ns")
        ts = pc.min_max(rows.column("ts").cast(pa.int64()))
        lo, hi = ts["min"].as_py(), ts["max"].as_py()
        if self.seq is None:
            self.seq = [seq[0].as_py(), None]
            self.mono = [mono[0].as_py(), None]
            self.ts = [lo, hi]
        self.seq[1], self.mono[1] = seq[n - 1].as_py(), mono[n - 1].as_py()
        self.ts = [min(self.ts[0], lo), max(self.ts[1], hi)]

    def entry(self, file: str, *, rows: int, raw_bytes: int, size: int, sha256: str) -> dict:
        return {
            "file": file,
            "rows": rows,
            "seq_first": self.seq[0],
            "seq_last": self.seq[1],
            "mono_first": self.mono[0],
            "mono_last": self.mono[1],
            "start": format_ns(self.ts[0]),
            "end": format_ns(self.ts[1]),
            "bytes": size,
            "raw_bytes": raw_bytes,
            "frames_in": self.dirs["in"],
            "frames_out": self.dirs["out"],
            "events": self.dirs["event"],
            "sha256": sha256,
        }


class PartWriter:
    """Writes one part from journal-schema batches.

    ``add`` gathers batches and writes them as one row group once ``row_group_rows``
    rows or ``row_group_bytes`` payload bytes are waiting (pyarrow ends a row group on
    every write, so writing per flush would make tiny ones). The temporary file is
    created at the first row group; ``finish`` writes the rest and publishes it.
    """

    def __init__(self, folder: Path, index: int, venue: str, session: str, *,
                 compression_level: int | None = None, row_group_rows: int = 131_072,
                 row_group_bytes: int = 32 << 20, rules: str | None = None):
        self.index = index
        self.final = Path(folder) / part_name(index)
        self.tmp = self.final.with_name(self.final.name + ".tmp")
        self.venue, self.session, self.rules = venue, session, rules
        self.rows = 0           # rows added
        self.raw_bytes = 0      # payload bytes added
        self._group_rows = row_group_rows
        self._group_bytes = row_group_bytes
        self._batches: list[pa.RecordBatch] = []
        self._pending_rows = self._pending_bytes = 0
        self._options = dict(PARQUET_OPTIONS)
        if compression_level is not None:
            self._options["compression_level"] = compression_level
        self._writer = None
        self._file = None
        self._span = PartSpan()

    def add(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        nbytes = pc.sum(pc.binary_length(batch.column("payload"))).as_py() or 0
        self._batches.append(batch)
        self.rows += batch.num_rows
        self.raw_bytes += nbytes
        self._pending_rows += batch.num_rows
        self._pending_bytes += nbytes
        while self._pending_rows >= self._group_rows:
            self._write_group(self._group_rows)  # whole row groups of exactly this many
        if self._pending_bytes >= self._group_bytes:
            self._write_group()

    def _write_group(self, rows: int | None = None) -> None:
        """Write the first ``rows`` pending rows (all when None) as one row group."""
        if not self._batches:
            return
        table = pa.Table.from_batches(self._batches)
        rest = None
        if rows is not None and rows < table.num_rows:
            table, rest = table.slice(0, rows), table.slice(rows)
        self._batches = rest.to_batches() if rest is not None else []
        self._pending_rows = rest.num_rows if rest is not None else 0
        self._pending_bytes = (pc.sum(pc.binary_length(rest.column("payload"))).as_py() or 0) \
            if rest is not None else 0
        table = to_part(table.to_batches(), self.venue, self.session, self.rules)
        try:
            if self._writer is None:
                self._file = open(self.tmp, "wb")  # a file object: pyarrow never parses a path
                self._writer = pq.ParquetWriter(self._file, SCHEMA, **self._options)
            self._writer.write_table(table, row_group_size=table.num_rows)
        except OSError as exc:
            raise storage_error(exc, str(self.tmp)) from exc
        self._span.add(table)

    def finish(self) -> dict | None:
        """Write what is left, close, fsync, rename to the final name.

        Returns the manifest entry, or None when no row was ever added.
        """
        self._write_group()
        if self._writer is None:
            return None
        try:
            self._writer.close()
            publish(self._file, self.tmp, self.final)
            digest = file_sha256(self.final)
            size = self.final.stat().st_size
        except OSError as exc:
            raise storage_error(exc, str(self.final)) from exc
        return self._span.entry(self.final.name, rows=self.rows, raw_bytes=self.raw_bytes,
                                size=size, sha256=digest)

    def abort(self) -> None:
        """Give up on this part (its rows stay in the journal)."""
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - the file may be half-written after ENOSPC
                pass
            try:
                self._file.close()
            except OSError:
                pass
