"""The data root and how a SESSION reference finds a session folder.

Layout: ``<root>/<venue>/<session id>/session.json``. The root is ``--data``, else
``$WSREC_DATA``, else ``./wsrec-data``. Session ids begin with their UTC start
time, so sorting ids sorts sessions by start.

A reference is, in the order tried: a path to a session folder; ``last`` (the
newest session of all); a venue name (that venue's newest); ``venue/prefix``; a
session id or a prefix that matches exactly one session.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Callable

from wsrec.errors import AmbiguousSession, CorruptData, SessionNotFound, UnsupportedDataRoot
from wsrec.store.manifest import MANIFEST, load_manifest
from wsrec.store._part import part_index

__all__ = ["data_root", "check_root", "session_folders", "resolve", "print_warning",
           "DEFAULT_DATA", "ENV_DATA"]

DEFAULT_DATA = "wsrec-data"
ENV_DATA = "WSREC_DATA"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def check_root(data) -> str:
    """``data`` if it names a local folder, else UnsupportedDataRoot (a URL such as
    ``s3://bucket/x``; a local path may contain ``:``)."""
    text = os.fspath(data)
    if _URL.match(text):
        raise UnsupportedDataRoot(
            f"data root {text!r} is a URL; only local folders are supported (mount the "
            f"storage, or give a local path)")
    return text


def data_root(data=None) -> Path:
    if data is None or data == "":
        data = os.environ.get(ENV_DATA) or DEFAULT_DATA
    return Path(check_root(data)).expanduser()


Warn = Callable[[str], None]


def print_warning(message: str) -> None:
    """The default for ``warn`` callbacks: one ``warning: ...`` line on stderr."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def session_folders(data=None, venue: str | None = None, *,
                    warn: Warn | None = None) -> list[Path]:
    """Every session folder under the root (or one venue), oldest first.

    That includes folders that look like sessions but can't be opened: a folder with
    parts or journals and no ``session.json``, or one that can't be listed. Opening
    them (``Session``) raises CorruptData saying why, so a caller can report them
    instead of losing sight of them. A venue folder that can't be listed is reported
    through ``warn`` (default: a line on stderr) and skipped; an unreadable data root
    is an error.
    """
    root = data_root(data)
    warn = warn or print_warning
    venues = [root / venue] if venue else _subdirs(root)
    found = []
    for v in venues:
        try:
            folders = _subdirs(v)
        except SessionNotFound as exc:
            if venue:
                raise
            warn(f"{exc}; its sessions are not listed")
            continue
        found.extend(f for f in folders if _looks_like_session(f))
    return sorted(found, key=lambda f: (f.name, f.parent.name))


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


def _readable(folders: list[Path], warn: Warn) -> Path | None:
    """The newest of ``folders`` whose manifest loads; the others newer than it are
    reported through ``warn``."""
    for folder in reversed(folders):
        try:
            load_manifest(folder)
        except CorruptData as exc:
            warn(f"skipped {folder.parent.name}/{folder.name}: {exc}")
            continue
        return folder
    return None


def resolve(ref, data=None, *, warn: Warn | None = None) -> Path:
    """The folder of the session ``ref`` names (see the module doc).

    ``last`` and a venue name pick the newest session whose manifest can be read,
    reporting the newer ones that can't through ``warn`` (default: a line on stderr).
    """
    warn = warn or print_warning
    if isinstance(ref, Path) or _is_file(Path(str(ref)) / MANIFEST) \
            or os.sep in str(ref) and _exists(Path(ref)):
        folder = Path(ref)
        if _is_file(folder / MANIFEST) or _is_dir(folder) and _looks_like_session(folder):
            return folder  # opening it says what is wrong with it, if anything
        raise SessionNotFound(f"{folder} is not a session folder (no {MANIFEST} in it)")
    ref = str(ref)
    root = data_root(data)
    if not ref:
        raise SessionNotFound("empty session reference")
    if ref == "last":
        folders = session_folders(data, warn=warn)
        if not folders:
            raise SessionNotFound(f"no sessions under {root}; record one or pass --data")
        found = _readable(folders, warn)
        if found is None:
            raise SessionNotFound(f"no readable session under {root} ({len(folders)} "
                                  f"unreadable); see 'wsrec ls'")
        return found
    if "/" not in ref and _is_dir(root / ref) and not _exists(root / ref / MANIFEST):
        folders = session_folders(data, ref, warn=warn)
        if not folders:
            raise SessionNotFound(f"venue {ref!r} has no sessions under {root}")
        found = _readable(folders, warn)
        if found is None:
            raise SessionNotFound(f"venue {ref!r} has no readable session under {root} "
                                  f"({len(folders)} unreadable); see 'wsrec ls {ref}'")
        return found
    venue, _, prefix = ref.rpartition("/")
    folders = session_folders(data, venue or None, warn=warn)
    matches = [f for f in folders if f.name == prefix] or \
              [f for f in folders if f.name.startswith(prefix)]
    if not matches:
        raise SessionNotFound(f"no session matches {ref!r} under {root} "
                              f"(try 'wsrec ls' to see the sessions)")
    if len(matches) > 1:
        names = ", ".join(f"{f.parent.name}/{f.name}" for f in matches[:5])
        more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
        raise AmbiguousSession(f"{ref!r} matches {len(matches)} sessions ({names}{more}); "
                               f"give more of the id")
    return matches[0]
