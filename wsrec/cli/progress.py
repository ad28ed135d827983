"""The progress bar every long command shows on stderr (record, replay, convert, import,
verify, repair).

The engines report how far they are through a plain callback (an absolute count:
frames, rows, bytes); a ``Bar`` is that callback. It redraws when ``interval`` seconds
have passed since it last drew (on its ``clock``), so what it shows is never older than
that, however slowly or quickly the count moves. With a known total it shows the total
and an ETA. It shows nothing with ``--quiet``, with ``--log-format json``, or when its
stream is not a terminal (``is_terminal``, which tests may replace; ``terminal=`` forces
the decision for one bar).

Nothing else is ever written on the bar's line: a log line (``wsrec.logs``, from any
thread: the bar draws under a lock) takes the bar off the screen and puts it back under
itself, and
data written to stdout through the stream ``stdout(out)`` returns, which, when stdout
is a terminal too, clears the bar before the data; the next count shows it again (as
last laid out, so never more than ``interval`` old), once the data ends with a whole
line. tqdm lays the line out (``format_meter``), imported only when a bar is shown.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable

from wsrec.logs import around_lines, get_format

__all__ = ["Bar", "INTERVAL", "is_terminal"]

#: seconds between two redraws of a bar
INTERVAL = 0.2
_SECONDS = "{l_bar}{bar}| {n:.1f}/{total:g} s [{elapsed}<{remaining}{postfix}]"


def is_terminal(stream) -> bool:
    """Whether ``stream`` is a terminal (False for a stream without a descriptor)."""
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


class Bar:
    """A progress bar on ``file`` (stderr): ``bar(done)`` tells it the count so far,
    ``bar(done, note)`` also the text after it; ``total`` is a number, None (unknown),
    or a function asked only if the bar is shown (counting can take a while). tqdm's
    ``format_meter`` lays the line out; the bar writes it itself, so that it knows what
    is on the screen."""

    def __init__(self, total: int | float | Callable[[], int | None] | None = None, *,
                 unit: str = " frames", quiet: bool = False, in_bytes: bool = False,
                 file=None, terminal: bool | None = None,
                 clock: Callable[[], float] = time.monotonic, interval: float = INTERVAL):
        self.file = sys.stderr if file is None else file
        self.clock, self.interval = clock, interval
        self.unit, self.in_bytes = unit, in_bytes
        self.done = 0
        self.note: str | None = None
        self.status = ""                     # the line last laid out
        self.drawn_at: float | None = None   # when it was laid out
        self.width = 0                       # columns it takes on the screen, 0: not there
        self.line_open = False               # data written since ended mid-line
        self.lock = threading.RLock()        # what is on the screen: one writer at a time
        self.active = not quiet and get_format() != "json" and (
            is_terminal(self.file) if terminal is None else terminal)
        self.total = None
        self._unhook = None
        if self.active:
            self._unhook = around_lines(self.clear, self._back)
            self.started = clock()
            self.total = total() if callable(total) else total
            self.draw()

    def set_total(self, total: int | float | None) -> None:
        if self.active and total != self.total:
            self.total = total
            self.draw()

    def of(self, done: int | float, total: int | float | None) -> None:
        """``bar(done)`` for an engine that reports ``(done, total)``, as import does."""
        self.set_total(total)
        self(done)

    def __call__(self, done: int | float, note: str | None = None) -> None:
        self.done = done
        if note is not None:
            self.note = note
        if not self.active:
            return
        if self.drawn_at is None or self.clock() - self.drawn_at >= self.interval:
            self.draw()
        elif not self.width:
            self._put(self.status)   # back after data: as it was, at most interval old

    def draw(self) -> None:
        """Lay out the current count and show it."""
        from tqdm import tqdm
        now = self.clock()
        try:
            ncols = os.get_terminal_size(self.file.fileno()).columns
        except (AttributeError, OSError, ValueError):
            ncols = None
        # a bar of seconds (record --duration): whole seconds of the total, no "s/s" rate
        timed = self.unit.strip() == "s" and self.total is not None
        self.status = tqdm.format_meter(
            self.done, self.total, now - self.started, ncols=ncols, unit=self.unit,
            unit_scale=self.in_bytes, unit_divisor=1024 if self.in_bytes else 1000,
            postfix=self.note, bar_format=_SECONDS if timed else None)
        self.drawn_at = now
        self._put(self.status)

    def _put(self, status: str) -> None:
        if self.line_open:
            return   # the data's line is not finished: the bar waits for its end
        from tqdm.utils import disp_len
        width = disp_len(status)
        with self.lock:
            self._emit("\r" + status + " " * max(self.width - width, 0))
            self.width = width if self.active else 0

    def _back(self) -> None:
        if self.active and self.status:
            self._put(self.status)

    def clear(self) -> None:
        """Take the bar off the screen (the next ``bar(done)`` shows it again)."""
        with self.lock:
            if self.width:
                self._emit("\r" + " " * self.width + "\r")
                self.width = 0

    def _emit(self, text: str) -> None:
        """Write and flush; a stream that fails (gone, closed) ends the bar, not the
        command."""
        try:
            self.file.write(text)
            self.file.flush()
        except (OSError, ValueError):
            self.active = False

    def stdout(self, out):
        """``out`` (a binary stream) for the data, as the engines take it: when both it
        and the bar are on a terminal, a stream that clears the bar before each write."""
        return _Cleared(out, self) if self.active and is_terminal(out) else out

    def close(self) -> None:
        if self._unhook is not None:
            self._unhook()
        self.clear()
        self.active = False

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Cleared:
    """A binary stream on the terminal a bar is on: each write clears the bar first and is
    flushed at once (so it is on the screen before the bar comes back)."""

    def __init__(self, out, bar: Bar):
        self.out, self.bar = out, bar

    def write(self, data) -> int:
        view = memoryview(data)
        if not len(view):
            return 0
        self.bar.clear()
        n = self.out.write(data)
        self.out.flush()
        self.bar.line_open = bytes(view[-1:]) != b"\n"
        return n

    def flush(self) -> None:
        self.out.flush()

    def __getattr__(self, name):   # isatty, fileno, closed, ...: the stream's own
        return getattr(self.out, name)
