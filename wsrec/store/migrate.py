"""``wsrec migrate``: sessions of the legacy layout moved into the partitioned one, losslessly.

Sessions written before the ``venue=<venue>/date=<YYYY-MM-DD>/`` layout lie at
``<root>/<venue>/<session id>/``. wsrec reads both, but engines reading a glob over a root
that mixes them can't (DuckDB refuses the mismatched partitions). A move is one rename per
session: a manifest names its parts by their bare file names, so no byte of a session
changes. A session being recorded (its lock is held) is left where it is and reported.
"""

from __future__ import annotations

import os
from pathlib import Path

from wsrec.errors import SessionBusy, UsageError, WsrecError, storage_error
from wsrec.store.atomic import fsync_dir
from wsrec.store.layout import parse_rel, session_rel, start_of
from wsrec.store.location import open_root
from wsrec.store.manifest import load_manifest
from wsrec.store.roots import session_folders
from wsrec.store._lock import SessionLock
from wsrec.timefmt import parse_time

__all__ = ["migrate"]


def migrate(data=None, *, dry_run: bool = False) -> tuple[list[str], list[str]]:
    """Move every legacy-layout session under the (local) data root into the partitioned
    layout. Returns (what was moved, or would be with ``dry_run``; what was left and
    why), one line each."""
    root = open_root(data)
    if not root.local:
        raise UsageError(f"migrate works on a local data root; {root.url} is read-only in "
                         f"this version", param="data")
    base = Path(root.base)
    moved, left = [], []
    for folder in session_folders(data):
        where = parse_rel(str(Path(folder).relative_to(base)))
        if where is None or not where.legacy:
            continue
        label = f"{where.venue}/{folder.name}"
        try:
            target = base / session_rel(where.venue, folder.name, _started(folder))
        except (ValueError, WsrecError) as exc:
            left.append(f"{label}: left where it is: {exc}")
            continue
        if os.path.lexists(target):
            left.append(f"{label}: left where it is: {target} already exists")
            continue
        if dry_run:
            moved.append(f"{label} -> {target.relative_to(base)}")
            continue
        try:
            with SessionLock(folder):
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(folder, target)
                fsync_dir(target.parent)
                fsync_dir(folder.parent)
        except SessionBusy:
            left.append(f"{label}: left where it is: it is being recorded")
            continue
        except OSError as exc:
            raise storage_error(exc, str(folder)) from exc
        _drop_if_empty(folder.parent)
        moved.append(f"{label} -> {target.relative_to(base)}")
    return moved, left


def _started(folder: Path) -> int | None:
    """When the session began: from its id, else from its manifest."""
    start = start_of(folder.name)
    if start is not None:
        return start
    started = load_manifest(folder).get("started")
    return parse_time(started) if started else None


def _drop_if_empty(folder: Path) -> None:
    """Remove a legacy venue folder left empty (nothing else is ever removed)."""
    try:
        folder.rmdir()
    except OSError:
        pass
