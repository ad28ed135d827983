"""``wsrec prune``: whole sessions that ended before a cutoff, removed from a data root.

A session is old when it ended more than ``older_than_ns`` before now: by ``ended`` in its
manifest, or for a crashed session by its newest row (a session that began 40 days ago and
is still being recorded is never old). Only whole sessions go, and only when nothing says
they should stay:

- **being recorded**: a writer holds its lock (``wsrec.store._lock``). Never removed: prune
  takes the lock itself for the removal, so a recorder or ``wsrec repair`` can't hold it
  meanwhile.
- **crashed**: status ``recording`` and no lock held, never repaired. Kept unless
  ``include_crashed`` (``wsrec repair`` finishes it as ``recovered``, which prune removes).
- **not a session wsrec wrote**: a folder that is a symbolic link or lies under one, a
  ``session.json`` that can't be read or names another session, or any entry that is not a
  regular file of a name wsrec writes (``session.json``, ``session.lock``, parts, journals,
  their temporary and ``.damaged`` names). Reported and left alone.

A local session is removed under its lock: renamed to a hidden ``.pruning-<id>`` beside it
(so every reader stops seeing it at once), its files unlinked (parts first, the lock, still
held, last), the folder removed. A date folder left empty goes too, unless it is today's or
later (a recorder may be about to create a session in it), and so does a legacy venue folder
left empty. A ``.pruning-`` folder left by an interrupted prune is finished by the next one,
under its lock, which is never created there: one held is another prune's, finishing it, and
one gone leaves only an empty folder to remove. A session another prune removed meanwhile is
not reported at all.

In a bucket there is no lock: a session whose manifest says ``recording`` (``uploading``:
its recorder may be running, or may have crashed) counts as crashed. Its objects are
deleted parts first and ``session.json`` last, so an interrupted prune leaves a session the
next prune still recognises and finishes.

Rotated sessions (``continues`` / ``continued_by``) are removed one by one like any other:
by end time the older sessions of a chain go first, and the next one keeps naming the
session it continued, which readers never need.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow.fs as pafs

from wsrec.errors import SessionBusy, StorageError, UsageError, WsrecError, first_line
from wsrec.store._lock import LOCK, SessionLock
from wsrec.store.atomic import fsync_dir
from wsrec.store.disk import format_size
from wsrec.store.layout import date_of, parse_date_dir, start_of, venue_of
from wsrec.store.location import RootPath, open_root
from wsrec.store.manifest import MANIFEST, load_manifest
from wsrec.store.roots import Warn, folder_label, print_warning, session_folders
from wsrec.store.session import Session
from wsrec.store.writer import check_name
from wsrec.timefmt import format_ns

__all__ = ["prune", "PruneReport", "Removed", "Kept", "KEPT_REASONS", "is_wsrec_file"]

#: why a session old enough was kept: being recorded, crashed (local), ``recording`` in a
#: bucket, unreadable or not only what wsrec writes (left alone), or its removal failed
KEPT_REASONS = ("live", "crashed", "uploading", "left", "error")
#: the names wsrec writes in a session folder (``*.tmp``: being replaced; ``.fetch``:
#: ``repair --spool`` downloading; ``.damaged[.N]``: moved aside by ``repair``)
_OURS = re.compile(r"(session\.json(\.tmp)?|session\.lock|part-\d{6,}\.(parquet|journal|"
                   r"parquet\.tmp|parquet\.fetch))(\.damaged(\.\d+)?)?")
_HIDDEN = ".pruning-"


def is_wsrec_file(name: str) -> bool:
    """Whether wsrec writes files of this name in a session folder."""
    return _OURS.fullmatch(name) is not None


@dataclass(frozen=True)
class Removed:
    """A session removed (or, in a dry run, that would be)."""
    venue: str
    id: str
    path: str
    ended_ns: int | None
    frames: int
    bytes: int
    status: str

    def line(self, dry_run: bool = False) -> str:
        """``removed alpaca/<id> (ended 2026-10-01T12:00:00Z, 1,234 frames, 1.2 MiB)``."""
        ended = format_ns(self.ended_ns)[:19] + "Z" if self.ended_ns is not None else "-"
        return (f"{'would remove' if dry_run else 'removed'} {self.venue}/{self.id} (ended "
                f"{ended}, {self.frames:,} frames, {format_size(self.bytes)})")


@dataclass(frozen=True)
class Kept:
    """A session old enough that stays: ``reason`` is one of ``KEPT_REASONS``."""
    venue: str
    id: str
    path: str
    reason: str
    detail: str


@dataclass
class PruneReport:
    cutoff_ns: int
    dry_run: bool
    removed: list[Removed] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)

    def kept_for(self, *reasons: str) -> list[Kept]:
        return [k for k in self.kept if k.reason in reasons]

    def summary(self) -> str:
        """One line: what went, how much, and what stayed and why."""
        verb = "would remove" if self.dry_run else "removed"
        size = sum(r.bytes for r in self.removed)
        line = (f"{verb} {len(self.removed)} session(s) ended before "
                f"{format_ns(self.cutoff_ns)[:19]}Z ({format_size(size)})")
        kept = []
        for reason, what in (("live", "being recorded"),
                             ("crashed", "crashed (run 'wsrec repair', or pass "
                                         "--include-crashed)"),
                             ("uploading", "still 'recording' in the bucket (pass "
                                           "--include-crashed if its recorder is gone)"),
                             ("left", "left alone (see the warnings)"),
                             ("error", "that could not be removed")):
            n = len(self.kept_for(reason))
            if n:
                kept.append(f"{n} {what}")
        return line + (f"; kept {', '.join(kept)}" if kept else "")

    def as_dict(self) -> dict:
        return {"cutoff": format_ns(self.cutoff_ns), "dry_run": self.dry_run,
                "removed": [{**asdict(r), "ended": format_ns(r.ended_ns)}
                            for r in self.removed],
                "kept": [asdict(k) for k in self.kept]}


def prune(data, older_than_ns: int, *, venue: str | None = None, dry_run: bool = False,
          include_crashed: bool = False, now_ns: int | None = None,
          warn: Warn | None = None) -> PruneReport:
    """Remove every session under the data root ``data`` (a local folder or a bucket; of
    ``venue`` only, when given) that ended more than ``older_than_ns`` before ``now_ns``
    (default: the wall clock), as the module doc says. ``dry_run``: remove nothing, report
    the same. A session that could not be removed is in ``kept`` (reason ``error``); the
    others go on. ``warn``: told of venue folders that can't be listed."""
    if type(older_than_ns) is not int or older_than_ns < 0:
        raise UsageError(f"older_than must be a duration >= 0, not {older_than_ns!r}",
                         param="older_than")
    if venue is not None:
        check_name("venue", venue)
    now = time.time_ns() if now_ns is None else now_ns
    report = PruneReport(now - older_than_ns, dry_run)
    root = open_root(data)
    if root.local and not dry_run:
        _finish_interrupted(Path(root.base), venue, now, warn)
    for folder in session_folders(root, venue, warn=warn):
        began = start_of(folder.name)
        if began is not None and began >= report.cutoff_ns:
            continue   # it ended after it began: not old (its manifest is not read)
        outcome = _remote(folder, report, include_crashed) if isinstance(folder, RootPath) \
            else _local(Path(root.base), folder, report, include_crashed, now)
        if isinstance(outcome, Removed):
            report.removed.append(outcome)
        elif isinstance(outcome, Kept):
            report.kept.append(outcome)
    return report


# -- one session ---------------------------------------------------------------------------

def _kept(folder, reason: str, detail: str) -> Kept:
    venue, _, sid = folder_label(folder).partition("/")
    return Kept(venue, sid, str(folder), reason, detail)


def _open_old(folder, cutoff: int):
    """(the session, when it ended) if it ended before ``cutoff``, else None; a ``Kept``
    when it is being recorded since before the cutoff (live), or when it can't be read or
    isn't the session its path names (left)."""
    try:
        session = Session(folder)
        if (session.venue, session.id) != (venue_of(folder), folder.name):
            return _kept(folder, "left", f"its {MANIFEST} is of {session.venue}/{session.id}, "
                                         f"not of this folder")
        if session.live:   # never old; said when it would be
            began = session.start_ns
            return _kept(folder, "live", "being recorded") \
                if began is not None and began < cutoff else None
        ended = session.end_ns
        ended = session.start_ns if ended is None else ended
    except (WsrecError, OSError) as exc:
        return _kept(folder, "left", f"cannot read it: {_text(exc)}")
    if ended is None:
        return _kept(folder, "left", "cannot tell when it ended")
    return (session, ended) if ended < cutoff else None


def _text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, WsrecError) else (getattr(exc, "strerror", None)
                                                         or first_line(exc))


def _removed(session: Session, ended: int) -> Removed:
    return Removed(session.venue, session.id, str(session.path), ended, session.rows(),
                   session.disk_bytes(), session.status)


def _local(base: Path, folder: Path, report: PruneReport, include_crashed: bool,
           now: int):
    opened = _open_old(folder, report.cutoff_ns)
    if not isinstance(opened, tuple):
        return _unless_gone(folder, opened)
    session, ended = opened
    if session.crashed and not include_crashed:
        return _kept(folder, "crashed", "crashed while recording, never repaired")
    foreign = _foreign_path(base, folder) or _foreign_files(folder)
    if foreign:
        return _unless_gone(folder, _kept(folder, "left", foreign))
    try:
        removed = _removed(session, ended)
    except (WsrecError, OSError) as exc:
        return _unless_gone(folder, _kept(folder, "left", f"cannot read it: {_text(exc)}"))
    if report.dry_run:
        return removed
    try:
        lock = SessionLock(folder)
    except SessionBusy:
        if not os.path.lexists(folder):
            return None   # being removed by another prune, which renamed it
        return _kept(folder, "live", "being recorded")
    except StorageError as exc:
        if not os.path.lexists(folder):
            return None   # removed meanwhile (another prune)
        return _kept(folder, "error", str(exc))
    try:
        with lock:
            if not os.path.lexists(lock.path):
                return None   # locked after another prune removed it (and its lock)
            # under the lock nothing else changes it: look again, then remove it
            if load_manifest(folder)["status"] == "recording" and not include_crashed:
                return _kept(folder, "crashed", "crashed while recording, never repaired")
            foreign = _foreign_files(folder)
            if foreign:
                return _kept(folder, "left", foreign)
            _remove_folder(folder, lock)
    except (WsrecError, OSError) as exc:
        return _kept(folder, "error", f"could not remove it: {_text(exc)}")
    _drop_empty_parent(folder.parent, now)
    return removed


def _unless_gone(folder: Path, outcome):
    """``outcome``, or None when ``folder`` is gone: another prune removed it meanwhile."""
    return outcome if os.path.lexists(folder) else None


def _foreign_path(base: Path, folder: Path) -> str | None:
    """Why ``folder`` is not a real folder under ``base`` (None: it is): a symbolic link on
    the way from the root, or a path that resolves outside it."""
    rel = folder.relative_to(base)
    step = base
    for name in rel.parts:
        step = step / name
        if os.path.islink(step):
            return f"{step} is a symbolic link; prune removes only real folders"
    try:
        inside = os.path.commonpath([os.path.realpath(folder), os.path.realpath(base)]) == \
            os.path.realpath(base)
    except ValueError:
        inside = False
    return None if inside else f"{folder} lies outside the data root"


def _foreign_files(folder: Path) -> str | None:
    """Why ``folder`` holds something wsrec did not write (None: it doesn't)."""
    odd = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                kind = entry.stat(follow_symlinks=False).st_mode
                if not stat.S_ISREG(kind) or not is_wsrec_file(entry.name):
                    odd.append(entry.name + ("/" if stat.S_ISDIR(kind) else ""))
    except OSError as exc:
        return f"cannot list it: {exc.strerror or first_line(exc)}"
    if not odd:
        return None
    shown = ", ".join(sorted(odd)[:3]) + (f" and {len(odd) - 3} more" if len(odd) > 3 else "")
    return f"holds {shown}, which wsrec does not write"


def _remove_folder(folder: Path, lock: SessionLock | None = None) -> None:
    """Rename ``folder`` to a hidden name beside it, unlink its files (parts first, then
    the manifest, and the lock, still held, last), release ``lock``, remove the folder.

    So a second prune finishing the hidden folder meanwhile finds its lock held, or no lock
    and an empty folder, which it may remove first: a folder gone by then is removed."""
    hidden = folder          # an interrupted prune's is hidden already
    if not folder.name.startswith(_HIDDEN):
        hidden, n = folder.with_name(_HIDDEN + folder.name), 0
        while os.path.lexists(hidden):
            n += 1
            hidden = folder.with_name(f"{_HIDDEN}{folder.name}.{n}")
        os.rename(folder, hidden)
        fsync_dir(folder.parent)
    _unlink_all(hidden)
    _unlink(hidden / LOCK)
    if lock is not None:
        lock.release()
    _rmdir(hidden)


def _unlink_all(folder: Path) -> None:
    """Unlink every file in ``folder`` but its lock: parts first, the manifest last."""
    names = [n for n in os.listdir(folder) if n != LOCK]
    for name in sorted(names, key=lambda n: (n == MANIFEST, n)):
        _unlink(folder / name)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _rmdir(folder: Path) -> None:
    """Remove the emptied ``folder`` and make that durable; gone already is done too (another
    prune removed it, and its parent maybe)."""
    try:
        os.rmdir(folder)
        fsync_dir(folder.parent)
    except FileNotFoundError:
        pass


def _drop_empty_parent(parent: Path, now: int) -> None:
    """Remove the session's date folder if it is empty now and older than today (a
    recorder creates today's), or its legacy venue folder if empty."""
    date = parse_date_dir(parent.name)
    if date is not None and date >= date_of(now):
        return
    try:
        parent.rmdir()
    except OSError:
        return   # not empty (or gone): nothing to do


def _finish_interrupted(base: Path, venue: str | None, now: int,
                        warn: Warn | None) -> None:
    """Finish the ``.pruning-`` folders an interrupted prune left (both layouts); quietly
    leave those another prune is finishing now."""
    patterns = [f"venue={venue or '*'}/date=*/{_HIDDEN}*", f"{venue or '*'}/{_HIDDEN}*"]
    for folder in sorted(f for pattern in patterns for f in base.glob(pattern)):
        try:
            problem = _foreign_path(base, folder) or _finish(folder)
        except (WsrecError, OSError) as exc:
            (warn or print_warning)(f"{folder}: could not finish removing it: {_text(exc)}")
            continue
        if problem:
            (warn or print_warning)(f"{folder}: left alone: {problem}")
            continue
        _drop_empty_parent(folder.parent, now)


def _finish(folder: Path) -> str | None:
    """Finish removing the hidden ``folder``, under its lock; why it was left alone (None:
    removed, or being removed by another prune). Its lock is never created: a prune unlinks
    it last, so without it the folder is empty (or gone) and only ``rmdir`` is left."""
    try:
        kind = os.lstat(folder / LOCK).st_mode
    except FileNotFoundError:
        kind = None
    if kind is not None and not stat.S_ISREG(kind):
        return f"holds {LOCK}, which wsrec does not write"   # opened by no one
    try:
        lock = SessionLock(folder, create=False) if kind is not None else None
    except SessionBusy:
        return None   # another prune holds it and is removing it
    except StorageError:
        if os.path.lexists(folder / LOCK):
            raise
        lock = None   # unlinked meanwhile by the prune removing it
    if lock is None or not os.path.lexists(lock.path):   # locked after that prune let go
        if lock is not None:
            lock.release()
        try:
            _rmdir(folder)
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY:
                raise
            return _foreign_files(folder) or f"it holds files but no {LOCK}"
        return None
    with lock:
        foreign = _foreign_files(folder)
        if foreign:
            return foreign
        _remove_folder(folder, lock)
    return None


# -- in a bucket ---------------------------------------------------------------------------

def _remote(folder: RootPath, report: PruneReport, include_crashed: bool):
    opened = _open_old(folder, report.cutoff_ns)
    if not isinstance(opened, tuple):
        return opened
    session, ended = opened
    if session.uploading and not include_crashed:
        return _kept(folder, "uploading", "its manifest says 'recording': being uploaded, "
                                          "or its recorder stopped")
    root = folder.root
    try:
        entries = root.list(folder.rel)
    except WsrecError as exc:
        return _kept(folder, "error", str(exc))
    odd = sorted(e.base_name + ("/" if e.type == pafs.FileType.Directory else "")
                 for e in entries if e.type != pafs.FileType.File
                 or not is_wsrec_file(e.base_name))
    if odd:
        return _kept(folder, "left", f"holds {', '.join(odd[:3])}, which wsrec does not "
                                        f"write")
    removed = _removed(session, ended)
    if report.dry_run:
        return removed
    names = sorted((e.base_name for e in entries),
                   key=lambda n: (n == MANIFEST, n))   # the manifest last
    try:
        for name in names:
            root.delete(f"{folder.rel}/{name}")
        left = [e for e in root.list(folder.rel) if e.type == pafs.FileType.File]
    except WsrecError as exc:
        return _kept(folder, "error", f"could not remove it: {exc}")
    if not left:
        try:   # the empty folder marker pyarrow's S3 client leaves after the last delete
            root.fs.delete_dir(root.path(folder.rel))
        except OSError:
            pass   # only a marker: no reader takes it for a session
    return removed
