"""Local servers that speak each venue's protocol, for tests, demos and ``--sim``."""

from __future__ import annotations

from ..venues.base import UsageError
from .alpaca import AlpacaSim
from .base import SimOptions, Simulator, SimThread
from .dfuse import DfuseSim
from .flow import FlowSim
from .hyperliquid import HyperliquidSim
from .vega import VegaSim

__all__ = ["SIMULATORS", "SimOptions", "Simulator", "SimThread", "get_simulator"]

SIMULATORS: dict[str, type[Simulator]] = {
    s.venue: s for s in (AlpacaSim, HyperliquidSim, VegaSim, FlowSim, DfuseSim)}


def get_simulator(venue: str, options: SimOptions | None = None) -> Simulator:
    try:
        return SIMULATORS[venue](options)
    except KeyError:
        raise UsageError(f"no simulator for {venue!r} (simulators: "
                         f"{', '.join(SIMULATORS)})") from None
