"""Normalized rows out: ``convert --normalize TABLE`` and ``replay --normalize TABLE``.

The rows come from ``wsrec.store.normalized.Normalized`` (typed Arrow batches); this
writes them as Parquet, Arrow IPC, CSV or JSON lines, or plays them to a stream as JSON
lines paced by their receive time (``local_ts``), like raw frames.

JSON lines: one object per row, the table's columns in order; times as RFC 3339 strings
with nine fractional digits and ``Z``; numbers as JSON numbers (the shortest form that
reads back as the same float64); nulls as ``null``.
"""

from __future__ import annotations

import json
import time
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import zstandard

from wsrec.store.lines import buffer_view
from wsrec.store.normalized import Normalized
from wsrec.replay._pacing import Lateness, Pacer, fine_switching, prefetch
from wsrec.replay.stdout import ReplayOptions, send_paced

__all__ = ["write_normalized", "replay_normalized", "json_lines"]

_COMPRESSION = dict(compression="zstd", compression_level=6)


def json_lines(batch: pa.RecordBatch) -> list[bytes]:
    """Each row of a normalized batch as one JSON line (with its newline)."""
    return json_block(batch).cast(pa.binary()).to_pylist()


def json_block(batch: pa.RecordBatch) -> pa.Array:
    """The rows of a normalized batch as JSON lines (with their newlines), built as Arrow
    columns: each value's JSON text, joined with the member names, no Python per row
    (only strings that need escaping go through ``json.dumps``, one by one)."""
    parts: list = []
    for i, (field, column) in enumerate(zip(batch.schema, batch.columns)):
        parts.append(("{" if i == 0 else ",") + json.dumps(field.name) + ":")
        parts.append(pc.fill_null(_json_values(column), "null"))
    parts.append("}\n")
    return pc.binary_join_element_wise(*parts, "")


_NEEDS_ESCAPE = r'["\\\x00-\x1f]'


def _json_values(column: pa.Array) -> pa.Array:
    """Each value's JSON text (null stays null)."""
    kind = column.type
    if pa.types.is_timestamp(kind):
        return _quoted(pc.strftime(column, format="%Y-%m-%dT%H:%M:%SZ"))
    if pa.types.is_floating(kind):   # shortest round-trip digits; ".0" keeps it a float
        text = column.cast(pa.string())
        return pc.if_else(pc.match_substring_regex(text, "[.eEn]"), text,
                          pc.binary_join_element_wise(text, ".0", ""))
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return column.cast(pa.string())
    text = column.cast(pa.string())
    if not pc.any(pc.match_substring_regex(text, _NEEDS_ESCAPE)).as_py():
        return _quoted(text)
    return pa.array([None if v is None else json.dumps(v, ensure_ascii=False)
                     for v in text.to_pylist()], pa.string())


def _quoted(text: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise('"', text, '"', "")


def write_normalized(rows: Normalized, fmt: str, sink, *, level: int | None = None,
                     progress: Callable[[int], None] | None = None) -> int:
    """Write ``rows`` as ``fmt`` (jsonl, jsonl.zst, csv, parquet, arrow) to the binary
    file ``sink``; returns the rows written."""
    written = 0
    if fmt in ("parquet", "arrow"):
        options = dict(_COMPRESSION, compression_level=level or 6)
        writer = pq.ParquetWriter(sink, rows.schema, **options) if fmt == "parquet" else \
            pa.ipc.new_file(sink, rows.schema)
        for batch in rows:
            writer.write_batch(batch) if fmt == "arrow" else writer.write_table(
                pa.Table.from_batches([batch]))
            written += batch.num_rows
            if progress:
                progress(rows.frames)
        writer.close()
        return written
    if fmt == "csv":
        writer = pacsv.CSVWriter(sink, rows.schema)
        for batch in rows:
            writer.write_batch(batch)
            written += batch.num_rows
            if progress:
                progress(rows.frames)
        writer.close()
        return written
    out = zstandard.ZstdCompressor(level=level or 3).stream_writer(sink, closefd=False) \
        if fmt == "jsonl.zst" else sink
    for batch in rows:
        if batch.num_rows:
            out.write(buffer_view(json_block(batch).cast(pa.binary())))
        written += batch.num_rows
        if progress:
            progress(rows.frames)
    if fmt == "jsonl.zst":
        out.close()
    return written


def replay_normalized(rows: Normalized, options: ReplayOptions, out, *,
                      lateness: Lateness | None = None,
                      progress: Callable[[int, int], None] | None = None) -> int:
    """Play ``rows`` to ``out`` (a binary file) as JSON lines, each written when due by
    its ``local_ts`` at ``options.speed`` (None: as fast as possible); returns the rows
    written. ``progress(frames read, last local_ts)`` follows along. Sessions are played
    one after the other (``Normalized`` gives them so)."""
    written = 0
    pacer = None
    first = None

    def send(line: bytes) -> None:
        out.write(line)
        out.flush()

    with fine_switching():
        for batch in prefetch(iter(rows), depth=2):
            if not batch.num_rows:
                continue
            lines = json_lines(batch)
            local = batch.column("local_ts").cast(pa.int64())
            if options.speed is None:
                out.write(b"".join(lines))
                written += len(lines)
            else:
                times = local.to_pylist()
                if first is None:
                    first = times[0]
                    pacer = Pacer(time.monotonic_ns())
                dues = [max(0, int((t - first) / options.speed)) for t in times]
                written += send_paced(lines, dues, pacer, send, lateness=lateness)
            if progress:
                progress(rows.frames, local[len(local) - 1].as_py())
    out.flush()
    return written
