"""Regenerate the sample sessions in this folder (a wsrec data root): one small session
per venue, recorded from the built-in simulators with a fixed seed.

    python samples/make_samples.py

The simulators' data is deterministic under the seed; receive times, and the exchange
times the simulators take from the clock, are those of the run. The hyperliquid session
has a reconnect: the simulator drops the connection (``drop_every``) and the recorder
reconnects after its backoff, so the session has a gap (``wsrec info``, ``replay
--skip-gaps``). Flow's chain grows at mainnet's pace, a block a second or so: its session
starts a minute back (``start_block_height``), so that backlog comes at once, then
each new block as it is made.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from wsrec.record.recorder import RecordOptions, record
from wsrec.sim import SimOptions
from wsrec.sim.flow import GENESIS
from wsrec.venues import Request, get_venue

HERE = Path(__file__).resolve().parent
FRAMES = 300
SEED = 20261121
#: venue -> what to record, from a simulator with which options, with which recorder
#: options (besides at most FRAMES frames)
SAMPLES = {
    "alpaca": (dict(symbols=["FAKEPACA"]), SimOptions(seed=SEED, rate=100), {}),
    "hyperliquid": (dict(symbols=["BTC", "ETH"], channels=["trades", "l2Book"]),
                    SimOptions(seed=SEED, rate=100, drop_every=160),
                    dict(backoff_initial=2.0)),   # a gap of a second or so
    "vega": (dict(channels=["trades", "markets/depth"]), SimOptions(seed=SEED, rate=50), {}),
    "flow": (dict(channels=["block_digests", "events"],
                  params={"start_block_height": str(GENESIS - 60)}),
             SimOptions(seed=SEED), dict(duration=60)),
    "dfuse": (dict(symbols=["eosio.token"]), SimOptions(seed=SEED, rate=100), {}),
}


def main() -> None:
    for venue, (what, sim, options) in SAMPLES.items():
        shutil.rmtree(HERE / f"venue={venue}", ignore_errors=True)
        request = Request(channels=what.get("channels", []), symbols=what.get("symbols", []),
                          params=dict(what.get("params", {})))
        result = record(get_venue(venue), request, data=HERE,
                        options=RecordOptions(**{"max_frames": FRAMES, "duration": 60,
                                                 **options}),
                        sim=sim, rng=random.Random(SEED),
                        args={"venue": venue, "sim": True, **what})
        size = sum(p.stat().st_size for p in result.path.iterdir())
        print(f"{venue}: {result.frames_in} frames, {result.reconnects} reconnects, "
              f"{size:,} bytes -> {result.path}")


if __name__ == "__main__":
    main()
