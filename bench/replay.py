"""Replay benchmark: full-speed throughput against zstd -dc, and pacing precision.

    python bench/replay.py throughput [--frames 1000000 5000000 10000000]
    python bench/replay.py pacing [--seconds 60] [--rate 5000]

throughput: for each corpus size, a session of that many ~132-byte frames is written, and
the same frames as zstd-compressed JSON lines; then, in the same run, the wall time of
``wsrec replay SESSION --speed max --quiet > /dev/null`` (the whole command, start-up
included) is compared with ``zstd -dc lines.zst > /dev/null`` (target: at most 2x), and
the replay's peak resident memory is reported (target: under 300 MB). Bytecode caching is
on for the replay (PYTHONDONTWRITEBYTECODE is dropped), as for an installed wsrec.

pacing: a session of ``rate`` frames/s for ``seconds`` seconds is replayed at 1x to
stdout (/dev/null), over TCP and through the WebSocket server (a client reading as fast
as it can); lateness is measured at the write (p50/p99/max, targets p99 <= 1 ms on
stdout and TCP, <= 2 ms through WebSocket), and the drift is the lateness of the very
last frame against its due time, anchored to the first (target <= 2 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zstandard

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import wsrec  # noqa: E402
from corpus import frames  # noqa: E402


def wsrec_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "wsrec", *map(str, args)]


def run_timed(cmd, stdout=subprocess.DEVNULL, env=None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=stdout, stderr=subprocess.DEVNULL, check=True, env=env)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024


def throughput(sizes: list[int]) -> None:
    print(f"{'frames':>12}{'wsrec replay s':>16}{'zstd -dc s':>12}{'ratio':>8}"
          f"{'replay peak RSS':>18}")
    zstd_cli = shutil.which("zstd")
    for n in sizes:
        root = Path(tempfile.mkdtemp(prefix="wsrec-bench-"))
        try:
            lines = root / "lines.zst"
            cctx = zstandard.ZstdCompressor(level=3)
            with wsrec.SessionWriter("bench", data=root) as w, open(lines, "wb") as raw, \
                    cctx.stream_writer(raw) as out:
                for ts, mono, sym, payload in frames(n):
                    w.append(payload, kind="text", channels=("quotes",), symbols=(sym,),
                             ts_ns=ts, mono_ns=mono)
                    out.write(payload + b"\n")
            env = {**os.environ, "WSREC_DATA": str(root)}
            # bytecode cached, as installed (without it each run times the compiler too)
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            replay_cmd = wsrec_cmd("replay", "bench", "--speed", "max", "--quiet")
            zstd_cmd = [zstd_cli, "-dc", str(lines)] if zstd_cli else [
                sys.executable, "-c", "import sys,zstandard;zstandard.ZstdDecompressor()"
                ".copy_stream(open(sys.argv[1],'rb'),sys.stdout.buffer)", str(lines)]
            results = []
            for _ in range(3):  # interleaved, median
                r, rss = run_timed(replay_cmd, env=env)
                z, _ = run_timed(zstd_cmd)
                results.append((r, z, rss))
            results.sort(key=lambda x: x[0])
            r, z, rss = results[1]
            print(f"{n:>12,}{r:>16.2f}{z:>12.2f}{r / z:>8.2f}{rss:>15.0f} MB", flush=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    if not zstd_cli:
        print("(no zstd command here: the baseline is libzstd through python-zstandard)")


def uniform_session(root: Path, seconds: float, rate: int) -> None:
    step = int(1e9 / rate)
    with wsrec.SessionWriter("pace", data=root) as w:
        for i in range(int(seconds * rate)):
            w.append(b'{"i":%d,"p":"%s"}' % (i, b"x" * 120), kind="text",
                     ts_ns=1_795_000_000_000_000_000 + i * step, mono_ns=i * step)


_STATS = re.compile(r"p50 ([\d.]+) ms, p99 ([\d.]+) ms, max ([\d.]+) ms, "
                    r"last frame (-?[\d.]+) ms")


def pacing(seconds: float, rate: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="wsrec-bench-"))
    try:
        uniform_session(root, seconds, rate)
        env = {**os.environ, "WSREC_DATA": str(root)}
        print(f"{rate:,} frames/s for {seconds:g} s at 1x; lateness at the write")
        print(f"{'sink':<12}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'drift ms':>10}")
        # stdout
        out = subprocess.run(wsrec_cmd("replay", "pace", "--stats", "--quiet"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env=env, check=True)
        _row("stdout", out.stderr)
        # tcp and websocket: the client measures the span first -> last frame
        for scheme in ("tcp", "ws"):
            args = ["--no-emulate"] if scheme == "ws" else []
            proc = subprocess.Popen(wsrec_cmd("replay", "pace", "--to", f"{scheme}://127.0.0.1:0",
                                              "--once", "--stats", *args),
                                    stderr=subprocess.PIPE, text=True, env=env)
            url = proc.stderr.readline().split()[-1]
            frames_got = _tcp_client(url) if scheme == "tcp" else asyncio.run(_ws_client(url))
            err = proc.communicate(timeout=seconds * 3 + 60)[1]
            _row(scheme, err)
            if frames_got < int(seconds * rate) and scheme == "ws":
                print(f"  (the client got {frames_got:,} frames)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _row(name: str, stats: str) -> None:
    """p50/p99/max lateness, and the drift: how late the very last frame went out."""
    m = _STATS.search(stats)
    if not m:
        print(f"{name:<12} no stats: {stats.strip()[-200:]}")
        return
    print(f"{name:<12}" + "".join(f"{float(m.group(i)):>9.3f}" for i in (1, 2, 3))
          + f"{float(m.group(4)):>10.3f}", flush=True)


def _tcp_client(url: str) -> int:
    host, port = url[len("tcp://"):].rsplit(":", 1)
    lines = 0
    with socket.create_connection((host, int(port))) as sock:
        while chunk := sock.recv(1 << 16):
            lines += chunk.count(b"\n")
    return lines


async def _ws_client(url: str) -> int:
    from websockets.asyncio.client import connect
    count = 0
    async with connect(url, max_size=None, compression=None) as ws:
        try:
            async for _ in ws:
                count += 1
        except Exception:  # noqa: BLE001 - closed at the end of the replay
            pass
    return count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--frames", type=int, nargs="+", default=[1_000_000, 5_000_000, 10_000_000])
    p = sub.add_parser("pacing")
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--rate", type=int, default=5000)
    args = ap.parse_args()
    if args.what == "throughput":
        throughput(args.frames)
    else:
        pacing(args.seconds, args.rate)


if __name__ == "__main__":
    main()
