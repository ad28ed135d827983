"""Any WebSocket URL: connect, send the given messages on every (re)connect, record."""

from __future__ import annotations

from urllib.parse import urlsplit

from wsrec.urls import url_problem
from wsrec.secrets import redact_url
from wsrec.errors import UsageError
from wsrec.venues.base import Request, Stream, Venue

__all__ = ["Url", "UrlStream"]


class UrlStream(Stream):
    def __init__(self, url: str, messages: list[bytes], headers: dict[str, str]):
        self.url = url
        self.messages = messages
        self.headers = headers

    def opening(self) -> list[bytes]:
        return list(self.messages)


class Url(Venue):
    name = "url"
    title = "any WebSocket endpoint (wsrec record url URL --send MSG --name NAME)"
    symbols = "none"
    params = {"header.<Name>": "an upgrade header to send"}
    watchdog = None
    heartbeat = 20.0

    def streams(self, request: Request) -> list[Stream]:
        if not request.url:
            raise UsageError("url: give the endpoint, e.g. wsrec record url wss://host/path")
        try:
            scheme = urlsplit(request.url).scheme
        except ValueError:
            scheme = None   # reported below
        if scheme is not None and scheme.lower() not in ("ws", "wss"):
            raise UsageError(f"url: {redact_url(request.url)!r} is not a ws:// or wss:// URL")
        problem = url_problem(request.url)
        if problem:
            raise UsageError(f"url: invalid URL {redact_url(request.url)!r}: {problem}")
        headers = {k[len("header."):]: v for k, v in request.params.items()
                   if k.startswith("header.")}
        unknown = [k for k in request.params if not k.startswith("header.") and k != "send"]
        if unknown:
            raise UsageError(f"url: unknown parameter(s) {', '.join(unknown)}")
        sends = request.params.get("send") or []
        if isinstance(sends, str):
            sends = [sends]
        return [UrlStream(request.url, [m.encode() for m in sends], headers)]

    @staticmethod
    def default_name(url: str) -> str:
        try:
            host = urlsplit(url).hostname or "url"
        except ValueError:   # not a URL: 'record url' reports it as a usage error
            host = "url"
        return "".join(c if c.isalnum() or c in "._-" else "-" for c in host)
