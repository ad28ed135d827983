"""``wsrec verify``: check a session end to end without writing anything.

Every problem is one line naming the file and what is wrong. A sound session has
none. Checks: the manifest; each listed part exists, has the recorded size and
sha256 (bit rot), the part schema and row count, and decodes completely; ``seq``
is gapless from 0 and ``mono_ns`` never decreases, across parts and journals;
no crash leftovers (journal-only data, leftover journals, temporary or unlisted
parts); a ``recording`` session whose lock is free is reported as crashed.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import first_line
from .journal import read_journal
from .part import file_sha256
from .schema import SCHEMA, to_part
from .session import Session

__all__ = ["verify"]

_FIX = "run 'wsrec repair'"


def verify(session: Session) -> list[str]:
    """The session's problems, one line each (empty when sound)."""
    if session.outdated:
        return [f"{session.path}: format version {session.format_version}; run 'wsrec repair "
                f"--upgrade' to migrate it (lossless)"]
    problems: list[str] = []
    checker = _SequenceChecker(problems)
    if session.crashed:
        problems.append(f"{session.path}: crashed while recording (status 'recording' but "
                        f"no recorder holds its lock); {_FIX}")
    for entry in session.manifest["parts"]:
        _check_part(session, entry, checker, problems)
    for journal in session.journals:
        if not journal.exists():
            continue  # a live writer finished it meanwhile
        if not session.live:
            problems.append(f"{journal}: rows only in the journal, no part yet; {_FIX}")
        for batch in read_journal(journal):
            checker.feed(journal.name, to_part([batch], session.venue, session.id))
    if not session.live:
        for path in session.leftover_journals:
            problems.append(f"{path}: leftover journal of a listed part; {_FIX}")
        for path in session.temp_files:
            problems.append(f"{path}: leftover temporary part; {_FIX}")
        for path in session.orphan_parts:
            problems.append(f"{path}: part not listed in the manifest; {_FIX}")
    return problems


def _check_part(session: Session, entry: dict, checker: "_SequenceChecker",
                problems: list[str]) -> None:
    path = session.path / str(entry.get("file"))
    if not path.is_file():
        problems.append(f"{path}: listed in the manifest but missing")
        return
    size = path.stat().st_size
    if "bytes" in entry and size != entry["bytes"]:
        problems.append(f"{path}: {size} bytes, the manifest says {entry['bytes']} "
                        f"(truncated or modified)")
    elif "sha256" in entry and file_sha256(path) != entry["sha256"]:
        problems.append(f"{path}: checksum mismatch (bit rot or modified since written)")
    try:
        pf = pq.ParquetFile(pa.OSFile(str(path)))
    except (pa.ArrowException, OSError) as exc:
        problems.append(f"{path}: not a readable Parquet file ({first_line(exc)})")
        return
    if not pf.schema_arrow.equals(SCHEMA):
        problems.append(f"{path}: schema differs from the session format")
    rows = pf.metadata.num_rows
    if rows != entry.get("rows"):
        problems.append(f"{path}: {rows} rows, the manifest says {entry.get('rows')}")
    try:
        for batch in pf.iter_batches(batch_size=65_536):
            checker.feed(path.name, batch)
    except (pa.ArrowException, OSError) as exc:
        problems.append(f"{path}: undecodable data ({first_line(exc)})")
        checker.reset()


class _SequenceChecker:
    """``seq`` gapless from 0 and ``mono_ns`` non-decreasing, batch by batch (Arrow kernels)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        self.next_seq = 0
        self.last_mono = None
        self.reported = set()

    def reset(self) -> None:
        self.next_seq = None
        self.last_mono = None

    def feed(self, name: str, batch) -> None:
        n = batch.num_rows
        if not n:
            return
        seq = batch.column("seq")
        mono = batch.column("mono_ns")
        if isinstance(seq, pa.ChunkedArray):
            seq, mono = seq.combine_chunks(), mono.combine_chunks()
        first = seq[0].as_py()
        if self.next_seq is not None and first != self.next_seq:
            self._report(name, f"seq jumps from {self.next_seq - 1} to {first}")
        if self.last_mono is not None and mono[0].as_py() < self.last_mono:
            self._report(name, f"mono_ns goes backwards at seq {first}")
        if n > 1:
            steps = pc.subtract(seq.slice(1), seq.slice(0, n - 1))
            bad = pc.index(pc.not_equal(steps, 1), True).as_py()
            if bad >= 0:
                self._report(name, f"seq jumps from {seq[bad].as_py()} to "
                                   f"{seq[bad + 1].as_py()}")
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
