"""Reading a session: ``open_session(ref) -> Session``, then ``.frames()`` or ``.batches()``.

A session's rows are its listed parts, in order, followed by the journals of parts
not yet listed (the open part of a live session, or what a crash or a full disk
left). Journals are read read-only up to their last complete batch, so a live
or crashed session reads the same way as a complete one. Nothing here writes.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from wsrec.store._compute import call
from wsrec.store._threads import read_ahead_pool
from wsrec.errors import CorruptData, OutdatedFormat, UsageError, first_line
from wsrec.store.filters import Filters, as_filters
from wsrec.store.location import RootPath, fs_error, storage_failure
from wsrec.store._journal import journal_rows, read_journal
from wsrec.store._lock import is_locked
from wsrec.store.manifest import FORMAT_VERSION, load_manifest
from wsrec.store._part import part_index, part_name
from wsrec.store.schema import COLUMNS, SCHEMA, SCHEMA_NO_EXCH_TS, exch_ts, rules_of, to_part
from wsrec.store.roots import print_warning, resolve
from wsrec.timefmt import parse_time

__all__ = ["Session", "Frame", "open_session", "DAMAGED"]

#: what ``Session.batches`` can do with a damaged part (see there)
DAMAGED = ("refuse", "skip")


class Frame(NamedTuple):
    """One row: a message (``dir`` in/out) or a connection event (``dir`` event)."""
    seq: int
    ts: int               # wall-clock receive time, ns since the Unix epoch (UTC)
    mono_ns: int          # monotonic clock at receive, ns (for pacing)
    conn: int | None      # physical connection (None: a row outside any connection)
    stream: str | None    # the logical stream the recorder keeps alive across reconnects
    dir: str
    kind: str
    channel: str | None
    symbol: str | None
    channels: list
    symbols: list
    payload: bytes


_FRAME_COLUMNS = list(Frame._fields)


def open_session(ref, data=None) -> "Session":
    """Open the session that ``ref`` names: a folder path, an id or unique prefix,
    ``last``, or a venue name (its newest session). ``data`` is the data root."""
    return Session(resolve(ref, data))


class Session:
    """A session folder: a local ``Path``, or a ``RootPath`` in a bucket (read-only: no
    journals, no lock; a remote session whose manifest says ``recording`` shows as
    ``uploading``, since nothing remote tells a live recorder from a crashed one)."""

    def __init__(self, folder):
        if isinstance(folder, RootPath) and folder.root.local:
            folder = Path(folder.root.base) / folder.rel
        self.path = folder if isinstance(folder, RootPath) else Path(folder)
        #: a session in an object store (``self.path`` is a ``RootPath``)
        self.remote = isinstance(self.path, RootPath)
        self.manifest = load_manifest(self.path)
        self.venue: str = self.manifest["venue"]
        #: whose protocol its frames follow (``exch_ts``, normalized tables, gaps)
        self.rules: str = rules_of(self.manifest)
        self.id: str = self.manifest["session"]
        self.format_version: int = self.manifest["format_version"]
        recording = self.manifest["status"] == "recording"
        self.live = recording and not self.remote and is_locked(self.path)
        self.crashed = recording and not self.remote and not self.live
        #: remote and ``recording``: being uploaded, or its recorder stopped
        self.uploading = recording and self.remote
        #: what ``batches`` does with a damaged part by default: "refuse" (CorruptData) or
        #: "skip" (leave out the row groups that fail their checks, each reported
        #: through ``warn``).
        self.damaged = "refuse"
        #: called with one line per part or row group skipped (default: a stderr line)
        self.warn: Callable[[str], None] = print_warning
        self._warned: set = set()
        listed = {p["file"] for p in self.manifest["parts"]}
        self.journals: list[Path] = []           # journals of parts not listed yet
        self.leftover_journals: list[Path] = []  # journals whose part is already listed
        self.orphan_parts: list[Path] = []       # final-named parts the manifest lacks
        self.temp_files: list[Path] = []
        #: a remote session's file sizes, from one listing
        self._sizes: dict[str, int] = {}
        if self.remote:
            self._list_remote(listed)
            return
        try:
            names = sorted(self.path.iterdir())
        except OSError as exc:
            raise CorruptData(f"{self.path}: cannot list the session folder "
                              f"({exc.strerror or first_line(exc)}); check its "
                              f"permissions") from None
        for path in names:
            named = part_index(path.name)
            if named is None:
                continue
            index, kind = named
            if kind == "journal":
                (self.leftover_journals if part_name(index) in listed else self.journals) \
                    .append(path)
            elif kind == "parquet.tmp":
                self.temp_files.append(path)
            elif path.name not in listed:
                self.orphan_parts.append(path)

    def _list_remote(self, listed: set) -> None:
        """The folder's objects, one listing: parts the manifest lacks are orphans
        (journals and temporary files never leave the recorder's disk)."""
        for info in self.path.root.list(self.path.rel):
            if info.type != pafs.FileType.File:
                continue
            self._sizes[info.base_name] = info.size
            named = part_index(info.base_name)
            if named is not None and named[1] == "parquet" and info.base_name not in listed:
                self.orphan_parts.append(self.path / info.base_name)
        self.orphan_parts.sort(key=str)

    def __repr__(self) -> str:
        return f"<Session {self.venue}/{self.id} {self.state}>"

    @property
    def status(self) -> str:
        return self.manifest["status"]

    @property
    def outdated(self) -> bool:
        """Written in an older format: readable only after ``wsrec repair --upgrade``."""
        return self.format_version < FORMAT_VERSION

    def check_format(self) -> None:
        """Raise OutdatedFormat unless the rows can be read by this wsrec."""
        if self.outdated:
            raise OutdatedFormat(
                f"{self.venue}/{self.id} is in format version {self.format_version}; run "
                f"'wsrec repair --upgrade {self.path}' to migrate it (lossless)")

    @property
    def state(self) -> str:
        """The manifest status, with ``recording`` told apart as ``live`` or ``crashed``."""
        if self.outdated:
            return f"format-{self.format_version}"
        if self.live:
            return "live"
        if self.crashed:
            return "crashed"
        if self.uploading:
            return "uploading"
        return self.status

    @property
    def parts(self) -> list[Path]:
        return [self.path / p["file"] for p in self.manifest["parts"]]

    @property
    def start_ns(self) -> int | None:
        return parse_time(self.manifest["started"]) if self.manifest.get("started") else None

    @property
    def end_ns(self) -> int | None:
        """End of the recording; for a live or crashed session, the newest row seen."""
        if self.manifest.get("ended"):
            return parse_time(self.manifest["ended"])
        if self.live:
            return time.time_ns()
        last = None
        for batch in ([] if self.outdated else self._journal_batches()):
            if batch.num_rows:
                last = batch.column("ts")[batch.num_rows - 1].value
        if last is None and self.manifest["parts"]:
            last = _ns(self.manifest["parts"][-1].get("end"))
        return last

    def rows(self) -> int:
        """Rows readable now: listed parts plus complete journal batches."""
        listed = sum(p["rows"] for p in self.manifest["parts"])
        if self.outdated:
            return listed
        # a journal a live writer has just turned into a part is gone: its rows are in a
        # part the manifest we read does not list yet
        return listed + sum(journal_rows(path) for kind, path in self.unlisted()
                            if kind == "journal")

    def disk_bytes(self) -> int:
        if self.remote:
            return sum(self._sizes.values())
        total = 0
        try:
            with os.scandir(self.path) as entries:
                for entry in entries:
                    try:
                        if entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:  # removed meanwhile (a live writer renames and deletes)
                        continue
        except OSError as exc:
            raise CorruptData(f"{self.path}: cannot list the session folder "
                              f"({exc.strerror or first_line(exc)})") from None
        return total

    # -- reading -----------------------------------------------------------------------

    def batches(self, filters: Filters | None = None, *, columns=None,
                batch_size: int = 65_536, damaged: str | None = None, lean: bool = False,
                **kw) -> Iterator[pa.RecordBatch]:
        """Yield Arrow record batches of matching rows, in ``seq`` order.

        Keyword filters: ``start``, ``end``, ``channels``, ``symbols``,
        ``direction``, ``kind`` (see ``Filters.make``). ``columns`` picks columns
        (default: all of ``wsrec.store.schema.SCHEMA``). Memory stays bounded: one part
        is read at a time, a row group at a time.

        Every part is checked as it is read: its size against the manifest, its footer
        against the manifest and the format, every page against its checksum, and each
        row group's rows against the ``seq`` numbers they must carry. ``damaged``
        (default ``self.damaged``, itself "refuse") says what happens when a check
        fails: "refuse" raises CorruptData naming the part; "skip" leaves out the row
        groups that fail (the whole part when its footer does), calling ``self.warn``
        with one line for each, naming the part, the row group and its rows. Either
        way, no row is ever yielded that differs from what was recorded.

        ``lean``: decode a row group ``batch_size`` rows at a time, one row group at a
        time, instead of whole row groups two at once: a few MB of memory instead of
        three row groups' worth, for readers that are many at once (replay server
        clients), at a lower throughput.
        """
        mode = self.damaged if damaged is None else damaged
        if mode not in DAMAGED:
            raise UsageError(f"damaged must be one of {', '.join(DAMAGED)}, not {mode!r}")
        self.check_format()
        f = as_filters(filters, kw, self.start_ns)
        want = list(columns) if columns is not None else list(COLUMNS)
        unknown = set(want) - set(COLUMNS)
        if unknown:
            raise UsageError(f"unknown column(s): {', '.join(sorted(unknown))}")
        needed = want + [c for c in f.columns() + ["seq"] if c not in want]
        for entry in self.manifest["parts"]:
            if not f.overlaps(_ns(entry.get("start")), _ns(entry.get("end"))):
                continue
            yield from self._part_batches(self.path / entry["file"], f, needed, want,
                                          batch_size, entry, mode, lean)
        for kind, path in self.unlisted():
            if kind == "part":
                yield from self._part_batches(path, f, needed, want, batch_size, None, mode)
                continue
            for batch in read_journal(path):
                table = to_part([batch], self.venue, self.id, self.rules)
                for b in table.to_batches(max_chunksize=batch_size):
                    b = f.apply(b)
                    if b.num_rows:
                        yield b.select(want)

    def _part_batches(self, path: Path, f: Filters, needed, want, batch_size,
                      entry: dict | None = None, damaged: str = "refuse", lean: bool = False,
                      from_seq: int | None = None):
        """One part, streamed a row group at a time: row groups outside the time filter
        are skipped by their ``ts`` column (nothing else of them is decoded), the rest
        filtered by Arrow kernels. Damage is refused or skipped (see ``batches``).
        ``from_seq``: row groups whose rows all come before it are skipped (by the seq
        numbering the manifest entry implies)."""
        project = needed != want
        reader = _PartReader(path, entry, damaged == "skip", self._warn_once, self.rules,
                             self._sizes.get(path.name))
        try:
            for b in reader.batches(f, needed, batch_size, lean, from_seq):
                b = f.apply(b)
                if b.num_rows:
                    yield b.select(want) if project else b
        except _READ_ERRORS as exc:
            raise CorruptData(f"{path}: cannot read part ({first_line(exc)}); "
                              f"run 'wsrec verify'") from exc

    def read_part(self, path: Path, entry: dict | None, filters: Filters, columns, *,
                  batch_size: int = 65_536, lean: bool = False,
                  from_seq: int | None = None) -> Iterator[pa.RecordBatch]:
        """The matching rows of one part of this session, as ``batches`` reads it (every
        check made, damage refused or skipped as ``self.damaged`` says): ``entry`` is its
        manifest entry (None for a part the manifest read does not list); ``columns`` as
        ``batches`` takes them; row groups wholly before ``from_seq`` are not read."""
        want = list(columns)
        needed = want + [c for c in filters.columns() + ["seq"] if c not in want]
        yield from self._part_batches(path, filters, needed, want, batch_size, entry,
                                      self.damaged, lean, from_seq)

    def follow(self, filters: Filters | None = None, **kw):
        """Follow this session as it is recorded: a ``wsrec.store.follow.Follower`` that
        yields ``(session, batch)`` pairs of the rows matching ``filters`` (or the same
        keyword filters as ``batches``) as the recorder writes them, and then those of the
        sessions that continue it, until the last one ends. Other keywords (``columns``,
        ``poll``, ``sleep``, ``stop``, ...) go to ``Follower``."""
        from wsrec.store.follow import Follower
        names = ("start", "end", "channels", "symbols", "direction", "kind")
        wanted = {k: kw.pop(k) for k in names if k in kw}
        return Follower(self, as_filters(filters, wanted, self.start_ns), **kw)

    def _warn_once(self, key, message: str) -> None:
        """Report a skipped part or row group once per session object (a replay may read
        a session more than once: to count its frames, to loop)."""
        if key not in self._warned:
            self._warned.add(key)
            self.warn(message)

    def unlisted(self) -> Iterator[tuple[str, Path]]:
        """Where the rows of the parts the manifest does not list are now, in order:
        ``("journal", path)`` for a journal still there; ``("part", path)`` for one whose
        journal a live writer has turned into a part since the session was opened (the
        manifest read then does not list it: read the part instead); nothing for a
        journal gone without its part. The one place this rule is kept: every reader of
        unlisted rows goes through here."""
        for journal in self.journals:
            if journal.exists():
                yield "journal", journal
                continue
            final = journal.with_name(part_name(part_index(journal.name)[0]))
            if final.exists():
                yield "part", final

    def _journal_batches(self) -> Iterator[pa.RecordBatch]:
        for kind, path in self.unlisted():
            if kind == "journal":  # a part published meanwhile: only for a live session
                yield from read_journal(path)

    def frames(self, filters: Filters | None = None, **kw) -> Iterator[Frame]:
        """Yield matching rows as ``Frame`` tuples, in ``seq`` order (same filters as
        ``batches``). ``ts`` and ``mono_ns`` are integer nanoseconds."""
        for batch in self.batches(filters, columns=_FRAME_COLUMNS, **kw):
            columns = [batch.column(i) for i in range(batch.num_columns)]
            columns[1] = columns[1].cast(pa.int64())
            yield from map(Frame._make, zip(*(c.to_pylist() for c in columns)))

    def normalized(self, table: str, filters: Filters | None = None, **kw):
        """The session's rows of a normalized table (``trades``, ``quotes``,
        ``book_changes``, ``book_snapshots:DEPTH:INTERVAL``, ``bars``, ``blocks``,
        ``actions``): an iterable of Arrow record batches, with counts of the frames that
        could not be mapped (``wsrec.store.normalized.Normalized``). Same filters as
        ``batches``."""
        from wsrec.store.normalized import Normalized
        return Normalized([self], table, as_filters(filters, kw, self.start_ns))

    def table(self, filters: Filters | None = None, **kw) -> pa.Table:
        """All matching rows as one Arrow table (for sessions that fit in memory)."""
        columns = kw.get("columns")
        schema = SCHEMA if columns is None else pa.schema([SCHEMA.field(c) for c in columns])
        return pa.Table.from_batches(list(self.batches(filters, **kw)), schema=schema)


#: what pyarrow raises on damaged input (a corrupt size can also ask for absurd memory)
_READ_ERRORS = (pa.ArrowException, OSError, ValueError, IndexError, KeyError, EOFError,
                MemoryError, UnicodeDecodeError)


class _Damage(Exception):
    """A check on a part failed; ``group`` is the row group (None: the whole part)."""

    def __init__(self, what: str, group: int | None = None):
        super().__init__(what)
        self.what, self.group = what, group


class _PartReader:
    """Reads one part with every check ``Session.batches`` promises.

    Before the first row is yielded: the file's size against the manifest's ``bytes``,
    the footer (it parses, the schema is the session format's, its row groups' rows add
    up to the manifest's ``rows``). Then, per row group: pages against their CRC-32
    checksums (pyarrow's ``page_checksum_verification``), the number of rows read
    against the footer, and the first and last ``seq`` against the numbering the
    manifest implies. Whether a row group is in a time filter's range is decided by its
    (checksummed) ``ts`` column, not by the footer's statistics, which no checksum
    covers and which pyarrow can abort the process reading when damaged.

    A part written before ``exch_ts`` existed (``SCHEMA_NO_EXCH_TS``) reads the same way:
    its ``exch_ts`` is computed from its payloads as it is read.
    """

    def __init__(self, path, entry: dict | None, skip: bool, warn, venue: str = "",
                 size: int | None = None):
        self.path, self.entry, self.skip, self.warn = path, entry, skip, warn
        #: in an object store: read with range requests, pre-buffered one row group at a
        #: time (a few requests per row group instead of one per 8 KiB)
        self.remote = isinstance(path, RootPath)
        self._size = size
        self.venue = venue
        self.computed_exch_ts = False
        self.rows = entry.get("rows") if entry else None
        self.seq_first = entry.get("seq_first") if entry else None
        self._local = threading.local()

    def _refuse(self, damage: _Damage) -> CorruptData:
        if damage.what == "missing":
            return CorruptData(f"{self.path}: part listed in the manifest is missing; "
                               f"run 'wsrec verify'")
        where = "" if damage.group is None else f" in row group {damage.group}"
        return CorruptData(f"{self.path}: cannot read part, it is damaged ({damage.what}"
                           f"{where}); restore it from a copy, or skip the damage with "
                           f"--read-damaged (damaged='skip' in Python)")

    def _skipped(self, key, message: str) -> None:
        self.warn((self.path, key), f"{self.path}: {message}")

    def batches(self, f: Filters, columns, batch_size, lean: bool = False,
                from_seq: int | None = None) -> Iterator[pa.RecordBatch]:
        try:
            footer = self._open()
        except _Damage as damage:
            if not self.skip:
                raise self._refuse(damage) from None
            rows = "" if self.rows is None else f" ({self.rows:,} rows{self._seqs()})"
            self._skipped(None, f"skipped the whole part{rows}: {damage.what}")
            return
        groups = []  # (row group, rows, its first seq)
        seq = self.seq_first
        every = self._all_inside(f)
        for group, n in footer:
            before = from_seq is not None and seq is not None and seq + n <= from_seq
            if not before and (every or self._inside(group, n, f)):
                groups.append((group, n, seq))
            seq = None if seq is None else seq + n
        wanted = columns
        if self.computed_exch_ts and "exch_ts" in columns:
            columns = [c for c in columns if c != "exch_ts"]
            columns += [c for c in ("payload", "kind", "dir") if c not in columns]
        read = self._stream(groups, columns, batch_size) if lean else self._read(groups, columns)
        for group, n, seq, result in read:
            if isinstance(result, _Damage):
                if not self.skip:
                    raise self._refuse(result)
                seqs = "" if seq is None else f", seq {seq}..{seq + n - 1}"
                self._skipped(group, f"skipped row group {group} ({n:,} rows{seqs}): "
                                     f"{result.what}")
                continue
            if columns is not wanted:
                result = result.append_column("exch_ts", exch_ts(
                    self.venue, *(result.column(c).combine_chunks()
                                  for c in ("payload", "kind", "dir")))).select(wanted)
            yield from result.to_batches(max_chunksize=batch_size)

    def _seqs(self) -> str:
        if self.seq_first is None or not self.rows:
            return ""
        return f", seq {self.seq_first}..{self.seq_first + self.rows - 1}"

    def _source(self) -> pa.NativeFile:
        if self.remote:
            return self.path.root.open_input(self.path.rel)
        return pa.OSFile(str(self.path))

    def _store_failed(self, exc: BaseException) -> None:
        """Raise the store's error when reading failed because of the store (network,
        credentials), not because of the bytes: that is no damage."""
        if self.remote and storage_failure(exc):
            raise fs_error(exc, self.path.root, f"reading {self.path}") from None

    def _file_size(self) -> int:
        if not self.remote:
            return os.stat(self.path).st_size
        if self._size is None:
            info = self.path.root.info(self.path.rel)
            if info.type == pafs.FileType.NotFound:
                raise FileNotFoundError(str(self.path))
            self._size = info.size
        return self._size

    def _open(self) -> list[tuple[int, int]]:
        """The footer, checked: (row group, rows) for each."""
        try:
            size = self._file_size()
        except FileNotFoundError:
            raise _Damage("missing") from None
        except OSError as exc:
            raise _Damage(f"cannot read it: {exc.strerror or first_line(exc)}") from None
        expected = self.entry.get("bytes") if self.entry else None
        resized = None
        if expected is not None and size != expected:
            resized = f"{size:,} bytes, the manifest says {expected:,}"
            if not self.skip:
                raise _Damage(resized)
        what = None
        try:
            with self._source() as source:
                pf = pq.ParquetFile(source)
                meta, schema = pf.metadata, pf.schema_arrow
            # (not the column chunks' metadata: on a damaged footer some of pyarrow's
            # accessors abort the process instead of raising)
            groups = [(i, meta.row_group(i).num_rows) for i in range(meta.num_row_groups)]
            total = sum(g[1] for g in groups)
            self.computed_exch_ts = schema.equals(SCHEMA_NO_EXCH_TS)
            if not schema.equals(SCHEMA) and not self.computed_exch_ts:
                what = "its schema is not the session format's"
            elif total != meta.num_rows or (self.rows is not None and total != self.rows):
                said = f"the manifest says {self.rows:,}" if self.rows is not None else \
                    f"its footer says {meta.num_rows:,}"
                what = f"its row groups hold {total:,} rows, {said}"
        except FileNotFoundError:
            raise _Damage("missing") from None
        except _READ_ERRORS as exc:
            self._store_failed(exc)
            what = f"unreadable footer: {first_line(exc)}"
        if what is not None:
            raise _Damage(what if resized is None else f"{resized}; {what}")
        if resized is not None:
            self._skipped("size", f"{resized}; reading the row groups that pass their checks")
        return groups

    def _all_inside(self, f: Filters) -> bool:
        """Whether every row of the part is in the time range (by the manifest)."""
        if f.start is None and f.end is None:
            return True
        start, end = (_ns(self.entry.get(k)) if self.entry else None for k in ("start", "end"))
        if start is None or end is None:
            return False
        return (f.start is None or f.start <= start) and (f.end is None or end < f.end)

    def _inside(self, group: int, rows: int, f: Filters) -> bool:
        """Whether row group ``group`` holds a row in the time range, by its ``ts`` column
        (small, and checksummed: the footer's statistics are not, and pyarrow can abort
        the process reading damaged ones)."""
        try:
            table = self._file().read_row_group(group, columns=["ts"])
        except _READ_ERRORS:
            return True  # read it in full: that reports the damage
        if table.num_rows != rows:
            return True
        ts, mask = table.column("ts"), None   # (kernels by name: wsrec.store._compute)
        if f.start is not None:
            mask = call("greater_equal", ts, pa.scalar(f.start, ts.type))
        if f.end is not None:
            below = call("less", ts, pa.scalar(f.end, ts.type))
            mask = below if mask is None else call("and", mask, below)
        return mask is not None and call("any", mask).as_py() is True

    def _file(self) -> pq.ParquetFile:
        local = self._local
        if not hasattr(local, "pf"):
            local.pf = pq.ParquetFile(self._source(), pre_buffer=self.remote,
                                      page_checksum_verification=True)
        return local.pf

    def _stream(self, groups, columns, batch_size):
        """Like ``_read``, but each row group ``batch_size`` rows at a time: (group, rows,
        first seq, a table of one batch, or _Damage); the same checks, made as the batches
        come (rows already given stay given: each was checked before)."""
        if self.remote:  # one row group's column chunks per request, not 8 KiB
            pf = pq.ParquetFile(self._source(), pre_buffer=True,
                                page_checksum_verification=True)
        else:
            pf = pq.ParquetFile(pa.OSFile(str(self.path)), pre_buffer=False,
                                buffer_size=1 << 13, page_checksum_verification=True)
        for group, n, seq in groups:
            got, expect = 0, seq
            try:
                for batch in pf.iter_batches(batch_size=batch_size, row_groups=[group],
                                             columns=columns, use_threads=False):
                    k = batch.num_rows
                    if k and "seq" in batch.schema.names:
                        damage = _seq_damage(batch.column("seq"), expect, group)
                        if damage is not None:
                            raise damage
                        expect = batch.column("seq")[k - 1].as_py() + 1
                    got += k
                    yield group, n, seq, pa.Table.from_batches([batch])
                if got != n:
                    raise _Damage(f"{got:,} rows read, its footer says {n:,}", group)
            except _Damage as damage:
                yield group, n, seq, damage
            except _READ_ERRORS as exc:
                self._store_failed(exc)
                yield group, n, seq, _Damage(first_line(exc), group)

    def _read(self, groups, columns):
        """(group, rows, first seq, table or _Damage) for each of ``groups``, in order,
        two row groups decoded at once (one per core: zstd decompression is most of the
        cost)."""

        def read(group, n, seq):
            try:
                table = self._file().read_row_group(group, columns=columns)
            except _READ_ERRORS as exc:
                self._store_failed(exc)
                return _Damage(first_line(exc), group)
            if table.num_rows != n:
                return _Damage(f"{table.num_rows:,} rows read, its footer says {n:,}", group)
            if n and "seq" in table.column_names:
                return _seq_damage(table.column("seq"), seq, group) or table
            return table

        with read_ahead_pool(2, "wsrec-read") as pool:
            pending = collections.deque((g, pool.submit(read, *g)) for g in groups[:2])
            following = iter(groups[2:])
            while pending:
                (group, n, seq), future = pending.popleft()
                result = future.result()
                nxt = next(following, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(read, *nxt)))
                yield group, n, seq, result


def _seq_damage(column, start: int | None, group: int) -> "_Damage | None":
    """Damage when a row group's (or batch's) ``seq`` column does not run start, start+1,
    ... (start None: from its own first value); checked at its ends."""
    n = len(column)
    first, last = column[0].as_py(), column[n - 1].as_py()
    start = first if start is None else start
    if first != start or last != start + n - 1:
        return _Damage(f"seq {first}..{last} where {start}..{start + n - 1} belong", group)
    return None


def _ns(text):
    return parse_time(text) if text else None
