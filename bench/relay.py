"""Live relay benchmark: a recording alone, and with 50 relay clients (and a stuck one).

    python bench/relay.py [--frames N] [--runs R] [--clients C] [--rate F] [--seconds S]

Throughput: a local server process answers the WebSocket handshake by hand and writes
pre-framed 167-byte text frames as fast as the recorder reads them (as bench/record.py
does). Each trial is a fresh process running ``Recorder`` on the ``url`` venue with
``max_frames=N``: alone; with a relay (``ws://``, the ``url`` venue's pass-through
emulation: every client gets every frame) that C clients are connected to; and the same
plus one stuck client (handshake done, a 4 KiB receive buffer, never reads). The clients
are one separate process reading all C sockets with ``selectors``. Trials interleave,
R of each; the medians are compared (target: with clients >= 0.85 of alone).

Latency: the server paces the frames at F frames/s for S seconds instead; each payload
carries its number. Five of the clients take every frame apart and note, for every 10th
one, the wall-clock time it arrived; the recording's ``ts`` of the same frame (its
receive time upstream) gives the added latency, upstream receive -> client receive
(target: p99 under 2 ms at 5,000 frames/s), with and without the stuck client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

PAD = b"x" * 110


def payload(i: int) -> bytes:
    return b'{"seq":%010d,"px":"69170.0","sz":"0.00018","pad":"%s"}' % (i, PAD)


def framed(p: bytes) -> bytes:
    n = len(p)
    return (bytes([0x81, n]) if n < 126 else bytes([0x81, 126]) + n.to_bytes(2, "big")) + p


# -- the upstream server ----------------------------------------------------------------------

async def serve(n: int, rate: float | None, port_file: str) -> None:
    """Every connection: n frames, as fast as it reads (rate None) or paced at rate/s."""
    from record import serve_frames
    full = b"".join(framed(payload(i)) for i in range(min(n, 65536)))

    async def send(writer):
        if rate is None:
            sent = 0
            while sent < n:   # the same 65,536 frames over and over
                count = min(65536, n - sent)
                writer.write(full if count == 65536 else
                             b"".join(framed(payload(i)) for i in range(count)))
                await writer.drain()
                sent += count
            return
        t0 = time.monotonic()
        i = 0
        while i < n:
            due = min(n, int((time.monotonic() - t0) * rate) + 1)
            if due > i:
                writer.write(b"".join(framed(payload(j)) for j in range(i, due)))
                await writer.drain()
                i = due
            await asyncio.sleep(0.0005)

    await serve_frames(send, port_file)


# -- the clients (their own process) ----------------------------------------------------------

_SEQ = re.compile(rb'\{"seq":(\d{10}),')


def handshake(host: str, port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, port))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def clients(url: str, count: int, stuck: int, timed: int) -> None:
    """``count`` clients read everything (the first ``timed`` note when every 10th
    frame arrived); ``stuck`` never read. Prints "ready", then, once every reading one
    is closed, a JSON report."""
    host, port = url[len("ws://"):].split(":")
    socks = [handshake(host, int(port)) for _ in range(count)]
    stuck_socks = [handshake(host, int(port), rcvbuf=4096) for _ in range(stuck)]
    sel = selectors.DefaultSelector()
    got = [0] * count
    tails = [b""] * count
    last = [-1] * count
    samples: list[tuple[int, int]] = []
    for i, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
    print("ready", flush=True)
    open_count = count
    buf = bytearray(1 << 20)
    while open_count:
        for key, _ in sel.select(30):
            i = key.data
            try:
                n = key.fileobj.recv_into(buf)
            except BlockingIOError:
                continue
            except OSError:
                n = 0
            if n == 0:
                sel.unregister(key.fileobj)
                open_count -= 1
                continue
            got[i] += n
            if i < timed:
                now = time.time_ns()
                chunk = tails[i] + bytes(buf[:n])
                for m in _SEQ.finditer(chunk):
                    seq = int(m.group(1))
                    if seq > last[i]:
                        last[i] = seq
                        if seq % 10 == 0:
                            samples.append((seq, now))
                tails[i] = chunk[-24:]
    for s in socks + stuck_socks:
        s.close()
    cpu = os.times()
    print(json.dumps({"bytes": got, "samples": samples, "cpu": cpu.user + cpu.system}),
          flush=True)


# -- one trial (its own process) --------------------------------------------------------------

def trial(upstream: str, n: int, count: int, stuck: int, timed: int) -> dict:
    from wsrec.record.recorder import Recorder, RecordOptions
    from wsrec.replay.relay import Relay, RelayOptions
    from wsrec.venues import Request, get_venue
    import wsrec
    root = tempfile.mkdtemp(prefix="wsrec-bench-relay-")
    relay = proc = None
    try:
        taps = []
        sent: list = []
        if count or stuck:
            def on_sent(stamps, now=time.time_ns, keep=sent.append):
                keep((now(), stamps))
            relay = Relay("ws://127.0.0.1:0", "url", None,
                          RelayOptions(on_sent=on_sent if timed else None))
            url = relay.start()
            proc = subprocess.Popen([sys.executable, __file__, "--clients-of", url,
                                     "--clients", str(count), "--stuck", str(stuck),
                                     "--timed", str(timed)], stdout=subprocess.PIPE, text=True)
            if proc.stdout.readline().strip() != "ready":
                raise SystemExit("the clients did not start")
            deadline = time.monotonic() + 30
            while relay.clients < count + stuck and time.monotonic() < deadline:
                time.sleep(0.01)
            taps = [relay.publish]
        rec = Recorder(get_venue("url"), Request(url=upstream), data=root, name="bench",
                       options=RecordOptions(max_frames=n, max_retries=0, watchdog=0,
                                             heartbeat=0, compression=False), taps=taps)
        t0 = time.perf_counter()
        cpu0 = os.times()
        result = asyncio.run(rec.run())
        seconds = time.perf_counter() - t0
        cpu1 = os.times()
        report = {"frames": result.frames_in, "seconds": seconds, "status": result.status,
                  "cpu": cpu1.user - cpu0.user + cpu1.system - cpu0.system,
                  "sys": cpu1.system - cpu0.system}
        if relay is not None:
            relay.stop(drain=30)
            out, _ = proc.communicate(timeout=120)
            clients_report = json.loads(out.strip().splitlines()[-1])
            report["clients_cpu"] = clients_report["cpu"]
            report["dropped"] = relay.dropped
            report["client_bytes"] = clients_report["bytes"]
            samples = clients_report["samples"]
            if samples:
                session = wsrec.open_session(result.path)
                ts = {}
                for f in session.frames(direction="in"):
                    m = _SEQ.match(f.payload)
                    if m and int(m.group(1)) % 10 == 0:
                        ts[int(m.group(1))] = f.ts
                report["latency_ms"] = percentiles(
                    [(t - ts[s]) / 1e6 for s, t in samples if s in ts])
            if sent:
                report["send_latency_ms"] = percentiles(
                    [(now - t) / 1e6 for now, stamps in sent for t in stamps])
        return report
    finally:
        if relay is not None:
            relay.stop(drain=0)
        if proc is not None and proc.poll() is None:
            proc.kill()
        shutil.rmtree(root, ignore_errors=True)


def percentiles(values: list[float]) -> dict:
    values.sort()
    return {"n": len(values), "p50": values[len(values) // 2],
            "p99": values[int(len(values) * 0.99)], "max": values[-1]}


def run_trial(upstream, n, count, stuck, timed) -> dict:
    out = subprocess.run([sys.executable, __file__, "--trial", upstream, "--frames", str(n),
                          "--clients", str(count), "--stuck", str(stuck), "--timed",
                          str(timed)], capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"trial failed: {out.stderr.strip().splitlines()[-3:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_server(n: int, rate: float | None):
    port_file = tempfile.mktemp(prefix="wsrec-bench-port-")
    args = [sys.executable, __file__, "--serve", port_file, "--frames", str(n)]
    if rate:
        args += ["--pace", str(rate)]
    server = subprocess.Popen(args)
    from record import server_url
    url = server_url(server, port_file)
    os.unlink(port_file)
    return server, url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--latency-only", action="store_true")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--rate", type=float, default=5000.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--stuck", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--timed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--pace", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--trial", help=argparse.SUPPRESS)
    ap.add_argument("--clients-of", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(args.frames, args.pace, args.serve))
        return
    if args.clients_of:
        clients(args.clients_of, args.clients, args.stuck, args.timed)
        return
    if args.trial:
        print(json.dumps(trial(args.trial, args.frames, args.clients, args.stuck,
                               args.timed)))
        return

    c = args.clients
    kinds = {"alone": (0, 0), f"{c} clients": (c, 0), f"{c} clients + 1 stuck": (c, 1)}
    if not args.latency_only:
        throughput(args, kinds)
    latency(args)


def throughput(args, kinds) -> None:
    server, url = start_server(args.frames, None)
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    notes: dict[str, list] = {k: [] for k in kinds}
    try:
        for i in range(args.runs):
            for kind, (count, stuck) in kinds.items():
                r = run_trial(url, args.frames, count, stuck, 0)
                if r["status"] != "complete" or r["frames"] != args.frames:
                    raise SystemExit(f"{kind}: the recording failed: {r}")
                rates[kind].append(r["frames"] / r["seconds"])
                cpu = f"  cpu: recording {r['cpu']:.1f} s ({r['sys']:.1f} system)" + (
                    f", clients {r['clients_cpu']:.1f} s" if count else "")
                if count:
                    full = args.frames * len(framed(payload(0)))
                    notes[kind].append((r["dropped"], min(r["client_bytes"]) / full))
                print(f"run {i + 1} {kind:<22}: {rates[kind][-1]:>10,.0f} frames/s"
                      + (f"  dropped {r['dropped']}, least-fed client got "
                         f"{notes[kind][-1][1]:.0%} of the bytes" if count else "") + cpu,
                      file=sys.stderr)
    finally:
        server.kill()
    alone = statistics.median(rates["alone"])
    print(f"throughput: {args.frames:,} frames per trial, {args.runs} interleaved runs, median")
    print(f"{'recording':<28}{'frames/s':>12}{'ratio':>8}   runs")
    for kind in kinds:
        m = statistics.median(rates[kind])
        runs = " / ".join(f"{x:,.0f}" for x in rates[kind])
        print(f"{kind:<28}{m:>12,.0f}{m / alone:>8.2f}   {runs}")
        if notes[kind]:
            print(f"{'':<28}clients dropped per run: {[d for d, _ in notes[kind]]}; "
                  f"least-fed client's share of the bytes: "
                  f"{', '.join(f'{s:.0%}' for _, s in notes[kind])}")


def latency(args) -> None:
    c = args.clients
    n = int(args.rate * args.seconds)
    server, url = start_server(n, args.rate)
    try:
        print(f"latency: {args.rate:,.0f} frames/s for {args.seconds:g} s, {c} clients "
              f"(5 timed), every 10th frame")
        print(f"{'':<44}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'samples':>11}")
        for kind, stuck in ((f"{c} clients", 0), (f"{c} clients + 1 stuck", 1)):
            r = run_trial(url, n, c, stuck, 5)
            for what, key in (("receive -> relay's send", "send_latency_ms"),
                              ("receive -> client's receive", "latency_ms")):
                lat = r[key]
                print(f"{kind + ', ' + what:<44}{lat['p50']:>8.3f}{lat['p99']:>8.3f}"
                      f"{lat['max']:>8.2f}{lat['n']:>11,}")
            print(f"{'':<44}recorded {r['frames'] / r['seconds']:,.0f} frames/s, "
                  f"{r['dropped']} dropped")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
