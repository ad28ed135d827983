"""Replay server memory: resident memory with 1, 10 and 50 WebSocket clients.

    python bench/serve_memory.py [--frames 800000] [--clients 1 10 50] [--seconds 20]
                                 [--speed 0.02] [--data DIR]

A session of ``frames`` Alpaca quote frames (bench/corpus.py; 800,000 frames make about
18 MB on disk, 7 row groups) is written to a temporary data root (or ``--data``, reused
when it already holds one). For each mode (each client on its own clock, and
``--shared-clock``) and each client count, ``wsrec replay alpaca --to ws://127.0.0.1:0``
is started, that many clients connect, authenticate and subscribe to every quote (the
Alpaca emulation, permessage-deflate on, as the SDK does) and read for ``seconds``
seconds, while the server's resident memory (VmRSS) is sampled every 0.1 s. The speed
is low so that a 2-core machine keeps up with 50 clients at once: what is measured is
what each client costs to hold (its decoded schedule, its connection), not throughput.

Prints the peak RSS per run and, per mode, the ratio of the peak with the most clients
to the peak with one (target: at most 2x). The server is stopped with SIGTERM, which
must end it with exit status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import wsrec  # noqa: E402
from corpus import frames  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402


def make_session(root: Path, n: int) -> None:
    if (root / "alpaca").is_dir() and any((root / "alpaca").iterdir()):
        return
    with wsrec.SessionWriter("alpaca", data=root) as w:
        for ts, mono, sym, payload in frames(n):
            w.append(payload, kind="text", channels=("quotes",), symbols=(sym,),
                     ts_ns=ts, mono_ns=mono)


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def client(url: str, stop: asyncio.Event, counts: list, i: int) -> None:
    async with connect(url, max_size=None, open_timeout=60) as ws:
        await asyncio.wait_for(ws.recv(), 60)
        await ws.send(json.dumps({"action": "auth", "key": "k", "secret": "s"}))
        await asyncio.wait_for(ws.recv(), 60)
        await ws.send(json.dumps({"action": "subscribe", "quotes": ["*"]}))
        await asyncio.wait_for(ws.recv(), 60)
        while not stop.is_set():
            try:
                await asyncio.wait_for(ws.recv(), 1)
            except asyncio.TimeoutError:
                continue
            counts[i] += 1


def run(root: Path, n_clients: int, shared: bool, seconds: float, speed: str) -> dict:
    env = {**os.environ, "WSREC_DATA": str(root)}
    cmd = [sys.executable, "-m", "wsrec", "replay", "alpaca", "--to", "ws://127.0.0.1:0",
           "--speed", speed, "--max-lag", "30"]
    if shared:
        cmd.append("--shared-clock")
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()
    if not first.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"server did not start: {first}{proc.stderr.read()}")
    url = first.split()[-1]   # with alpaca's path: /v2/test
    errors: list[str] = []
    threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True).start()
    idle = rss_mb(proc.pid)
    peak = [idle]
    done = threading.Event()

    def sample():
        while not done.wait(0.1):
            peak[0] = max(peak[0], rss_mb(proc.pid))
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    counts = [0] * n_clients

    async def main():
        stop = asyncio.Event()
        tasks = [asyncio.create_task(client(url, stop, counts, i)) for i in range(n_clients)]
        await asyncio.sleep(seconds)
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return [r for r in results if isinstance(r, BaseException)]

    failures = asyncio.run(main())
    done.set()
    sampler.join()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = "killed"
    return {"clients": n_clients, "idle": idle, "peak": peak[0], "frames": min(counts),
            "failures": len(failures), "exit": code,
            "errors": [e for e in errors if "Traceback" in e or "disconnected" in e]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=800_000)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 10, 50])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--speed", default="0.02")
    ap.add_argument("--data", type=Path)
    args = ap.parse_args()
    root = args.data or Path(tempfile.mkdtemp(prefix="wsrec-bench-"))
    try:
        make_session(root, args.frames)
        size = sum(p.stat().st_size for p in (root / "alpaca").rglob("*") if p.is_file())
        print(f"session: {args.frames:,} frames, {size / 1e6:.1f} MB on disk; "
              f"speed {args.speed}, {args.seconds:g} s per run")
        print(f"{'mode':<14}{'clients':>8}{'idle MB':>10}{'peak RSS MB':>13}"
              f"{'min frames/client':>19}{'exit':>6}")
        for shared in (False, True):
            mode = "shared clock" if shared else "own clock"
            peaks = {}
            for n in args.clients:
                r = run(root, n, shared, args.seconds, args.speed)
                peaks[n] = r["peak"]
                print(f"{mode:<14}{n:>8}{r['idle']:>10.0f}{r['peak']:>13.0f}"
                      f"{r['frames']:>19,}{r['exit']!s:>6}"
                      + (f"  ({r['failures']} clients failed)" if r["failures"] else "")
                      + (f"  server: {r['errors'][0].strip()}" if r["errors"] else ""),
                      flush=True)
            lo, hi = min(args.clients), max(args.clients)
            if lo != hi:
                ratio = peaks[hi] / peaks[lo]
                print(f"{mode}: RSS with {hi} clients / RSS with {lo} = {ratio:.2f}x "
                      f"(target <= 2x) {'ok' if ratio <= 2 else 'OVER'}", flush=True)
    finally:
        if args.data is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
