"""Following a live session: the delay from the recorder's receive to the follower's output.

    python bench/follow.py [--rate 1000] [--seconds 20] [--flush-intervals 1 0.05]

For each flush interval, ``wsrec record hyperliquid --sim --sim-rate RATE --flush-interval
F`` records from the built-in simulator for ``seconds`` seconds while
``wsrec replay hyperliquid --follow --speed max --format envelope`` follows it, both as
subprocesses; this process reads the follower's stdout and, for each line, takes the
wall clock when the line arrives minus the frame's ``ts`` (the recorder's receive time,
same machine, same clock). Frames recorded before the follower's first line (the backlog
it starts with) are left out. Printed: p50, p99 and max delay, and p99 against its bound,
the flush interval plus one poll (``wsrec.store.follow.POLL``): the recorder makes a frame
visible when it journals it, at most one flush interval after receiving it (its flush
thread wakes every half interval), and the follower sees it at its next poll.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import shutil
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from wsrec.store.follow import POLL  # noqa: E402
from wsrec.timefmt import parse_time  # noqa: E402


def wsrec_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "wsrec", *map(str, args)]


def wait_for_session(root: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list(root.glob("venue=hyperliquid/date=*/*/session.json")):
            return
        time.sleep(0.01)
    raise SystemExit("the recorder started no session")


def percentile(ordered: list[int], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


def measure(rate: float, seconds: float, flush: float) -> dict:
    root = Path(tempfile.mkdtemp(prefix="wsrec-follow-"))
    env = {**os.environ, "WSREC_DATA": str(root)}
    recorder = subprocess.Popen(wsrec_cmd("record", "hyperliquid", "--symbols", "BTC,ETH",
                                          "--channels", "trades,l2Book", "--sim",
                                          "--sim-rate", rate, "--duration", f"{seconds}s",
                                          "--flush-interval", flush, "-q"), env=env)
    try:
        wait_for_session(root)
        follower = subprocess.Popen(wsrec_cmd("replay", "hyperliquid", "--follow", "--speed",
                                              "max", "--format", "envelope", "--quiet"),
                                    env=env, stdout=subprocess.PIPE)
        delays: list[int] = []
        started = None
        for line in follower.stdout:
            now = time.time_ns()
            ts = parse_time(json.loads(line)["ts"])
            if started is None:
                started = now
            if ts >= started:
                delays.append(now - ts)
        follower.wait(60)
        recorder.wait(60)
    finally:
        if recorder.poll() is None:
            recorder.kill()
        shutil.rmtree(root, ignore_errors=True)
    delays.sort()
    bound = flush + POLL
    p99 = percentile(delays, 0.99)
    return {"flush_interval_s": flush, "frames": len(delays),
            "p50_ms": percentile(delays, 0.50), "p99_ms": p99, "max_ms": delays[-1] / 1e6,
            "bound_ms": bound * 1e3, "p99_to_bound": p99 / (bound * 1e3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=1000, help="simulator frames per second")
    ap.add_argument("--seconds", type=float, default=20, help="length of each recording")
    ap.add_argument("--flush-intervals", type=float, nargs="+", default=[1.0, 0.05])
    args = ap.parse_args()
    print(f"{'flush interval s':>17}{'frames':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'bound ms':>10}{'p99/bound':>11}")
    for flush in args.flush_intervals:
        r = measure(args.rate, args.seconds, flush)
        print(f"{r['flush_interval_s']:>17g}{r['frames']:>9,}{r['p50_ms']:>9.1f}"
              f"{r['p99_ms']:>9.1f}{r['max_ms']:>9.1f}{r['bound_ms']:>10.0f}"
              f"{r['p99_to_bound']:>11.2f}", flush=True)


if __name__ == "__main__":
    main()
