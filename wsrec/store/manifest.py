"""``session.json``: the manifest of one session, replaced atomically, never edited in place."""

from __future__ import annotations

import json
import math
import os
import re
import stat
import time
from pathlib import Path

from pyarrow.fs import FileType

from wsrec.errors import CorruptData, StorageError, first_line, storage_error
from wsrec.store._part import part_index
from wsrec.store.atomic import write_atomic
from wsrec.store.location import RootPath
from wsrec.timefmt import parse_time

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "STATUSES",
    "load_manifest",
    "check_manifest",
    "ManifestError",
    "MAX_MANIFEST_BYTES",
    "REBUILD_HINT",
    "save_manifest",
    "new_session_id",
]

FORMAT_VERSION = 2
MANIFEST = "session.json"
#: recording: being written (live) or crashed; complete: closed normally;
#: failed: ended by a fatal error, a full disk or exhausted retries;
#: recovered: a crashed session rebuilt by ``wsrec repair``.
STATUSES = ("recording", "complete", "failed", "recovered")

#: a larger session.json is refused unread (a real one is a few KB per hour recorded)
MAX_MANIFEST_BYTES = 64 << 20
#: what to do about a manifest that is missing, unreadable JSON or fails validation
REBUILD_HINT = "run 'wsrec repair' to rebuild it from the parts"


def new_session_id(now_ns: int | None = None) -> str:
    """``20261121T210501Z-3f9a``: UTC start time, then 4 random hex digits."""
    import secrets   # (writing only: not loaded to read sessions)
    secs = (now_ns if now_ns is not None else time.time_ns()) // 1_000_000_000
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(secs)) + "-" + secrets.token_hex(2)


class ManifestError(CorruptData):
    """``session.json`` is missing, unreadable or invalid.

    ``path`` is the manifest's path, ``field`` the offending field (``parts[2].rows``;
    None when the file as a whole is the problem) and ``missing`` is true when the file
    does not exist.
    """

    def __init__(self, message: str, *, path: Path, field: str | None = None,
                 missing: bool = False):
        super().__init__(message)
        self.path = path
        self.field = field
        self.missing = missing


def load_manifest(folder) -> dict:
    """Read and validate ``folder/session.json`` (see ``check_manifest``); ``folder`` is
    a local ``Path`` or a ``RootPath`` in a bucket (``wsrec.store.location``).

    Raises ManifestError (a CorruptData) with a one-line message naming the file, the
    field and what to do. Never reads more than ``MAX_MANIFEST_BYTES``. On a remote
    root, the store failing is the store's error (``RootAccessDenied``, ...).
    """
    if isinstance(folder, RootPath):
        path = folder / MANIFEST
        text = _read_remote(path)
    else:
        path = Path(folder) / MANIFEST
        text = _read_local(path)
    if len(text) > MAX_MANIFEST_BYTES:  # grew while we looked
        raise _too_large(path, len(text))
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ManifestError(f"{path}: manifest is not valid JSON ({first_line(exc)}); "
                            f"{_hint(path)}", path=path) from None
    check_manifest(data, path)
    return data


def _read_local(path: Path) -> bytes:
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ManifestError(f"{path}: manifest is not a regular file; {_hint(path)}",
                                path=path)
        if info.st_size > MAX_MANIFEST_BYTES:
            raise _too_large(path, info.st_size)
        with open(path, "rb") as f:
            return f.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise _missing(path) from None
    except OSError as exc:
        reason = exc.strerror or first_line(exc)
        raise ManifestError(f"{path}: cannot read manifest ({reason}); check the permissions "
                            f"of the file and its folders", path=path) from None


def _read_remote(path: RootPath) -> bytes:
    """The manifest object's bytes: its size asked first (the cap), then one GET."""
    info = path.root.info(path.rel)
    if info.type == FileType.NotFound:
        raise _missing(path)
    if info.type != FileType.File:
        raise ManifestError(f"{path}: manifest is not a file; {_hint(path)}", path=path)
    if info.size is not None and info.size > MAX_MANIFEST_BYTES:
        raise _too_large(path, info.size)
    try:
        return path.root.read_bytes(path.rel, MAX_MANIFEST_BYTES)
    except FileNotFoundError:  # deleted since
        raise _missing(path) from None


def _names(folder) -> list[str]:
    """The file names in a session folder, local or remote ([] when it can't be listed)."""
    try:
        if isinstance(folder, RootPath):
            return [i.base_name for i in folder.root.list(folder.rel)]
        return os.listdir(folder)
    except (OSError, StorageError):
        return []


def _missing(path) -> ManifestError:
    data = [n for n in _names(path.parent) if part_index(n) is not None]
    if data:
        return ManifestError(f"{path}: missing manifest, but the folder holds {len(data)} "
                             f"part or journal file(s); {REBUILD_HINT}", path=path,
                             missing=True)
    return ManifestError(f"{path}: missing manifest; not a wsrec session folder", path=path,
                         missing=True)


def _too_large(path: Path, size: int) -> ManifestError:
    return ManifestError(f"{path}: manifest is {size:,} bytes, over the "
                         f"{MAX_MANIFEST_BYTES >> 20} MiB limit, so it was not read; "
                         f"{_hint(path)}", path=path)


def _hint(path) -> str:
    """What to do about a bad manifest: rebuild it, when there is something to rebuild
    it from."""
    if any(part_index(n) is not None for n in _names(path.parent)):
        return REBUILD_HINT
    if not isinstance(path, RootPath):
        try:
            os.listdir(path.parent)
        except OSError:
            return REBUILD_HINT
    return "the folder holds no part or journal to rebuild it from: fix it or remove the folder"


# -- validation ------------------------------------------------------------------------------

_INT64 = (-(1 << 63), (1 << 63) - 1)
_INT32 = (-(1 << 31), (1 << 31) - 1)
_COUNT = (0, (1 << 63) - 1)
_RANGES = {_INT64: "a 64-bit integer", _INT32: "a 32-bit integer",
           _COUNT: "a non-negative 64-bit integer"}
#: a part listed in the manifest: a plain file name in the session folder
_PART_FILE = re.compile(r"part-[0-9]{6,}\.parquet")
#: venue and session names (the same rule as ``wsrec.store.writer.check_name``)
_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: writer settings read back by repair and upgrade: (type test, description)
_SETTINGS = {
    "flush_interval": (lambda v: _number(v) and v > 0, "a positive number"),
    "part_bytes": (lambda v: _int(v) and 0 < v <= _INT64[1], "a positive integer"),
    "part_seconds": (lambda v: _number(v) and v > 0, "a positive number"),
    "row_group_rows": (lambda v: _int(v) and 0 < v <= _INT64[1], "a positive integer"),
    "row_group_bytes": (lambda v: _int(v) and 0 < v <= _INT64[1], "a positive integer"),
    "compression_level": (lambda v: v is None or _int(v) and -(1 << 17) <= v <= 22,
                          "a zstd level (an integer up to 22) or null"),
}


class _Invalid(Exception):
    def __init__(self, field: str, problem: str):
        super().__init__(field, problem)
        self.field, self.problem = field, problem


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return (_int(value) or isinstance(value, float)) and math.isfinite(value)


_MISSING = object()


def _is(value, what: str) -> str:
    """``is 5, not a list``; ``is missing``."""
    return "is missing" if value is _MISSING else f"is {_show(value)}, not {what}"


def _show(value) -> str:
    text = json.dumps(value, ensure_ascii=True)  # one line, whatever the value
    return text if len(text) <= 40 else text[:37] + "..."


def check_manifest(data, path: Path) -> None:
    """Raise ManifestError unless ``data`` (parsed JSON) is a manifest wsrec can use.

    Checks every field wsrec reads: types, the status enum, ranges (counts are
    non-negative 64-bit integers; times parse and lie within 1677-2262, the range of a
    nanosecond timestamp), part entries (``file`` a plain ``part-NNNNNN.parquet`` name,
    listed once, in ``seq`` order; ``sha256`` 64 hex digits) and the ``connections`` and
    ``gaps`` entries. Fields wsrec does not read are left alone.
    """
    path = path if isinstance(path, RootPath) else Path(path)
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: manifest is not a JSON object; {_hint(path)}",
                            path=path)
    version = data.get("format_version", _MISSING)
    if not _int(version) or version < 1:
        raise _error(path, "format_version", _is(version, "a format version (1, 2, ...)"))
    if version > FORMAT_VERSION:
        raise ManifestError(f"{path}: format_version {version} is newer than this wsrec "
                            f"understands ({FORMAT_VERSION}); upgrade wsrec", path=path,
                            field="format_version")
    try:
        _check(data, version)
    except _Invalid as bad:
        raise _error(path, bad.field, bad.problem) from None


def _error(path: Path, field: str, problem: str) -> ManifestError:
    return ManifestError(f"{path}: manifest field {field} {problem}; {_hint(path)}",
                         path=path, field=field)


def _check(data: dict, version: int) -> None:
    for key in ("venue", "session"):
        value = data.get(key, _MISSING)
        if not isinstance(value, str) or not _FOLDER_NAME.fullmatch(value):
            raise _Invalid(key, _is(value, "a name of letters, digits, '.', '_' or '-'"))
    for key in ("continues", "continued_by"):   # rotation (wsrec.store.rolling): optional
        value = data.get(key)
        if value is not None and (not isinstance(value, str)
                                  or not _FOLDER_NAME.fullmatch(value)):
            raise _Invalid(key, _is(value, "a session id or null"))
    status = data.get("status", _MISSING)
    if not isinstance(status, str) or status not in STATUSES:
        raise _Invalid("status", _is(status, f"one of {', '.join(STATUSES)}"))
    for key in ("started", "ended"):
        _time(data, key, key, optional=True)
    for key in ("error", "wsrec_version"):
        _typed(data, key, key, (str, type(None)), "a string or null")
    _typed(data, "args", "args", (dict, type(None)), "an object or null")
    _typed(data, "settings", "settings", dict, "an object")
    for key, (test, what) in _SETTINGS.items():
        if key in data.get("settings", {}) and not test(data["settings"][key]):
            raise _Invalid(f"settings.{key}",
                           f"is {_show(data['settings'][key])}, not {what}")
    if "upgraded_from" in data:
        _integer(data, "upgraded_from", "upgraded_from", (1, FORMAT_VERSION))
    parts = data.get("parts", _MISSING)
    if not isinstance(parts, list):
        raise _Invalid("parts", _is(parts, "a list"))
    files: set = set()
    previous = None
    for i, entry in enumerate(parts):
        where = f"parts[{i}]"
        _check_part(entry, where, version)
        if entry["file"] in files:
            raise _Invalid(f"{where}.file", f"lists {entry['file']} a second time")
        files.add(entry["file"])
        first = entry.get("seq_first")
        if first is not None and previous is not None and first <= previous:
            raise _Invalid(f"{where}.seq_first", f"is {first}, not after the previous part's")
        previous = entry.get("seq_last", first) if first is not None else previous
    for key, check in (("connections", _check_connection), ("gaps", _check_gap),
                       ("lost", _check_lost)):
        if key not in data:
            continue
        items = data[key]
        if not isinstance(items, list):
            raise _Invalid(key, f"is {_show(items)}, not a list")
        if version >= 2:  # format 1's are recomputed by the upgrade, never read
            for i, item in enumerate(items):
                check(item, f"{key}[{i}]")


#: a part's rows by direction (optional: parts written before they were counted lack them)
_PART_DIRECTIONS = ("frames_in", "frames_out", "events")
#: part entry fields: required from format 2 on (format 1: file and rows only)
_PART_REQUIRED = ("file", "rows", "seq_first", "seq_last", "start", "end", "bytes", "sha256")


def _check_part(entry, where: str, version: int) -> None:
    if not isinstance(entry, dict):
        raise _Invalid(where, f"is {_show(entry)}, not an object")
    name = entry.get("file", _MISSING)
    if not isinstance(name, str) or not _PART_FILE.fullmatch(name):
        raise _Invalid(f"{where}.file", _is(name, "a part file name (part-NNNNNN.parquet, "
                                                  "in the session folder)"))
    required = _PART_REQUIRED if version >= 2 else ("file", "rows")
    for key in required:
        if key not in entry:
            raise _Invalid(f"{where}.{key}", "is missing")
    for key in ("rows", "seq_first", "seq_last", "bytes", "raw_bytes", *_PART_DIRECTIONS):
        _integer(entry, key, f"{where}.{key}", _COUNT, optional=True)
    for key in ("mono_first", "mono_last"):
        _integer(entry, key, f"{where}.{key}", _INT64, optional=True)
    for key in ("start", "end"):
        _time(entry, key, f"{where}.{key}", optional=True, nullable=False)
    if "sha256" in entry and not (isinstance(entry["sha256"], str)
                                  and _SHA256.fullmatch(entry["sha256"])):
        raise _Invalid(f"{where}.sha256", f"is {_show(entry['sha256'])}, not 64 lowercase "
                                          f"hex digits")
    _ordered(entry, where, "seq_first", "seq_last")
    _ordered(entry, where, "mono_first", "mono_last")
    _ordered(entry, where, "start", "end", parse_time)


def _check_connection(entry, where: str) -> None:
    if not isinstance(entry, dict):
        raise _Invalid(where, f"is {_show(entry)}, not an object")
    if "conn" not in entry:
        raise _Invalid(f"{where}.conn", "is missing")
    _integer(entry, "conn", f"{where}.conn", _INT32, nullable=True)
    _typed(entry, "stream", f"{where}.stream", (str, type(None)), "a string or null")
    _time(entry, "opened", f"{where}.opened")
    _time(entry, "closed", f"{where}.closed", optional=True)
    # url, code, reason and error come from the event rows' payloads: any JSON value


def _check_gap(entry, where: str) -> None:
    if not isinstance(entry, dict):
        raise _Invalid(where, f"is {_show(entry)}, not an object")
    _typed(entry, "stream", f"{where}.stream", (str, type(None)), "a string or null")
    _time(entry, "start", f"{where}.start")
    _time(entry, "end", f"{where}.end")
    _integer(entry, "duration_ns", f"{where}.duration_ns", _COUNT)
    for key in ("after_conn", "conn"):
        _integer(entry, key, f"{where}.{key}", _INT32, optional=True, nullable=True)
    for key in ("mono_start", "mono_end"):
        _integer(entry, key, f"{where}.{key}", _INT64, optional=True, nullable=True)
    _ordered(entry, where, "mono_start", "mono_end")  # (start/end are wall-clock times)


def _check_lost(entry, where: str) -> None:
    """Rows ``wsrec repair`` could not recover (``wsrec verify`` reads them)."""
    if not isinstance(entry, dict):
        raise _Invalid(where, f"is {_show(entry)}, not an object")
    _typed(entry, "file", f"{where}.file", (str, type(None)), "a string or null")
    for key in ("offset", "bytes", "rows", "seq_first", "seq_last"):
        _integer(entry, key, f"{where}.{key}", _COUNT, optional=True, nullable=True)


def _typed(obj: dict, key: str, field: str, types, what: str) -> None:
    if key in obj and not isinstance(obj[key], types):
        raise _Invalid(field, f"is {_show(obj[key])}, not {what}")


def _given(obj: dict, key: str, field: str, optional: bool, nullable: bool) -> bool:
    """Whether ``obj[key]`` holds a value to check: False when it may be absent or null
    and is; _Invalid when it is missing and must be there."""
    if key not in obj:
        if optional:
            return False
        raise _Invalid(field, "is missing")
    return not (obj[key] is None and nullable)


def _integer(obj: dict, key: str, field: str, bounds: tuple[int, int], *,
             optional: bool = False, nullable: bool = False) -> None:
    if not _given(obj, key, field, optional, nullable):
        return
    value = obj[key]
    lo, hi = bounds
    if not _int(value) or not lo <= value <= hi:
        what = _RANGES.get(bounds, f"an integer from {lo} to {hi}")
        raise _Invalid(field, f"is {_show(value)}, not {what}" + (" or null" if nullable else ""))


def _time(obj: dict, key: str, field: str, *, optional: bool = False,
          nullable: bool = True) -> None:
    if not _given(obj, key, field, optional, nullable):
        return
    value = obj[key]
    if not isinstance(value, str):
        raise _Invalid(field, f"is {_show(value)}, not a time (e.g. "
                              f"2026-11-18T11:06:40.000000000Z)")
    try:
        ns = parse_time(value)
    except ValueError:
        raise _Invalid(field, f"is {_show(value)}, not a time (e.g. "
                              f"2026-11-18T11:06:40.000000000Z)") from None
    if not _INT64[0] <= ns <= _INT64[1]:
        raise _Invalid(field, f"is {_show(value)}, outside the years 1677-2262 a "
                              f"nanosecond timestamp can hold")


def _ordered(obj: dict, where: str, low: str, high: str, key=None) -> None:
    a, b = obj.get(low), obj.get(high)
    if a is None or b is None:
        return
    if (key(a) if key else a) > (key(b) if key else b):
        raise _Invalid(f"{where}.{low}", f"is after {where}.{high}")


def save_manifest(folder: Path, manifest: dict) -> None:
    """Write to a temporary file, fsync, rename over ``session.json``, fsync the folder."""
    folder = Path(folder)
    data = json.dumps(manifest, indent=2, sort_keys=False).encode() + b"\n"
    try:
        write_atomic(folder / MANIFEST, data)
    except OSError as exc:
        raise storage_error(exc, str(folder / MANIFEST)) from exc
