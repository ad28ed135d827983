"""Publishing a file whole: written under a temporary name, fsync'd, renamed over its final
name, and the folder fsync'd, so the final name only ever holds a complete file (the old
one or the new one), also after a crash or a power cut.

Used for ``session.json``, for parts, and for ``wsrec convert``'s output.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["publish", "write_atomic", "fsync_dir"]


def fsync_dir(path) -> None:
    """Make a folder's entries (a file created, renamed or removed in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(file, tmp, final) -> None:
    """Flush and fsync ``file`` (open on ``tmp``), close it, rename ``tmp`` over ``final``
    and fsync the folder. OSError as it comes."""
    file.flush()
    os.fsync(file.fileno())
    file.close()
    os.replace(tmp, final)
    fsync_dir(Path(final).parent)


def write_atomic(path, data: bytes) -> None:
    """Replace ``path`` with ``data`` by way of ``NAME.tmp`` next to it (see ``publish``)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        publish(f, tmp, path)
