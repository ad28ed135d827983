"""Log lines: every message wsrec writes to stderr goes through ``log``.

Text by default: the lines wsrec has always written, the message alone, with
``warning: `` before a warning and ``error: `` before an error. With
``set_format("json")`` (``wsrec --log-format json``) each line is one JSON object, for
log shippers (journald, Vector, Fluent Bit, Loki)::

    {"ts": "2026-11-21T21:00:00.123456789Z", "level": "warning", "msg": "...", ...}

``ts`` is the wall-clock time of the line (RFC 3339, UTC, nanoseconds), ``level`` one
of ``LEVELS``, ``msg`` the text line, and the keyword fields given to ``log`` follow
(``session``, ``frames_in``, ``client``, ...). Text lines leave the fields out: the
message says the same in words.

Each line is one write(2) of the whole line under a lock, so lines written by
concurrent threads (a replay server's clients) never run together. Something else that
draws on stderr (a progress bar) registers with ``around_lines`` to be told before and
after each line, so that a line never lands on it. The message and
every string field pass through ``wsrec.secrets``' URL redaction (user-info and
secret-named parameters) as a last guard, but for the values a caller names
``public`` (the demo token in the URL a simulator announces: a client must be able to
use that URL as printed); a recording's own secret values are removed by its
``Redactor`` before its messages get here.

Example::

    from wsrec.logs import log, set_format
    set_format("json")
    log("listening on ws://127.0.0.1:8765", url="ws://127.0.0.1:8765")
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Callable, Iterable

from wsrec.errors import UsageError
from wsrec.secrets import Redactor
from wsrec.timefmt import format_ns

__all__ = ["log", "set_format", "get_format", "format_line", "write_line", "around_lines",
           "LEVELS", "FORMATS"]

#: the levels a line can have, least severe first
LEVELS = ("debug", "info", "warning", "error")
#: the line formats ``set_format`` takes
FORMATS = ("text", "json")
#: the keys every JSON line starts with; fields of these names are left out
_RESERVED = ("ts", "level", "msg")

_LOCK = threading.Lock()
_format = "text"
_clock = time.time_ns
_around: list[tuple[Callable[[], None], Callable[[], None]]] = []


def set_format(name: str, *, clock=None) -> None:
    """Write ``text`` or ``json`` lines from now on (the whole process: ``wsrec
    --log-format``). ``clock``: the wall clock (ns) JSON lines are stamped with
    (default ``time.time_ns``; tests give a fixed one)."""
    global _format, _clock
    if name not in FORMATS:
        raise UsageError(f"log format must be one of {', '.join(FORMATS)}, not {name!r}",
                         param="log_format")
    _format = name
    _clock = clock or time.time_ns


def get_format() -> str:
    """The line format in use: ``text`` or ``json``."""
    return _format


def format_line(message: str, level: str = "info", fields: dict | None = None, *,
                fmt: str | None = None, ts_ns: int | None = None,
                public: Iterable[str] = ()) -> str:
    """The line ``log`` writes (without its newline), in ``fmt`` (default: the format
    in use), stamped ``ts_ns`` (default: now). ``public``: values the guard keeps
    though they stand where a secret would (``wsrec.secrets.Redactor``). Pure apart
    from the defaults."""
    if level not in LEVELS:
        raise UsageError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    guard = Redactor(public=public)
    text = guard.text(str(message))
    if (fmt or _format) == "text":
        return text if level in ("info", "debug") else f"{level}: {text}"
    record = {"ts": format_ns(_clock() if ts_ns is None else ts_ns), "level": level,
              "msg": text}
    for key, value in (fields or {}).items():
        if key not in _RESERVED:
            record[key] = guard.text(value) if isinstance(value, str) else value
    return json.dumps(record, separators=(",", ":"), default=str)


def log(message: str, level: str = "info", *, public: Iterable[str] = (), **fields) -> None:
    """Write one line on stderr (see the module's docstring): ``message`` with ``level``,
    and in JSON lines the keyword ``fields`` too. ``public``: values that are no secret
    though they stand where one would (a simulator's demo token in the URL it
    announces): printed as they are; every other secret-looking value is masked."""
    write_line(format_line(message, level, fields, public=public))


def write_line(text: str) -> None:
    """``text`` and a newline on stderr in a single write, under a lock: lines written by
    concurrent threads never run together. A stderr with no descriptor (a test's
    capture) gets an ordinary write; a stderr that is gone is ignored."""
    data = text.rstrip("\n") + "\n"
    with _LOCK:
        for before, _ in _around:
            before()
        try:
            _write(data)
        finally:
            for _, after in _around:
                after()


def around_lines(before: Callable[[], None], after: Callable[[], None]) -> Callable[[], None]:
    """Call ``before()`` ahead of every line written to stderr and ``after()`` once it is
    written (a progress bar takes itself off the line and puts itself back); returns the
    function that stops it."""
    pair = (before, after)
    with _LOCK:
        _around.append(pair)

    def remove() -> None:
        with _LOCK:
            if pair in _around:
                _around.remove(pair)
    return remove


def _write(data: str) -> None:
    stream = sys.stderr
    try:
        stream.flush()
        raw = data.encode(getattr(stream, "encoding", None) or "utf-8", "backslashreplace")
        fd = stream.fileno()
        while raw:
            raw = raw[os.write(fd, raw):]
    except (AttributeError, OSError, ValueError):  # no file descriptor (captured)
        try:
            stream.write(data)
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
