"""WebSocket URLs: checking one before anything connects to it, with the problem in words."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from wsrec.errors import ConnectError, UsageError
from wsrec.secrets import redact_url

if TYPE_CHECKING:
    from websockets.uri import WebSocketURI

__all__ = ["InvalidURL", "parse_url", "url_problem"]


class InvalidURL(ConnectError, UsageError):
    """The URL can't be connected to (syntax, scheme, host, port); ``problem`` says why."""

    def __init__(self, url: str, problem: str):
        self.problem = problem
        super().__init__(f"invalid WebSocket URL {redact_url(url)!r}: {problem}")


def url_problem(url: str) -> str | None:
    """What makes ``url`` unusable as a WebSocket URL (None: nothing)."""
    try:
        parse_url(url)
    except InvalidURL as exc:
        return exc.problem
    return None


def parse_url(url: str) -> WebSocketURI:
    """websockets' parsed form of ``url``, or InvalidURL naming the problem in words
    (``invalid port 99999``) with the URL's secrets redacted."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidURL(str(url), "empty URL")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        text = str(exc)
        if "IPv6" in text:
            text = "unbalanced '[' or ']' around the host (an IPv6 address is written [::1])"
        raise InvalidURL(url, text) from None
    if parts.scheme.lower() not in ("ws", "wss"):
        raise InvalidURL(url, "the scheme must be ws:// or wss://")
    host_port = parts.netloc.rpartition("@")[2]
    if not parts.hostname:
        raise InvalidURL(url, "no host name")
    port = host_port.rpartition("]")[2] if host_port.startswith("[") else host_port
    port = port.rpartition(":")[2] if ":" in port else None
    if port is not None and port != "":
        if not re.fullmatch(r"[0-9]{1,5}", port) or not 0 < int(port) <= 65535:
            raise InvalidURL(url, f"invalid port {port} (ports are 1 to 65535)")
    if parts.fragment:
        raise InvalidURL(url, "a WebSocket URL has no #fragment")
    from websockets.exceptions import InvalidURI   # here: ``wsrec venues`` doesn't need it
    from websockets.uri import parse_uri
    try:
        return parse_uri(url)
    except InvalidURI as exc:
        raise InvalidURL(url, getattr(exc, "msg", None) or str(exc)) from None
    except (ValueError, UnicodeError) as exc:
        raise InvalidURL(url, f"invalid host name: {exc}") from None
