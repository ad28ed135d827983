"""What to record, from what a user says: a venue's name, its lists and options -> the
venue adapter, its ``Request``, the session's folder name and the arguments the
manifest keeps. ``wsrec record`` is this plus ``record()``::

    from wsrec.record import RecordOptions, record
    from wsrec.record.request import build_request
    r = build_request("url", "wss://example.test/ws", send=['{"op":"subscribe"}'])
    result = record(r.venue, r.request, name=r.name, args=r.args,
                    options=RecordOptions(duration=10))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from wsrec.errors import UsageError
from wsrec.lists import split_list
from wsrec.store.writer import check_name
from wsrec.venues import Request, Venue, get_venue
from wsrec.venues.url import Url

__all__ = ["RecordRequest", "build_request"]


@dataclass
class RecordRequest:
    venue: Venue            # the adapter that speaks the venue's protocol
    request: Request        # channels, symbols, params and endpoint, as the venue takes them
    name: str | None        # the session's venue folder; None: the venue's own name
    args: dict              # what the session's manifest records as its arguments


def build_request(venue: str, url: str | None = None, *, channels=None, symbols=None,
                  params: Mapping[str, str] | None = None, feed: str | None = None,
                  auth: str | None = None, msgpack: bool = False,
                  send: Iterable[str] | None = None, name: str | None = None,
                  sim: bool = False, redact: Iterable[str] = ()) -> RecordRequest:
    """The recording of ``venue`` a user asks for, checked as far as it can be without
    connecting; UsageError (naming the argument) for what no recording can honour.

    ``url``: where to connect instead of the venue's endpoint (for the ``url`` venue:
    the endpoint). ``channels``/``symbols``: comma lists or iterables of them.
    ``params``: venue parameters (see ``wsrec venues VENUE``); ``feed``, ``auth`` and
    ``msgpack`` are Alpaca's parameters of those names, given their own arguments.
    ``send``: for the ``url`` venue, messages to send on every (re)connect. ``name``:
    the session's venue folder (for ``url``, default the URL's host). ``sim``: the
    recording is from the venue's simulator (kept in the manifest's arguments, with
    ``redact``, the extra names to redact).
    """
    is_url = venue == "url"
    if is_url and sim:
        raise UsageError("url: there is no simulator for a plain URL; start a local server "
                         "and give its URL", param="sim")
    params = dict(params or {})
    for key, value in (("feed", feed), ("auth", auth)):
        if value:
            params[key] = value
    if msgpack:
        params["msgpack"] = "true"
    sends = list(send or ())
    if is_url:
        params["send"] = sends
    elif sends:
        raise UsageError("send: only the url venue sends messages of its own", param="send")
    request = Request(channels=split_list(channels, "channel", param="channels"),
                      symbols=split_list(symbols, "symbol", param="symbols"),
                      params=params, url=url)
    adapter = get_venue(venue)
    if is_url:
        name = name or (Url.default_name(request.url) if request.url else None)
    if name is not None:
        check_name("name", name)
    args = {"venue": venue, "channels": request.channels, "symbols": request.symbols,
            "params": dict(params), "url": request.url, "sim": sim}
    redact = list(redact)
    if redact:
        args["redact"] = redact
    return RecordRequest(adapter, request, name, args)
