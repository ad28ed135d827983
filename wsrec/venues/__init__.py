"""The venues wsrec speaks, by name."""

from __future__ import annotations

from .alpaca import Alpaca
from .base import Request, Step, Stream, UsageError, Venue
from .dfuse import Dfuse
from .flow import Flow
from .hyperliquid import Hyperliquid
from .url import Url
from .vega import Vega

__all__ = ["VENUES", "get_venue", "Request", "Step", "Stream", "Venue", "UsageError"]

VENUES: dict[str, type[Venue]] = {v.name: v for v in (Alpaca, Hyperliquid, Vega, Flow, Dfuse,
                                                       Url)}


def get_venue(name: str) -> Venue:
    try:
        return VENUES[name]()
    except KeyError:
        raise UsageError(f"unknown venue {name!r} (choose from {', '.join(VENUES)})") from None
