"""``wsrec repair``: finish what a crash (or a full disk, or damage) left, losing nothing
that can be read.

For each journal of a part the manifest does not list, the part is rebuilt from the
journal's intact records (a torn tail is dropped; damaged ranges are skipped, see
``wsrec.store._journal``), published and listed. A part already published under its final name
but not yet listed (a crash between rename and manifest update) is adopted when it holds
the journal's rows. A journal is then deleted only if it was read completely; one with
damage is moved aside (``part-NNNNNN.journal.damaged``, never overwriting anything), and
the rows it lost are recorded in the manifest's ``lost`` list, so ``wsrec verify``
knows that seq gap. Leftover journals of listed parts and temporary files go.
Connections and gaps are recomputed from the event rows, and a crashed session becomes
``recovered``. Complete parts are never rewritten; a sound session is left exactly as it
is.

A missing or unreadable ``session.json`` is rebuilt from the parts and journals in the
folder (the unreadable one is moved aside first): venue and session id from the parts'
rows (or, for a session that only has journals, from the folder names), the part entries
computed from the part files, status ``recovered``.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wsrec._version import __version__
from wsrec.store._connections import track
from wsrec.errors import CorruptData, SessionNotFound, first_line, storage_error
from wsrec.store._journal import MAGIC, JournalScan, scan_journal
from wsrec.store._lock import SessionLock
from wsrec.store.manifest import (FORMAT_VERSION, MANIFEST, MAX_MANIFEST_BYTES, load_manifest,
                                  save_manifest)
from wsrec.store._part import (PartSpan, PartWriter, file_sha256, journal_name, part_index,
                               part_name)
from wsrec.store.atomic import fsync_dir
from wsrec.store.layout import venue_of
from wsrec.store.schema import is_part_schema
from wsrec.store.session import Session
from wsrec.store.roots import resolve
from wsrec.store.upgrade import upgrade as migrate

__all__ = ["repair", "find_session", "repair_spool"]

#: a session.json larger than this is not read to decide whether it can be rebuilt
_ENTRY_COLUMNS = ["ts", "mono_ns", "seq", "dir", "payload", "venue", "session"]


def find_session(ref, data=None) -> Path:
    """The folder ``ref`` names (see ``wsrec.store.roots.resolve``), or, for ``repair`` to
    rebuild its manifest, a folder path without a ``session.json`` that holds parts or
    journals."""
    try:
        return resolve(ref, data)
    except SessionNotFound:
        folder = Path(ref)
        if folder.is_dir() and _data_files(folder):
            return folder
        raise


def repair(folder, *, upgrade: bool = False,
           progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Repair the session in ``folder``; returns what was done, one line each.

    A session in an older format is migrated first when ``upgrade`` is true (see
    ``wsrec.store.upgrade``), else OutdatedFormat is raised. Raises SessionBusy when a
    recorder still holds the session. ``progress(done, total)`` hears how many bytes of
    the journals being turned into parts are read, of how many.
    """
    folder = Path(folder)
    done: list[str] = []
    # before the lock file is made: a folder that is no session is left as it is
    if _manifest_trouble(folder) is None and upgrade:
        done = migrate(folder)
    with SessionLock(folder):
        actions: list[str] = done
        try:
            trouble = _manifest_trouble(folder)  # again, now that nobody else can write
            if trouble is not None:
                _rebuild_manifest(folder, trouble, actions)
            session = Session(folder)
            session.check_format()
            _repair(session, actions, progress)
        except OSError as exc:
            raise storage_error(exc, str(folder)) from exc
        return actions


def _repair(session: Session, actions: list[str], progress=None) -> None:
    manifest = session.manifest
    for path in session.temp_files:
        os.unlink(path)
        actions.append(f"removed temporary {path.name}")
    created: set[str] = set()  # parts this run listed
    total = sum(os.stat(j).st_size for j in session.journals) if progress else 0
    done = 0
    for journal in session.journals:
        index = part_index(journal.name)[0]
        scan = scan_journal(journal, first_seq=_first_seq(manifest, index, created))
        aside = None if scan.ok else _aside_name(journal)
        read = (lambda offset, before=done: progress(before + offset, total)) \
            if progress else None
        entries, whole = _journal_parts(session, index, journal, scan, actions, read)
        done += scan.size
        if progress:
            progress(done, total)
        # rows the journal lost are nowhere else (unless the part it shadows was published
        # whole before the crash): the manifest says which, so verify knows that seq gap
        lost = [] if whole else [
            {"file": aside.name, "offset": d.offset, "bytes": d.length, "rows": d.rows_lost,
             "seq_first": d.seq_first, "seq_last": d.seq_last}
            for d in scan.damaged if d.rows_lost != 0]
        for entry, how in entries:
            manifest["parts"].append(entry)
            created.add(entry["file"])
            actions.append(f"{how} {entry['file']} ({entry['rows']} rows) from {journal.name}")
        manifest["parts"].sort(key=lambda p: p["seq_first"])
        if lost:
            manifest.setdefault("lost", []).extend(lost)
        if entries or lost:
            save_manifest(session.path, manifest)  # before the journal goes
        if scan.ok:
            if not entries:
                actions.append(f"dropped empty {journal.name}")
            os.unlink(journal)
        elif whole:
            aside = _move_aside(journal, aside)
            actions.append(f"{journal.name}: {scan.damaged_bytes:,} damaged bytes (the adopted "
                           f"part holds its rows); moved it aside to {aside.name}")
        else:
            aside = _move_aside(journal, aside)
            actions.append(_damage_line(journal.name, scan, aside.name))
        fsync_dir(session.path)
    for journal in session.leftover_journals:
        scan = scan_journal(journal)
        if scan.ok:
            os.unlink(journal)
            actions.append(f"removed leftover {journal.name}")
        else:  # its part is listed, so no row is lost; still, keep what could not be read
            aside = _move_aside(journal)
            actions.append(f"leftover {journal.name} (its part is listed) has "
                           f"{scan.damaged_bytes:,} damaged bytes; moved it aside to "
                           f"{aside.name}")
        fsync_dir(session.path)
    if manifest["status"] == "recording" or actions:  # we hold the lock: not live
        _recompute_connections(session, manifest, actions)
        if manifest["status"] == "recording":
            manifest["status"] = "recovered"
            actions.append("marked the session recovered")
        if not manifest.get("started") and manifest["parts"]:
            manifest["started"] = min(p["start"] for p in manifest["parts"])
        if not manifest.get("ended") and manifest["parts"]:
            manifest["ended"] = max(p["end"] for p in manifest["parts"])
        save_manifest(session.path, manifest)


def _recompute_connections(session: Session, manifest: dict, actions: list[str]) -> None:
    try:
        tracker = track(Session(session.path).frames(direction="event"))
    except CorruptData as exc:  # a listed part that cannot be read: 'wsrec verify' says more
        actions.append(f"kept the connections and gaps as they were: {exc}")
        return
    manifest.update(tracker.as_dict())


def _first_seq(manifest: dict, index: int, created: set[str]) -> int | None:
    """The seq the journal of part ``index`` should start at, when the manifest says: after
    the part before it, or after the parts this run rebuilt from an earlier journal."""
    if created:
        return max(e["seq_last"] for e in manifest["parts"] if e["file"] in created) + 1
    if index == 0:
        return 0
    for entry in manifest["parts"]:
        named = part_index(str(entry.get("file")))
        if named and named[0] == index - 1 and isinstance(entry.get("seq_last"), int):
            return entry["seq_last"] + 1
    return None


def _damage_line(name: str, scan: JournalScan, aside: str) -> str:
    n, ranges = scan.rows_lost, len(scan.damaged)
    if n == 0:
        lost = "no rows lost"
    elif n is not None:
        lost = f"{n:,} row{'s' if n != 1 else ''} lost"
    else:
        known = sum(d.rows_lost or 0 for d in scan.damaged)
        lost = f"at least {known:,} rows lost" if known else "an unknown number of rows lost"
    what = f"{scan.damaged_bytes:,} damaged bytes" + (f" in {ranges} ranges" if ranges > 1
                                                       else "")
    return (f"{name}: kept {scan.rows:,} rows; {what} could not be recovered ({lost}); "
            f"moved it aside to {aside}")


def _segments(scan: JournalScan) -> list[list[int]]:
    """``[seq_first, seq_last, rows]`` of each gapless run of a journal's intact records:
    a part holds gapless seq, so rows on either side of a loss go to different parts."""
    runs: list[list[int]] = []
    for r in scan.records:
        if not r.rows:
            continue
        if runs and r.seq_first == runs[-1][1] + 1:
            runs[-1][1] = r.seq_last
            runs[-1][2] += r.rows
        else:
            runs.append([r.seq_first, r.seq_last, r.rows])
    return runs


def _journal_parts(session: Session, index: int, journal: Path, scan: JournalScan,
                   actions: list[str], read=None) -> tuple[list[tuple[dict, str]], bool]:
    """Publish the journal's rows as parts: ``([(entry, 'adopted' or 'rebuilt'), ...],
    whole)``, ``whole`` when the part it shadows was published whole before the crash
    and is adopted (so even rows the journal lost are in it).

    One part per gapless run of rows, the first named after the journal, the others
    after the highest part number in the folder. A final-named part a crash left
    unlisted is adopted when it holds every seq from the journal's first to its last
    (or, after a repair that was itself interrupted, exactly one run); otherwise, or if
    it cannot be read, it is moved aside and the part is rebuilt from the journal.
    """
    runs = _segments(scan)
    plan: list[tuple[dict, str] | None] = [None] * len(runs)
    final = session.path / part_name(index)
    orphans = [p for p in session.orphan_parts if p != final]
    if final in session.orphan_parts:
        try:
            entry, _ = _part_entry(final)
        except CorruptData as exc:
            entry = None
            aside = _move_aside(final)
            actions.append(f"moved unlisted {final.name} aside to {aside.name}: {exc}")
        if entry is not None:
            span = [entry["seq_first"], entry["seq_last"], entry["rows"]]
            gapless = entry["rows"] == entry["seq_last"] - entry["seq_first"] + 1
            if entry["rows"] >= scan.rows and (not runs or gapless and entry["seq_first"]
                                                <= runs[0][0] and entry["seq_last"]
                                                >= runs[-1][1]):
                return [(entry, "adopted")], True
            if runs and span == runs[0]:
                plan[0] = (entry, "adopted")
            else:
                aside = _move_aside(final)
                actions.append(f"moved unlisted {final.name} aside to {aside.name}: it holds "
                               f"fewer rows than {journal.name}")
    if len(runs) > 1 and orphans:  # runs published by a repair that was interrupted
        for path in orphans:
            try:
                entry, _ = _part_entry(path)
            except CorruptData:
                continue  # not one of ours; verify reports it
            span = [entry["seq_first"], entry["seq_last"], entry["rows"]]
            if span in runs[1:] and plan[runs.index(span)] is None:
                plan[runs.index(span)] = (entry, "adopted")
    if any(p is None for p in plan):
        _write_runs(session, index, scan, runs, plan, read)
    return [p for p in plan if p is not None], False


def _write_runs(session: Session, index: int, scan: JournalScan, runs, plan,
                read=None) -> None:
    """Write the runs ``plan`` has no part for yet, in one pass over the journal;
    ``read(offset)`` hears how far into it the pass is."""
    settings = session.manifest.get("settings") or {}
    taken = [named[0] for name in os.listdir(session.path)
             if (named := part_index(name)) is not None]
    next_index = max(taken, default=index) + 1
    run, part = 0, None
    try:
        for record, batch in scan.read():
            if read is not None:
                read(record.offset + record.length)
            if not batch.num_rows:
                continue
            first = batch.column("seq")[0].as_py()
            while first > runs[run][1]:
                if part is not None:
                    plan[run] = (part.finish(), "rebuilt")
                    part = None
                run += 1
            if plan[run] is not None:
                continue  # adopted
            if part is None:
                number = index
                if run:
                    number, next_index = next_index, next_index + 1
                part = PartWriter(session.path, number, session.venue, session.id,
                                  rules=session.rules,
                                  compression_level=settings.get("compression_level"))
            part.add(batch)
        if part is not None:
            plan[run] = (part.finish(), "rebuilt")
            part = None
    except BaseException:
        if part is not None:
            part.abort()
            if part.tmp.exists():
                os.unlink(part.tmp)
        raise


def _part_entry(path: Path) -> tuple[dict, tuple[str, str] | None]:
    """The manifest entry of a complete part file, computed from its rows (what
    ``PartWriter.finish`` returns for a part it writes), and its rows' venue and session.
    Every batch is validated; CorruptData if the part cannot be read."""
    n = raw = 0
    span, ids = PartSpan(), None
    try:
        with pa.OSFile(str(path)) as source:  # streamed: a row group at a time
            pf = pq.ParquetFile(source, page_checksum_verification=True)
            if not is_part_schema(pf.schema_arrow):
                raise CorruptData(f"{path}: not a part in the session format "
                                  f"(format {FORMAT_VERSION})")
            for batch in pf.iter_batches(batch_size=65_536, columns=_ENTRY_COLUMNS):
                batch.validate(full=True)
                k = batch.num_rows
                if not k:
                    continue
                if ids is None:
                    ids = (batch.column("venue")[0].as_py(),
                           batch.column("session")[0].as_py())
                span.add(batch)
                raw += pc.sum(pc.binary_length(batch.column("payload"))).as_py() or 0
                n += k
        size, digest = path.stat().st_size, file_sha256(path)
    except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
        raise CorruptData(f"{path}: unreadable part ({first_line(exc)})") from exc
    if not n:
        raise CorruptData(f"{path}: part holds no rows")
    entry = span.entry(path.name, rows=n, raw_bytes=raw, size=size, sha256=digest)
    return entry, ids if ids and all(isinstance(x, str) and x for x in ids) else None


# -- moving aside -------------------------------------------------------------------------

def _aside_name(path: Path) -> Path:
    """``NAME.damaged``, or ``NAME.damaged.1``, ``.2``, ... if taken."""
    candidate, n = path.with_name(path.name + ".damaged"), 0
    while os.path.lexists(candidate):
        n += 1
        candidate = path.with_name(f"{path.name}.damaged.{n}")
    return candidate


def _move_aside(path: Path, target: Path | None = None) -> Path:
    """Rename ``path`` to a free ``.damaged`` name, never replacing anything there."""
    target = target if target is not None and not os.path.lexists(target) \
        else _aside_name(path)
    while True:
        try:
            os.link(path, target, follow_symlinks=False)  # fails if the name is taken
        except FileExistsError:
            target = _aside_name(path)
            continue
        except OSError:  # no hard links here (or a folder): we hold the lock, rename
            os.rename(path, target)
            break
        os.unlink(path)
        break
    fsync_dir(path.parent)
    return target


# -- a missing or unreadable manifest -----------------------------------------------------

def _data_files(folder: Path) -> list[str]:
    try:
        return sorted(n for n in os.listdir(folder) if part_index(n) is not None)
    except OSError:
        return []


def _manifest_trouble(folder: Path) -> str | None:
    """None when ``session.json`` loads; else why it must be rebuilt. Raises the load
    error when rebuilding is not the answer: no parts or journals to rebuild from, a
    file that cannot be read (permissions), or one written by a newer wsrec."""
    try:
        load_manifest(folder)
        return None
    except CorruptData as exc:
        error = exc
    path = folder / MANIFEST
    if not folder.is_dir():
        raise SessionNotFound(f"{folder} is not a session folder")
    if not _data_files(folder):
        raise error
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return "it was missing"
    except OSError:
        raise error from None
    if not stat.S_ISREG(info.st_mode):
        return "it was not a regular file"
    if info.st_size > MAX_MANIFEST_BYTES:
        return "it was too large to read"
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError:
        raise error from None
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "it was not valid JSON"
    if isinstance(data, dict):
        version = data.get("format_version")
        if isinstance(version, int) and not isinstance(version, bool) \
                and version > FORMAT_VERSION:
            raise error  # a newer wsrec's: not ours to replace
    return f"it was invalid: {error}"


def _rebuild_manifest(folder: Path, why: str, actions: list[str]) -> None:
    """Write a new ``session.json`` listing the folder's readable parts (status
    ``recording``: ``_repair`` then adds the journals' rows, connections and gaps and
    marks it recovered). The old file, if any, is moved aside; so is a part that cannot
    be read (its journal, if there is one, rebuilds it; otherwise its rows are recorded
    as lost)."""
    old = _old_manifest(folder / MANIFEST)
    names = _data_files(folder)
    parts = sorted(part_index(n)[0] for n in names if part_index(n)[1] == "parquet")
    journals = {part_index(n)[0] for n in names if part_index(n)[1] == "journal"}
    for index in parts:  # refuse before touching anything: not ours to rebuild
        try:
            with pa.OSFile(str(folder / part_name(index))) as source:
                schema = pq.read_schema(source)
        except (pa.ArrowException, OSError, ValueError):
            continue
        if not is_part_schema(schema):
            raise CorruptData(f"{folder / MANIFEST}: cannot rebuild the manifest: "
                              f"{part_name(index)} is not in format {FORMAT_VERSION} (an "
                              f"older session? restore its session.json, then run 'wsrec "
                              f"repair --upgrade')")
    for index in sorted(journals):
        try:
            with open(folder / journal_name(index), "rb") as f:
                head = f.read(len(MAGIC))
        except OSError:
            continue  # the repair reports it when it reads the journal
        if head.startswith(b"\xff\xff\xff\xff"):  # an Arrow IPC stream: format 1's
            raise CorruptData(f"{folder / MANIFEST}: cannot rebuild the manifest: "
                              f"{journal_name(index)} is not in format {FORMAT_VERSION} (an "
                              f"older session? restore its session.json, then run 'wsrec "
                              f"repair --upgrade')")
    entries, ids, unreadable = [], None, []
    for index in parts:
        path = folder / part_name(index)
        try:
            entry, found = _part_entry(path)
        except CorruptData as exc:
            aside = _move_aside(path)
            actions.append(f"moved unreadable {path.name} aside to {aside.name}: {exc}")
            if index not in journals:
                unreadable.append((index, aside))
            continue
        entries.append(entry)
        ids = ids or found
    venue, session = ids or (venue_of(folder), folder.name)
    manifest = {
        "format_version": FORMAT_VERSION,
        "venue": venue,
        "session": session,
        "wsrec_version": __version__,
        "args": old.get("args") if isinstance(old.get("args"), dict) else {},
        "settings": _settings(old.get("settings")),
        "status": "recording",  # until _repair has added the journals
        "started": None,
        "ended": None,
        "error": None,
        "parts": sorted(entries, key=lambda p: p["seq_first"]),
        "connections": [],
        "gaps": [],
    }
    lost = _lost_parts(manifest["parts"], unreadable)
    if lost:
        manifest["lost"] = lost
    if os.path.lexists(folder / MANIFEST):
        aside = _move_aside(folder / MANIFEST)
        actions.append(f"moved the unreadable {MANIFEST} aside to {aside.name}")
    save_manifest(folder, manifest)
    actions.append(f"rebuilt {MANIFEST} ({why}) for {venue}/{session} from "
                   f"{len(entries)} part(s)" + (f" and {len(journals)} journal(s)"
                                                if journals else ""))


def _old_manifest(path: Path) -> dict:
    """Whatever can be salvaged of an unreadable manifest (its arguments and settings)."""
    try:
        if os.lstat(path).st_size > MAX_MANIFEST_BYTES or not path.is_file():
            return {}
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _settings(old) -> dict:
    """The writer settings of an old manifest that are plainly valid."""
    if not isinstance(old, dict):
        return {}
    out = {}
    for key, value in old.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            continue
        if key == "compression_level":
            if isinstance(value, int) and -(1 << 17) <= value <= 22:
                out[key] = value
        elif key in ("flush_interval", "part_seconds") and value > 0:
            out[key] = value
        elif key in ("part_bytes", "row_group_rows", "row_group_bytes") \
                and isinstance(value, int) and 0 < value < (1 << 63):
            out[key] = value
    return out


def _lost_parts(entries: list[dict], unreadable: list[tuple[int, Path]]) -> list[dict]:
    """``lost`` entries for parts moved aside with no journal to rebuild them from: the
    seq range between the readable neighbours."""
    lost = []
    for index, aside in unreadable:
        before = [e for e in entries if part_index(e["file"])[0] < index]
        after = [e for e in entries if part_index(e["file"])[0] > index]
        first = before[-1]["seq_last"] + 1 if before else (0 if index == 0 else None)
        last = after[0]["seq_first"] - 1 if after else None
        rows = last - first + 1 if first is not None and last is not None else None
        lost.append({"file": aside.name, "offset": 0, "bytes": aside.stat().st_size,
                     "rows": rows, "seq_first": first, "seq_last": last})
    return lost


# -- a recording to a bucket, left in its spool ------------------------------------------------

def repair_spool(spool=None, *, endpoint: str | None = None):
    """Finish and upload what a crash left in the spool (``wsrec.store.spool``): for each
    session of each remote root, bring back the parts already uploaded (a crash between
    upload and removal), ``repair`` it locally, upload each part the bucket lacks (a part
    already there is checked, never sent twice) and then the manifest, ``verify`` the
    bucket's copy, and only then delete the spool copy. Yields one line per session (a
    session still being recorded is skipped). ``endpoint``: the S3 endpoint, else the
    one the recording used."""
    from wsrec.errors import SessionBusy
    from wsrec.store._lock import is_locked
    from wsrec.store.location import open_root
    from wsrec.store.spool import sessions, targets

    for target in targets(spool):
        root = open_root(target.url, endpoint=endpoint or target.endpoint)
        found = sessions(target.folder)
        if found:
            root.check()
        for folder in found:
            name = f"{venue_of(folder)}/{folder.name}"
            if is_locked(folder):
                yield f"{name}: skipped, still being recorded"
                continue
            try:
                yield f"{name}: " + _finish_spooled(root, target.folder, folder)
            except SessionBusy:
                yield f"{name}: skipped, still being recorded"


def _finish_spooled(root, base: Path, folder: Path) -> str:
    from wsrec.store._uploader import remote_matches, remove_spooled, upload_part
    from wsrec.store.location import RootPath
    from wsrec.store.verify import verify

    rel = folder.relative_to(base).as_posix()
    fetched = _fetch_uploaded(root, rel, folder)
    actions = repair(folder)
    manifest = load_manifest(folder)
    sent = 0
    for entry in manifest["parts"]:
        where = f"{rel}/{entry['file']}"
        if (folder / entry["file"]).exists() and not remote_matches(root, where, entry):
            upload_part(root, folder / entry["file"], where, entry)
            sent += 1
    root.put_bytes(f"{rel}/{MANIFEST}", json.dumps(manifest, indent=2).encode() + b"\n")
    problems = verify(Session(RootPath(root, rel)))
    if problems:
        return (f"uploaded to {root.show(rel)} but it does not verify ({problems[0]}); the "
                f"spool copy is kept in {folder}")
    for entry in manifest["parts"]:
        try:
            os.unlink(folder / entry["file"])
        except FileNotFoundError:
            pass
    remove_spooled(folder, parents=True)
    what = "; ".join(actions) or "sound"
    return (f"{what}; {sent} part(s) uploaded ({fetched} already there), verified, "
            f"spool copy removed -> {root.show(rel)}")


def _fetch_uploaded(root, rel: str, folder: Path) -> int:
    """Bring back the listed parts that were uploaded and removed locally, so the local
    repair sees a whole session; returns how many."""
    try:
        manifest = json.loads((folder / MANIFEST).read_bytes())
        entries = [p for p in manifest.get("parts", []) if isinstance(p, dict)]
    except (OSError, ValueError):
        return 0
    count = 0
    for entry in entries:
        name = entry.get("file")
        if not isinstance(name, str) or "/" in name or (folder / name).exists():
            continue
        tmp = folder / (name + ".fetch")
        try:
            with root.fs.open_input_stream(root.path(rel, name)) as src, open(tmp, "wb") as out:
                while chunk := src.read(8 << 20):
                    out.write(chunk)
            if file_sha256(tmp) != entry.get("sha256"):
                os.unlink(tmp)
                continue
            os.replace(tmp, folder / name)
            count += 1
        except FileNotFoundError:
            continue
        except OSError as exc:
            from wsrec.store.location import fs_error
            if tmp.exists():
                os.unlink(tmp)
            raise fs_error(exc, root, f"reading {root.show(rel)}/{name}") from None
    if count:
        fsync_dir(folder)
    return count
