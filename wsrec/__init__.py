"""wsrec: record WebSocket streams byte-exact into zstd Parquet sessions, and replay them.

The Python API the CLI is built on::

    import wsrec
    with wsrec.SessionWriter("alpaca") as w:      # recording
        w.append(b'[{"T":"success","msg":"connected"}]', kind="text")
    s = wsrec.open_session("alpaca")              # that venue's newest session
    for frame in s.frames(direction="in", symbols="AAPL"):
        print(frame.seq, frame.payload)
"""

__version__ = "0.1.0"

from .errors import (AmbiguousSession, CorruptData, DiskFull, SessionBusy,  # noqa: E402
                     SessionNotFound, StorageError, WsrecError)
from .filters import Filters  # noqa: E402
from .session import Frame, Session, open_session  # noqa: E402
from .writer import SessionWriter  # noqa: E402

__all__ = [
    "__version__",
    "SessionWriter",
    "open_session",
    "Session",
    "Frame",
    "Filters",
    "WsrecError",
    "SessionNotFound",
    "AmbiguousSession",
    "SessionBusy",
    "CorruptData",
    "StorageError",
    "DiskFull",
]
