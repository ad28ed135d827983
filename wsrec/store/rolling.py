"""Rotation: one recording rolls into a new session at each UTC boundary (``--rotate``).

``RollingWriter`` has ``SessionWriter``'s surface (``append``, ``event``, ``flush``,
``close``, ``id``, ``folder``, ``rows``, a context manager). It decides on the appending
thread, by each row's own ``ts_ns``: the first row at or past the boundary opens the next
session, so every row goes to exactly one session and ``seq`` is gapless in each (it
starts at 0 in every session). A roll never goes back: a wall clock that steps back
keeps writing to the new session.

A roll writes one ``rotate`` event row in each session (``wsrec.store._connections``):
the new session's first row says which connections are open and which streams are
down, so connections and gaps still come from the rows alone and a connection open
across the boundary shows in both sessions, with no ``open`` row invented (replay sees
no reconnect). The old session's last row names the new one. The manifests get
``continues`` (new) and ``continued_by`` (old). The old session is sealed and closed
on a closer thread, off the caller's path; ``close`` waits for it.

If the next session can't be created, rows stay in the current one and the roll is
retried by the next ``roll_if_due`` (the recorder's tick); after ``MAX_ROLL_FAILURES``
failures in a row the error is raised to the caller.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from wsrec.errors import UsageError, WsrecError
from wsrec.store.writer import ClosingOnExit, SessionWriter

__all__ = ["Rotation", "RollingWriter", "parse_rotation", "PERIODS", "MAX_ROLL_FAILURES"]

PERIODS = {"1h": 3_600 * 1_000_000_000, "1d": 86_400 * 1_000_000_000}
#: a roll that failed this many times in a row fails the recording
MAX_ROLL_FAILURES = 3
_NEVER = ("never", "none", "off")
_time_ns = time.time_ns
_monotonic_ns = time.monotonic_ns


def parse_rotation(text) -> int | None:
    """``1h``/``1d`` -> the period in ns; ``never`` (or None) -> None; UsageError else."""
    if text is None or isinstance(text, str) and text.strip().lower() in _NEVER:
        return None
    if isinstance(text, str) and text.strip().lower() in PERIODS:
        return PERIODS[text.strip().lower()]
    if type(text) is int and text > 0:
        return text
    raise UsageError(f"invalid rotation {text!r}: use 1h, 1d or never", param="rotate")


class Rotation:
    """When sessions roll: every ``period`` (``"1h"``, ``"1d"``, None/``"never"``, or ns),
    at the multiples of it counted from ``origin_ns`` (0: UTC hours and midnights).

    Pure: tests give a short period and an origin of their own."""

    def __init__(self, period=None, origin_ns: int = 0):
        self.period = parse_rotation(period)
        self.origin = int(origin_ns)
        self.label = _label(period, self.period)

    def floor(self, ts_ns: int) -> int | None:
        """The last boundary at or before ``ts_ns`` (None: never rotates)."""
        if self.period is None:
            return None
        return self.origin + (ts_ns - self.origin) // self.period * self.period

    def next_after(self, ts_ns: int) -> int | None:
        """The first boundary after ``ts_ns`` (None: never rotates)."""
        if self.period is None:
            return None
        return self.floor(ts_ns) + self.period

    def __repr__(self) -> str:
        return f"Rotation({self.label!r})"


def _label(text, period: int | None) -> str:
    if period is None:
        return "never"
    if isinstance(text, str):
        return text.strip().lower()
    return next((k for k, v in PERIODS.items() if v == period), f"{period}ns")


class RollingWriter(ClosingOnExit):
    """A ``SessionWriter`` that rolls into a new session at each ``rotation`` boundary.

    Example::

        with RollingWriter("alpaca", data="wsrec-data", rotation=Rotation("1d")) as w:
            w.event("open", url="wss://stream.data.alpaca.markets/v2/test")
            w.append(b'[{"T":"success","msg":"connected"}]', kind="text")
        w.sessions   # every session written, oldest first
    """

    def __init__(self, venue: str, data=None, *, rotation: Rotation | None = None,
                 args: dict | None = None, now_ns=None, **settings):
        self.rotation = rotation or Rotation(None)
        self._data, self._args, self._settings = data, args, settings
        self._now_ns = now_ns or _time_ns
        self._writer = SessionWriter(venue, data, args=args, started_ns=self._now_ns(),
                                     ended_by_clock=True, **settings)
        self._writer.manifest["settings"]["rotate"] = self.rotation.label
        self.venue = self._writer.venue
        self.sessions: list[SessionWriter] = [self._writer]
        self._boundary = self.rotation.next_after(self._now_ns())
        self._last_ts: int | None = None
        self._last_mono: int | None = None
        self._closers: list[threading.Thread] = []
        self._close_errors: list[WsrecError] = []
        self._failures = 0
        self._hold = False        # a roll failed: wait for roll_if_due before the next try
        self.roll_error: str | None = None

    # -- SessionWriter's surface -----------------------------------------------------

    @property
    def id(self) -> str:
        return self._writer.id

    @property
    def folder(self) -> Path:
        return self._writer.folder

    @property
    def manifest(self) -> dict:
        return self._writer.manifest

    @property
    def next_roll(self) -> int | None:
        """The next boundary (ns), None when it never rotates."""
        return self._boundary

    @property
    def rows(self) -> int:
        """Rows appended to the current session so far (its next ``seq``)."""
        return self._writer.rows

    @property
    def pending_since_ns(self) -> int | None:
        """The current session's ``SessionWriter.pending_since_ns``."""
        return self._writer.pending_since_ns

    def append(self, payload, *, ts_ns: int | None = None, mono_ns: int | None = None,
               **row) -> int:
        """``SessionWriter.append`` into the session ``ts_ns`` belongs to; returns the
        row's ``seq`` in it."""
        if ts_ns is None:
            ts_ns = _time_ns()
        if self._boundary is not None and ts_ns >= self._boundary and not self._hold:
            self._roll(ts_ns, mono_ns)
        seq = self._writer.append(payload, ts_ns=ts_ns, mono_ns=mono_ns, **row)
        self._last_ts, self._last_mono = ts_ns, self._writer._last_mono
        return seq

    def event(self, kind: str, *, conn: int | None = 0, stream: str | None = None,
              ts_ns: int | None = None, mono_ns: int | None = None, **info) -> int:
        if ts_ns is None:
            ts_ns = _time_ns()
        if self._boundary is not None and ts_ns >= self._boundary and not self._hold:
            self._roll(ts_ns, mono_ns)
        seq = self._writer.event(kind, conn=conn, stream=stream, ts_ns=ts_ns,
                                 mono_ns=mono_ns, **info)
        self._last_ts, self._last_mono = ts_ns, self._writer._last_mono
        return seq

    def flush(self) -> None:
        self._writer.flush()

    def roll_if_due(self, now_ns: int | None = None, mono_ns: int | None = None) -> bool:
        """Roll now if ``now_ns`` (default: the wall clock) is at or past the boundary,
        so a quiet stream still rolls; also retries a roll that failed. ``mono_ns``: the
        ``rotate`` row's (default: the last row's). True if rolled."""
        now = self._now_ns() if now_ns is None else now_ns
        self._hold = False
        if self._boundary is None or now < self._boundary:
            return False
        return self._roll(now, mono_ns)

    def close(self, status: str = "complete", error: str | None = None) -> dict:
        """Close the current session, wait for the earlier ones to be closed; raises the
        first failure (after closing everything). Returns the current manifest."""
        failure = None
        try:
            manifest = self._writer.close(status, error)
        except WsrecError as exc:
            failure, manifest = exc, self._writer.manifest
        for thread in self._closers:
            thread.join()
        self._closers.clear()
        failure = failure or (self._close_errors[0] if self._close_errors else None)
        if failure is not None:
            raise failure
        return manifest

    # -- the roll ------------------------------------------------------------------------

    def _roll(self, ts_ns: int, mono_ns: int | None) -> bool:
        old = self._writer
        started = self.rotation.floor(ts_ns)
        try:
            new = SessionWriter(self.venue, self._data, args=self._args, started_ns=started,
                                continues=old.id, ended_by_clock=True, **self._settings)
        except WsrecError as exc:
            self._failures += 1
            self._hold = True
            self.roll_error = f"cannot start the next session: {exc}"
            if self._failures >= MAX_ROLL_FAILURES:
                raise
            return False
        self._failures, self.roll_error = 0, None
        new.manifest["settings"]["rotate"] = self.rotation.label
        if mono_ns is not None:
            mono = mono_ns if self._last_mono is None else max(mono_ns, self._last_mono)
        else:
            mono = self._last_mono if self._last_mono is not None else _monotonic_ns()
        carry = old.carry()
        old.continue_as(new.id)
        new.event("rotate", conn=None, ts_ns=ts_ns, mono_ns=mono, **{"from": old.id}, **carry)
        try:   # the old session's last row; it has no rows after it
            old.event("rotate", conn=None, ts_ns=self._last_ts if self._last_ts is not None
                      else started, mono_ns=self._last_mono, to=new.id)
        except WsrecError as exc:
            self._close_errors.append(exc)
        self._writer = new
        self.sessions.append(new)
        self._boundary = max(self.rotation.next_after(ts_ns), self._boundary or 0)
        self._last_ts, self._last_mono = ts_ns, mono
        closer = threading.Thread(target=self._close_old, args=(old,),
                                  name=f"wsrec-close-{old.id}", daemon=True)
        self._closers = [t for t in self._closers if t.is_alive()]
        self._closers.append(closer)
        closer.start()
        return True

    def _close_old(self, old: SessionWriter) -> None:
        try:
            old.close(at_last_row=True)
        except WsrecError as exc:
            self._close_errors.append(exc)
