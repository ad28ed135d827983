"""Any WebSocket URL: connect, send the given messages on every (re)connect, record."""

from __future__ import annotations

from urllib.parse import urlsplit

from .base import Request, Stream, UsageError, Venue

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
        if urlsplit(request.url).scheme not in ("ws", "wss"):
            raise UsageError(f"url: {request.url!r} is not a ws:// or wss:// URL")
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
        host = urlsplit(url).hostname or "url"
        return "".join(c if c.isalnum() or c in "._-" else "-" for c in host)
