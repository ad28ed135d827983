"""Building a session from other captures: wsrec's own JSON lines, timestamped text lines,
and HAR files from a browser's developer tools.

* ``jsonl``: the envelope that ``wsrec convert --format jsonl`` (and ``replay --format
  envelope``) writes. ``payload``, ``ts``, ``mono_ns``, ``dir``, ``kind``, ``conn``,
  ``channels`` and ``symbols`` come back exactly (``seq`` is renumbered from 0).
* ``lines``: ``<timestamp> <message>`` per line, the layout tardis.dev and many collectors
  use; the timestamp is ISO 8601 or epoch seconds, milliseconds, microseconds or
  nanoseconds (told apart by magnitude). ``.gz`` and ``.zst`` files are decompressed.
* ``har``: ``log.entries[]._webSocketMessages`` (type send/receive, time, opcode, data),
  one ``conn`` per socket, with an ``open`` event carrying the socket's URL.

Sources without a monotonic clock use the timestamp as ``mono_ns`` (never decreasing), so
replays pace them by time. Rows stream into the new session as they are read (HAR files,
being one JSON document, are read whole). Frames are classified with the venue's rules, as when
recording. Lines that can't be read are counted and reported with their numbers; with
``strict`` the first one is an error and nothing is kept.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import shutil
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import zstandard

from .errors import WsrecError
from .timefmt import parse_time
from .venues import classifier
from .writer import SessionWriter, check_name

__all__ = ["import_file", "ImportResult", "IMPORT_FORMATS", "detect_format"]

IMPORT_FORMATS = ("jsonl", "lines", "har")


@dataclass
class ImportResult:
    path: Path
    rows: int
    bad: list[int] = field(default_factory=list)   # line (or message) numbers skipped


def _open_text(path: Path) -> io.TextIOBase:
    raw = open(path, "rb")
    head = raw.read(4)
    raw.seek(0)
    if head[:2] == b"\x1f\x8b":
        stream = gzip.open(raw)
    elif head == b"\x28\xb5\x2f\xfd":
        stream = zstandard.ZstdDecompressor().stream_reader(raw)
    else:
        stream = raw
    return io.TextIOWrapper(stream, encoding="utf-8", errors="surrogateescape", newline="\n")


def detect_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".har"):
        return "har"
    with _open_text(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                except ValueError:
                    return "lines"
                if isinstance(obj, dict) and "enc" in obj and "data" in obj:
                    return "jsonl"
                if isinstance(obj, dict) and "log" in obj:
                    return "har"
            if line.startswith("{") and '"log"' in line[:200]:
                return "har"
            return "lines"
    raise WsrecError(f"{path}: empty file, nothing to import")


def epoch_ns(text: str) -> int:
    """An epoch timestamp in s, ms, us or ns (told apart by magnitude), or ISO 8601."""
    try:
        value = Decimal(text)  # exact: floats lose nanoseconds
    except InvalidOperation:
        return parse_time(text)
    if not value.is_finite():
        raise ValueError(f"not a timestamp: {text!r}")
    scale = 1 if value > 10**17 else 1_000 if value > 10**14 else \
        1_000_000 if value > 10**11 else 1_000_000_000
    return int(value * scale)


class _Rows:
    """Streams rows into a new session (created at the first row, so it starts at that
    row's time), keeping mono_ns non-decreasing."""

    def __init__(self, venue: str, strict: bool, path: Path, data, args):
        self.venue, self.strict, self.path = venue, strict, path
        self.data, self.args = data, args
        self.classify = classifier(venue)
        self.writer: SessionWriter | None = None
        self.count = 0
        self.last = None
        self.bad: list[int] = []

    def skip(self, number: int, why: str) -> None:
        if self.strict:
            raise WsrecError(f"{self.path}:{number}: {why} (drop --strict to skip bad lines)")
        self.bad.append(number)

    def add(self, payload: bytes, ts: int, mono: int | None = None, **kw) -> None:
        if "channels" not in kw and kw.get("dir", "in") == "in":
            kw["channels"], kw["symbols"] = self.classify(payload, kw.get("kind") == "text")
        if self.writer is None:
            self.writer = SessionWriter(self.venue, self.data, args=self.args, started_ns=ts)
        mono = ts if mono is None else mono
        if self.last is not None and mono < self.last:
            mono = self.last
        self.last = mono
        self.writer.append(payload, ts_ns=ts, mono_ns=mono, **kw)
        self.count += 1

    def finish(self) -> ImportResult:
        if self.writer is None:
            raise WsrecError(f"{self.path}: no readable message to import")
        self.writer.close()
        return ImportResult(self.writer.folder, self.count, self.bad)

    def abandon(self) -> None:
        """A failed import leaves no half-built session behind."""
        if self.writer is not None:
            try:
                self.writer.close("failed", "import failed")
            except WsrecError:
                pass
            shutil.rmtree(self.writer.folder, ignore_errors=True)


def import_file(path, venue: str, data=None, fmt: str | None = None,
                strict: bool = False) -> ImportResult:
    """Build a new session of ``venue`` from ``path``; returns where, rows, bad lines."""
    check_name("venue", venue)
    path = Path(path)
    if not path.is_file():
        raise WsrecError(f"{path}: no such file")
    fmt = fmt or detect_format(path)
    if fmt not in IMPORT_FORMATS:
        raise ValueError(f"unknown import format {fmt!r} (choose from "
                         f"{', '.join(IMPORT_FORMATS)})")
    rows = _Rows(venue, strict, path, data, {"imported_from": path.name, "format": fmt})
    try:
        {"jsonl": _jsonl, "lines": _lines, "har": _har}[fmt](path, rows)
    except (OSError, EOFError, zstandard.ZstdError) as exc:
        rows.abandon()
        raise WsrecError(f"{path}: cannot read ({exc})") from None
    except BaseException:
        rows.abandon()
        raise
    return rows.finish()


def _jsonl(path: Path, rows: _Rows) -> None:
    with _open_text(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                e = json.loads(line)
                enc, value = e["enc"], e["data"]
                if enc == "json":
                    payload = json.dumps(value, separators=(",", ":"),
                                         ensure_ascii=False).encode()
                elif enc == "text":
                    payload = value.encode("utf-8", errors="surrogateescape")
                elif enc == "base64":
                    payload = base64.b64decode(value, validate=True)
                elif enc == "msgpack":
                    payload = base64.b64decode(e["raw"], validate=True)
                else:
                    raise ValueError(f"unknown enc {enc!r}")
                conn = e.get("conn")
                stream = e.get("stream")
                if stream is not None and not isinstance(stream, str):
                    raise ValueError("stream is not a string")
                rows.add(payload, parse_time(e["ts"]), e.get("mono_ns"),
                         conn=None if conn is None else int(conn), stream=stream,
                         dir=e["dir"], kind=e["kind"],
                         channels=tuple(e.get("channels") or ()),
                         symbols=tuple(e.get("symbols") or ()))
            except (ValueError, KeyError, TypeError) as exc:
                rows.skip(number, f"not a wsrec envelope line ({exc})")


def _lines(path: Path, rows: _Rows) -> None:
    with _open_text(path) as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            stamp, sep, message = line.partition(" ")
            try:
                if not sep:
                    raise ValueError("no message after the timestamp")
                ts = epoch_ns(stamp.strip())
            except ValueError as exc:
                rows.skip(number, f"not '<timestamp> <message>' ({exc})")
                continue
            rows.add(message.encode("utf-8", errors="surrogateescape"), ts, kind="text")


def _har(path: Path, rows: _Rows) -> None:
    try:
        with _open_text(path) as f:
            har = json.load(f)
        entries = har["log"]["entries"]
    except (ValueError, KeyError, TypeError) as exc:
        raise WsrecError(f"{path}: not a HAR file ({exc})") from None
    messages = []
    number = 0
    for entry in entries:
        socket_messages = entry.get("_webSocketMessages")
        if not socket_messages:
            continue
        conn = len({m[1] for m in messages})
        url = (entry.get("request") or {}).get("url", "")
        first = None
        for m in socket_messages:
            number += 1
            try:
                ts = int(float(m["time"]) * 1e9)
                opcode = int(m.get("opcode", 1))
                if opcode == 1:
                    payload, kind = m["data"].encode("utf-8", errors="surrogateescape"), "text"
                elif opcode == 2:
                    payload, kind = base64.b64decode(m["data"]), "binary"
                else:
                    continue
                direction = {"send": "out", "receive": "in"}[m["type"]]
            except (ValueError, KeyError, TypeError) as exc:
                rows.skip(number, f"unreadable WebSocket message ({exc})")
                continue
            first = ts if first is None else min(first, ts)
            messages.append((ts, conn, direction, kind, payload))
        if first is not None:
            messages.append((first - 1, conn, "event", "open",
                             json.dumps({"url": url}).encode()))
    for ts, conn, direction, kind, payload in sorted(messages, key=lambda m: m[0]):
        if direction == "event":
            rows.add(payload, ts, conn=conn, stream=f"socket-{conn}", dir="event", kind=kind,
                     channels=(), symbols=())
        else:
            rows.add(payload, ts, conn=conn, stream=f"socket-{conn}", dir=direction, kind=kind)
