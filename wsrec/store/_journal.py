"""The append-only journal that makes an open part crash-safe.

A journal sits beside the part it shadows (``part-000003.journal`` for
``part-000003.parquet``) and is deleted once that part is complete and listed in the
manifest. Layout (all integers little-endian)::

    b"WSRECJ2\\n"                      magic, 8 bytes, written and fsync'd at creation
    record*                             one per flush, each written then fsync'd:
        b"\\xa5WJR"                     marker, 4 bytes
        u32 length                      of the body
        u32 crc32                       zlib.crc32 of the body
        body                            one self-contained Arrow IPC stream: the
                                        JOURNAL_SCHEMA schema, one batch (lz4 buffers),
                                        end of stream

Reading checks each record's CRC before parsing its body, parses the body, checks its
schema and validates the batch fully (``RecordBatch.validate(full=True)``) before
yielding it: nothing read from a journal reaches Arrow kernels unvalidated.

Two things can be wrong with a journal, and they are told apart:

* a **torn tail**: the last record is incomplete (the file ends within its header or
  before its length), or only zeros follow the last intact record, or the last record's
  end is zeros (a filesystem can leave them after power loss). That is what a crash
  leaves; it is dropped, never an error.
* **damage**: a bad magic header, or any other record whose CRC or body fails (bit rot,
  a bad sector, an edited file). The reader resynchronises on the next marker whose
  length and CRC check out, so every intact record before and after a damaged range is
  kept; ``scan_journal`` reports each damaged range and the rows it cost (from the seq
  of the intact records around it). A record whose marker or length field alone was hit
  is still read: its body is taken up to the next intact record and its CRC decides.

Format-1 journals (wsrec 0.1) are plain Arrow IPC streams without framing; they are read
that way (still validated) when the file lacks the magic header and a schema other than
``JOURNAL_SCHEMA`` is asked for (``wsrec.store.upgrade``).
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import pyarrow as pa

from wsrec.errors import CorruptData, UsageError, first_line, storage_error
from wsrec.store.schema import JOURNAL_SCHEMA

__all__ = ["JournalWriter", "read_journal", "scan_journal", "journal_rows", "tail_journal",
           "JournalScan", "Damage", "Record", "MAGIC", "MARKER"]

MAGIC = b"WSRECJ2\n"
MARKER = b"\xa5WJR"
_HEAD = struct.Struct("<4sII")  # marker, body length, body crc32
HEADER_BYTES = _HEAD.size       # 12
_MAX_BODY = 0xFFFF_FFFF
_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")
_CHUNK = 1 << 20
#: a body up to this size is read once and checked in memory; a larger one (or a garbage
#: length found while resynchronising) is checked a chunk at a time first
_READ_WHOLE = 64 << 20
#: a CRC-failing last record whose last this many bytes are zero, with only zeros after
#: it, was zero-filled by a crash: an intact one ends in the IPC end-of-stream marker
#: (ff ff ff ff 00 00 00 00), and a one-byte flip cannot turn that into 16 zeros
_ZERO_FILL = 16
#: what parsing a body (checked by CRC or not) may raise; anything else is a bug
_PARSE_ERRORS = (pa.ArrowException, ValueError, TypeError, IndexError, OverflowError,
                 EOFError, OSError, MemoryError)


class JournalWriter:
    """Appends batches to a journal file, one framed record each, and makes each durable."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._file = open(self.path, "xb")
            self._file.write(MAGIC)
            self._sync()
        except OSError as exc:
            raise storage_error(exc, str(self.path)) from exc

    def _sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def write(self, batch: pa.RecordBatch) -> None:
        """Append one record holding ``batch`` (split in two if its body would not fit a
        u32 length) and fsync."""
        body = memoryview(_encode(batch))
        if len(body) > _MAX_BODY and batch.num_rows > 1:
            half = batch.num_rows // 2
            self.write(batch.slice(0, half))
            self.write(batch.slice(half))
            return
        if len(body) > _MAX_BODY:
            raise UsageError(f"a single row of {len(body):,} bytes does not fit a journal record")
        try:
            self._file.write(_HEAD.pack(MARKER, len(body), zlib.crc32(body)))
            self._file.write(body)
            self._sync()
        except OSError as exc:
            raise storage_error(exc, str(self.path)) from exc

    def close(self) -> None:
        """Close the file (it will be deleted anyway once its part is listed)."""
        try:
            self._file.close()
        except OSError:
            pass


def _encode(batch: pa.RecordBatch, schema: pa.Schema = JOURNAL_SCHEMA) -> pa.Buffer:
    """A record body: one IPC stream holding ``batch`` (which must be of ``schema``)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema, options=_OPTIONS) as stream:
        stream.write_batch(batch)
    return sink.getvalue()


# -- reading ------------------------------------------------------------------------------

class Damage(NamedTuple):
    """A damaged byte range of a journal: ``offset``, ``length`` bytes, and how many rows
    it cost (``None`` when that cannot be told; 0 when only framing was hit and every row
    was recovered). ``seq_first``/``seq_last``: the seq range lost, where known."""
    offset: int
    length: int
    rows_lost: int | None
    seq_first: int | None = None
    seq_last: int | None = None


class Record(NamedTuple):
    """An intact record: where it is, how many rows, their seq range, and whether rows
    were lost right before it (so a seq jump there is explained)."""
    offset: int
    length: int          # of the whole record, header included
    rows: int
    seq_first: int | None
    seq_last: int | None
    after_damage: bool = False


@dataclass
class JournalScan:
    """What ``scan_journal`` found. ``batches`` (and ``read()``) re-read the intact
    records lazily, validated again, so memory stays bounded."""
    path: Path
    size: int
    schema: pa.Schema = field(repr=False)
    records: list[Record] = field(default_factory=list)
    damaged: list[Damage] = field(default_factory=list)
    torn_tail_bytes: int = 0

    @property
    def rows(self) -> int:
        """Rows in intact records."""
        return sum(r.rows for r in self.records)

    @property
    def damaged_bytes(self) -> int:
        return sum(d.length for d in self.damaged)

    @property
    def rows_lost(self) -> int | None:
        """Rows lost to damage; None when some range's count is unknown."""
        counts = [d.rows_lost for d in self.damaged]
        return None if None in counts else sum(counts)

    @property
    def ok(self) -> bool:
        """No damage (a torn tail is not damage)."""
        return not self.damaged

    @property
    def empty(self) -> bool:
        """No rows and no damage: only the header (or nothing, or a torn tail)."""
        return not self.records and not self.damaged

    def read(self) -> Iterator[tuple[Record, pa.RecordBatch]]:
        """``(record, batch)`` for every batch of every intact record, in order."""
        if not self.records:
            return
        f = _File.open(self.path)
        try:
            for record in self.records:
                batches = f.record(record.offset, self.schema,
                                   end=record.offset + record.length, check_marker=False)
                if batches is None:
                    raise CorruptData(f"{self.path}: changed while being read (the record at "
                                      f"byte {record.offset:,} no longer checks out)")
                for batch in batches:
                    yield record, batch
        finally:
            f.close()

    @property
    def batches(self) -> Iterator[pa.RecordBatch]:
        return (batch for _, batch in self.read())


def read_journal(path: Path, schema: pa.Schema = JOURNAL_SCHEMA, *,
                 on_damage: Callable[[Damage], None] | None = None
                 ) -> Iterator[pa.RecordBatch]:
    """Yield the intact batches of a journal, in order: a torn tail is dropped, damaged
    ranges are skipped (``scan_journal`` reports them; ``on_damage``, if given, is called
    with each as it is met, ``rows_lost`` 0 when only framing was hit, else None).
    ``schema``: what the journal must hold; an older format's for an upgrade (format-1
    journals have no framing)."""
    f = _File.open(path)
    try:
        if not schema.equals(JOURNAL_SCHEMA) and f.pread(0, len(MAGIC)) != MAGIC:
            yield from _read_unframed(path, schema)
            return
        for item in _walk(f, schema):
            if item[0] == "record":
                yield from item[3]
            elif item[0] == "damage" and on_damage is not None:
                on_damage(Damage(item[1], item[2], 0 if item[3] else None))
    finally:
        f.close()


def scan_journal(path: Path, *, first_seq: int | None = None,
                 schema: pa.Schema = JOURNAL_SCHEMA) -> JournalScan:
    """Read a whole journal and say what is intact, what is damaged and what is torn.

    ``first_seq``: the seq its first row should have (the previous part's last + 1),
    when known; it lets rows lost at the start be counted."""
    f = _File.open(path)
    scan = JournalScan(Path(path), f.size, schema)
    events: list[tuple] = []
    try:
        for item in _walk(f, schema):
            if item[0] == "record":
                _, offset, length, batches = item
                rows = [b for b in batches if b.num_rows]
                scan.records.append(Record(
                    offset, length, sum(b.num_rows for b in rows),
                    rows[0].column("seq")[0].as_py() if rows else None,
                    rows[-1].column("seq")[rows[-1].num_rows - 1].as_py() if rows else None))
                events.append(("record", len(scan.records) - 1))
            elif item[0] == "damage":
                events.append(item)
            else:
                scan.torn_tail_bytes = item[1]
    finally:
        f.close()
    _count_losses(scan, events, first_seq)
    return scan


def _count_losses(scan: JournalScan, events: list[tuple], first_seq: int | None) -> None:
    """Turn the walk's records and damaged ranges into ``Damage`` entries, counting the
    rows each range lost from the seq of its intact neighbours (seq is gapless)."""
    last = None if first_seq is None else first_seq - 1  # seq before the next range
    pending: list[tuple[int, int]] = []  # ranges that lost rows, awaiting the next record

    def settle(next_first: int | None) -> None:
        for i, (offset, length) in enumerate(pending):
            start = last + 1 if last is not None else None
            if i:      # a second range between the same two records: counted once
                scan.damaged.append(Damage(offset, length, 0))
            elif start is not None and next_first is not None:
                lost = max(next_first - start, 0)
                scan.damaged.append(Damage(offset, length, lost, start if lost else None,
                                           next_first - 1 if lost else None))
            else:
                scan.damaged.append(Damage(offset, length, None, start,
                                           None if next_first is None else next_first - 1))
        pending.clear()

    for event in events:
        if event[0] == "damage":
            _, offset, length, framing_only = event
            if framing_only:  # only a header was hit: every row was recovered
                scan.damaged.append(Damage(offset, length, 0))
            else:
                pending.append((offset, length))
            continue
        index = event[1]
        record = scan.records[index]
        if pending:
            scan.records[index] = record._replace(after_damage=True)
            settle(record.seq_first if record.rows else None)
        if record.seq_last is not None:
            last = record.seq_last
    settle(None)
    scan.damaged.sort(key=lambda d: d.offset)


def journal_rows(path: Path) -> int:
    return sum(b.num_rows for b in read_journal(path))


def tail_journal(path: Path, offset: int = 0, schema: pa.Schema = JOURNAL_SCHEMA
                 ) -> tuple[list[pa.RecordBatch], int, bool]:
    """Read a journal that a writer may be appending to, from byte ``offset`` (0: its
    start; else where the previous call stopped): ``(batches, offset, damaged)``, the
    batches of the whole records from there, the offset after the last of them, and
    whether reading stopped at damage rather than at the end of what is written.

    A record is read only once it is whole and its CRC checks out, so a record the writer
    is in the middle of is never read in part: the next call starts at it again. A record
    that does not check out with more bytes after it (or a bad magic header) is damage:
    ``damaged`` is true, and nothing past it is read (``read_journal`` resynchronises;
    a follower waits for the part instead). FileNotFoundError when the journal is gone
    (its part was sealed meanwhile)."""
    try:
        f = _File.open(path)
    except CorruptData as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            raise FileNotFoundError(str(path)) from None
        raise
    try:
        if offset == 0:
            head = f.pread(0, len(MAGIC))
            if head != MAGIC:  # not yet written whole, or damaged
                return [], 0, len(head) == len(MAGIC) or not MAGIC.startswith(head)
            offset = len(MAGIC)
        batches: list[pa.RecordBatch] = []
        while offset < f.size:
            got = f.record(offset, schema)
            head = f.head(offset)
            if got is None:
                damaged = head is not None and (
                    head[0] != MARKER or offset + HEADER_BYTES + head[1] < f.size)
                return batches, offset, damaged
            batches.extend(got)
            offset += HEADER_BYTES + head[1]
        return batches, offset, False
    finally:
        f.close()


# -- the walk -----------------------------------------------------------------------------

class _File:
    """A journal opened for reading, with its size as of opening (a live writer may
    append meanwhile; what it appends later is not looked at)."""

    def __init__(self, path, fd: int, size: int):
        self.path, self.fd, self.size = path, fd, size

    @classmethod
    def open(cls, path) -> "_File":
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise CorruptData(f"{path}: cannot open journal ({first_line(exc)})") from exc
        try:
            size = os.fstat(fd).st_size
        except OSError as exc:
            os.close(fd)
            raise CorruptData(f"{path}: cannot read journal ({first_line(exc)})") from exc
        return cls(path, fd, size)

    def close(self) -> None:
        os.close(self.fd)

    def pread(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``offset`` (fewer only past the size as of opening)."""
        n = max(0, min(n, self.size - offset))
        parts = []
        while n > 0:
            try:
                chunk = os.pread(self.fd, min(n, 1 << 30), offset)
            except OSError as exc:
                raise CorruptData(f"{self.path}: cannot read journal at byte {offset:,} "
                                  f"({first_line(exc)})") from exc
            if not chunk:
                break
            parts.append(chunk)
            offset += len(chunk)
            n -= len(chunk)
        return b"".join(parts)

    def crc(self, offset: int, n: int) -> int:
        crc = 0
        while n > 0:
            chunk = self.pread(offset, min(n, _CHUNK))
            if not chunk:
                break
            crc = zlib.crc32(chunk, crc)
            offset += len(chunk)
            n -= len(chunk)
        return crc

    def zeros(self, start: int, end: int) -> bool:
        """Are bytes ``start..end`` all zero?"""
        while start < end:
            chunk = self.pread(start, min(end - start, _CHUNK))
            if not chunk or chunk.count(0) != len(chunk):
                return not chunk
            start += len(chunk)
        return True

    def head(self, offset: int) -> tuple[bytes, int, int] | None:
        """The record header at ``offset``: marker, body length, body crc (None if the
        file ends within it)."""
        raw = self.pread(offset, HEADER_BYTES)
        return _HEAD.unpack(raw) if len(raw) == HEADER_BYTES else None

    def record(self, offset: int, schema: pa.Schema, *, end: int | None = None,
               check_marker: bool = True) -> list[pa.RecordBatch] | None:
        """The batches of the record at ``offset`` if it checks out (marker, length, CRC,
        body), else None. ``end``: take the body to end there whatever the length field
        says (to recover a record whose header was hit; the CRC still decides)."""
        head = self.head(offset)
        if head is None:
            return None
        marker, length, crc = head
        if check_marker and marker != MARKER:
            return None
        if end is not None:
            length = end - offset - HEADER_BYTES
            if length < 0:
                return None
        if offset + HEADER_BYTES + length > self.size:
            return None
        if length > _READ_WHOLE:  # check before reading that much into memory
            if self.crc(offset + HEADER_BYTES, length) != crc:
                return None
            body = self.pread(offset + HEADER_BYTES, length)
        else:
            body = self.pread(offset + HEADER_BYTES, length)
        if zlib.crc32(body) != crc:  # (again for a large one: it may have changed)
            return None
        return _parse(body, schema)


def _parse(body: bytes, schema: pa.Schema) -> list[pa.RecordBatch] | None:
    """The batches of one record body, each fully validated; None when the body is not
    a valid IPC stream of ``schema`` batches."""
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(body))
        if not reader.schema.equals(schema):
            return None
        batches = []
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return batches
            batch.validate(full=True)
            batches.append(batch)
    except _PARSE_ERRORS:
        return None


def _resync(f: _File, start: int, schema: pa.Schema) -> tuple[int | None, int | None]:
    """``(q, torn_at)``: the offset of the first intact record at or after ``start`` (None
    if there is none), and of the first marker before it whose record would run past the
    end of the file (the start of a torn last record), if any."""
    torn_at = None
    offset = start
    span = _CHUNK + len(MARKER) - 1  # consecutive chunks overlap by 3 bytes
    while offset < f.size:
        chunk = f.pread(offset, span)
        i = chunk.find(MARKER)
        while i >= 0:
            q = offset + i
            head = f.head(q)
            if head is None or q + HEADER_BYTES + head[1] > f.size:
                torn_at = q if torn_at is None else torn_at
            elif f.record(q, schema) is not None:
                return q, torn_at
            i = chunk.find(MARKER, i + 1)
        if len(chunk) < span:
            break
        offset += _CHUNK
    return None, torn_at


def _torn_at(f: _File, pos: int) -> bool:
    """Is the record at ``pos``, the last one, what a crash leaves? Either cut short (a
    marker, or a prefix of one, and the file ends within its header or body), or its end
    zero-filled (a run of zeros where a record ends in the IPC end-of-stream marker,
    and only zeros after it: one flipped byte cannot make that)."""
    rest = f.pread(pos, HEADER_BYTES)
    n = min(len(rest), len(MARKER))
    if rest[:n] != MARKER[:n]:
        return False
    if len(rest) < HEADER_BYTES:
        return True
    end = pos + HEADER_BYTES + _HEAD.unpack(rest)[1]
    if end > f.size:
        return True
    return end - pos >= HEADER_BYTES + _ZERO_FILL and f.zeros(end - _ZERO_FILL, f.size)


def _walk(f: _File, schema: pa.Schema):
    """Yield, in file order: ``("record", offset, length, batches)`` for every intact
    record (``length`` with its header), ``("damage", offset, length, framing_only)``
    for every damaged range, and at most one ``("torn", bytes)``, last."""
    size = f.size
    if size == 0:
        return
    head = f.pread(0, len(MAGIC))
    if head == MAGIC:
        pos = len(MAGIC)
    elif (len(head) < len(MAGIC) and MAGIC.startswith(head)) or f.zeros(0, size):
        yield ("torn", size)  # the crash came before the magic was on disk
        return
    else:
        q, torn_at = _resync(f, 0, schema)
        stop = q if q is not None else (torn_at if torn_at is not None else size)
        yield ("damage", 0, stop, stop == len(MAGIC))  # just the magic: no rows in it
        if q is None:
            if torn_at is not None:
                yield ("torn", size - torn_at)
            return
        pos = q
    while pos < size:
        batches = f.record(pos, schema)
        if batches is not None:
            length = HEADER_BYTES + f.head(pos)[1]
            yield ("record", pos, length, batches)
            pos += length
            continue
        # the record at pos does not check out
        if f.zeros(pos, size):
            yield ("torn", size - pos)  # zeros after the last record
            return
        q, torn_at = _resync(f, pos + 1, schema)
        # Its marker or length field may be all that was hit: take the body to the next
        # intact record (or a torn one, or the end of the file) and let the CRC decide.
        for stop in ([q] if q is not None else [size] + ([torn_at] if torn_at else [])):
            recovered = f.record(pos, schema, end=stop, check_marker=False)
            if recovered is not None:
                break
        if recovered is not None:
            marker, length, _ = f.head(pos)
            bad = [i for i, ok in ((0, marker == MARKER),
                                   (4, length == stop - pos - HEADER_BYTES)) if not ok]
            bad = bad or [0]
            yield ("damage", pos + bad[0], bad[-1] + 4 - bad[0], True)
            yield ("record", pos, stop - pos, recovered)
            pos = stop
            continue
        if q is not None:
            yield ("damage", pos, q - pos, False)
            pos = q
            continue
        if _torn_at(f, pos):
            yield ("torn", size - pos)  # the last record, cut short by the crash
        elif torn_at is not None:
            yield ("damage", pos, torn_at - pos, False)
            yield ("torn", size - torn_at)
        else:
            yield ("damage", pos, size - pos, False)
        return


def _read_unframed(path, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """A format-1 journal: a plain IPC stream, no checksums; a torn last batch ends it.
    Every batch is validated before it is yielded."""
    try:
        source = pa.OSFile(str(path), "r")
    except OSError as exc:
        raise CorruptData(f"{path}: cannot open journal ({first_line(exc)})") from exc
    with source:
        if source.size() == 0:
            return
        try:
            reader = pa.ipc.open_stream(source)
        except _PARSE_ERRORS:
            return  # torn before the schema was complete: nothing recoverable
        if not reader.schema.equals(schema):
            raise CorruptData(f"{path}: not a wsrec journal (unexpected schema)")
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except _PARSE_ERRORS:
                return  # torn last batch
            try:
                batch.validate(full=True)
            except _PARSE_ERRORS as exc:
                raise CorruptData(f"{path}: damaged batch ({first_line(exc)}); format-1 "
                                  f"journals have no checksums, so it cannot be skipped") \
                    from exc
            yield batch
