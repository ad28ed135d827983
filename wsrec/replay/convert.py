"""Sessions to other formats: JSON lines (plain or zstd), CSV, Parquet, Arrow IPC.

Every format streams: batches are read, converted and written one at a time, so memory
stays bounded whatever the sessions' size. Several sessions are merged by time (the
replay schedule, unpaced).

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
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from wsrec.errors import UsageError, WsrecError, storage_error
from wsrec.store.atomic import publish
from wsrec.store.filters import Filters
from wsrec.store.lines import encode_envelope, envelope, is_msgpack_session, raw_line
from wsrec.replay.stdout import batch_frames, split_by_session
from wsrec.replay._schedule import Schedule
from wsrec.store.schema import COLUMNS, PARQUET_OPTIONS, SCHEMA
from wsrec.store.session import Frame, Session

__all__ = ["FORMATS", "convert", "CSV_FIELDS"]

FORMATS = ("jsonl", "jsonl.zst", "csv", "parquet", "arrow")
CSV_FIELDS = ["seq", "ts", "mono_ns", "venue", "session", "conn", "stream", "dir", "kind",
              "channel", "channels", "symbols", "enc", "data"]
_FRAME = list(Frame._fields)


def _batches(sessions: list[Session], filters: Filters, columns):
    """(batch, session) in time order across sessions (one session: as stored, which is
    the order the schedule gives it, without computing due times)."""
    if len(sessions) == 1:
        for batch in sessions[0].batches(filters, columns=columns):
            yield batch, sessions[0]
        return
    by_id = {s.id: s for s in sessions}
    for batch, _ in Schedule(sessions, filters, speed=None, columns=columns):
        yield from split_by_session(batch, by_id)


def convert(sessions: list[Session], filters: Filters, fmt: str, output: str | None, *,
            force: bool = False, level: int | None = None, stdout=None,
            progress: Callable[[int], None] | None = None) -> int:
    """Write the matching rows of ``sessions`` as ``fmt`` to ``output`` (None or ``-``:
    ``stdout``, a binary file). Returns the rows written."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if output is not None:
        output = os.fspath(output)
    to_stdout = output in (None, "-")
    if to_stdout and fmt in ("parquet", "arrow") and stdout is not None and \
            hasattr(stdout, "isatty") and stdout.isatty():
        raise UsageError(f"{fmt} is binary: give -o FILE (or pipe stdout somewhere)")
    if to_stdout:
        rows = _write(sessions, filters, fmt, stdout, level, progress)
        stdout.flush()
        return rows
    out = _Output(output, force)
    try:
        rows = _write(sessions, filters, fmt, out.sink, level, progress)
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
    text = _Utf8(out) if fmt == "csv" else None
    rows = _write_text(sessions, filters, out, text, progress)
    if fmt == "jsonl.zst":
        out.close()
    return rows


class _Utf8:
    """What csv.writer writes to: each row encoded and written at once. (A TextIOWrapper
    would close the caller's stream when dropped after an error.)"""

    def __init__(self, out):
        self.out = out

    def write(self, text: str) -> int:
        return self.out.write(text.encode("utf-8"))


def _write_text(sessions, filters, out, text, progress) -> int:
    rows = 0
    table = csv.writer(text) if text else None
    if table:
        table.writerow(CSV_FIELDS)
    for batch, session in _batches(sessions, filters, _FRAME + ["session"]):
        mp = is_msgpack_session(session.manifest)
        frames = batch_frames(batch)
        if table is None:
            out.write(b"".join(encode_envelope(f, session.venue, session.id, mp) + b"\n"
                               for f in frames))
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
    return rows


def _flush(writer, batches, fmt) -> None:
    if not batches:
        return
    table = pa.Table.from_batches(batches, schema=SCHEMA).combine_chunks()
    if fmt == "parquet":
        writer.write_table(table, row_group_size=table.num_rows)
    else:
        writer.write_table(table)
