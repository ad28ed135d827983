"""Sessions to other formats: JSON lines (plain or zstd), CSV, Parquet, Arrow IPC.

Every format streams: batches are read, converted and written one at a time, so memory
stays bounded whatever the sessions' size. Several sessions are merged by time (the
replay schedule, unpaced).

The text formats are built as Arrow columns, a batch at a time in threads (see
``wsrec.store.lines``): ``jsonl`` is the envelope (``envelope_block``; with
``data_as_string`` every ``data`` a string); ``csv`` has the columns ``CSV_FIELDS``,
``data`` being the frame in the raw format, quoted as Python's ``csv`` module quotes
(only fields holding a comma, a quote or a line break, quotes doubled; lines end in
CRLF), every row the same bytes the module writes for it.

Where the output goes (``output``, the CLI's ``-o``):

* ``None`` or ``-``: the ``stdout`` stream given. Errors writing it propagate as they
  are (``OSError``): it is the caller's stream.
* ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N``, ``/proc/self/fd/N``: that open
  descriptor, written where it stands (as ``-`` does for stdout), whatever it is.
* A path that is a FIFO or a character device (after following symlinks): opened for
  writing and streamed into, never replaced (no temporary file, no rename).
* A regular file, or a path that does not exist yet (after following symlinks): written
  under a temporary name next to it and renamed over it when complete (atomic), so a
  failed conversion leaves nothing half-written behind; an existing file is replaced
  only with ``force`` (keeping its permissions), and a symlink stays a symlink.
* Anything else (a directory, a socket, a block device) is refused, ``force`` or not.
"""

from __future__ import annotations

import csv
import io
import os
import re
import secrets
import stat
from contextlib import closing
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

import pyarrow.compute as pc
import pyarrow.csv as pcsv

from wsrec.errors import UsageError, WsrecError, storage_error
from wsrec.store.atomic import publish
from wsrec.store.filters import Filters
from wsrec.store.lines import (ENVELOPE_COLUMNS, buffer_view, chunks, envelope_data,
                               has_line_break, is_msgpack_session, json_classes, newline_ends,
                               per_frame, raw_line, row_texts, ts_pieces)
from wsrec.timefmt import format_ns
from wsrec.replay._pacing import prefetch
from wsrec.replay.stdout import envelope_blocks, rendered, split_by_session
from wsrec.replay._schedule import Schedule
from wsrec.store.schema import COLUMNS, PARQUET_OPTIONS, SCHEMA
from wsrec.store.normalized import Normalized
from wsrec.store.session import Session
from wsrec.replay.normalized import write_normalized

__all__ = ["FORMATS", "convert", "CSV_FIELDS"]

from wsrec.replay.formats import FORMATS  # noqa: E402,F401 - re-exported
CSV_FIELDS = ["seq", "ts", "mono_ns", "venue", "session", "conn", "stream", "dir", "kind",
              "channel", "channels", "symbols", "enc", "data"]


def _batches(sessions: list[Session], filters: Filters, columns):
    """(batch, session) in time order across sessions (one session: as stored, which is
    the order the schedule gives it, without computing due times)."""
    if len(sessions) == 1:
        for batch in sessions[0].batches(filters, columns=columns):
            yield batch, sessions[0]
        return
    by_id = {s.id: s for s in sessions}
    wanted = list(columns) + ([] if "session" in columns else ["session"])
    for batch, _ in Schedule(sessions, filters, speed=None, columns=wanted):
        yield from split_by_session(batch, by_id)


def convert(sessions: list[Session], filters: Filters, fmt: str, output: str | None, *,
            force: bool = False, level: int | None = None, stdout=None,
            progress: Callable[[int], None] | None = None,
            data_as_string: bool = False, normalized: Normalized | None = None) -> int:
    """Write the matching rows of ``sessions`` as ``fmt`` to ``output`` (None or ``-``:
    ``stdout``, a binary file). Returns the rows written. ``progress(rows)`` is called
    as they are written; ``data_as_string``: jsonl's ``data`` always a string.
    ``normalized``: write those rows of a normalized table instead (``progress`` then
    counts the frames read)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if data_as_string and (fmt not in ("jsonl", "jsonl.zst") or normalized is not None):
        raise UsageError(f"data as a string is for the frames as jsonl and jsonl.zst, not "
                         f"{fmt}{' rows' if normalized is not None else ''}",
                         param="data_as_string")
    if output is not None:
        output = os.fspath(output)
    to_stdout = output in (None, "-")
    if to_stdout and fmt in ("parquet", "arrow") and stdout is not None and \
            hasattr(stdout, "isatty") and stdout.isatty():
        raise UsageError(f"{fmt} is binary: give -o FILE (or pipe stdout somewhere)")

    def write(sink) -> int:
        if normalized is not None:
            return write_normalized(normalized, fmt, sink, level=level, progress=progress)
        return _write(sessions, filters, fmt, sink, level, progress, data_as_string)

    if to_stdout:
        rows = write(stdout)
        stdout.flush()
        return rows
    out = _Output(output, force)
    try:
        rows = write(out.sink)
        out.commit()
        return rows
    except OSError as exc:
        out.discard()
        if isinstance(exc, BrokenPipeError):
            raise
        raise storage_error(exc, output) from exc
    except BaseException:
        out.discard()
        raise


#: paths naming a descriptor this process already has open
_DESCRIPTOR = re.compile(r"^/(?:dev/fd|proc/self/fd)/(\d+)$")
_STD_NAMES = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}


class _Output:
    """The file ``convert`` writes, by the rules in the module doc: ``sink`` to write,
    then ``commit()`` (rename into place) or ``discard()`` (remove what was written)."""

    def __init__(self, output: str, force: bool):
        if not output:
            raise UsageError("the output path is empty")
        self.name = output
        self.tmp: Path | None = None
        self.final: Path | None = None
        fd = _STD_NAMES.get(output)
        m = _DESCRIPTOR.match(output)
        if fd is not None or m:
            self.sink = self._descriptor(fd if fd is not None else int(m.group(1)))
            return
        try:
            st = os.stat(output)  # follows symlinks: the rules apply to the target
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise WsrecError(f"cannot write {output}: {exc.strerror or exc}") from None
        if st is not None and (stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode)):
            self.sink = self._stream(output)
            return
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise WsrecError(f"{output} is {_what(st.st_mode)}: convert replaces regular files "
                             f"only (and writes into FIFOs and character devices)")
        if st is not None and not force:
            raise WsrecError(f"{output} exists; pass --force to replace it")
        if st is None and output.endswith(("/", os.sep)):
            raise WsrecError(f"{output} names a directory that does not exist; give a file name")
        self.final = Path(os.path.realpath(output))
        self.sink = self._temporary(st)

    def _descriptor(self, fd: int):
        try:
            return os.fdopen(os.dup(fd), "wb")
        except OSError as exc:
            raise WsrecError(f"cannot write {self.name}: {exc.strerror or exc}") from None

    def _stream(self, path: str):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise storage_error(exc, path) from None
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):  # replaced since we looked
            os.close(fd)
            raise WsrecError(f"{path} changed while opening it; try again")
        return os.fdopen(fd, "wb")

    def _temporary(self, st):
        """A new file next to the target, never an existing one (O_EXCL)."""
        final = self.final
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        for _ in range(100):
            tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.wsrec-tmp")
            try:
                fd = os.open(tmp, flags, 0o666)  # the umask applies
            except FileExistsError:
                continue
            except OSError as exc:
                raise storage_error(exc, self.name) from None
            self.tmp = tmp
            if st is not None:
                try:
                    os.fchmod(fd, stat.S_IMODE(st.st_mode))  # a replaced file keeps its mode
                except OSError:
                    pass
            return os.fdopen(fd, "wb")
        raise WsrecError(f"cannot find a free temporary name next to {final}")  # pragma: no cover

    def commit(self) -> None:
        if self.tmp is None:
            self.sink.close()  # a stream: flushes (errors are the conversion's)
            return
        try:  # what appeared there meanwhile gets the same rules
            st = os.stat(self.final)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISREG(st.st_mode):
                self.sink.close()
                raise WsrecError(f"{self.name} became {_what(st.st_mode)} while converting; "
                                 f"not replaced")
        publish(self.sink, self.tmp, self.final)
        self.tmp = None

    def discard(self) -> None:
        try:
            self.sink.close()
        except OSError:
            pass
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None


def _what(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def _write(sessions, filters, fmt, sink, level, progress, data_as_string=False) -> int:
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
    return _write_text(sessions, filters, fmt, sink, level, progress, data_as_string)


def _write_text(sessions, filters, fmt, sink, level, progress, data_as_string) -> int:
    """jsonl, jsonl.zst, csv: blocks of lines built in threads, written in order."""
    rows = 0
    # zstd in threads of its own: compressing is most of jsonl.zst's work
    out = zstandard.ZstdCompressor(level=level or 3, threads=-1).stream_writer(
        sink, closefd=False) if fmt == "jsonl.zst" else sink
    batches = prefetch(_batches(sessions, filters, _TEXT_COLUMNS), depth=2)
    if fmt == "csv":
        out.write(_CSV_HEADER)
        blocks = rendered(((piece, session) for batch, session in batches
                           for piece in chunks(batch)), _csv_lines)
    else:
        blocks = envelope_blocks(batches, data_as_string)
    with closing(blocks):  # its threads stopped here, whatever happens to the writes
        for block, count in blocks:
            out.write(block)
            rows += count
            if progress:
                progress(rows)
    if fmt == "jsonl.zst":
        out.close()
    return rows


#: what the text formats read (the envelope's columns, ``kind`` among them)
_TEXT_COLUMNS = ENVELOPE_COLUMNS


def _csv_row(values) -> bytes:
    """One CSV line as Python's ``csv`` module writes it (the reference for every row)."""
    text = io.StringIO()
    csv.writer(text).writerow(values)
    return text.getvalue().encode("utf-8")


_CSV_HEADER = _csv_row(CSV_FIELDS)


def _csv_field(value) -> bytes:
    """One CSV field as the ``csv`` module writes it inside a row (None: empty)."""
    text = "" if value is None else str(value)
    if any(c in text for c in ',"\r\n'):
        text = '"' + text.replace('"', '""') + '"'
    return text.encode("utf-8")


#: the columns between ``session`` and ``enc``, in CSV order
_CSV_MIDDLE = ("conn", "stream", "dir", "kind", "channel", "channels", "symbols")
_CSV_EOL = b"\r\n"


def _csv_middle(values: tuple) -> bytes:
    conn, stream, direction, kind, channel, channels, symbols = values
    return b",".join(_csv_field(v) for v in (
        conn, stream, direction, kind, channel, " ".join(channels or ()),
        " ".join(symbols or ()))) + b","


def _csv_lines(item) -> tuple[memoryview, int]:
    """The CSV lines of a batch (a piece ``chunks`` cut) and its rows: Arrow columns
    joined row by row; ``data`` as is where the raw format writes the payload as is
    (UTF-8 text without line breaks), quoted by Arrow's CSV writer where it needs quotes,
    and row by row for the rest (binary and msgpack frames, text with line breaks or not
    UTF-8)."""
    batch, session = item
    mp = is_msgpack_session(session.manifest)
    payload, kinds = batch.column("payload"), batch.column("kind")
    is_json, is_text = json_classes(payload, kinds)
    plain = pc.or_(is_json, is_text)
    if has_line_break(payload):  # (never inside JSON: only in text)
        plain = pc.and_(plain, pc.invert(pc.match_substring_regex(payload, "[\\r\\n]")))
    enc = pc.if_else(is_json, pa.scalar(b"json,"), pa.scalar(b"text,"))
    quote = pc.and_(plain, _has_quote_or_comma(payload))
    if pc.all(quote).as_py():  # JSON messages all are
        data = _csv_quoted(payload)
    else:
        data = pc.binary_join_element_wise(payload, _CSV_EOL, b"")
        if pc.any(quote).as_py():
            data = pc.replace_with_mask(data, quote, _csv_quoted(pc.filter(payload, quote)))
    rest = pc.invert(plain)
    if pc.any(rest).as_py():  # row by row: what the raw format makes of them, quoted
        made = [(envelope_data(p, k, mp)[1], raw_line(p, k, mp)) for p, k in
                zip(pc.filter(payload, rest).to_pylist(), pc.filter(kinds, rest).to_pylist())]
        enc = pc.replace_with_mask(enc, rest, pa.array(
            [e.encode() + b"," for e, _ in made], pa.binary()))
        data = pc.replace_with_mask(data, rest, pa.array(
            [_csv_field(d.decode("utf-8", errors="replace")) + _CSV_EOL for _, d in made],
            pa.binary()))
    names = b"," + _csv_field(session.venue) + b"," + _csv_field(session.id) + b","
    lines = pc.binary_join_element_wise(
        _csv_ints(batch.column("seq")), *ts_pieces(batch.column("ts"), b",", b","),
        _csv_ints(batch.column("mono_ns")), names,
        row_texts([batch.column(name) for name in _CSV_MIDDLE], _csv_middle), enc, data, b"")
    if lines.null_count:  # no time (never written so): those rows one by one
        lines = per_frame(lines, batch, lambda f: _csv_frame(f, session.venue, session.id, mp))
    return buffer_view(lines), batch.num_rows


def _csv_frame(frame, venue: str, session: str, msgpack_mode: bool) -> bytes:
    """One frame's CSV line, by the per-frame code."""
    data, enc, _ = envelope_data(frame.payload, frame.kind, msgpack_mode)
    text = raw_line(frame.payload, frame.kind, msgpack_mode).decode("utf-8", errors="replace")
    return _csv_row([frame.seq, format_ns(frame.ts), frame.mono_ns, venue, session,
                     frame.conn, frame.stream, frame.dir, frame.kind, frame.channel,
                     " ".join(frame.channels or ()), " ".join(frame.symbols or ()), enc, text])


def _has_quote_or_comma(texts: pa.Array) -> pa.Array:
    """Which values hold a ``"`` or a ``,``: two plain searches (a JSON message's first
    quote is a byte or two in), the second only where the first found nothing."""
    found = pc.match_substring(texts, '"')
    none = pc.invert(found)
    if pc.any(none).as_py():
        found = pc.replace_with_mask(found, none, pc.match_substring(pc.filter(texts, none),
                                                                     ","))
    return found


def _csv_ints(values: pa.Array) -> pa.Array:
    return pc.fill_null(pc.cast(values, pa.string()), "").cast(pa.binary())


def _csv_quoted(texts: pa.Array) -> pa.Array:
    """Each value (UTF-8 text without line breaks) quoted, quotes doubled, with the line's
    end: Arrow's CSV writer quotes every string so, and where its lines end (the only
    newlines in what it wrote) cuts its output back into rows, no copy."""
    out = pa.BufferOutputStream()
    pcsv.write_csv(pa.table({"data": texts.cast(pa.string())}), out,
                   pcsv.WriteOptions(include_header=False, eol="\r\n"))
    written = out.getvalue()
    ends = newline_ends(written)
    if len(ends) != len(texts):  # pragma: no cover - not Arrow's quoting after all
        return pa.array([_csv_field(t) + _CSV_EOL for t in texts.cast(pa.string()).to_pylist()],
                        pa.binary())
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), ends])
    return pa.Array.from_buffers(pa.binary(), len(texts), [None, offsets.buffers()[1], written])


def _flush(writer, batches, fmt) -> None:
    if not batches:
        return
    table = pa.Table.from_batches(batches, schema=SCHEMA).combine_chunks()
    if fmt == "parquet":
        writer.write_table(table, row_group_size=table.num_rows)
    else:
        writer.write_table(table)
