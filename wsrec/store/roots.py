"""The data root and how a SESSION reference finds a session folder.

Layout (``wsrec.store.layout``): ``<root>/venue=<venue>/date=<YYYY-MM-DD>/<session
id>/session.json``; sessions written before it lie at ``<root>/<venue>/<session id>/``
and are read all the same. The root is ``--data``, else ``$WSREC_DATA``, else
``./wsrec-data``: a local folder or a bucket (``wsrec.store.location``). Session ids
begin with their UTC start time, so sorting ids sorts sessions by start.

A reference is, in the order tried: a path to a session folder; ``last`` (the
newest session of all); a venue name (that venue's newest); ``venue/prefix``; a
session id or a prefix that matches exactly one session.

Session folders are ``Path`` objects on a local root and ``RootPath`` objects on a
remote one; ``Session`` opens either.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pyarrow.fs as pafs

from wsrec.errors import (AmbiguousSession, CorruptData, SessionNotFound, UnsupportedDataRoot,
                          WsrecError)
from wsrec.store.layout import (DAY_NS, date_dir, dates_between, parse_date_dir, parse_rel,
                                parse_venue_dir, start_of, venue_dir, venue_of)
from wsrec.store.location import (DEFAULT_DATA, ENV_DATA, Root, RootPath, check_data,
                                  is_remote_url, open_root)
from wsrec.store.manifest import MANIFEST, load_manifest
from wsrec.store._part import part_index
from wsrec.logs import log
from wsrec.timefmt import parse_time

__all__ = ["data_root", "check_root", "session_folders", "resolve", "print_warning",
           "folder_label", "DEFAULT_DATA", "ENV_DATA"]


def check_root(data) -> str:
    """``data`` if it can name a data root: a local folder (whose path may contain
    ``:``), ``file:///abs/path``, ``s3://bucket/prefix`` or ``gs://bucket/prefix``; else
    UnsupportedDataRoot. Nothing is contacted."""
    return check_data(os.fspath(data))


def data_root(data=None) -> Path:
    """The local folder of the data root, for the commands that write (a remote root is
    read-only in this version: UnsupportedDataRoot)."""
    if isinstance(data, Root):
        if not data.local:
            raise _read_only(data.url)
        return Path(data.base)
    text = os.fspath(data) if data is not None and data != "" else \
        os.environ.get(ENV_DATA) or DEFAULT_DATA
    if is_remote_url(text):
        raise _read_only(text)
    return Path(open_root(text).base)


def _read_only(url: str) -> UnsupportedDataRoot:
    if "@" in url:
        url = url.split("://")[0] + "://..."  # never show credentials
    return UnsupportedDataRoot(f"{url}: writing needs a local data root; s3:// and gs:// "
                               f"roots are read-only in this version", param="data")


Warn = Callable[[str], None]


def print_warning(message: str) -> None:
    """The default for ``warn`` callbacks: one ``warning: ...`` line on stderr
    (``wsrec.logs``: a JSON line with ``--log-format json``)."""
    log(str(message), "warning")


def folder_label(folder) -> str:
    """``venue/session id`` of a session folder, in either layout."""
    folder_path = folder if isinstance(folder, (Path, RootPath)) else Path(folder)
    parent = folder_path.parent
    if parse_date_dir(parent.name) is not None:
        venue = parse_venue_dir(parent.parent.name)
        if venue is not None:
            return f"{venue}/{folder_path.name}"
    return f"{parent.name}/{folder_path.name}"


def session_folders(data=None, venue: str | None = None, *,
                    warn: Warn | None = None, dates: set[str] | None = None) -> list:
    """Every session folder under the root (or one venue), oldest first.

    That includes folders that look like sessions but can't be opened: a folder with
    parts or journals and no ``session.json``, or one that can't be listed. Opening
    them (``Session``) raises CorruptData saying why, so a caller can report them
    instead of losing sight of them. A venue folder that can't be listed is reported
    through ``warn`` (default: a line on stderr) and skipped; an unreadable data root
    is an error. ``dates``: only these ``date=`` folders of the partitioned layout (the
    legacy layout has none: all of its sessions).
    """
    root = open_root(data)
    if not root.local:
        return _remote_folders(root, venue, dates)
    base = Path(root.base)
    warn = warn or print_warning
    if venue:
        tops = [(base / venue_dir(venue), venue, True), (base / venue, venue, False)]
    else:
        tops = []
        for d in _subdirs(base):
            v = parse_venue_dir(d.name)
            if v is not None:
                tops.append((d, v, True))
            elif "=" not in d.name:
                tops.append((d, d.name, False))
    found = []
    for top, v, hive in tops:
        try:
            if hive:
                folders = []
                for date in _subdirs(top):
                    day = parse_date_dir(date.name)
                    if day is not None and (dates is None or day in dates):
                        folders.extend(_subdirs(date))
            else:
                folders = _subdirs(top)
        except SessionNotFound as exc:
            if venue:
                raise
            warn(f"{exc}; its sessions are not listed")
            continue
        found.extend((f.name, v, f) for f in folders if _looks_like_session(f))
    return [f for _, _, f in sorted(found, key=lambda t: (t[0], t[1]))]


def _remote_folders(root: Root, venue: str | None,
                    dates: set[str] | None = None) -> list[RootPath]:
    """A bucket's session folders: one recursive listing per venue folder, or per date
    folder with ``dates`` (an object store has no empty folders: a folder is there when
    an object is under it)."""
    root.check()
    if venue:
        tops = [venue_dir(venue), venue]
    else:
        tops = [n for n in root.list_dirs() if parse_venue_dir(n) is not None or "=" not in n]
    if dates is not None:
        tops = [f"{top}/{date_dir(d)}" if parse_venue_dir(top) else top
                for top in tops for d in (sorted(dates) if parse_venue_dir(top) else [None])]
    found: dict[str, tuple[str, str]] = {}
    skip = len(root.base.rstrip("/")) + 1
    for top in tops:
        for info in root.list(top, recursive=True):
            if info.type != pafs.FileType.File:
                continue
            folder, _, name = info.path[skip:].rpartition("/")
            if folder in found or (name != MANIFEST and part_index(name) is None):
                continue
            where = parse_rel(folder)
            if where is None or (venue and where.venue != venue):
                continue
            found[folder] = (where.session, where.venue)
    return [RootPath(root, rel) for rel, _ in sorted(found.items(), key=lambda kv: kv[1])]


def _subdirs(path: Path) -> list[Path]:
    out = []
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_dir():
                        out.append(Path(entry.path))
                except OSError:
                    continue
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise SessionNotFound(f"cannot read {path}: {exc.strerror or exc}") from None
    return out


def _looks_like_session(folder: Path) -> bool:
    """A manifest, a part or a journal in it; or it can't be looked into (say so later)."""
    try:
        with os.scandir(folder) as entries:
            return any(e.name == MANIFEST or part_index(e.name) is not None for e in entries)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # permission denied on a folder on the way: not one we can use
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return True  # something is there, we may not look


def _is_venue(root: Root, name: str) -> bool:
    """Whether ``name`` is a venue with a folder under the root (in either layout)."""
    if "=" in name or name in (".", ".."):
        return False
    if root.local:
        base = Path(root.base)
        return _is_dir(base / venue_dir(name)) or \
            _is_dir(base / name) and not _exists(base / name / MANIFEST)
    return any(n in (name, venue_dir(name)) for n in root.list_dirs())


def _readable(folders: list, warn: Warn):
    """The newest of ``folders`` whose manifest loads; the others newer than it are
    reported through ``warn``."""
    for folder in reversed(folders):
        try:
            load_manifest(folder)
        except CorruptData as exc:
            warn(f"skipped {folder_label(folder)}: {exc}")
            continue
        return folder
    return None


def sessions_between(data, venue: str | None, start: int | None, end: int | None, *,
                     warn: Warn | None = None) -> list:
    """The sessions (of ``venue``, or all) that may hold rows in [start, end) (ns; None:
    open), oldest first, without reading every manifest: only the ``date=`` folders from
    the day before ``start`` to ``end``'s are listed (a session rotated daily starts at
    most a day before a row it holds; one recorded with ``--rotate never`` that started
    earlier is missed), a session whose id (its start time) is at or after ``end`` is left
    out, and only the manifests of sessions that started before ``start`` are read, to see
    whether they ended before it."""
    dates = dates_between(start - DAY_NS if start is not None else None, end)
    folders = session_folders(data, venue, warn=warn,
                              dates=set(dates) if dates is not None else None)
    chosen = []
    for folder in folders:
        began = start_of(folder.name)
        if began is not None and end is not None and began >= end:
            continue
        if start is not None and (began is None or began < start) and \
                _ended_before(folder, start):
            continue
        chosen.append(folder)
    return chosen


def _ended_before(folder, start: int) -> bool:
    """Whether the session in ``folder`` ended before ``start`` (by its manifest; False
    when it can't be read: opening it reports why)."""
    try:
        ended = load_manifest(folder).get("ended")
        return ended is not None and parse_time(ended) < start
    except (WsrecError, ValueError):
        return False


def resolve_range(ref, data=None, start: int | None = None, end: int | None = None, *,
                  warn: Warn | None = None) -> list:
    """The folders ``ref`` names for a replay or conversion of [start, end): a venue name
    with a time range is every session of that venue in the range (``sessions_between``;
    its newest when none is); anything else, or no range, is ``resolve``'s one folder."""
    ref_text = str(ref)
    if (start is None and end is None) or isinstance(ref, (Path, RootPath)) or \
            "/" in ref_text or ref_text in ("", "last") or os.sep in ref_text:
        return [resolve(ref, data, warn=warn)]
    root = open_root(data)
    if not _is_venue(root, ref_text):
        return [resolve(ref, data, warn=warn)]
    # none in the range: its newest, whose filters then say what the session spans
    return sessions_between(root, ref_text, start, end, warn=warn) or \
        [resolve(ref, data, warn=warn)]


def resolve(ref, data=None, *, warn: Warn | None = None):
    """The folder of the session ``ref`` names (see the module doc): a ``Path`` on a
    local root, a ``RootPath`` on a remote one.

    ``last`` and a venue name pick the newest session whose manifest can be read,
    reporting the newer ones that can't through ``warn`` (default: a line on stderr).
    """
    warn = warn or print_warning
    if isinstance(ref, RootPath):
        return ref
    if isinstance(ref, Path) or _is_file(Path(str(ref)) / MANIFEST) \
            or os.sep in str(ref) and _exists(Path(ref)):
        folder = Path(ref)
        if _is_file(folder / MANIFEST) or _is_dir(folder) and _looks_like_session(folder):
            return folder  # opening it says what is wrong with it, if anything
        raise SessionNotFound(f"{folder} is not a session folder (no {MANIFEST} in it)")
    ref = str(ref)
    root = open_root(data)
    if not ref:
        raise SessionNotFound("empty session reference")
    if ref == "last":
        folders = session_folders(root, warn=warn)
        if not folders:
            raise SessionNotFound(f"no sessions under {root.url}; record one or pass --data")
        found = _readable(folders, warn)
        if found is None:
            raise SessionNotFound(f"no readable session under {root.url} ({len(folders)} "
                                  f"unreadable); see 'wsrec ls'")
        return found
    if "/" not in ref and _is_venue(root, ref):
        folders = session_folders(root, ref, warn=warn)
        if not folders:
            raise SessionNotFound(f"venue {ref!r} has no sessions under {root.url}")
        found = _readable(folders, warn)
        if found is None:
            raise SessionNotFound(f"venue {ref!r} has no readable session under {root.url} "
                                  f"({len(folders)} unreadable); see 'wsrec ls {ref}'")
        return found
    venue, _, prefix = ref.rpartition("/")
    folders = session_folders(root, venue or None, warn=warn)
    matches = [f for f in folders if f.name == prefix] or \
              [f for f in folders if f.name.startswith(prefix)]
    if not matches:
        raise SessionNotFound(f"no session matches {ref!r} under {root.url} "
                              f"({'' if venue else _did_you_mean(ref, folders)}try 'wsrec "
                              f"ls' to see the sessions)")
    if len(matches) > 1:
        names = ", ".join(folder_label(f) for f in matches[:5])
        more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
        raise AmbiguousSession(f"{ref!r} matches {len(matches)} sessions ({names}{more}); "
                               f"give more of the id")
    return matches[0]


def _did_you_mean(ref: str, folders: list) -> str:
    """``did you mean 'venue'? `` for a mistyped venue name: one with sessions under the
    root, else a venue wsrec knows (which has none there); "" when none is close."""
    import difflib
    from wsrec.venues import VENUES
    close = difflib.get_close_matches(ref, sorted({venue_of(f) for f in folders}), n=1,
                                      cutoff=0.75)
    if close:
        return f"did you mean {close[0]!r}? "
    close = difflib.get_close_matches(ref, sorted(VENUES), n=1, cutoff=0.75)
    return f"did you mean {close[0]!r}? it has no sessions there either; " if close else ""
