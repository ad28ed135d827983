"""Sessions to other formats: JSON lines (plain or zstd), CSV, Parquet, Arrow IPC.

Every format streams: batches are read, converted and written one at a time, so memory
stays bounded whatever the sessions' size. Several sessions are merged by time (the
replay schedule, unpaced). A file is written under a temporary name and renamed when
complete, so a failed conversion leaves nothing half-written behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from .errors import WsrecError, storage_error
from .filters import Filters
from .lines import envelope, is_msgpack_session, raw_line
from .replay import batch_frames, split_by_session
from .schedule import Schedule
from .schema import COLUMNS, PARQUET_OPTIONS, SCHEMA
from .session import Frame, Session

__all__ = ["FORMATS", "convert", "CSV_FIELDS"]

FORMATS = ("jsonl", "jsonl.zst", "csv", "parquet", "arrow")
CSV_FIELDS = ["seq", "ts", "mono_ns", "venue", "session", "conn", "stream", "dir", "kind",
              "channel", "channels", "symbols", "enc", "data"]
_FRAME = list(Frame._fields)


def _batches(sessions: list[Session], filters: Filters, columns):
    """(batch, session) in time order across sessions."""
    by_id = {s.id: s for s in sessions}
    for batch, _ in Schedule(sessions, filters, speed=None, columns=columns):
        yield from split_by_session(batch, by_id)


def convert(sessions: list[Session], filters: Filters, fmt: str, output: str | None, *,
            force: bool = False, level: int | None = None, stdout=None,
            progress: Callable[[int], None] | None = None) -> int:
    """Write the matching rows of ``sessions`` as ``fmt`` to ``output`` (None or ``-``:
    ``stdout``, a binary file). Returns the rows written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    to_stdout = output in (None, "-")
    if to_stdout and fmt in ("parquet", "arrow") and stdout is not None and \
            hasattr(stdout, "isatty") and stdout.isatty():
        raise ValueError(f"{fmt} is binary: give -o FILE (or pipe stdout somewhere)")
    target = None
    if not to_stdout:
        target = Path(output)
        if target.exists() and not force:
            raise WsrecError(f"{target} exists; pass --force to replace it")
        tmp = target.with_name(f".{target.name}.wsrec-tmp")
        try:
            sink = open(tmp, "wb")
        except OSError as exc:
            raise storage_error(exc, str(target)) from exc
    else:
        sink = stdout
    try:
        rows = _write(sessions, filters, fmt, sink, level, progress)
        if target is not None:
            sink.close()
            os.replace(tmp, target)
        else:
            sink.flush()
        return rows
    except OSError as exc:
        if target is not None:
            sink.close()
            tmp.unlink(missing_ok=True)
        if isinstance(exc, BrokenPipeError):
            raise
        raise storage_error(exc, str(target or "stdout")) from exc
    except BaseException:
        if target is not None:
            sink.close()
            tmp.unlink(missing_ok=True)
        raise


def _write(sessions, filters, fmt, sink, level, progress) -> int:
    rows = 0
    if fmt in ("parquet", "arrow"):
        options = dict(PARQUET_OPTIONS)
        if level is not None:
            options["compression_level"] = level
        writer = pq.ParquetWriter(sink, SCHEMA, **options) if fmt == "parquet" else \
            pa.ipc.new_file(sink, SCHEMA)
        pending, count = [], 0
        for batch, _ in _batches(sessions, filters, list(COLUMNS)):
            pending.append(batch)
            count += batch.num_rows
            rows += batch.num_rows
            if count >= 131_072:
                _flush(writer, pending, fmt)
                pending, count = [], 0
                if progress:
                    progress(rows)
        _flush(writer, pending, fmt)
        writer.close()
        return rows
    out = zstandard.ZstdCompressor(level=level or 3).stream_writer(sink, closefd=False) \
        if fmt == "jsonl.zst" else sink
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True) \
        if fmt == "csv" else None
    table = csv.writer(text) if text else None
    if table:
        table.writerow(CSV_FIELDS)
    for batch, session in _batches(sessions, filters, _FRAME + ["session"]):
        mp = is_msgpack_session(session.manifest)
        frames = batch_frames(batch)
        if table is None:
            out.write(b"".join(json.dumps(envelope(f, session.venue, session.id, mp),
                                          separators=(",", ":"), ensure_ascii=False).encode()
                               + b"\n" for f in frames))
        else:
            for f in frames:
                e = envelope(f, session.venue, session.id, mp)
                data = raw_line(f.payload, f.kind, mp).decode("utf-8", errors="replace")
                table.writerow([e["seq"], e["ts"], e["mono_ns"], e["venue"], e["session"],
                                "" if e["conn"] is None else e["conn"], e["stream"] or "",
                                e["dir"], e["kind"], e["channel"] or "",
                                " ".join(e["channels"]), " ".join(e["symbols"]), e["enc"],
                                data])
        rows += len(frames)
        if progress:
            progress(rows)
    if text is not None:
        text.detach()
    if fmt == "jsonl.zst":
        out.close()
    return rows


def _flush(writer, batches, fmt) -> None:
    if not batches:
        return
    table = pa.Table.from_batches(batches, schema=SCHEMA).combine_chunks()
    if fmt == "parquet":
        writer.write_table(table, row_group_size=table.num_rows)
    else:
        writer.write_table(table)
