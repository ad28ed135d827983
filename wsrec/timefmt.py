"""Nanosecond timestamps: RFC 3339 formatting and parsing, durations."""

from __future__ import annotations

import datetime as _dt
import re

__all__ = ["format_ns", "parse_time", "parse_duration", "format_duration", "NS"]

NS = 1_000_000_000
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)


def format_ns(ns: int | None) -> str | None:
    """``1795000000123456789`` -> ``'2026-11-18T09:46:40.123456789Z'`` (always 9 digits)."""
    if ns is None:
        return None
    secs, frac = divmod(int(ns), NS)
    stamp = _dt.datetime.fromtimestamp(secs, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"


def parse_time(value) -> int:
    """An ISO 8601 string (naive means UTC), a datetime, or int nanoseconds -> ns since epoch.

    Raises ValueError with a message naming the value.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        delta = value - _EPOCH
        return (delta.days * 86400 + delta.seconds) * NS + delta.microseconds * 1000
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r}")
    m = _ISO.match(value.strip())
    if not m:
        raise ValueError(f"not an ISO 8601 time: {value!r} (expected e.g. 2026-11-21T14:03:07Z)")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        base = _dt.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0),
                            tzinfo=_dt.timezone.utc)
    except ValueError as exc:
        raise ValueError(f"not a valid time: {value!r} ({exc})") from None
    ns = parse_time(base) + int((frac or "0").ljust(9, "0"))
    if tz and tz.upper() != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        ns -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * NS
    return ns


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h|d)?", re.IGNORECASE)
_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": NS, "m": 60 * NS, "h": 3600 * NS,
          "d": 86400 * NS, None: NS}


def parse_duration(text: str) -> int:
    """``'30s'``, ``'5m'``, ``'1h30m'``, ``'250ms'``, ``'2'`` (seconds) -> nanoseconds."""
    raw = str(text).strip()
    pos, total = 0, 0
    for m in _DURATION.finditer(raw):
        if m.start() != pos:
            break
        unit = m.group(2).lower() if m.group(2) else None
        total += int(float(m.group(1)) * _UNITS[unit])
        pos = m.end()
    if not raw or pos != len(raw):
        raise ValueError(f"not a duration: {text!r} (expected e.g. 30s, 5m, 2h, 1h30m)")
    return total


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
