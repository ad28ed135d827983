"""Metrics benchmark: the recorder alone against the recorder with its metrics endpoint
scraped hard, and (optionally) against another checkout's recorder, in the same run.

    python bench/metrics.py [--frames N] [--runs R] [--scrape-interval S] [--baseline-tree DIR]

The server of ``bench/record.py`` (its own process) writes pre-framed ~132-byte text
frames as fast as the client reads. Each trial is a fresh client process recording N
frames with ``Recorder`` on the ``url`` venue (as ``bench/record.py``'s wsrec trial); the
kinds are interleaved, R of each:

* ``plain``: the recorder alone;
* ``scraped``: the same, with a ``MetricsServer`` on 127.0.0.1:0 and another process
  fetching /metrics and /healthz every S seconds (default 0.1: 150 times Prometheus'
  usual 15 s); a scrape at the end must report every frame;
* ``baseline`` (with ``--baseline-tree DIR``): the recorder alone, importing ``wsrec``
  from DIR (e.g. a checkout of the code before the metrics: the cost of the counters the
  receive path gained).

Prints, for each kind, the median frames/s and the median CPU time of the event loop's
thread per frame (the receive path: ``time.thread_time`` around ``Recorder.run``; the
flush, scrape and HTTP threads are not in it, so it holds still on a loaded machine where
wall-clock throughput swings), and the ratios: scraped / plain throughput (target >=
0.95) and plain / baseline loop CPU per frame (target <= 1.05).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


async def client(url: str, n: int, scrape_interval: float | None) -> dict:
    from wsrec.record.recorder import Recorder, RecordOptions
    from wsrec.venues import Request, get_venue
    root = tempfile.mkdtemp(prefix="wsrec-bench-")
    server = None
    try:
        rec = Recorder(get_venue("url"), Request(url=url), data=root, name="bench",
                       options=RecordOptions(max_frames=n, max_retries=0, watchdog=0,
                                             heartbeat=0, compression=False))
        scraper = None
        if scrape_interval is not None:
            from prometheus_client.parser import text_string_to_metric_families

            from wsrec.service.metrics import MetricsServer
            server = MetricsServer("127.0.0.1:0", lambda: [rec])
            metrics = server.start()
            # Prometheus scrapes from another process: so does this
            scraper = subprocess.Popen([sys.executable, __file__, "--scrape", metrics,
                                        "--scrape-interval", str(scrape_interval)],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True)
            assert scraper.stdout.readline() == "ready\n"   # started before the clock does
        t0, cpu0 = time.perf_counter(), time.thread_time()
        result = await rec.run()
        seconds, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
        reported, scraped = None, {"scrapes": 0, "scrape_ms": None}
        if scraper is not None:
            scraped = json.loads(scraper.communicate(timeout=60)[0])
            with urllib.request.urlopen(metrics, timeout=10) as r:
                text = r.read().decode()
            reported = next(s.value for f in text_string_to_metric_families(text)
                            for s in f.samples if s.name == "wsrec_frames_total"
                            and s.labels["direction"] == "in")
        return {"frames": result.frames_in, "seconds": seconds, "loop_cpu": cpu,
                "status": result.status,
                "reported": reported, **scraped}
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def scrape_loop(url: str, interval: float) -> None:
    """GET /metrics and /healthz every ``interval`` seconds until stdin closes; then print
    {"scrapes", "scrape_ms" (median)} as JSON."""
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    took = []
    print("ready", flush=True)
    while not done.wait(interval):
        t = time.perf_counter()
        with urllib.request.urlopen(url, timeout=10) as r:
            r.read()
        took.append(time.perf_counter() - t)
        with urllib.request.urlopen(url.replace("/metrics", "/healthz"), timeout=10) as r:
            r.read()
    print(json.dumps({"scrapes": len(took),
                      "scrape_ms": statistics.median(took) * 1e3 if took else None}))


def trial(kind: str, url: str, args) -> dict:
    tree = args.baseline_tree if kind == "baseline" else str(HERE.parent)
    command = [sys.executable, __file__, "--client", kind, "--url", url,
               "--frames", str(args.frames), "--scrape-interval", str(args.scrape_interval)]
    env = {**os.environ, "PYTHONPATH": tree}
    out = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env,
                         cwd=tempfile.gettempdir())
    if out.returncode != 0:
        raise SystemExit(f"{kind} trial failed: {out.stderr.strip().splitlines()[-3:]}")
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=500_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scrape-interval", type=float, default=0.1)
    ap.add_argument("--baseline-tree", metavar="DIR",
                    help="a checkout whose wsrec records the baseline trials")
    ap.add_argument("--client", choices=["plain", "scraped", "baseline"],
                    help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--scrape", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.scrape:
        scrape_loop(args.scrape, args.scrape_interval)
        return
    if args.client:
        interval = args.scrape_interval if args.client == "scraped" else None
        print(json.dumps(asyncio.run(client(args.url, args.frames, interval))))
        return

    kinds = ["plain", "scraped"] + (["baseline"] if args.baseline_tree else [])
    port_file = tempfile.mktemp(prefix="wsrec-bench-port-")
    server = subprocess.Popen([sys.executable, str(HERE / "record.py"), "--serve", port_file,
                               "--frames", str(args.frames)])
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}   # µs of loop CPU per frame
    scrape_ms: list[float] = []
    try:
        deadline = time.monotonic() + 120
        while not os.path.exists(port_file) or not Path(port_file).read_text():
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the benchmark server did not start")
            time.sleep(0.1)
        url = f"ws://127.0.0.1:{Path(port_file).read_text()}/"
        for i in range(args.runs):
            for kind in kinds:
                r = trial(kind, url, args)
                if r["frames"] != args.frames or r["status"] != "complete":
                    raise SystemExit(f"{kind}: recorded {r['frames']} frames, {r['status']}")
                if kind == "scraped" and r["reported"] != args.frames:
                    raise SystemExit(f"the last scrape reported {r['reported']} frames, "
                                     f"not {args.frames}")
                rates[kind].append(r["frames"] / r["seconds"])
                cpu[kind].append(r["loop_cpu"] / r["frames"] * 1e6)
                extra = ""
                if kind == "scraped":
                    scrape_ms.append(r["scrape_ms"])
                    extra = f" ({r['scrapes']} scrapes, {r['scrape_ms']:.2f} ms each)"
                print(f"run {i + 1} {kind:8}: {rates[kind][-1]:>10,.0f} frames/s, "
                      f"{cpu[kind][-1]:.2f} µs loop CPU/frame{extra}", file=sys.stderr)
    finally:
        server.kill()
        if os.path.exists(port_file):
            os.unlink(port_file)
    med = {k: statistics.median(v) for k, v in rates.items()}
    us = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"frames per trial: {args.frames:,}; {args.runs} interleaved runs each, median; "
          f"scraped every {args.scrape_interval:g} s")
    print(f"{'kind':<10}{'frames/s':>12}{'loop CPU µs/frame':>20}   frames/s of each run")
    for kind in kinds:
        runs = " / ".join(f"{x:,.0f}" for x in rates[kind])
        print(f"{kind:<10}{med[kind]:>12,.0f}{us[kind]:>20.2f}   {runs}")
    print(f"one /metrics scrape during the recording: {statistics.median(scrape_ms):.2f} ms "
          f"(median, as the scraping process saw it)")
    print(f"scraped / plain: throughput {med['scraped'] / med['plain']:.3f} (target >= 0.95), "
          f"loop CPU {us['scraped'] / us['plain']:.3f}")
    if "baseline" in med:
        print(f"plain / baseline: throughput {med['plain'] / med['baseline']:.3f}, loop CPU "
              f"{us['plain'] / us['baseline']:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
