"""The venues wsrec speaks, by name."""

from __future__ import annotations

from wsrec.venues.alpaca import Alpaca
from wsrec.errors import UsageError
from wsrec.venues.base import Request, Server, Step, Stream, Venue
from wsrec.venues.dfuse import Dfuse
from wsrec.venues.flow import Flow
from wsrec.venues.hyperliquid import Hyperliquid
from wsrec.venues.url import Url
from wsrec.venues.vega import Vega

__all__ = ["VENUES", "get_venue", "Request", "Server", "Step", "Stream", "Venue", "UsageError"]

VENUES: dict[str, type[Venue]] = {v.name: v for v in (Alpaca, Hyperliquid, Vega, Flow, Dfuse,
                                                       Url)}


def get_venue(name: str) -> Venue:
    try:
        return VENUES[name]()
    except KeyError:
        raise UsageError(f"unknown venue {name!r} (choose from {', '.join(VENUES)})") from None


def classifier(venue: str):
    """A function ``(payload, is_text) -> (channels, symbols)`` for frames of ``venue``
    that were not recorded by wsrec (imports), or one that classifies nothing."""
    from wsrec.venues.alpaca import AlpacaStream
    from wsrec.venues.dfuse import DfuseStream
    from wsrec.venues.flow import FlowStream
    from wsrec.venues.hyperliquid import HyperliquidStream
    streams = {"alpaca": lambda: AlpacaStream("", "", "", {}, auth_headers=False,
                                              msgpack_mode=False),
               "hyperliquid": lambda: HyperliquidStream("", []),
               "flow": lambda: FlowStream("", []),
               "dfuse": lambda: DfuseStream("", "", [])}
    make = streams.get(venue)
    if make is None:
        return lambda payload, text: ((), ())
    stream = make()

    def classify(payload: bytes, text: bool):
        try:
            channels, symbols, _ = stream.receive(payload, text)
        except Exception:  # noqa: BLE001 - unclassifiable: stored with empty lists
            return (), ()
        return channels, symbols
    return classify
