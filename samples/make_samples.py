"""Regenerate the sample sessions in this folder (a wsrec data root): one small session
per venue, recorded from the built-in simulators with a fixed seed.

    python samples/make_samples.py

The simulators' data is deterministic under the seed; receive times are those of the
run, so files differ between runs only in timestamps.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from wsrec.recorder import RecordOptions, record
from wsrec.sim import SimOptions
from wsrec.venues import Request, get_venue

HERE = Path(__file__).resolve().parent
FRAMES = 300
#: venue -> what to record
SAMPLES = {
    "alpaca": dict(symbols=["FAKEPACA"]),
    "hyperliquid": dict(symbols=["BTC", "ETH"], channels=["trades", "l2Book"]),
    "vega": dict(channels=["trades"]),
    "flow": dict(channels=["block_digests"]),
    "dfuse": dict(symbols=["eosio.token"]),
}


def main() -> None:
    for venue, what in SAMPLES.items():
        shutil.rmtree(HERE / venue, ignore_errors=True)
        request = Request(channels=what.get("channels", []), symbols=what.get("symbols", []))
        result = record(get_venue(venue), request, data=HERE,
                        options=RecordOptions(max_frames=FRAMES, duration=60),
                        sim=SimOptions(seed=20261121, rate=100),
                        args={"venue": venue, "sim": True, **what})
        size = sum(p.stat().st_size for p in result.path.iterdir())
        print(f"{venue}: {result.frames_in} frames, {size:,} bytes -> {result.path}")


if __name__ == "__main__":
    main()
