"""Nanosecond timestamps: RFC 3339 formatting and parsing, durations.

Times are int64 nanoseconds since the epoch (Arrow's ``timestamp[ns]``), so only
``MIN_NS`` .. ``MAX_NS`` (1677-09-21T00:12:43Z .. 2262-04-11T23:47:16Z) can be
represented; ``parse_time`` refuses anything outside, naming the value. Bad input is a
``UsageError`` (a ``ValueError``) whose message names the value.
"""

from __future__ import annotations

import datetime as _dt
import re
from decimal import Decimal, InvalidOperation

from wsrec.errors import UsageError

__all__ = ["format_ns", "parse_time", "parse_duration", "format_duration", "check_ns",
           "is_offset", "NS", "MIN_NS", "MAX_NS", "MAX_DURATION_NS"]

NS = 1_000_000_000
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
#: The representable times: int64 nanoseconds, less -2**63 (pandas' "not a time").
MIN_NS = -(2**63) + 1
MAX_NS = 2**63 - 1
_RANGE = "1677-09-21T00:12:43Z .. 2262-04-11T23:47:16Z"
#: The longest duration ``parse_duration`` accepts: 100 years.
MAX_DURATION_NS = 36_525 * 86_400 * NS


def check_ns(ns: int, what) -> int:
    """``ns`` if it is a representable time, else UsageError naming ``what``."""
    if not MIN_NS <= ns <= MAX_NS:
        raise UsageError(f"{_shown(what)} is outside the times wsrec can represent ({_RANGE})")
    return ns


def _shown(value, limit: int = 60) -> str:
    """``repr(value)``, shortened: messages stay one readable line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 4]}...{text[-1]}"

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)


def format_ns(ns: int | None) -> str | None:
    """``1795000000123456789`` -> ``'2026-11-18T11:06:40.123456789Z'`` (always 9 digits)."""
    if ns is None:
        return None
    secs, frac = divmod(int(ns), NS)
    stamp = _dt.datetime.fromtimestamp(secs, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"


def parse_time(value, origin: int | None = None) -> int:
    """An ISO 8601 string (naive means UTC), a datetime, int nanoseconds, or an offset
    such as ``'+30s'`` from ``origin`` (ns) -> ns since epoch.

    Raises UsageError with a message naming the value, also for a time outside
    ``MIN_NS`` .. ``MAX_NS`` (before 1677-09-21 or after 2262-04-11), and for an offset
    without an ``origin``.
    """
    if isinstance(value, bool):
        raise UsageError(f"not a time: {value!r}")
    if isinstance(value, int):
        return check_ns(value, value)
    if isinstance(value, _dt.datetime):
        return check_ns(_datetime_ns(value), value.isoformat())
    if not isinstance(value, str):
        raise UsageError(f"not a time: {value!r}")
    if is_offset(value):
        if origin is None:
            raise UsageError(f"{_shown(value)} is an offset, and there is no start time to "
                             f"count it from")
        return check_ns(origin + parse_duration(value.strip()[1:]), value)
    m = _ISO.match(value.strip())
    if not m:
        raise UsageError(f"not an ISO 8601 time: {_shown(value)} (expected e.g. "
                         f"2026-11-21T14:03:07Z)")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        base = _dt.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0),
                            tzinfo=_dt.timezone.utc)
    except ValueError as exc:
        raise UsageError(f"not a valid time: {value!r} ({exc})") from None
    ns = _datetime_ns(base) + int((frac or "0").ljust(9, "0"))
    if tz and tz.upper() != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        ns -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * NS
    return check_ns(ns, value)


def is_offset(value) -> bool:
    """Whether ``value`` is an offset such as ``'+30s'`` (see ``parse_duration``)."""
    return isinstance(value, str) and value.strip().startswith("+")


def _datetime_ns(value: _dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    delta = value - _EPOCH
    return (delta.days * 86400 + delta.seconds) * NS + delta.microseconds * 1000


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h|d)?", re.IGNORECASE)
_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": NS, "m": 60 * NS, "h": 3600 * NS,
          "d": 86400 * NS, None: NS}


def parse_duration(text: str) -> int:
    """``'30s'``, ``'5m'``, ``'1h30m'``, ``'250ms'``, ``'2'`` (seconds) -> nanoseconds.

    Exact (no float rounding); at most ``MAX_DURATION_NS`` (100 years), else UsageError.
    """
    raw = str(text).strip()
    pos, total = 0, Decimal(0)
    for m in _DURATION.finditer(raw):
        if m.start() != pos:
            break
        unit = m.group(2).lower() if m.group(2) else None
        try:
            value = Decimal(m.group(1))
        except InvalidOperation:  # pragma: no cover - the pattern only matches numbers
            break
        pos = m.end()
        if not value.is_finite() or value.adjusted() > 20:  # before any arithmetic
            raise UsageError(f"duration {_shown(text)} is too long (at most 100 years)")
        total += value * _UNITS[unit]
        if total > MAX_DURATION_NS:
            raise UsageError(f"duration {_shown(text)} is too long (at most 100 years)")
    if not raw or pos != len(raw):
        raise UsageError(f"not a duration: {_shown(text)} (expected e.g. 30s, 5m, 2h, "
                         f"1h30m)")
    return int(total)


def format_duration(ns: int | None) -> str:
    """Nanoseconds -> a short human form: ``'1h02m03s'``, ``'4.2s'``, ``'350ms'``."""
    if ns is None:
        return "-"
    secs = ns / NS
    if secs < 1:
        return f"{ns / 1e6:.0f}ms"
    if secs < 60:
        return f"{secs:.1f}s"
    whole = int(secs)
    h, rem = divmod(whole, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m{s:02d}s"
    return f"{m}m{s:02d}s"
