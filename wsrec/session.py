"""Reading a session: ``open_session(ref) -> Session``, then ``.frames()`` or ``.batches()``.

A session's rows are its listed parts, in order, followed by the journals of parts
not yet listed (the open part of a live session, or what a crash or a full disk
left). Journals are read read-only up to their last complete batch, so a live
or crashed session reads the same way as a complete one. Nothing here writes.
"""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import CorruptData, OutdatedFormat, first_line
from .filters import Filters, as_filters
from .journal import journal_rows, read_journal
from .lock import is_locked
from .manifest import FORMAT_VERSION, load_manifest
from .part import part_index, part_name
from .schema import COLUMNS, SCHEMA, to_part
from .store import resolve
from .timefmt import parse_time

__all__ = ["Session", "Frame", "open_session"]


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
    def __init__(self, folder: Path):
        self.path = Path(folder)
        self.manifest = load_manifest(self.path)
        self.venue: str = self.manifest["venue"]
        self.id: str = self.manifest["session"]
        self.format_version: int = self.manifest["format_version"]
        recording = self.manifest["status"] == "recording"
        self.live = recording and is_locked(self.path)
        self.crashed = recording and not self.live
        listed = {p.get("file") for p in self.manifest["parts"]}
        self.journals: list[Path] = []           # journals of parts not listed yet
        self.leftover_journals: list[Path] = []  # journals whose part is already listed
        self.orphan_parts: list[Path] = []       # final-named parts the manifest lacks
        self.temp_files: list[Path] = []
        for path in sorted(self.path.iterdir()):
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
            last = parse_time(self.manifest["parts"][-1]["end"])
        return last

    def rows(self) -> int:
        """Rows readable now: listed parts plus complete journal batches."""
        listed = sum(p["rows"] for p in self.manifest["parts"])
        return listed if self.outdated else listed + sum(journal_rows(j) for j in self.journals)

    def disk_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())

    # -- reading -----------------------------------------------------------------------

    def batches(self, filters: Filters | None = None, *, columns=None,
                batch_size: int = 65_536, **kw) -> Iterator[pa.RecordBatch]:
        """Yield Arrow record batches of matching rows, in ``seq`` order.

        Keyword filters: ``start``, ``end``, ``channels``, ``symbols``,
        ``direction``, ``kind`` (see ``Filters.make``). ``columns`` picks columns
        (default: all of ``wsrec.schema.SCHEMA``). Memory stays bounded: one part
        is read at a time, a row group at a time.
        """
        self.check_format()
        f = as_filters(filters, kw)
        want = list(columns) if columns is not None else list(COLUMNS)
        unknown = set(want) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown column(s): {', '.join(sorted(unknown))}")
        needed = want + [c for c in f.columns() if c not in want]
        for entry in self.manifest["parts"]:
            if not f.overlaps(_ns(entry.get("start")), _ns(entry.get("end"))):
                continue
            yield from self._part_batches(self.path / entry["file"], f, needed, want,
                                          batch_size)
        for journal in self.journals:
            if not journal.exists():
                # a live writer finished this part since we looked: read the part instead
                final = journal.with_name(journal.name.replace(".journal", ".parquet"))
                if final.exists():
                    yield from self._part_batches(final, f, needed, want, batch_size)
                continue
            for batch in read_journal(journal):
                table = to_part([batch], self.venue, self.id)
                for b in table.to_batches(max_chunksize=batch_size):
                    b = f.apply(b)
                    if b.num_rows:
                        yield b.select(want)

    def _part_batches(self, path: Path, f: Filters, needed, want, batch_size):
        """One part, streamed a row group at a time: row groups outside the time filter
        are skipped by their ``ts`` statistics, the rest filtered by Arrow kernels."""
        if not path.exists():
            raise CorruptData(f"{path}: part listed in the manifest is missing; "
                              f"run 'wsrec verify'")
        project = needed != want
        try:
            for b in _row_groups(path, f, needed, batch_size):
                b = f.apply(b)
                if b.num_rows:
                    yield b.select(want) if project else b
        except (pa.ArrowException, OSError) as exc:
            raise CorruptData(f"{path}: cannot read part ({first_line(exc)}); "
                              f"run 'wsrec verify'") from exc

    def _journal_batches(self) -> Iterator[pa.RecordBatch]:
        for journal in self.journals:
            if journal.exists():
                yield from read_journal(journal)

    def frames(self, filters: Filters | None = None, **kw) -> Iterator[Frame]:
        """Yield matching rows as ``Frame`` tuples, in ``seq`` order (same filters as
        ``batches``). ``ts`` and ``mono_ns`` are integer nanoseconds."""
        for batch in self.batches(filters, columns=_FRAME_COLUMNS, **kw):
            columns = [batch.column(i) for i in range(batch.num_columns)]
            columns[1] = columns[1].cast(pa.int64())
            yield from map(Frame._make, zip(*(c.to_pylist() for c in columns)))

    def table(self, filters: Filters | None = None, **kw) -> pa.Table:
        """All matching rows as one Arrow table (for sessions that fit in memory)."""
        columns = kw.get("columns")
        schema = SCHEMA if columns is None else pa.schema([SCHEMA.field(c) for c in columns])
        return pa.Table.from_batches(list(self.batches(filters, **kw)), schema=schema)


def _row_groups(path: Path, f: Filters, columns, batch_size):
    """Batches of a part's row groups in order, two row groups decoded at once (one per
    core: zstd decompression is most of the cost), skipping those outside the time filter
    by their ``ts`` statistics."""
    local = threading.local()

    def read(i):
        if not hasattr(local, "pf"):
            local.pf = pq.ParquetFile(pa.OSFile(str(path)), pre_buffer=False)
        return local.pf.read_row_group(i, columns=columns)

    with pa.OSFile(str(path)) as source:
        meta = pq.ParquetFile(source).metadata
    groups = [i for i in range(meta.num_row_groups)
              if f.overlaps(*_ts_range(meta.row_group(i)))]
    with ThreadPoolExecutor(2, thread_name_prefix="wsrec-read") as pool:
        pending = collections.deque(pool.submit(read, i) for i in groups[:2])
        following = iter(groups[2:])
        while pending:
            table = pending.popleft().result()
            nxt = next(following, None)
            if nxt is not None:
                pending.append(pool.submit(read, nxt))
            yield from table.to_batches(max_chunksize=batch_size)


def _ts_range(row_group) -> tuple[int | None, int | None]:
    """A row group's smallest and largest ``ts`` (ns) from its statistics, if written."""
    for i in range(row_group.num_columns):
        column = row_group.column(i)
        if column.path_in_schema == "ts":
            stats = column.statistics
            if stats is not None and stats.has_min_max:
                return stats.min_raw, stats.max_raw
    return None, None


def _ns(text):
    return parse_time(text) if text else None
