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
from pathlib import Path

from .errors import AmbiguousSession, SessionNotFound, UnsupportedDataRoot
from .manifest import MANIFEST

__all__ = ["data_root", "check_root", "session_folders", "resolve", "DEFAULT_DATA", "ENV_DATA"]

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


def session_folders(data=None, venue: str | None = None) -> list[Path]:
    """Every session folder under the root (or one venue), oldest first."""
    root = data_root(data)
    venues = [root / venue] if venue else _subdirs(root)
    found = [f for v in venues for f in _subdirs(v) if (f / MANIFEST).is_file()]
    return sorted(found, key=lambda f: (f.name, f.parent.name))


def _subdirs(path: Path) -> list[Path]:
    try:
        return [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except PermissionError:
        raise SessionNotFound(f"cannot read {path}: permission denied") from None


def resolve(ref, data=None) -> Path:
    """The folder of the session ``ref`` names (see the module doc)."""
    if isinstance(ref, Path) or (Path(str(ref)) / MANIFEST).is_file() \
            or os.sep in str(ref) and Path(ref).exists():
        folder = Path(ref)
        if (folder / MANIFEST).is_file():
            return folder
        raise SessionNotFound(f"{folder} is not a session folder (no {MANIFEST} in it)")
    ref = str(ref)
    root = data_root(data)
    if not ref:
        raise SessionNotFound("empty session reference")
    if ref == "last":
        folders = session_folders(data)
        if not folders:
            raise SessionNotFound(f"no sessions under {root}; record one or pass --data")
        return max(folders, key=lambda f: (f.name, f.parent.name))
    if "/" not in ref and (root / ref).is_dir() and not (root / ref / MANIFEST).exists():
        folders = session_folders(data, ref)
        if not folders:
            raise SessionNotFound(f"venue {ref!r} has no sessions under {root}")
        return folders[-1]
    venue, _, prefix = ref.rpartition("/")
    folders = session_folders(data, venue or None)
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
