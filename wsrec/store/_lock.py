"""The recording lock: ``session.lock``, held with ``flock`` by the writer while it records.

A ``recording`` session whose lock is held is live; one whose lock is free is
crashed. Readers test the lock through a read-only descriptor, so they never
write to the data root.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from wsrec.errors import SessionBusy, storage_error

__all__ = ["LOCK", "SessionLock", "is_locked"]

LOCK = "session.lock"


class SessionLock:
    """An exclusive, non-blocking flock on ``folder/session.lock``."""

    def __init__(self, folder: Path, *, create: bool = True):
        self.path = Path(folder) / LOCK
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        try:
            self._fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            raise storage_error(exc, str(self.path)) from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise SessionBusy(f"{Path(folder)} is being recorded by another process") from None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def is_locked(folder: Path) -> bool:
    """True when a writer holds the session's lock (the session is live)."""
    try:
        fd = os.open(Path(folder) / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
