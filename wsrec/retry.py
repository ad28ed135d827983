"""How long to wait before retrying: exponential backoff with full jitter.

One pure function, used by the recorder (reconnects) and by the uploader (a bucket that
can't be reached): the caller's ``rng`` and clock make it deterministic in tests.
"""

from __future__ import annotations

__all__ = ["backoff_delay"]


def backoff_delay(attempt: int, base: float, cap: float, rng) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): exponential backoff with full
    jitter, uniform in [0, min(cap, base * 2 ** (attempt - 1))]; ``rng`` is a
    ``random.Random`` (or anything with its ``uniform``)."""
    return rng.uniform(0, min(cap, base * 2 ** (min(attempt, 64) - 1)))
