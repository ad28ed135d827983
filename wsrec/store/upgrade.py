"""``wsrec repair --upgrade``: migrate a session written in an older format, losslessly.

Format 1 (wsrec 0.1) differs from the current format in three ways: its string columns
are Arrow dictionaries (``list<dictionary<string>>`` can't be streamed by every reader),
``seq`` is unsigned, and ``conn`` numbered the recorder's logical streams instead of
physical connections. The upgrade rewrites every row through ``SessionWriter``:

* ``payload``, ``ts``, ``mono_ns``, ``seq`` order, ``dir`` and ``kind`` are kept exactly;
* ``stream`` is the format-1 ``conn`` as text, and ``conn`` numbers the connections as
  they open (a new number at each ``open`` event; rows between a ``close`` and the next
  ``open`` of a stream, such as ``reconnect`` events, belong to no connection);
* ``channels``/``symbols`` are kept, except for dfuse and Flow, whose format-1 symbols held
  request ids: those inbound frames are classified again by the venue's rules;
* the manifest keeps its status, times, arguments and settings; connections and gaps are
  recomputed from the event rows. A crashed format-1 session (journal rows not in a part)
  is upgraded with those rows and marked ``recovered``.

The new session is built beside the old one (``.upgrade-<id>``), then swapped in by two
renames; the old folder is removed once the swap is done. Complete format-1 parts are read
with the dataset scanner, which streams their dictionary lists.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from wsrec.errors import CorruptData, first_line
from wsrec.store._journal import read_journal
from wsrec.store._lock import SessionLock
from wsrec.store.manifest import FORMAT_VERSION, load_manifest, save_manifest
from wsrec.store._part import part_index, part_name
from wsrec.store.atomic import fsync_dir
from wsrec.timefmt import parse_time
from wsrec.store.writer import DEFAULTS, SessionWriter

__all__ = ["upgrade"]

_V1_COLUMNS = ["seq", "ts", "mono_ns", "conn", "dir", "kind", "channels", "symbols", "payload"]
#: a format-1 journal: an Arrow IPC stream of these batches
V1_JOURNAL_SCHEMA = pa.schema([
    ("seq", pa.uint64()), ("ts", pa.timestamp("ns", tz="UTC")), ("mono_ns", pa.int64()),
    ("conn", pa.int32()), ("dir", pa.string()), ("kind", pa.string()),
    ("channels", pa.list_(pa.string())), ("symbols", pa.list_(pa.string())),
    ("payload", pa.binary())])
_RECLASSIFY = {"dfuse", "flow"}


def upgrade(folder) -> list[str]:
    """Migrate the session in ``folder`` to the current format; returns what was done
    (empty when it already is). Raises SessionBusy while a recorder holds it."""
    folder = Path(folder)
    with SessionLock(folder):
        manifest = load_manifest(folder)
        version = manifest["format_version"]
        if version >= FORMAT_VERSION:
            return []
        venue, sid = manifest["venue"], manifest["session"]
        staging = folder.parent / f".upgrade-{folder.name}"
        shutil.rmtree(staging, ignore_errors=True)  # what an interrupted upgrade left
        rows, new = _rewrite(folder, manifest, staging)
        final = load_manifest(new)
        status = manifest["status"]
        final.update(status="recovered" if status == "recording" else status,
                     started=manifest.get("started") or final["started"],
                     ended=manifest.get("ended") or final["ended"],
                     error=manifest.get("error"),
                     args=manifest.get("args", {}),
                     settings={**final["settings"], **manifest.get("settings", {})},
                     upgraded_from=version)
        save_manifest(new, final)
        backup = folder.parent / f".v{version}-{folder.name}"
        shutil.rmtree(backup, ignore_errors=True)
        os.rename(folder, backup)
        os.rename(new, folder)
        fsync_dir(folder.parent)
        shutil.rmtree(backup)
        shutil.rmtree(staging, ignore_errors=True)
        return [f"upgraded {venue}/{sid} from format {version} to {FORMAT_VERSION} "
                f"({rows:,} rows)"]


def _rewrite(folder: Path, manifest: dict, staging: Path) -> tuple[int, Path]:
    """The rows rewritten and the new session's folder (under ``staging``)."""
    venue = manifest["venue"]
    kind_of_venue = (manifest.get("args") or {}).get("venue") or venue
    classify = None
    if kind_of_venue in _RECLASSIFY:
        from wsrec.venues import classifier
        classify = classifier(kind_of_venue)
    settings = {k: v for k, v in (manifest.get("settings") or {}).items() if k in DEFAULTS}
    started = manifest.get("started")
    writer = SessionWriter(venue, staging, session_id=manifest["session"],
                           started_ns=parse_time(started) if started else None,
                           args=manifest.get("args", {}), **settings)
    physical: dict[int, int | None] = {}
    next_conn = 0
    count = 0
    with writer:
        for batch in _v1_batches(folder, manifest):
            for row in batch.to_pylist():
                old = row["conn"]
                is_event = row["dir"] == "event"
                if is_event and row["kind"] == "open":
                    physical[old] = next_conn
                    next_conn += 1
                channels, symbols = tuple(row["channels"] or ()), tuple(row["symbols"] or ())
                if classify is not None and row["dir"] == "in":
                    channels, symbols = classify(row["payload"], row["kind"] == "text")
                writer.append(row["payload"], conn=physical.get(old),
                              stream=None if old is None else str(old), dir=row["dir"],
                              kind=row["kind"], channels=channels, symbols=symbols,
                              ts_ns=row["ts"], mono_ns=row["mono_ns"])
                if is_event and row["kind"] == "close":
                    physical[old] = None
                count += 1
    return count, writer.folder


def _v1_batches(folder: Path, manifest: dict) -> Iterator[pa.RecordBatch]:
    """Every row of a format-1 session in seq order (parts, then unlisted journals), with
    plain types: ``ts`` as int ns, strings decoded."""
    listed = set()
    for entry in manifest["parts"]:
        path = folder / str(entry.get("file"))
        listed.add(path.name)
        try:
            dataset = ds.dataset(str(path.resolve()), format="parquet",
                                 filesystem=pafs.LocalFileSystem())
            for batch in dataset.to_batches(columns=_V1_COLUMNS, batch_readahead=1,
                                            fragment_readahead=1):
                yield _plain(batch)
        except (pa.ArrowException, OSError) as exc:
            raise CorruptData(f"{path}: cannot read format-1 part ({first_line(exc)})") from exc
    journals = sorted(p for p in folder.iterdir()
                      if (named := part_index(p.name)) and named[1] == "journal"
                      and part_name(named[0]) not in listed)
    for journal in journals:
        for batch in read_journal(journal, V1_JOURNAL_SCHEMA):
            yield _plain(batch.select(_V1_COLUMNS))


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    arrays = []
    for name, column in zip(batch.schema.names, batch.columns):
        if name == "ts":
            column = column.cast(pa.int64())
        elif name == "seq":
            column = column.cast(pa.int64())
        elif pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        elif pa.types.is_list(column.type) and pa.types.is_dictionary(column.type.value_type):
            column = column.cast(pa.list_(pa.string()))
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)

