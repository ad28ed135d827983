"""Serving a venue's simulator for any client until SIGINT or SIGTERM: ``wsrec sim``.

    from wsrec.sim import SimOptions, serve_sim
    serve_sim("alpaca", SimOptions(rate=100), port=8765)   # 'listening on ws://.../v2/test'
"""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Callable

from wsrec.errors import UsageError, WsrecError

__all__ = ["serve_sim"]


def serve_sim(venue: str, options=None, host: str = "127.0.0.1", port: int = 0, *,
              announce: bool = True, stop: threading.Event | None = None,
              listening: Callable[[str], None] | None = None) -> None:
    """Serve ``venue``'s simulator on ``host``:``port`` (0: a free port) until SIGINT or
    SIGTERM (when called from the main thread) or until ``stop`` is set, in a fresh
    event loop.

    ``announce`` prints ``listening on URL`` on stderr once the server listens (the
    signal handlers are in place by then); ``listening`` is called with that URL. The
    URL has the venue's path (``Simulator.client_path``): a client can connect to it
    as is.
    ``options``: ``SimOptions``. UsageError for an unknown venue or options the
    simulator refuses (``param`` names the option); WsrecError when the address can't
    be listened on.
    """
    from wsrec.sim import SIMULATORS, get_simulator

    sim_class = SIMULATORS.get(venue)
    error = getattr(options, "error", None)
    problem = sim_class.error_problem(error) if sim_class is not None else None
    if problem:
        raise UsageError(problem, param="error")
    sim = get_simulator(venue, options)

    async def run() -> None:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        handled = []
        for sig in (signal.SIGINT, signal.SIGTERM):  # before 'listening on' is printed
            try:
                loop.add_signal_handler(sig, done.set)
                handled.append(sig)
            except (ValueError, RuntimeError):   # not the main thread: ``stop`` only
                break
        watch = asyncio.create_task(_watch(stop, done)) if stop is not None else None
        try:
            await sim.start(host, port, announce=announce)
            if listening is not None:
                listening(sim.client_url)
            await done.wait()
            await sim.close()
        finally:
            if watch is not None:
                watch.cancel()
            for sig in handled:
                loop.remove_signal_handler(sig)

    try:
        asyncio.run(run())
    except OSError as exc:
        raise WsrecError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


async def _watch(stop: threading.Event, done: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(0.05)
    done.set()
