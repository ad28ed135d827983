"""``wsrec repair``: finish what a crash (or a full disk) left, from the journals.

For each journal of a part the manifest does not list, the part is rebuilt from
the journal's complete batches (a torn tail is dropped), published, listed, and
the journal deleted. A part already published under its final name but not yet
listed (a crash between rename and manifest update) is adopted when it holds the
journal's rows. Leftover journals of listed parts and temporary files go.
Connections and gaps are recomputed from the event rows, and a crashed session
becomes ``recovered``. Complete parts are never rewritten; a sound session is left
exactly as it is.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .connections import track
from .errors import CorruptData, first_line, storage_error
from .journal import journal_rows, read_journal
from .lock import SessionLock
from .manifest import save_manifest
from .part import PartWriter, file_sha256, fsync_dir, part_index
from .session import Session
from .timefmt import format_ns
from .upgrade import upgrade as migrate

__all__ = ["repair"]


def repair(folder, *, upgrade: bool = False) -> list[str]:
    """Repair the session in ``folder``; returns what was done, one line each.

    A session in an older format is migrated first when ``upgrade`` is true (see
    ``wsrec.upgrade``), else OutdatedFormat is raised. Raises SessionBusy when a
    recorder still holds the session.
    """
    done: list[str] = []
    if upgrade:
        done = migrate(folder)
    with SessionLock(folder):
        session = Session(folder)
        session.check_format()
        actions: list[str] = done
        try:
            _repair(session, actions)
        except OSError as exc:
            raise storage_error(exc, str(session.path)) from exc
        return actions


def _repair(session: Session, actions: list[str]) -> None:
    manifest = session.manifest
    for path in session.temp_files:
        os.unlink(path)
        actions.append(f"removed temporary {path.name}")
    for journal in session.journals:
        index = part_index(journal.name)[0]
        entry, how = _adopt(session, index, journal), "adopted"
        if entry is None:
            entry, how = _rebuild(session, index, journal), "rebuilt"
        if entry is not None:
            manifest["parts"].append(entry)
            manifest["parts"].sort(key=lambda p: p["seq_first"])
            save_manifest(session.path, manifest)
            actions.append(f"{how} {entry['file']} ({entry['rows']} rows) from {journal.name}")
        else:
            actions.append(f"dropped empty {journal.name}")
        os.unlink(journal)
        fsync_dir(session.path)
    for journal in session.leftover_journals:
        os.unlink(journal)
        actions.append(f"removed leftover {journal.name}")
    if manifest["status"] == "recording" or actions:  # we hold the lock: not live
        tracker = track(Session(session.path).frames(direction="event"))
        manifest.update(tracker.as_dict())
        if manifest["status"] == "recording":
            manifest["status"] = "recovered"
            actions.append("marked the session recovered")
        if not manifest.get("ended") and manifest["parts"]:
            manifest["ended"] = max(p["end"] for p in manifest["parts"])
        save_manifest(session.path, manifest)


def _rebuild(session: Session, index: int, journal) -> dict | None:
    settings = session.manifest.get("settings", {})
    part = PartWriter(session.path, index, session.venue, session.id,
                      compression_level=settings.get("compression_level"))
    try:
        for batch in read_journal(journal):
            part.add(batch)
        return part.finish()
    except BaseException:
        part.abort()
        if part.tmp.exists():
            os.unlink(part.tmp)
        raise


def _adopt(session: Session, index: int, journal) -> dict | None:
    """A final-named, unlisted part that holds at least the journal's rows, as an entry."""
    final = session.path / f"part-{index:06d}.parquet"
    if final not in session.orphan_parts:
        return None
    try:
        table = pq.read_table(final, columns=["ts", "mono_ns", "seq", "payload"])
    except (pa.ArrowException, OSError) as exc:
        raise CorruptData(f"{final}: unlisted part is unreadable ({first_line(exc)}); move it "
                          f"aside and run 'wsrec repair' again to rebuild it from "
                          f"{journal.name}") from exc
    n = table.num_rows
    if n == 0 or n < journal_rows(journal):
        raise CorruptData(f"{final}: unlisted part holds fewer rows than {journal.name}; move "
                          f"it aside and run 'wsrec repair' again to rebuild it")
    ts = table.column("ts").cast(pa.int64())
    return {
        "file": final.name,
        "rows": n,
        "seq_first": table.column("seq")[0].as_py(),
        "seq_last": table.column("seq")[n - 1].as_py(),
        "mono_first": table.column("mono_ns")[0].as_py(),
        "mono_last": table.column("mono_ns")[n - 1].as_py(),
        "start": format_ns(pc.min(ts).as_py()),
        "end": format_ns(pc.max(ts).as_py()),
        "bytes": final.stat().st_size,
        "raw_bytes": pc.sum(pc.binary_length(table.column("payload"))).as_py(),
        "sha256": file_sha256(final),
    }
