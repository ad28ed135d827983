"""Local servers that speak each venue's protocol, for tests, demos and ``--sim``."""

from __future__ import annotations

from wsrec.errors import UsageError
from wsrec.sim.alpaca import AlpacaSim
from wsrec.sim.base import SimOptions, Simulator, SimThread
from wsrec.sim.dfuse import DfuseSim
from wsrec.sim.flow import FlowSim
from wsrec.sim.hyperliquid import HyperliquidSim
from wsrec.sim.vega import VegaSim
from wsrec.sim.serve import serve_sim

__all__ = ["SIMULATORS", "SimOptions", "Simulator", "SimThread", "get_simulator", "serve_sim"]

SIMULATORS: dict[str, type[Simulator]] = {
    s.venue: s for s in (AlpacaSim, HyperliquidSim, VegaSim, FlowSim, DfuseSim)}


def get_simulator(venue: str, options: SimOptions | None = None, clock=None) -> Simulator:
    """``venue``'s simulator; ``clock``: its wall clock (ns since the epoch, for the
    exchange times; ``time.time_ns`` when None)."""
    try:
        return SIMULATORS[venue](options, clock)
    except KeyError:
        raise UsageError(f"no simulator for {venue!r} (simulators: "
                         f"{', '.join(SIMULATORS)})") from None
