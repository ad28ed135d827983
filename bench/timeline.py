"""Timeline benchmark: what binning a session's frames over time costs (wsrec.store.timeline).

    python bench/timeline.py [--frames N] [--days D]

Writes one session of N Alpaca-style quote frames spread over D days (receive times
trailing their exchange times by about 20 ms), then, in the same run, times (median of
three passes after a warm-up):

* read: ``Session.batches`` over the five columns a timeline reads: the baseline;
* timeline: ``timeline(session, 120)`` (``wsrec info``'s per-stream counts) and
  ``timeline(session, 400, latency=True)`` (``wsrec plot``'s, with latency histograms),
  as ratios to the read;
* info: ``details(session)`` with its timeline, against ``details`` with
  ``Binner.add`` made a no-op (what ``info`` cost before it had a timeline).

It prints each as seconds and a ratio, and the largest resident set of the process.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import wsrec  # noqa: E402
from wsrec.store import info, timeline as tl  # noqa: E402

START_NS = 1_795_000_000_000_000_000
CHUNK = 100_000


def _chunk(r: random.Random, ts: int, n: int, mean_gap: float):
    times, payloads = [], []
    for _ in range(n):
        ts += int(r.expovariate(1 / mean_gap))
        exch = ts - 20_000_000 - r.randint(0, 5_000_000)
        sec, ns = divmod(exch, 1_000_000_000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        times.append(ts)
        payloads.append(b'[{"T":"q","S":"AAPL","bp":1.5,"ap":1.6,"t":"%s.%09dZ"}]'
                        % (stamp.encode(), ns))
    return ts, {
        "ts": pa.array(times, pa.int64()), "mono_ns": pa.array(times, pa.int64()),
        "conn": pa.repeat(pa.scalar(0, pa.int32()), n),
        "stream": pa.repeat(pa.scalar("iex"), n), "dir": pa.repeat(pa.scalar("in"), n),
        "kind": pa.repeat(pa.scalar("text"), n),
        "channels": pa.array([["quotes"]] * n, pa.list_(pa.string())),
        "symbols": pa.array([["AAPL"]] * n, pa.list_(pa.string())),
        "payload": pa.array(payloads, pa.binary()),
    }


def write(root: Path, frames: int, days: float) -> Path:
    r = random.Random(1)
    mean_gap = days * 86_400e9 / frames
    ts = START_NS
    with wsrec.SessionWriter("alpaca", data=root, started_ns=START_NS) as w:
        w.event("open", conn=0, stream="iex", ts_ns=ts, mono_ns=ts)
        for done in range(0, frames, CHUNK):
            ts, columns = _chunk(r, ts, min(CHUNK, frames - done), mean_gap)
            w.append_columns(columns)
        w.event("close", conn=0, stream="iex", ts_ns=ts + 1, mono_ns=ts + 1)
    return w.folder


def timed(fn, passes: int = 3) -> float:
    fn()
    times = []
    for _ in range(passes):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2_000_000)
    ap.add_argument("--days", type=float, default=3.0)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="wsrec-bench-"))
    try:
        t0 = time.perf_counter()
        folder = write(root, args.frames, args.days)
        print(f"wrote {args.frames:,} frames over {args.days:g} days in "
              f"{time.perf_counter() - t0:.1f}s")
        session = wsrec.open_session(folder)

        def read():
            for _ in session.batches(columns=list(tl.COLUMNS)):
                pass

        base = timed(read)
        print(f"read 5 columns          {base:7.2f}s  {args.frames / base:12,.0f} frames/s  1.00x")
        for label, kw in (("timeline (info)", dict(buckets=120)),
                          ("timeline+latency (plot)", dict(buckets=400, latency=True))):
            t = timed(lambda kw=kw: tl.timeline(session, **kw))
            print(f"{label:<24}{t:7.2f}s  {args.frames / t:12,.0f} frames/s  {t / base:.2f}x")
        with_timeline = timed(lambda: info.details(session))
        add = tl.Binner.add
        tl.Binner.add = lambda self, batch: None
        try:
            without = timed(lambda: info.details(session))
        finally:
            tl.Binner.add = add
        print(f"info without timeline   {without:7.2f}s")
        print(f"info with timeline      {with_timeline:7.2f}s  {with_timeline / without:.2f}x")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"largest resident set    {rss:7.0f} MB")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
