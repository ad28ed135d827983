"""Recorder benchmark: wsrec record against a bare websockets client, side by side.

    python bench/record.py [--frames N] [--runs R]

A local server (its own process) answers the WebSocket handshake by hand and then
writes pre-framed ~150-byte text frames over the raw socket as fast as the client
reads them, so the server is not the bottleneck. Each trial is a fresh client
process, bare and wsrec interleaved, R times each:

* bare: ``websockets.asyncio.client.connect``, ``async for`` over the messages, discard;
* wsrec: ``Recorder`` on the ``url`` venue with ``max_frames=N`` into a temporary data
  root (journal fsync'd every second, parts written, session closed and verified).

Prints the median frames/s of each and their ratio (target: wsrec >= 0.85 of bare),
frames lost (target 0), and wsrec's resident memory as the frames go by (target: flat).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


# -- the server -----------------------------------------------------------------------------

def build_stream(n: int) -> tuple[bytes, int]:
    """n server frames (unmasked text), cycling through 4,096 corpus payloads."""
    from corpus import frames
    payloads = [p for *_, p in frames(4096)]
    framed = []
    for p in payloads:
        length = len(p)
        header = bytes([0x81, length]) if length < 126 else \
            bytes([0x81, 126]) + length.to_bytes(2, "big")
        framed.append(header + p)
    block = b"".join(framed)
    full, rest = divmod(n, len(framed))
    return block * full + b"".join(framed[:rest]), n


async def serve(n: int, port_file: str) -> None:
    stream, _ = build_stream(n)

    async def send(writer):
        view = memoryview(stream)
        for i in range(0, len(view), 1 << 20):
            writer.write(view[i:i + (1 << 20)])
            await writer.drain()

    await serve_frames(send, port_file)


async def serve_frames(send, port_file: str) -> None:
    """A WebSocket server on a free port (written to ``port_file``) that answers the
    handshake by hand, then has ``send(writer)`` write the frames, closes with 1000 and
    waits (30 s at most) for the client to close."""
    close = b"\x88\x02\x03\xe8"  # close 1000

    async def handle(reader, writer):
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(
            key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        await send(writer)
        writer.write(close)
        await writer.drain()
        try:
            await asyncio.wait_for(reader.read(), 30)
        except (TimeoutError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))
    async with server:
        await server.serve_forever()


def server_url(server: subprocess.Popen, port_file: str) -> str:
    """The URL of a ``serve_frames`` server process, once it has written its port."""
    deadline = time.monotonic() + 120
    while not os.path.exists(port_file) or not Path(port_file).read_text():
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("the benchmark server did not start")
        time.sleep(0.1)
    return f"ws://127.0.0.1:{Path(port_file).read_text()}/"


# -- the clients ----------------------------------------------------------------------------

def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def bare(url: str, n: int) -> dict:
    from websockets.asyncio.client import connect
    count = 0
    t0 = time.perf_counter()
    # the most generous settings: no size limit, no compression, a deep queue
    async with connect(url, max_size=None, compression=None, max_queue=1024) as ws:
        async for _ in ws:
            count += 1
            if count == n:
                break
    return {"frames": count, "seconds": time.perf_counter() - t0}


async def wsrec_client(url: str, n: int) -> dict:
    import wsrec
    from wsrec.record.recorder import Recorder, RecordOptions
    from wsrec.venues import Request, get_venue
    from wsrec.store.verify import verify
    root = tempfile.mkdtemp(prefix="wsrec-bench-")
    samples: list[tuple[int, float]] = []
    try:
        rec = Recorder(get_venue("url"), Request(url=url), data=root, name="bench",
                       options=RecordOptions(max_frames=n, max_retries=0, watchdog=0,
                                             heartbeat=0, compression=False))
        stop = threading.Event()

        def sample():
            while not stop.wait(0.25):
                samples.append((rec.frames_in, rss_mb()))
                if os.environ.get("WSREC_BENCH_DEBUG"):
                    import pyarrow as pa
                    print(rec.frames_in, round(rss_mb()), len(rec.writer._payloads),
                          pa.total_allocated_bytes() >> 20, file=sys.stderr)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        result = await rec.run()
        seconds = time.perf_counter() - t0
        stop.set()
        samples.append((rec.frames_in, rss_mb()))
        session = wsrec.open_session(result.path)
        stored = sum(b.num_rows for b in session.batches(direction="in", columns=["seq"]))
        problems = verify(session)
        return {"frames": result.frames_in, "stored": stored, "seconds": seconds,
                "status": result.status, "problems": problems, "rss": samples}
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- driver ---------------------------------------------------------------------------------

def trial(kind: str, url: str, n: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--client", kind, "--url", url,
                          "--frames", str(n)], capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"{kind} trial failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=500_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--client", choices=["bare", "wsrec"], help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(args.frames, args.serve))
        return
    if args.client:
        fn = bare if args.client == "bare" else wsrec_client
        print(json.dumps(asyncio.run(fn(args.url, args.frames))))
        return

    port_file = tempfile.mktemp(prefix="wsrec-bench-port-")
    server = subprocess.Popen([sys.executable, __file__, "--serve", port_file,
                               "--frames", str(args.frames)])
    try:
        url = server_url(server, port_file)
        rates = {"bare": [], "wsrec": []}
        last = None
        for i in range(args.runs):
            for kind in ("bare", "wsrec"):
                r = trial(kind, url, args.frames)
                rates[kind].append(r["frames"] / r["seconds"])
                print(f"run {i + 1} {kind:5}: {r['frames'] / r['seconds']:>10,.0f} frames/s",
                      file=sys.stderr)
                if kind == "wsrec":
                    last = r
                    if r["stored"] != args.frames or r["problems"] or r["status"] != "complete":
                        raise SystemExit(f"wsrec lost frames or failed: {r}")
    finally:
        server.kill()
        if os.path.exists(port_file):
            os.unlink(port_file)
    b, w = statistics.median(rates["bare"]), statistics.median(rates["wsrec"])
    print(f"frames per trial: {args.frames:,}; {args.runs} interleaved runs each, median")
    print(f"{'client':<36}{'frames/s':>14}")
    print(f"{'bare websockets client (discard)':<36}{b:>14,.0f}")
    print(f"{'wsrec record (stored, verified)':<36}{w:>14,.0f}")
    print(f"ratio wsrec / bare: {w / b:.2f} (target >= 0.85); frames lost: "
          f"{args.frames - last['stored']}")
    marks = last["rss"]
    picks = [marks[min(len(marks) - 1, int(len(marks) * q))] for q in (0.1, 0.25, 0.5, 0.75)] \
        + [marks[-1]]
    print("wsrec resident memory: " + ", ".join(f"{mb:.0f} MB at {f:,} frames"
                                                  for f, mb in picks))


if __name__ == "__main__":
    main()
