"""Building a session from other captures: wsrec's own JSON lines, timestamped text lines,
and HAR files from a browser's developer tools.

* ``jsonl``: the envelope that ``wsrec convert --format jsonl`` (and ``replay --format
  envelope``) writes, ``data`` as a value or as a string (``--data-as-string``).
  ``payload``, ``ts``, ``mono_ns``, ``dir``, ``kind``, ``conn``, ``stream``, ``channels``
  and ``symbols`` come back exactly (``seq`` is renumbered from 0). Lines in the form
  wsrec writes are read a block (16 MiB) at a time as Arrow columns, in a thread
  (``wsrec.store.lines.decode_envelope_block``, which checks every piece of them); any
  other line goes through ``decode_envelope`` on its own, with the same checks and the
  same one-line reasons.
* ``lines``: ``<timestamp> <message>`` per line, the layout tardis.dev and many collectors
  use; the timestamp is ISO 8601 or epoch seconds, milliseconds, microseconds or
  nanoseconds (told apart by magnitude).
* ``har``: ``log.entries[]._webSocketMessages`` (type send/receive, time, opcode, data),
  one ``conn`` per socket, with an ``open`` event carrying the socket's URL.

Any of them may be gzip or zstd compressed (told by the first bytes); a compressed stream
that ends early is an error ("truncated zstd stream at byte N"), never a silently short
import. The input is read once, front to back, so it may also be a FIFO or a character
device (``/dev/stdin``): it is read as a stream. A directory, a socket or a file that
can't be read is an error. ``progress(done, total)`` hears how many bytes of the file
are read, of its size (None for a stream).

Sources without a monotonic clock use the timestamp as ``mono_ns`` (never decreasing), so
replays pace them by time. Rows stream into the new session as they are read (HAR files,
being one JSON document, are read whole). Frames are classified with the venue's rules, as
when recording.

Every field is checked (times within 1677-09-21 .. 2262-04-11, ``mono_ns`` within int64,
``conn`` within int32, ``dir`` one of in/out/event, text that is valid UTF-8, ...). Lines
(HAR: messages) that can't be used are counted and reported with their numbers
(``ImportResult.bad``, and the first reasons in ``ImportResult.problems``); with
``strict`` the first one is an error. Whatever fails, nothing is left behind: no
session folder, and no venue folder (or data root) the import created.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import zstandard

from wsrec.errors import StorageError, UsageError, WsrecError
from wsrec.store.layout import session_rel
from wsrec.store.lines import b64_field, decode_envelope, decode_envelope_block, newline_ends
from wsrec.store.location import Root, RootPath, is_remote_url, open_root
from wsrec.store.manifest import MANIFEST, new_session_id
from wsrec.store.schema import DIRECTIONS
from wsrec.store.roots import data_root, print_warning
from wsrec.store.spool import Uploader, target_folder
from wsrec.timefmt import MAX_NS, MIN_NS, check_ns, parse_time
from wsrec.venues import VENUES, classifier
from wsrec.store.writer import SessionWriter, check_name

__all__ = ["import_file", "ImportResult", "IMPORT_FORMATS", "detect_format", "epoch_ns"]

from wsrec.record.formats import IMPORT_FORMATS  # noqa: E402,F401 - re-exported
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_MAX_LINE = 256 << 20        # bytes: a longer line is skipped, never held whole
_BLOCK = 16 << 20            # bytes of lines read (and, for jsonl, decoded) at a time
_PROBLEMS = 10               # reasons kept in ImportResult.problems
_TOO_LONG = f"line longer than {_MAX_LINE >> 20} MiB"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class ImportResult:
    path: Path
    rows: int
    bad: list[int] = field(default_factory=list)       # line (or message) numbers skipped
    problems: list[str] = field(default_factory=list)  # "file:line: why", the first few


class _Bad(ValueError):
    """One line (or HAR message) that can't be imported; the message says why."""


# -- reading the input ----------------------------------------------------------------------

def _open_input(path: Path):
    """``path`` opened once for reading (a regular file, a FIFO or a character device),
    or WsrecError saying why not."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise WsrecError(f"{path}: no such file") from None
    except OSError as exc:
        raise WsrecError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise WsrecError(f"{path}: is a directory; give a capture file")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
        what = "a socket" if stat.S_ISSOCK(mode) else \
            "a block device" if stat.S_ISBLK(mode) else "not a regular file"
        raise WsrecError(f"{path}: is {what}; give a file, a FIFO or a character device")
    try:
        return open(path, "rb")
    except OSError as exc:
        raise WsrecError(f"{path}: cannot read ({exc.strerror or exc})") from None


class _Decompressed(io.RawIOBase):
    """A gzip or zstd stream (several members/frames allowed), decompressed as it is read.

    Output per step stays near ``_STEP_OUT`` bytes whatever the compression ratio (the
    input is fed in pieces sized by the ratio seen so far). Input that ends inside a
    member/frame raises WsrecError "truncated ... stream at byte N"; corrupt input
    "corrupt ... stream near byte N".
    """

    _STEP_OUT = 1 << 20

    def __init__(self, source, kind: str, name):
        self.source, self.kind, self.name = source, kind, name
        self.pos = 0              # compressed bytes consumed
        self.piece = 256          # bytes of input fed per step
        self.pending = b""        # output of the last step ...
        self.offset = 0           # ... handed out up to here
        self.unused = b""         # input read but not fed yet
        self.obj = None           # the current member/frame's decompressor
        self.started = False      # the current member/frame got at least one byte
        self.done = False

    def readable(self) -> bool:
        return True

    def _new(self):
        if self.kind == "gzip":
            return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        return zstandard.ZstdDecompressor().decompressobj()

    def _fail(self, what: str, exc=None):
        why = f" ({exc})" if exc is not None else ""
        raise WsrecError(f"{self.name}: {what} {self.kind} stream at byte {self.pos}{why}")

    def _step(self) -> None:
        if not self.unused:
            self.unused = self.source.read(max(self.piece, 4096))
            if not self.unused:
                if self.obj is not None and self.started and not self.obj.eof:
                    self._fail("truncated")
                self.done = True
                return
        if self.obj is None:
            if self.kind == "gzip":
                self.unused = self.unused.lstrip(b"\x00")  # padding between members
                if not self.unused:
                    return
            self.obj, self.started = self._new(), False
        piece, self.unused = self.unused[:self.piece], self.unused[self.piece:]
        try:
            out = self.obj.decompress(piece)
        except (zlib.error, zstandard.ZstdError) as exc:
            self._fail("corrupt", exc)
        self.started = True
        if self.obj.eof:  # the member/frame ended in this piece: what follows is the next
            rest = self.obj.unused_data
            self.pos += len(piece) - len(rest)
            self.unused = rest + self.unused
            self.obj = None
        else:
            self.pos += len(piece)
        ratio = max(1, len(out) // max(1, len(piece)))
        self.piece = max(64, min(1 << 16, self._STEP_OUT // ratio))
        self.pending, self.offset = out, 0

    def readinto(self, buffer) -> int:
        while self.offset >= len(self.pending) and not self.done:
            self._step()
        n = min(len(buffer), len(self.pending) - self.offset)
        buffer[:n] = memoryview(self.pending)[self.offset:self.offset + n]
        self.offset += n
        return n

    def close(self) -> None:
        self.source.close()
        super().close()


class _Input:
    """The input as lines of bytes, read once: format detection keeps the lines it looked
    at. ``consumed`` is how many bytes of the file were read so far (compressed ones for a
    compressed file), ``size`` the file's size (None for a FIFO or a device)."""

    def __init__(self, path: Path):
        self.path = path
        raw = _open_input(path)
        try:
            head = raw.read(4)  # blocks until 4 bytes or the end (a FIFO too)
            mode = os.fstat(raw.fileno()).st_mode
        except OSError as exc:
            raw.close()
            raise WsrecError(f"{path}: cannot read ({exc.strerror or exc})") from None
        self.size = os.fstat(raw.fileno()).st_size if stat.S_ISREG(mode) else None
        self.source = _Prefixed(head, raw)
        kind = "gzip" if head[:2] == _GZIP_MAGIC else "zstd" if head == _ZSTD_MAGIC else None
        self.binary = io.BufferedReader(_Decompressed(self.source, kind, path) if kind
                                        else self.source, 1 << 16)
        self.seen: list[bytes] = []

    @property
    def consumed(self) -> int:
        return self.source.consumed

    def close(self) -> None:
        self.binary.close()

    def __enter__(self) -> "_Input":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.close()
        except OSError:
            pass

    def _cut(self, line: bytes) -> bool:
        """Whether ``line`` is the first ``_MAX_LINE`` bytes of a longer one; if so the
        rest of it is read and dropped (never held whole)."""
        if len(line) < _MAX_LINE or line.endswith(b"\n"):
            return False
        self._drop_line()
        return True

    def _drop_line(self) -> None:
        """Read up to the next newline, keeping nothing."""
        while True:
            rest = self.binary.readline(_MAX_LINE)
            if not rest or rest.endswith(b"\n"):
                return

    def detect(self) -> str:
        """The format by the first non-blank line (a very long one: by its beginning);
        WsrecError when there is none."""
        while True:
            line = self.binary.readline(_MAX_LINE)
            if not line:
                raise WsrecError(f"{self.path}: empty, nothing to import")
            self.seen.append(line)
            text = line.decode("utf-8", errors="surrogateescape").strip()
            if text:
                return _format_of(text)

    def blocks(self) -> Iterator[tuple[int, bytes | None]]:
        """(number of the first line, whole lines with their newlines) from the first
        line, the ones ``detect`` read included (the input's last line may lack its
        newline); (number, None) for a line of ``_MAX_LINE`` bytes or more, which is read
        and dropped, never held whole."""
        number = 1
        seen, self.seen = self.seen, []
        for line in seen:
            yield number, None if self._cut(line) else line
            number += 1
        size = min(_BLOCK, _MAX_LINE)  # so only a block's first line can be too long
        pending: list[bytes] = []  # the start of a line, read in pieces
        held = 0
        while True:
            data = self.binary.read(size)
            if not data:
                if held:
                    yield number, b"".join(pending)
                return
            first = data.find(b"\n")
            if first < 0:
                if held + len(data) >= _MAX_LINE:
                    self._drop_line()
                    yield number, None
                    number += 1
                    pending, held = [], 0
                else:
                    pending.append(data)
                    held += len(data)
                continue
            if pending:
                if held + first >= _MAX_LINE:
                    yield number, None
                    number += 1
                    data = data[first + 1:]
                else:
                    pending.append(data)
                    data = b"".join(pending)
                pending, held = [], 0
            end = data.rfind(b"\n") + 1
            if end < len(data):
                pending, held = [data[end:]], len(data) - end
                data = data[:end]
            if data:
                yield number, data
                number += data.count(b"\n")

    def lines(self) -> Iterator[tuple[int, str | None]]:
        """(number, line as text) from the first line; None for a line too long."""
        for number, block in self.blocks():
            if block is None:
                yield number, None
                continue
            for line in block.split(b"\n")[:-1] if block.endswith(b"\n") else \
                    block.split(b"\n"):
                yield number, line.decode("utf-8", errors="surrogateescape")
                number += 1

    def read_all(self) -> str:
        text = b"".join(self.seen) + self.binary.read()
        self.seen = []
        return text.decode("utf-8", errors="surrogateescape")


class _Prefixed(io.RawIOBase):
    """``head`` (bytes already read) followed by the rest of ``raw``; ``consumed``
    counts what was handed out."""

    def __init__(self, head: bytes, raw):
        self.head, self.raw = head, raw
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            self.consumed += n
            return n
        data = self.raw.read1(len(buffer)) if hasattr(self.raw, "read1") else \
            self.raw.read(len(buffer))
        buffer[:len(data)] = data
        self.consumed += len(data)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        buffer = bytearray(size)
        n = self.readinto(buffer)
        return bytes(buffer[:n])

    def close(self) -> None:
        self.raw.close()
        super().close()


def _format_of(first: str) -> str:
    if first.startswith('{"log"'):
        return "har"
    if first.startswith("{"):
        try:
            obj = json.loads(first)
        except (ValueError, RecursionError):
            # not one JSON document on the line: a HAR spread over lines (as browsers save)
            return "har" if first == "{" or '"log"' in first[:200] else "lines"
        if isinstance(obj, dict) and "enc" in obj and "data" in obj:
            return "jsonl"
        if isinstance(obj, dict) and "log" in obj:
            return "har"
    return "lines"


def detect_format(path) -> str:
    """``jsonl``, ``lines`` or ``har``: by the name (``.har``), else by the first line."""
    path = Path(path)
    if path.name.lower().endswith(".har"):
        return "har"
    with _Input(path) as source:
        return source.detect()


# -- values ---------------------------------------------------------------------------------

def epoch_ns(text: str) -> int:
    """An epoch timestamp in s, ms, us or ns (told apart by magnitude), or ISO 8601;
    ValueError when it is neither or outside 1677-09-21 .. 2262-04-11."""
    if text.isascii() and text.isdigit() and len(text) <= 20:  # the common case: integers
        value = int(text)
        scale = 1 if value > 10**17 else 1_000 if value > 10**14 else \
            1_000_000 if value > 10**11 else 1_000_000_000
        return check_ns(value * scale, text)
    try:
        value = Decimal(text)  # exact: floats lose nanoseconds
    except InvalidOperation:
        return parse_time(text)
    return _decimal_ns(value, text, scale=None)


def _decimal_ns(value: Decimal, shown, scale: int | None) -> int:
    if not value.is_finite():
        raise ValueError(f"not a timestamp: {shown!r}")
    if value.adjusted() > 20:  # past any unit's range (checked without arithmetic)
        raise ValueError(f"{shown!r} is outside the times wsrec can represent "
                         f"(1677-09-21 .. 2262-04-11)")
    if scale is None:
        size = abs(value)
        scale = 1 if size > 10**17 else 1_000 if size > 10**14 else \
            1_000_000 if size > 10**11 else 1_000_000_000
    return check_ns(int(value * scale), shown)


def _text(value, what: str) -> str:
    """``value`` if it is a string that is valid UTF-8 text."""
    if not isinstance(value, str):
        raise _Bad(f"{what} is not a string")
    if value.isascii():  # the common case, without encoding anything
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Bad(f"{what} is not valid UTF-8 text") from None
    return value


def _integer(value, what: str, bounds: tuple[int, int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"{what} is not an integer ({_short(value)})")
    if not bounds[0] <= value <= bounds[1]:
        raise _Bad(f"{what} {value} is out of range ({bounds[0]} .. {bounds[1]})")
    return value


def _strings(value, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Bad(f"{what} is not a list of strings")
    return tuple(_text(v, f"{what} item") for v in value)


def _b64(value, what: str) -> bytes:
    try:
        return b64_field(value, what)
    except ValueError as exc:
        raise _Bad(str(exc)) from None


def _short(value) -> str:
    text = str(value) if isinstance(value, Decimal) else repr(value)
    return text if len(text) <= 40 else text[:36] + "..."


# -- the new session ------------------------------------------------------------------------

class _Rows:
    """Streams rows into a new session (created at the first row, so it starts at that
    row's time), keeping mono_ns non-decreasing; ``abandon`` removes what it created."""

    def __init__(self, venue: str, strict: bool, path: Path, data, args, progress=None,
                 spool=None):
        self.venue, self.strict, self.path = venue, strict, path
        self.data, self.args = data, args
        # a bucket: the session is built in the spool and uploaded part by part, as a
        # recording is (``wsrec.store.spool``)
        self.uploader: Uploader | None = None
        if is_remote_url(data) or isinstance(data, Root) and not data.local:
            root = open_root(data)
            root.check()
            self.uploader = Uploader(root, target_folder(root, spool), warn=print_warning)
            self.uploader.check_space()
            self.data = self.uploader.spool
        self.report = progress
        self.classify = classifier(venue)
        self.writer: SessionWriter | None = None
        self.folder: Path | None = None     # the session folder, once this import made it
        self.created: list[Path] = []       # folders this import created, deepest first
        self.count = 0
        self.last = None
        self.bad: list[int] = []
        self.problems: list[str] = []

    def recorded_by(self, venue) -> None:
        """The venue an envelope line names: when wsrec knows it, the new session follows
        its rules (``args.venue``: exchange times, normalized tables), whatever folder
        ``--venue`` names. The first line's counts."""
        if self.writer is None and "venue" not in self.args and isinstance(venue, str) \
                and venue in VENUES:
            self.args["venue"] = venue

    def skip(self, number: int, why: str, message: bool = False) -> None:
        """Line (HAR: WebSocket message) ``number`` can't be used: an error with
        ``strict``, else counted."""
        problem = f"{self.path}: message {number}: {why}" if message else \
            f"{self.path}:{number}: {why}"
        if self.strict:
            raise WsrecError(f"{problem} (drop --strict to skip bad "
                             f"{'messages' if message else 'lines'})")
        self.bad.append(number)
        if len(self.problems) < _PROBLEMS:
            self.problems.append(problem)

    def add(self, payload: bytes, ts: int, mono: int | None = None, **kw) -> None:
        if "channels" not in kw and kw.get("dir", "in") == "in":
            channels, symbols = self.classify(payload, kw.get("kind") == "text")
            kw["channels"], kw["symbols"] = _valid(channels), _valid(symbols)
        if self.writer is None:
            self._start(ts)
        mono = ts if mono is None else mono
        if self.last is not None and mono < self.last:
            mono = self.last
        self.last = mono
        self.writer.append(payload, ts_ns=ts, mono_ns=mono, **kw)
        self.count += 1

    def add_columns(self, payloads: pa.Array, times: pa.Array, monos: pa.Array,
                    fields: list[dict], which: pa.Array) -> None:
        """``add`` for many rows at once, as Arrow columns: each row's checked
        ``conn`` .. ``symbols`` are ``fields[which[i]]`` (as ``_middle`` gives them)."""
        if self.writer is None:
            self._start(times[0].as_py())
        floor = self.last if self.last is not None else -(2**63)
        monos = pc.cumulative_max(pc.max_element_wise(pc.coalesce(monos, times), floor))
        picked = _fields_table(fields).take(which)
        self.writer.append_columns({"payload": payloads, "ts": times, "mono_ns": monos,
                                    **{name: picked.column(name) for name in picked.column_names}})
        self.last = monos[len(monos) - 1].as_py()
        self.count += len(payloads)

    def progress(self, source: "_Input", done: int | None = None) -> None:
        """Tell the progress callback how far into the input the import is: ``done``
        bytes (default: as far as it is read)."""
        if self.report is not None:
            self.report(source.consumed if done is None else done, source.size)

    def _start(self, ts: int) -> None:
        root = data_root(self.data)
        for _ in range(100):
            sid = new_session_id(ts)
            if not os.path.lexists(root / session_rel(self.venue, sid, ts)):
                break
        self.folder = root / session_rel(self.venue, sid, ts)
        missing, folder = [], self.folder.parent   # venue=<v>/date=<d>, and above
        while not os.path.lexists(folder) and folder.parent != folder:
            missing.append(folder)
            folder = folder.parent
        self.created = missing
        hooks = {}
        if self.uploader is not None:
            self.uploader.start()
            hooks = dict(on_sealed=self.uploader.sealed, on_closed=self.uploader.closed)
        self.writer = SessionWriter(self.venue, self.data, args=self.args, started_ns=ts,
                                    session_id=sid, **hooks)

    def finish(self) -> ImportResult:
        if self.writer is None:
            raise WsrecError(self._nothing())
        self.writer.close()
        folder = self.writer.folder
        if self.uploader is not None:
            left = self.uploader.close(_UPLOAD_TIMEOUT)
            if left is not None:
                raise StorageError(left)
            folder = RootPath(self.uploader.root,
                              folder.relative_to(self.uploader.spool).as_posix())
        return ImportResult(folder, self.count, self.bad, self.problems)

    def _nothing(self) -> str:
        if not self.bad:
            return f"{self.path}: no message in it, nothing to import"
        first = self.problems[0].removeprefix(f"{self.path}:").strip()
        if first[:1].isdigit():
            first = f"line {first}"
        return (f"{self.path}: no readable message to import ({len(self.bad)} unreadable; "
                f"first: {first})")

    def abandon(self) -> None:
        """A failed import leaves no half-built session behind, nor the folders it made
        (in a bucket: nor what it uploaded)."""
        if self.uploader is not None:
            self.uploader.close(0)   # first: the writer's last part is not for the bucket
        if self.writer is not None:
            try:
                self.writer.close("failed", "import failed")
            except Exception:  # noqa: BLE001 - it is being removed: any failure is moot
                pass
        if self.folder is not None and (self.writer is not None or self.folder.exists()):
            shutil.rmtree(self.folder, ignore_errors=True)
        if self.uploader is not None:
            self._abandon_remote()
        for folder in self.created:  # only if empty: another writer may have come meanwhile
            try:
                os.rmdir(folder)
            except OSError:
                break

    def _abandon_remote(self) -> None:
        """Stop uploading, and remove what this import put in the bucket (its manifest
        first, so no reader sees a session without its parts)."""
        uploader = self.uploader
        if self.folder is None:
            return
        rel = self.folder.relative_to(uploader.spool).as_posix()
        try:
            names = sorted((i.path.rpartition("/")[2] for i in uploader.root.list(rel)
                            if i.type == pafs.FileType.File), key=lambda n: n != MANIFEST)
            for name in names:
                uploader.root.delete(f"{rel}/{name}")
        except WsrecError:
            pass  # what can't be removed now is a session marked recording: ls shows it


#: seconds an import into a bucket waits for its last uploads
_UPLOAD_TIMEOUT = 600.0


def _valid(values) -> tuple[str, ...]:
    """Classification results that can be stored (valid text only)."""
    if all(type(v) is str and v.isascii() for v in values):
        return tuple(values)
    out = []
    for v in values:
        try:
            v.encode("utf-8")
        except (UnicodeEncodeError, AttributeError):
            continue
        out.append(v)
    return tuple(out)


def import_file(path, venue: str, data=None, fmt: str | None = None,
                strict: bool = False,
                progress: Callable[[int, int | None], None] | None = None,
                spool=None) -> ImportResult:
    """Build a new session of ``venue`` from ``path``; returns where, rows, bad lines.
    ``data`` may be a bucket: the session is built in the spool (``spool``, see
    ``wsrec.store.spool``) and uploaded as it is written.

    ValueError for a bad ``venue`` or ``fmt``; WsrecError (one line, naming the file and
    the line) for anything wrong with the input, after removing whatever was created.
    ``progress(done, total)``: how many bytes of the file are read, of how many (None
    for a FIFO or a device), as the import goes.
    """
    check_name("venue", venue)
    if fmt is not None and fmt not in IMPORT_FORMATS:
        raise UsageError(f"unknown import format {fmt!r} (choose from "
                         f"{', '.join(IMPORT_FORMATS)})")
    path = Path(path)
    rows = None
    try:
        with _Input(path) as source:
            detected = source.detect()
            if fmt is None:
                fmt = "har" if path.name.lower().endswith(".har") else detected
            rows = _Rows(venue, strict, path, data, {"imported_from": path.name,
                                                      "format": fmt}, progress, spool)
            rows.progress(source, 0)
            {"jsonl": _jsonl, "lines": _lines, "har": _har}[fmt](source, rows)
            rows.progress(source)
        return rows.finish()
    except OSError as exc:
        if rows is not None:
            rows.abandon()
        raise WsrecError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except BaseException:
        if rows is not None:
            rows.abandon()
        raise


def _jsonl(source: _Input, rows: _Rows) -> None:
    """Each block of lines: the lines in the form wsrec writes decoded as Arrow columns
    (``decode_envelope_block``, in a thread, one block ahead of the rows going into the
    session), the others one by one; every field checked the same way."""
    with ThreadPoolExecutor(1, thread_name_prefix="wsrec-import") as pool:
        ahead, read = None, 0
        for number, block in source.blocks():
            decoding = None if block is None else pool.submit(_decode_block, block)
            if ahead is not None:
                _add_block(*ahead)
            # the progress is the bytes up to the lines added, not those read ahead
            ahead = (number, decoding, rows, _share_of(rows, source, read, source.consumed))
            read = source.consumed
        if ahead is not None:
            _add_block(*ahead)


def _share_of(rows: _Rows, source: _Input, first: int, last: int):
    """Reports the progress of a block read from byte ``first`` to ``last`` of the
    input, given the share of its lines added."""
    return lambda share: rows.progress(source, first + int((last - first) * share))


def _decode_block(block: bytes):
    """The lines of a block, and ``decode_envelope_block``'s reading of them."""
    lines = _lines_of(block)
    return lines, decode_envelope_block(lines)


def _lines_of(block: bytes) -> pa.Array:
    """The lines of a block, each with its newline (the last may lack one), as a binary
    array over the block's own bytes."""
    ends = [newline_ends(block)]
    if not block.endswith(b"\n"):
        ends.append(pa.array([len(block)], pa.int32()))
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), *ends])
    return pa.Array.from_buffers(pa.binary(), len(offsets) - 1,
                                 [None, offsets.buffers()[1], pa.py_buffer(block)])


def _add_block(number: int, decoding, rows: _Rows, done=None) -> None:
    """Add a block's lines; ``done(share)`` hears the share of them added so far."""
    if decoding is None:
        rows.skip(number, _TOO_LONG)
        return
    lines, (ok, columns) = decoding.result()
    fields = [_checked_middle(m) for m in columns["middles"]]
    rows.recorded_by(next((m.get("venue") for m in columns["middles"] if m), None))
    which = columns["middle"]
    good = pc.and_(ok, pc.take(pa.array([f is not None for f in fields]), which))
    flags = good.to_pylist()
    start = 0
    while start < len(flags):  # runs of good rows, and the lines between them
        end = start
        while end < len(flags) and flags[end]:
            end += 1
        if end > start:
            n = end - start
            rows.add_columns(columns["payload"].slice(start, n), columns["ts"].slice(start, n),
                             columns["mono_ns"].slice(start, n), fields, which.slice(start, n))
        if end < len(flags):
            _jsonl_line(number + end, lines[end].as_py(), rows)
        start = end + 1
        if done is not None:
            done(min(start, len(flags)) / len(flags))


def _fields_table(fields: list[dict | None]) -> pa.Table:
    """The distinct checked fields of a block's lines as columns (a row per entry; None
    entries are never taken)."""
    rows = [f or {} for f in fields]
    return pa.table({
        "conn": pa.array([r.get("conn") for r in rows], pa.int32()),
        "stream": pa.array([r.get("stream") for r in rows], pa.string()),
        "dir": pa.array([r.get("dir", "in") for r in rows], pa.string()),
        "kind": pa.array([r.get("kind", "text") for r in rows], pa.string()),
        "channels": pa.array([list(r.get("channels", ())) for r in rows],
                             pa.list_(pa.string())),
        "symbols": pa.array([list(r.get("symbols", ())) for r in rows],
                            pa.list_(pa.string())),
    })


def _jsonl_line(number: int, text: bytes, rows: _Rows) -> None:
    line = text.decode("utf-8", errors="surrogateescape")
    if not line.strip():
        return
    try:
        payload, ts, mono, kw, venue = _envelope(line)
    except _Bad as exc:
        rows.skip(number, f"not a wsrec envelope line: {exc}")
        return
    rows.recorded_by(venue)
    rows.add(payload, ts, mono, **kw)


def _envelope(line: str):
    try:
        e = decode_envelope(line)
    except ValueError as exc:
        raise _Bad(str(exc)) from None
    mono = e["mono_ns"]
    if mono is not None:
        mono = _integer(mono, "mono_ns", _INT64)
    return e["payload"], e["ts"], mono, _middle(e), e.get("venue")


def _middle(e: dict) -> dict:
    """The checked ``conn`` .. ``symbols`` of an envelope, as ``SessionWriter.append``
    takes them; _Bad saying what is wrong."""
    conn = e["conn"]
    if conn is not None:
        conn = _integer(conn, "conn", _INT32)
    stream = e["stream"]
    if stream is not None:
        stream = _text(stream, "stream")
    direction = e["dir"]
    if direction not in DIRECTIONS:
        raise _Bad(f"dir must be in, out or event, not {_short(direction)}")
    kind = _text(e["kind"], "kind")
    if not kind:
        raise _Bad("kind is empty")
    return dict(conn=conn, stream=stream, dir=direction, kind=kind,
                channels=_strings(e["channels"], "channels"),
                symbols=_strings(e["symbols"], "symbols"))


def _checked_middle(middle: dict | None) -> dict | None:
    """``_middle`` of the members a block decoded, None where a line with them needs
    reading one by one (which says what is wrong)."""
    if middle is None:
        return None
    try:
        return _middle(middle)
    except _Bad:
        return None


def _lines(source: _Input, rows: _Rows) -> None:
    for number, line in source.lines():
        if not number & 0x3FF:
            rows.progress(source)
        if line is None:
            rows.skip(number, _TOO_LONG)
            continue
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        stamp, sep, message = line.partition(" ")
        try:
            if not sep:
                raise ValueError("no message after the timestamp")
            ts = epoch_ns(stamp.strip())
        except ValueError as exc:
            rows.skip(number, f"not '<timestamp> <message>' ({exc})")
            continue
        rows.add(message.encode("utf-8", errors="surrogateescape"), ts, kind="text")


def _har(source: _Input, rows: _Rows) -> None:
    path = rows.path
    try:
        har = json.loads(source.read_all(), parse_float=Decimal)  # exact times
    except RecursionError:
        raise WsrecError(f"{path}: not a HAR file (JSON nested too deeply)") from None
    except ValueError as exc:
        raise WsrecError(f"{path}: not a HAR file ({exc})") from None
    log = har.get("log") if isinstance(har, dict) else None
    if not isinstance(log, dict):
        raise WsrecError(f"{path}: not a HAR file (no \"log\" object)")
    entries = log.get("entries")
    if not isinstance(entries, list):
        raise WsrecError(f"{path}: not a HAR file (log.entries is not a list)")
    messages = []
    number = 0
    conn = 0
    for index, entry in enumerate(entries):
        where = f"{path}: log.entries[{index}]"
        if not isinstance(entry, dict):
            raise WsrecError(f"{where} is not an object")
        socket_messages = entry.get("_webSocketMessages")
        if socket_messages is None:
            continue
        if not isinstance(socket_messages, list):
            raise WsrecError(f"{where}._webSocketMessages is not a list")
        request = entry.get("request", {})
        url = request.get("url", "") if isinstance(request, dict) else None
        if not isinstance(url, str):
            raise WsrecError(f"{where}.request.url is not a string")
        first = None
        for m in socket_messages:
            number += 1
            try:
                message = _har_message(m)
            except _Bad as exc:
                rows.skip(number, f"unreadable WebSocket message: {exc}", message=True)
                continue
            if message is None:  # a control frame: not stored
                continue
            ts, direction, kind, payload = message
            first = ts if first is None else min(first, ts)
            messages.append((ts, conn, direction, kind, payload))
        if first is not None:
            messages.append((max(first - 1, MIN_NS), conn, "event", "open",
                             json.dumps({"url": url}).encode()))
            conn += 1
    for ts, conn, direction, kind, payload in sorted(messages, key=lambda m: m[0]):
        if direction == "event":
            rows.add(payload, ts, conn=conn, stream=f"socket-{conn}", dir="event", kind=kind,
                     channels=(), symbols=())
        else:
            rows.add(payload, ts, conn=conn, stream=f"socket-{conn}", dir=direction, kind=kind)


_HAR_TYPES = {"send": "out", "receive": "in"}
_CONTROL_OPCODES = (0, 8, 9, 10)  # continuation, close, ping, pong: not messages


def _har_message(m):
    """(ts, dir, kind, payload) of one HAR WebSocket message, None for a control frame."""
    if not isinstance(m, dict):
        raise _Bad("not an object")
    direction = _HAR_TYPES.get(m.get("type")) if isinstance(m.get("type"), str) else None
    if direction is None:
        raise _Bad(f"type must be send or receive, not {_short(m.get('type'))}")
    opcode = m.get("opcode", 1)
    if isinstance(opcode, bool) or not isinstance(opcode, int) or \
            opcode not in (1, 2) + _CONTROL_OPCODES:
        raise _Bad(f"opcode must be 1 (text) or 2 (binary), not {_short(opcode)}")
    ts = _har_time(m.get("time"))
    if opcode in _CONTROL_OPCODES:
        return None
    data = m.get("data")
    if opcode == 1:
        if not isinstance(data, str):
            raise _Bad("data is not a string")
        try:  # bytes that were not UTF-8 in the file come back as they were
            return ts, direction, "text", data.encode("utf-8", errors="surrogateescape")
        except UnicodeEncodeError:
            raise _Bad("data is not valid text") from None
    return ts, direction, "binary", _b64(data, "data")


def _har_time(value) -> int:
    """HAR ``time``: seconds since the epoch (a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, float, str)):
        raise _Bad(f"time is not a number ({_short(value)})")
    try:
        seconds = Decimal(value) if not isinstance(value, float) else Decimal(repr(value))
    except InvalidOperation:
        raise _Bad(f"time is not a number ({_short(value)})") from None
    if not seconds.is_finite():
        raise _Bad(f"time is not finite ({_short(value)})")
    if seconds.adjusted() > 12 or not MIN_NS <= seconds * 1_000_000_000 <= MAX_NS:
        raise _Bad(f"time {_short(value)} is outside 1677-09-21 .. 2262-04-11")
    return int(seconds * 1_000_000_000)

