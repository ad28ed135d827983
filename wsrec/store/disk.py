"""Free space on the disk sessions are written to: the floors ``--min-free`` and
``--spool-min-free`` keep.

``below(path, need)`` asks the filesystem that holds ``path`` (its nearest existing
folder: a data root not created yet is on its parent's disk) through an injectable
``disk_usage`` (``shutil.disk_usage``: ``.free`` and ``.total``), and says when less
than ``need`` bytes are free. The recorder (``RecordOptions.min_free``) and the
uploader's spool floor both decide with it; each words its own message.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, NamedTuple

__all__ = ["Shortfall", "below", "format_size"]


class Shortfall(NamedTuple):
    """Less than ``need`` bytes ``free`` (of ``total``) on the filesystem of ``path``."""
    free: int
    need: int
    total: int
    path: Path


def below(path, need: int | Callable[[int], int], *,
          disk_usage=shutil.disk_usage) -> Shortfall | None:
    """A ``Shortfall`` when the filesystem of ``path`` has less than ``need`` bytes free
    (``need`` may be a function of the filesystem's total size), else None; None too when
    the filesystem can't be asked (the write that follows reports the real error)."""
    where = _existing(Path(path))
    try:
        usage = disk_usage(where)
    except OSError:
        return None
    floor = need(usage.total) if callable(need) else need
    if usage.free >= floor:
        return None
    return Shortfall(int(usage.free), int(floor), int(usage.total), where)


def _existing(path: Path) -> Path:
    """``path``, or its nearest ancestor that exists."""
    for candidate in (path, *path.parents):
        if os.path.exists(candidate):
            return candidate
    return path


def format_size(n: int | float) -> str:
    """``812.0 MiB``, ``4.2 GiB``, ``512 B``: binary units, as ``ls`` and ``info`` show."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover
