"""Durations, sizes and bounded numbers as users write them, for the recording's options:
one parser each, shared by ``wsrec record``'s options and the service's config file::

    parse_seconds("90s", "duration")        # 90.0
    parse_size("5GB")                       # 5_000_000_000
    bounded(0.5, "backoff", 0, 86400, low_open=True)
"""

from __future__ import annotations

import math
import re

from wsrec.errors import UsageError
from wsrec.timefmt import parse_duration

__all__ = ["MAX_DURATION", "parse_seconds", "parse_size", "bounded"]

#: seconds: a recording's ``duration`` is at most ten years
MAX_DURATION = 10 * 366 * 86400

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000 ** 2, "mb": 1000 ** 2,
          "mib": 1024 ** 2, "g": 1000 ** 3, "gb": 1000 ** 3, "gib": 1024 ** 3,
          "t": 1000 ** 4, "tb": 1000 ** 4, "tib": 1024 ** 4}


def parse_seconds(value, what: str = "duration") -> float:
    """A recording's length (``30s``, ``5m``, ``2h``, or a number of seconds): more than 0
    and at most ten years, in seconds; UsageError naming ``what`` else."""
    seconds = parse_duration(value) / 1e9
    if not 0 < seconds <= MAX_DURATION:
        raise UsageError(f"{value!r} must be more than 0 and at most 10 years "
                         f"(omit {what} to record until stopped)")
    return seconds


def parse_size(value) -> int:
    """``1GiB``, ``500MB``, ``0``, ``1048576`` (or an int): a number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value) \
        if isinstance(value, str) else None
    unit = m.group(2).lower() if m else None
    if not m or unit not in _UNITS:
        raise UsageError(f"{value!r} is not a size (e.g. 1GiB, 500MB, 0)")
    return int(float(m.group(1)) * _UNITS[unit])


def bounded(value, what: str, low: float, high: float, *, low_open: bool = False) -> float:
    """``value`` (a number) if it is finite and within [low, high] (``low_open``: above
    ``low``); UsageError naming ``what`` else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise UsageError(f"{what}: {value!r} is not a finite number", param=what)
    if value < low or value > high or low_open and value == low:
        lo = f"more than {low:.10g}" if low_open else f"at least {low:.10g}"
        raise UsageError(f"{what}: {value:.10g} is out of range ({lo} and at most {high:.10g})",
                         param=what)
    return value
