"""``wsrec verify``: check a session end to end without writing anything.

Every problem is one line naming the file and what is wrong. A sound session has
none. Checks: the manifest; each listed part exists, has the recorded size and
sha256 (bit rot), the part schema and row count, and decodes completely (every batch
validated); ``seq`` is gapless from 0 (except where the manifest records rows that
``wsrec repair`` could not recover) and ``mono_ns`` never decreases, across parts and
journals; every journal record's CRC (each damaged range is one line); no crash
leftovers (journal-only data, leftover journals, temporary or unlisted parts); a
``recording`` session whose lock is free is reported as crashed. Nothing read is used
unvalidated, and no damage makes it raise anything but wsrec's own errors.
"""

from __future__ import annotations

from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from wsrec.errors import CorruptData, first_line
from wsrec.store._journal import Damage, scan_journal
from wsrec.store.location import RootPath, fs_error, storage_failure
from wsrec.store._part import file_sha256
from wsrec.store.schema import is_part_schema, to_part
from wsrec.store.session import Session

__all__ = ["verify"]

_FIX = "run 'wsrec repair'"


def verify(session: Session, progress: Callable[[int], None] | None = None) -> list[str]:
    """The session's problems, one line each (empty when sound). ``progress(rows)``
    hears how many rows are checked so far, of ``session.rows()``."""
    if session.outdated:
        return [f"{session.path}: format version {session.format_version}; run 'wsrec repair "
                f"--upgrade' to migrate it (lossless)"]
    problems: list[str] = []
    checker = _SequenceChecker(problems, session.manifest.get("lost"), progress)
    if session.crashed:
        problems.append(f"{session.path}: crashed while recording (status 'recording' but "
                        f"no recorder holds its lock); {_FIX}")
    for entry in session.manifest["parts"]:
        _check_part(session, entry, checker, problems)
    for kind, journal in session.unlisted():
        if kind != "journal":
            continue  # a live writer has published it since: its part is checked next time
        if not session.live:
            problems.append(f"{journal}: rows only in the journal, no part yet; {_FIX}")
        _check_journal(session, journal, checker, problems)
    if not session.live and not session.uploading:
        for path in session.leftover_journals:
            problems.append(f"{path}: leftover journal of a listed part; {_FIX}")
        for path in session.temp_files:
            problems.append(f"{path}: leftover temporary part; {_FIX}")
        for path in session.orphan_parts:
            problems.append(f"{path}: part not listed in the manifest; {_FIX}")
    return problems


def _check_journal(session: Session, journal, checker: "_SequenceChecker",
                   problems: list[str]) -> None:
    """Every damaged range of a journal as one line; its intact rows through the seq
    checker (a jump right after a damaged range is that range's lost rows)."""
    try:
        scan = scan_journal(journal, first_seq=checker.next_seq)
        problems.extend(f"{journal}: {describe_damage(d)}; {_FIX}" for d in scan.damaged)
        for record, batch in scan.read():
            if record.after_damage:
                checker.skip()
            checker.feed(journal.name, to_part([batch], session.venue, session.id, session.rules))
    except CorruptData as exc:
        problems.append(str(exc))
        checker.reset()


def describe_damage(d: Damage) -> str:
    """``damaged bytes 40..1839 (1,800 bytes, 12 rows lost: seq 200..211)``."""
    n = d.rows_lost
    if n == 0:
        what = "only framing: no rows lost"
    elif n is not None:
        what = f"{n:,} row{'s' if n != 1 else ''} lost: seq " + (
            f"{d.seq_first}" if n == 1 else f"{d.seq_first}..{d.seq_last}")
    elif d.seq_first is not None:
        what = f"an unknown number of rows lost from seq {d.seq_first} on"
    elif d.seq_last is not None:
        what = f"an unknown number of rows lost up to seq {d.seq_last}"
    else:
        what = "an unknown number of rows lost"
    return (f"damaged bytes {d.offset}..{d.offset + d.length - 1} "
            f"({d.length:,} byte{'s' if d.length != 1 else ''}, {what})")


def _check_part(session: Session, entry: dict, checker: "_SequenceChecker",
                problems: list[str]) -> None:
    path = session.path / str(entry.get("file"))
    try:
        _check_part_file(path, entry, checker, problems)
    except OSError as exc:  # an I/O error reading the file itself
        if isinstance(path, RootPath) and storage_failure(exc):
            raise fs_error(exc, path.root, f"verifying {path}") from None
        problems.append(f"{path}: cannot read ({first_line(exc)})")


def _check_part_file(path, entry: dict, checker: "_SequenceChecker",
                     problems: list[str]) -> None:
    """A part's size and sha256 against the manifest, then its decode, one row group at a
    time. A part in a bucket (a ``RootPath``): its size by one HEAD, its sha256 streamed
    in one GET, its row groups pre-buffered (a few range requests each, memory bounded
    by one row group); errors reaching the bucket are raised, not counted as damage."""
    remote = isinstance(path, RootPath)
    if remote:
        info = path.root.info(path.rel)
        exists, size = info.type == pafs.FileType.File, info.size
    else:
        exists = path.is_file()
        size = path.stat().st_size if exists else None
    if not exists:
        problems.append(f"{path}: listed in the manifest but missing")
        return
    if "bytes" in entry and size != entry["bytes"]:
        problems.append(f"{path}: {size} bytes, the manifest says {entry['bytes']} "
                        f"(truncated or modified)")
    elif "sha256" in entry and (path.root.sha256(path.rel) if remote else file_sha256(path)) \
            != entry["sha256"]:
        problems.append(f"{path}: checksum mismatch (bit rot or modified since written)")
    with (path.root.open_input(path.rel) if remote else pa.OSFile(str(path))) as source:
        try:
            pf = pq.ParquetFile(source, pre_buffer=remote, page_checksum_verification=True)
            schema, rows = pf.schema_arrow, pf.metadata.num_rows
        except (pa.ArrowException, OSError, ValueError) as exc:
            if remote and storage_failure(exc):
                raise
            problems.append(f"{path}: not a readable Parquet file ({first_line(exc)})")
            return
        if not is_part_schema(schema):
            problems.append(f"{path}: schema differs from the session format")
        if rows != entry.get("rows"):
            problems.append(f"{path}: {rows} rows, the manifest says {entry.get('rows')}")
        try:
            for group in range(pf.num_row_groups):
                for batch in pf.iter_batches(batch_size=65_536, row_groups=[group]):
                    batch.validate(full=True)
                    checker.feed(path.name, batch)
        except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
            if remote and storage_failure(exc):
                raise
            problems.append(f"{path}: undecodable data ({first_line(exc)})")
            checker.reset()


class _SequenceChecker:
    """``seq`` gapless from 0 and ``mono_ns`` non-decreasing, batch by batch (Arrow kernels)."""

    def __init__(self, problems: list[str], lost=None, progress=None):
        self.problems = problems
        self.progress, self.rows = progress, 0   # rows fed so far
        self.next_seq = 0
        self.last_mono = None
        self.reported = set()
        # rows 'wsrec repair' could not recover, as the manifest records them: the seq
        # jump over each is known (expected seq -> the seq that follows, None: any)
        self.known: dict[int, int | None] = {}
        for loss in lost if isinstance(lost, list) else ():
            if isinstance(loss, dict) and isinstance(loss.get("seq_first"), int):
                last = loss.get("seq_last")
                self.known[loss["seq_first"]] = last + 1 if isinstance(last, int) else None

    def reset(self) -> None:
        self.next_seq = None
        self.last_mono = None

    def skip(self) -> None:
        """Rows are known to be missing here (reported already): accept any seq next."""
        self.next_seq = None

    def _known(self, expected: int, got: int) -> bool:
        return expected in self.known and self.known[expected] in (None, got)

    def feed(self, name: str, batch) -> None:
        n = batch.num_rows
        if not n:
            return
        self.rows += n
        if self.progress is not None:
            self.progress(self.rows)
        seq = batch.column("seq")
        mono = batch.column("mono_ns")
        if isinstance(seq, pa.ChunkedArray):
            seq, mono = seq.combine_chunks(), mono.combine_chunks()
        first = seq[0].as_py()
        if self.next_seq is not None and first != self.next_seq \
                and not self._known(self.next_seq, first):
            self._report(name, f"seq jumps from {self.next_seq - 1} to {first}")
        if self.last_mono is not None and mono[0].as_py() < self.last_mono:
            self._report(name, f"mono_ns goes backwards at seq {first}")
        if n > 1:
            steps = pc.subtract(seq.slice(1), seq.slice(0, n - 1))
            jumps = pc.indices_nonzero(pc.not_equal(steps, 1))
            for i in range(len(jumps)):  # stops at the first jump the manifest can't explain
                bad = jumps[i].as_py()
                before, after = seq[bad].as_py(), seq[bad + 1].as_py()
                if not self._known(before + 1, after):
                    self._report(name, f"seq jumps from {before} to {after}")
                    break
            back = pc.index(pc.less(pc.subtract(mono.slice(1), mono.slice(0, n - 1)), 0),
                            True).as_py()
            if back >= 0:
                self._report(name, f"mono_ns goes backwards at seq {seq[back + 1].as_py()}")
        self.next_seq = seq[n - 1].as_py() + 1
        self.last_mono = mono[n - 1].as_py()

    def _report(self, name: str, what: str) -> None:
        key = (name, what.split()[0])  # the first seq and mono_ns problem per file is enough
        if key not in self.reported:
            self.reported.add(key)
            self.problems.append(f"{name}: {what}")
