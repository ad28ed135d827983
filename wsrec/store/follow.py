"""Following a session as it is recorded: ``Follower`` yields its rows as the recorder
journals and seals them, then those of the sessions that continue it (``--rotate``),
until the last one ends.

Each poll decides first what the session is now (its manifest, read again only when
the file changed, and its writer's lock), then reads what it holds past the rows
already given: the parts the manifest lists (row groups before them skipped by their
seq range), then the journals of the parts it does not list yet, each from where the
previous poll stopped, a whole record at a time (``tail_journal``): a record the writer
is in the middle of is left for the next poll, never read torn. Every row is given
once, in ``seq`` order, with no hole; a row group, part or journal record holding rows
already given (the open part's rows read from its journal, then sealed into the part)
is skipped up to the first row not given. A poll that finds nothing sleeps ``poll``
seconds (50 ms) before the next.

The recorder seals a part by publishing it, saving the manifest that lists it, then
deleting its journal; it may do so between any two of a poll's reads. So a journal
whose next record starts past the next row wanted (the rows between went into a part
sealed since the manifest was read), a journal gone before it is opened, or a part on
disk without its journal, stops the poll there: the manifest is read again and the
parts it now lists are read first, then the journals again. Only when a manifest read
after it lists nothing new is it taken for what it looks like: an unlisted part is read
(all of its rows counted as given, the filters applied here), and rows that neither a
part nor a journal holds (a damaged session) are said once, by their seqs, and passed
over instead of waited for.

The follow ends:

- once the session is sealed (``complete``, ``failed``, ``recovered``) and every row of
  it is given: then it goes on into the session named by ``continued_by`` (a rotation
  writes it before closing), from that one's first row, or ends when there is none;
- once the session still says ``recording`` but nothing holds its lock (the recorder
  died): every row it flushed is given, then ``SessionCrashed`` says to run
  ``wsrec repair``;
- with an ``end`` filter, once a row at or past it has been read;
- when ``sleep`` returns true (``stop`` set, by default), at the next idle poll.

What the recorder has not flushed yet is not visible: a row appears at most one
``flush_interval`` after it was received (``record --flush-interval``), plus a poll.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from wsrec.errors import CorruptData, SessionCrashed, SessionNotFound, UsageError
from wsrec.store._journal import tail_journal
from wsrec.store._lock import is_locked
from wsrec.store._part import part_index, part_name
from wsrec.store.filters import Filters
from wsrec.store.layout import date_dir, date_of, parse_date_dir, start_of
from wsrec.store.manifest import MANIFEST, load_manifest
from wsrec.store.schema import COLUMNS, to_part
from wsrec.store.session import Frame, Session
from wsrec.timefmt import parse_time

__all__ = ["Follower", "POLL", "chain_start", "next_folder"]

#: seconds between polls that find nothing new
POLL = 0.05
_SEALED = ("complete", "failed", "recovered")
_FRAME_COLUMNS = list(Frame._fields)


class _State:
    """How far one session has been read: the next ``seq`` wanted, the manifest entries
    done, and where each unlisted journal's next record starts."""

    def __init__(self, session: Session):
        self.session = session
        self.folder: Path = session.path
        self.next_seq = 0
        self.parts_done = 0
        self.offsets: dict[Path, int] = {}
        self.damaged: set = set()   # (journal, offset) already reported
        self.manifest = session.manifest
        self.key = None
        self.past_end = False


class Follower:
    """The rows of ``session`` (a local ``Session``) as they are recorded, and of the
    sessions that continue it: iterating yields ``(session, batch)`` pairs, each batch of
    one session, its rows matching ``filters``, with ``columns`` (default: all of
    ``wsrec.store.schema.COLUMNS``), at most ``batch_size`` rows.

    ``poll``: seconds to sleep after a poll that found nothing. ``sleep(seconds)`` does
    the sleeping (default ``stop.wait`` with a ``stop`` event, else ``time.sleep``); a
    true result ends the follow there (tests drive a follower through it). ``warn`` is
    called with one line for what a follow passes over (a damaged journal record, a
    session that ended ``failed``); default: the session's own ``warn``.

    With a ``start`` filter before the session's start, the follow begins in the
    earliest session of its rotation chain (``continues``) that is not wholly before
    it (``chain_start``).

    Example::

        s = wsrec.open_session("hyperliquid")          # its newest session, live
        for session, batch in s.follow(channels="trades", columns=["ts", "payload"]):
            print(session.id, batch.num_rows)
    """

    def __init__(self, session: Session, filters: Filters | None = None, *, columns=None,
                 batch_size: int = 65_536, lean: bool = False, poll: float = POLL,
                 sleep: Callable[[float], object] | None = None,
                 stop: threading.Event | None = None,
                 warn: Callable[[str], None] | None = None):
        if session.remote:
            raise UsageError(f"{session.path}: following a session needs it on a local disk "
                             f"(where it is recorded), not in object storage")
        session.check_format()
        self.filters = filters or Filters()
        want = list(columns) if columns is not None else list(COLUMNS)
        unknown = set(want) - set(COLUMNS)
        if unknown:
            raise UsageError(f"unknown column(s): {', '.join(sorted(unknown))}")
        self.columns = want
        self._read = want if "seq" in want else want + ["seq"]
        self.batch_size, self.lean, self.poll = batch_size, lean, poll
        if sleep is None:
            sleep = time.sleep if stop is None else stop.wait
        self._sleep = sleep
        self._warn = warn
        #: the session being read now; ``sessions``: every one followed so far, in order
        self.session = chain_start(session, self.filters.start)
        self.sessions: list[Session] = [self.session]

    def __iter__(self) -> Iterator[tuple[Session, pa.RecordBatch]]:
        session = self.session
        while session is not None:
            session = yield from self._session(session)
            if session is not None:
                session.check_format()
                self.session = session
                self.sessions.append(session)

    def frames(self) -> Iterator[tuple[Session, Frame]]:
        """``(session, Frame)`` for each row, as ``Session.frames`` makes them (the
        follower's columns must include the ``Frame`` fields)."""
        for session, batch in self:
            columns = [batch.column(name) for name in _FRAME_COLUMNS]
            columns[1] = columns[1].cast(pa.int64())
            for row in zip(*(c.to_pylist() for c in columns)):
                yield session, Frame._make(row)

    # -- one session -------------------------------------------------------------------

    def _session(self, session: Session):
        """Yield the rows of ``session`` until it ends; return the session that continues
        it (None: the follow is over)."""
        state = _State(session)
        while True:
            status = self._status(state)  # before reading: a seal seen now covers them all
            got = False
            for batch in self._new_rows(state, status != "live"):
                got = True
                yield session, batch
            if state.past_end:
                return None
            if status == "crashed":
                raise SessionCrashed(
                    f"{session.venue}/{session.id} stopped being recorded without being "
                    f"closed (its recorder died); everything it flushed was replayed; run "
                    f"'wsrec repair {session.path}' to finish it")
            if status == "sealed":
                return self._next(state)
            if not got and self._sleep(self.poll):
                return None

    def _status(self, state: _State) -> str:
        """``live``, ``sealed`` or ``crashed``, with ``state.manifest`` up to date. The
        writer saves its final manifest before it lets go of the lock, so a lock found
        free is checked against the manifest read again after it."""
        self._reload(state)
        if state.manifest["status"] != "recording":
            return "sealed"
        if is_locked(state.folder):
            return "live"
        self._reload(state, force=True)
        return "crashed" if state.manifest["status"] == "recording" else "sealed"

    def _reload(self, state: _State, force: bool = False) -> None:
        path = state.folder / MANIFEST
        try:
            st = os.stat(path)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            key = None  # load_manifest says what is wrong
        if force or key is None or key != state.key:
            state.manifest = load_manifest(state.folder)
            state.key = key

    def _new_rows(self, state: _State, final: bool) -> Iterator[pa.RecordBatch]:
        """The rows from ``state.next_seq`` on, each once, in ``seq`` order with no hole:
        the listed parts, then the unlisted journals (or parts). A surprise met on the
        way (a journal starting past the next row, one gone, a part sealed without its
        journal) means the recorder sealed a part since the manifest was read: the rest
        waits while the manifest is read again and the parts it now lists are read
        first. A surprise that a manifest read after it explains nothing of is what it
        looks like (rows lost, a part not listed): it is settled where it is met."""
        settled: set = set()  # surprises a manifest read after them explained nothing of
        while not state.past_end:
            yield from self._listed(state)
            if state.past_end:
                return
            surprise = yield from self._unlisted(state, final, settled)
            if surprise is None:
                return
            listed = len(state.manifest["parts"])
            self._reload(state, force=True)
            if len(state.manifest["parts"]) == listed:
                settled.add(surprise)
            else:
                settled.clear()

    def _listed(self, state: _State) -> Iterator[pa.RecordBatch]:
        """The parts the manifest lists past ``state.parts_done``."""
        f = self.filters
        parts = state.manifest["parts"]
        while state.parts_done < len(parts) and not state.past_end:
            entry = parts[state.parts_done]
            first, last = entry.get("seq_first"), entry.get("seq_last")
            if last is None or last >= state.next_seq:
                if first is not None and first > state.next_seq:
                    self._lost(state, first, "the manifest lists no part holding them")
                yield from self._part(state, state.folder / entry["file"], entry)
                if last is not None:
                    state.next_seq = max(state.next_seq, last + 1)
            if f.end is not None and entry.get("end") and parse_time(entry["end"]) >= f.end:
                state.past_end = True
            state.parts_done += 1

    def _unlisted(self, state: _State, final: bool, settled: set):
        """The rows of the parts the manifest does not list: their journals, or a part
        whose journal is gone. Returns the first surprise met (None: none)."""
        listed = {p["file"] for p in state.manifest["parts"]}
        for index, journal, part in self._files(state.folder, listed):
            if state.past_end:
                return None
            if journal is not None:
                try:
                    surprise = yield from self._journal(state, journal, final, settled)
                except FileNotFoundError:  # sealed since the folder was listed
                    state.offsets.pop(journal, None)
                    part = journal.with_name(part_name(index))
                else:
                    if surprise is not None:
                        return surprise
                    continue
            # a part without its journal: the manifest saved before the journal went
            # lists it, unless the session is damaged
            surprise = ("part", index)
            if surprise not in settled:
                return surprise
            if part.exists():
                surprise = yield from self._part(state, part, None, settled)
                if surprise is not None:
                    return surprise
        return None

    @staticmethod
    def _files(folder: Path, listed: set) -> list[tuple[int, Path | None, Path | None]]:
        """``(index, journal, part)`` for each part the manifest does not list, in part
        order: its journal (None when there is none) and its part (None likewise)."""
        found: dict[int, list] = {}
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    named = part_index(entry.name)
                    if not named or named[1] == "parquet.tmp" or part_name(named[0]) in listed:
                        continue
                    slot = found.setdefault(named[0], [None, None])
                    slot[0 if named[1] == "journal" else 1] = Path(entry.path)
        except OSError as exc:
            raise CorruptData(f"{folder}: cannot list the session folder "
                              f"({exc.strerror or exc}); check its permissions") from None
        return [(index, *found[index]) for index in sorted(found)]

    def _part(self, state: _State, path: Path, entry: dict | None, settled: set = frozenset()):
        """A part's rows from ``state.next_seq`` on. ``entry`` None: a part the manifest
        does not list; its rows are read whole, filtered here, so that ``next_seq``
        follows every row of it, matching or not; a hole before them is a surprise
        (returned) unless in ``settled``."""
        f = self.filters
        if entry is not None:
            for batch in state.session.read_part(path, entry, f, self._read,
                                                 batch_size=self.batch_size, lean=self.lean,
                                                 from_seq=state.next_seq):
                seq = batch.column("seq")
                if seq[0].as_py() < state.next_seq:
                    batch = batch.filter(pc.greater_equal(seq, state.next_seq))
                if batch.num_rows:
                    yield self._select(batch)
            return None
        needed = self._read + [c for c in f.columns() if c not in self._read]
        for batch in state.session.read_part(path, None, Filters(), needed,
                                             batch_size=self.batch_size, lean=self.lean):
            surprise = yield from self._rows(state, batch, ("part", path), settled)
            if surprise is not None or state.past_end:
                return surprise
        return None

    def _journal(self, state: _State, path: Path, final: bool, settled: set):
        """The whole records a journal holds past where the last poll stopped. Returns a
        surprise (the next record starts past ``next_seq``), leaving the journal to be
        read again from where it was; None once read."""
        offset = state.offsets.get(path, 0)
        batches, end, damaged = tail_journal(path, offset)
        if damaged and (path, end) not in state.damaged:
            state.damaged.add((path, end))
            what = "passing over the rest" if final else "waiting for its part to be sealed"
            self._say(f"{path}: damaged record at byte {end:,}; {what} (run 'wsrec "
                      f"verify')")
        s = state.session
        for raw in batches:
            n = raw.num_rows
            if not n or raw.column("seq")[n - 1].as_py() < state.next_seq:
                continue  # empty, or given already
            table = to_part([raw], s.venue, s.id, s.rules)
            for batch in table.to_batches():
                surprise = yield from self._rows(state, batch, ("journal", path), settled)
                if surprise is not None:
                    return surprise
                if state.past_end:
                    state.offsets[path] = end
                    return None
        state.offsets[path] = end
        return None

    def _rows(self, state: _State, batch: pa.RecordBatch, where: tuple, settled: set):
        """Give the rows of ``batch`` (every column, unfiltered, in seq order) from
        ``state.next_seq`` on, filtered. A first row past ``next_seq`` is a hole: it is
        returned as a surprise, nothing given, unless it is in ``settled`` (then the rows
        before it are reported lost and the follow goes on from it)."""
        f = self.filters
        seq = batch.column("seq")
        n = len(seq)
        first, last = seq[0].as_py(), seq[n - 1].as_py()
        if last < state.next_seq:
            return None
        if first > state.next_seq:
            surprise = (*where, first)
            if surprise not in settled:
                return surprise
            self._lost(state, first, "neither a part nor a journal holds them")
        elif first < state.next_seq:
            batch = batch.slice(state.next_seq - first)
        state.next_seq = last + 1
        if f.end is not None and _passes(batch, f.end):
            state.past_end = True
        for piece in pa.Table.from_batches([batch]).to_batches(max_chunksize=self.batch_size):
            piece = f.apply(piece)
            if piece.num_rows:
                yield self._select(piece)
        return None

    def _lost(self, state: _State, first: int, why: str) -> None:
        """Rows ``state.next_seq`` .. ``first - 1`` are nowhere: said once, passed over."""
        lo, hi = state.next_seq, first - 1
        seqs = f"seq {lo}" if lo == hi else f"seq {lo}..{hi}"
        self._say(f"{state.folder}: {hi - lo + 1:,} row(s) lost, {seqs}: {why}; going on "
                  f"from seq {first} (run 'wsrec verify')")
        state.next_seq = first

    def _select(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch if batch.schema.names == self.columns else batch.select(self.columns)

    def _next(self, state: _State) -> Session | None:
        """The session that continues a sealed one (None: none does)."""
        manifest = state.manifest
        if manifest["status"] == "failed":
            self._say(f"note: {state.session.venue}/{state.session.id} ended failed: "
                      f"{manifest.get('error') or 'no reason given'}")
        following = manifest.get("continued_by")
        if not following:
            return None
        return Session(next_folder(state.folder, following))

    def _say(self, line: str) -> None:
        (self._warn or self.session.warn)(line)


def _passes(rows, end: int) -> bool:
    """Whether any of ``rows`` (a batch or table with ``ts``) is at or past ``end``."""
    if not rows.num_rows:
        return False
    return pc.max(rows.column("ts").cast(pa.int64())).as_py() >= end


def next_folder(folder: Path, session_id: str, key: str = "continued_by") -> Path:
    """The folder of session ``session_id`` that the manifest of the session in
    ``folder`` names (``continued_by`` or ``continues``): in the same venue folder,
    under the date its id begins with (``wsrec.store.layout``), or beside it (the older
    layout); SessionNotFound when it is not there."""
    folder = Path(folder)
    start = start_of(session_id)
    candidates = []
    if parse_date_dir(folder.parent.name) is not None and start is not None:
        candidates.append(folder.parent.parent / date_dir(date_of(start)) / session_id)
    candidates.append(folder.parent / session_id)
    for candidate in candidates:
        if (candidate / MANIFEST).is_file():
            return candidate
    raise SessionNotFound(f"{folder}: its manifest says {key} {session_id}, which is not "
                          f"in {folder.parent.parent if len(candidates) > 1 else folder.parent}")


def chain_start(session: Session, start: int | None) -> Session:
    """The session to follow from for rows from ``start`` (ns) on: ``session``, or when
    ``start`` is before it, the earliest session of its rotation chain (``continues``,
    back from it) that is not wholly before ``start``. A link that can't be followed
    (a session deleted since) ends the walk there."""
    seen = {session.id}
    while start is not None and session.start_ns is not None and start < session.start_ns:
        before = session.manifest.get("continues")
        if not before or before in seen:
            break
        try:
            previous = Session(next_folder(session.path, before, "continues"))
        except SessionNotFound:
            break
        seen.add(before)
        session = previous
    return session
