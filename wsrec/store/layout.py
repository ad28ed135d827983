"""Where a session's folder lies under a data root: pure paths, no I/O.

The layout is Hive-style, so query engines prune by venue and date::

    <root>/venue=<venue>/date=<YYYY-MM-DD>/<session id>/{session.json, part-NNNNNN.parquet}

``date`` is the UTC date of the session's start, which its id begins with
(``20261122T000000Z-3f9a``). Sessions written before this layout lie at
``<root>/<venue>/<session id>/`` (*legacy*): they are still read. Venue names can't
contain ``=`` (``wsrec.store.writer.check_name``), so ``venue=x`` and a legacy venue
folder can't be confused.
"""

from __future__ import annotations

import calendar
import re
import time
from typing import NamedTuple

__all__ = ["SessionPath", "session_rel", "parse_rel", "start_of", "date_of", "venue_of",
           "dates_between", "venue_dir", "date_dir", "parse_venue_dir", "parse_date_dir",
           "VENUE_DIR", "DATE_DIR", "DAY_NS"]

VENUE_DIR = "venue={}"
DATE_DIR = "date={}"
DAY_NS = 86_400 * 1_000_000_000
_ID_TIME = re.compile(r"^\d{8}T\d{6}Z")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class SessionPath(NamedTuple):
    venue: str
    date: str | None     # "YYYY-MM-DD"; None in the legacy layout
    session: str
    legacy: bool


def start_of(session_id: str) -> int | None:
    """The session's start (ns since the epoch, whole seconds) from its id, or None when
    the id doesn't begin with a valid UTC time (an id chosen with ``--session-id``)."""
    m = _ID_TIME.match(session_id)
    if not m:
        return None
    try:
        ts = time.strptime(m.group(0), "%Y%m%dT%H%M%SZ")
    except ValueError:
        return None
    return calendar.timegm(ts) * 1_000_000_000


def date_of(ts_ns: int) -> str:
    """``YYYY-MM-DD``: the UTC date of ``ts_ns``."""
    return time.strftime("%Y-%m-%d", time.gmtime(ts_ns // 1_000_000_000))


def venue_dir(venue: str) -> str:
    return VENUE_DIR.format(venue)


def date_dir(date: str) -> str:
    return DATE_DIR.format(date)


def session_rel(venue: str, session_id: str, started_ns: int | None = None) -> str:
    """``venue=alpaca/date=2026-11-22/20261122T000000Z-3f9a``: where a new session goes.

    The date comes from the id; an id that doesn't start with a time (one given by the
    caller) takes the date of ``started_ns``, else ``ValueError``."""
    start = start_of(session_id)
    if start is None:
        start = started_ns
    if start is None:
        raise ValueError(f"session id {session_id!r} does not start with its UTC time; "
                         f"pass started_ns")
    return f"{venue_dir(venue)}/{date_dir(date_of(start))}/{session_id}"


def parse_venue_dir(name: str) -> str | None:
    """The venue of a ``venue=<v>`` folder name, else None."""
    if name.startswith("venue="):
        venue = name[6:]
        return venue if _NAME.match(venue) else None
    return None


def parse_date_dir(name: str) -> str | None:
    """The date of a ``date=<YYYY-MM-DD>`` folder name, else None."""
    if name.startswith("date=") and _DATE.match(name[5:]):
        return name[5:]
    return None


def parse_rel(rel: str) -> SessionPath | None:
    """A session folder's path relative to the root, in either layout, or None when it is
    neither (``venue=a/date=2026-11-22/<sid>`` or legacy ``a/<sid>``)."""
    parts = [p for p in str(rel).replace("\\", "/").split("/") if p]
    if len(parts) == 3:
        venue, date, sid = parse_venue_dir(parts[0]), parse_date_dir(parts[1]), parts[2]
        if venue and date and _NAME.match(sid):
            return SessionPath(venue, date, sid, False)
        return None
    if len(parts) == 2 and "=" not in parts[0]:
        venue, sid = parts
        if _NAME.match(venue) and _NAME.match(sid):
            return SessionPath(venue, None, sid, True)
    return None


def dates_between(since_ns: int | None, until_ns: int | None, *,
                  limit: int = 100_000) -> list[str] | None:
    """Every UTC date from ``since_ns``'s to ``until_ns``'s, inclusive, oldest first; None
    when either end is open (every date folder is then wanted). An empty list when
    ``until_ns`` is before ``since_ns``; ValueError past ``limit`` dates."""
    if since_ns is None or until_ns is None:
        return None
    first, last = since_ns // DAY_NS, until_ns // DAY_NS
    if last - first + 1 > limit:
        raise ValueError(f"the range spans more than {limit} days")
    return [date_of(day * DAY_NS) for day in range(first, last + 1)]


def venue_of(folder) -> str:
    """The venue of a session folder (a path) in either layout: ``…/venue=a/date=…/<id>``
    gives ``a``, legacy ``…/a/<id>`` gives ``a``."""
    parts = str(folder).replace("\\", "/").rstrip("/").split("/")
    if len(parts) >= 3 and parse_date_dir(parts[-2]):
        venue = parse_venue_dir(parts[-3])
        if venue:
            return venue
    return parts[-2] if len(parts) >= 2 else ""
