"""Every error wsrec raises on purpose.

Library errors (OSError, pyarrow's ArrowInvalid, json's JSONDecodeError, ...) are
mapped to one of these where they are caught, with a one-line message that names
the file or argument and says what to do. The CLI prints ``Error: <message>`` and
exits 2 for a UsageError (with click's ``Usage:`` lines), 1 for any other of them;
anything else is a bug and keeps its traceback.

    WsrecError
    ├── UsageError             an argument no call can honour (also a ValueError)
    │   ├── UnsupportedDataRoot  a data root wsrec can't use (a URL of another scheme)
    │   ├── InvalidURL         (wsrec.urls; also a ConnectError) a URL that can't be used
    │   └── SpeedTooSlow       (wsrec.replay._schedule) due times past int64
    ├── SessionNotFound        no session matches a reference
    ├── AmbiguousSession       a prefix matches several sessions
    ├── SessionBusy            the session is being recorded (its lock is held)
    ├── SessionCrashed         (followed) its recorder died without closing it ('wsrec repair')
    ├── CorruptData            a manifest, part or journal can't be read
    ├── OutdatedFormat         a session in an older format ('wsrec repair --upgrade')
    ├── ConnectError           a connection could not be opened
    │   └── HandshakeRejected  the server answered the upgrade with another HTTP status
    ├── ScheduleOverflow       (wsrec.replay._schedule) clocks spanning more than int64
    └── StorageError           the data root could not be written or read
        ├── DiskFull           ENOSPC, EDQUOT or EFBIG while writing
        ├── RootNotFound       (wsrec.store.location) the bucket doesn't exist
        ├── RootAccessDenied   (wsrec.store.location) the store refused the credentials
        └── StorageUnavailable (wsrec.store.location) the store can't be reached or
                               failed for now (network, 5xx, throttling): try again
"""

from __future__ import annotations

import errno

__all__ = [
    "WsrecError",
    "UsageError",
    "SessionNotFound",
    "AmbiguousSession",
    "SessionBusy",
    "SessionCrashed",
    "CorruptData",
    "OutdatedFormat",
    "UnsupportedDataRoot",
    "ConnectError",
    "HandshakeRejected",
    "StorageError",
    "DiskFull",
    "RootNotFound",
    "RootAccessDenied",
    "StorageUnavailable",
    "storage_error",
]


class WsrecError(Exception):
    """Base class of wsrec's own errors; the message is one line meant for a user."""


class UsageError(WsrecError, ValueError):
    """An argument no call can honour: a bad option, value, name or combination.

    ``param``, when given, names the argument at fault as the API spells it (``start``,
    ``symbols``, ``target``, ...; the message may begin with ``"<param>: "``), or, as a
    tuple, the arguments that don't go together (``("start", "end")``). The CLI shows
    the first as click's ``Invalid value for --OPTION: ...``, the second with each name
    written as its option.
    """

    def __init__(self, message: str = "", param: str | tuple[str, ...] | None = None):
        super().__init__(message)
        self.param = param


class SessionNotFound(WsrecError):
    pass


class AmbiguousSession(WsrecError):
    pass


class SessionBusy(WsrecError):
    pass


class SessionCrashed(WsrecError):
    """A session being followed still says ``recording`` but nothing holds its lock any
    more: its recorder died without closing it (``wsrec repair`` finishes it)."""


class CorruptData(WsrecError):
    pass


class OutdatedFormat(WsrecError):
    pass


class UnsupportedDataRoot(UsageError):
    """A data root wsrec can't use: a URL of another scheme (http://, ...), or a
    remote root where a command needs a local folder."""


class StorageError(WsrecError):
    pass


class DiskFull(StorageError):
    pass


class RootNotFound(StorageError):
    """The data root's bucket does not exist (permanent until someone creates it)."""


class RootAccessDenied(StorageError):
    """The store refused the request: missing, wrong or expired credentials, or no
    permission (permanent until the credentials are fixed)."""


class StorageUnavailable(StorageError):
    """The store could not be reached or failed for now: network, timeouts, 5xx,
    throttling. Transient: retrying later may succeed."""


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (pyarrow's messages span several)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def storage_error(exc: OSError, what: str) -> StorageError:
    """Map an OSError raised while writing ``what`` to StorageError or DiskFull."""
    reason = exc.strerror or first_line(exc)
    if exc.errno in _FULL:
        return DiskFull(f"disk full while writing {what}: {reason}")
    return StorageError(f"cannot write {what}: {reason}")


class ConnectError(WsrecError):
    """The connection could not be opened (DNS, refused, TLS, timeout, bad handshake)."""


class HandshakeRejected(ConnectError):
    """The server answered the upgrade with an HTTP status other than 101."""

    def __init__(self, status: int, body: bytes = b""):
        self.status = status
        self.body = body
        text = body.decode(errors="replace").strip().splitlines()
        super().__init__(f"HTTP {status} on the WebSocket upgrade"
                         + (f": {text[0][:200]}" if text else ""))
