"""Recording to a bucket against recording to a local folder, and replay from each.

    python bench/s3.py [--frames N] [--runs R] [--part-mib M]

An S3 API is served on 127.0.0.1 by moto (``moto_server``, its own process; a local
stand-in: no network latency, no bandwidth limit, but its CPU shares the machine's cores
with the recorder). The flooding server of ``bench/record.py`` (its own process) writes N
pre-framed ~132-byte text frames as fast as the client reads. In the same run, R times,
a fresh client process records the N frames with ``Recorder`` on the ``url`` venue
(as in ``bench/record.py``) to

* local: a temporary data root;
* bucket: ``s3://BUCKET/runK`` (a temporary spool; every part uploaded while recording),

alternating (local first in odd runs, bucket first in even ones), with parts of
``--part-mib`` MiB of payload so that several parts are sealed and uploaded during the run.
Each recording is then read back (stored count and ``verify``), and replayed with
``wsrec replay SESSION --data ROOT --speed max --quiet > /dev/null`` (the whole command, start-up
included).

Reported (medians): recording frames/s of each (from the start until the session is
closed, before the recorder waits for the uploads) and the ratio bucket / local (target
>= 0.9); the drain: how long the close waited for the upload backlog (``Uploader.close``)
and how many parts were still waiting when the recording ended; frames/s end to end
(drain included); the replay's seconds from each and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
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

from record import rss_mb  # noqa: E402
from soak import start_server  # noqa: E402  (the flooding server of bench/record.py)

KEY = SECRET = "testing"
BUCKET = "wsrec-bench"


# -- moto -----------------------------------------------------------------------------------

def start_moto() -> tuple[subprocess.Popen, str]:
    """moto's S3 server on 127.0.0.1, a free port; (process, http://127.0.0.1:PORT)."""
    exe = shutil.which("moto_server") or os.path.join(os.path.dirname(sys.executable),
                                                      "moto_server")
    cmd = [exe, "-H", "127.0.0.1", "-p0"] if os.path.exists(exe) else \
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    found: list[str] = []
    ready = threading.Event()

    def read():   # keep draining its stderr (one line per request) so it never blocks
        for line in proc.stderr:
            if not found:
                m = re.search(r"Running on (http://127\.0\.0\.1:\d+)", line)
                if m:
                    found.append(m.group(1))
                    ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(60) or not found:
        proc.kill()
        raise SystemExit("moto_server did not start")
    return proc, found[0]


def s3_env(endpoint: str) -> None:
    """Test credentials and the endpoint, for this process and its children."""
    os.environ.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET,
                      AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint)
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)


def filesystem(endpoint: str):
    import pyarrow.fs as pafs
    return pafs.S3FileSystem(endpoint_override=endpoint.removeprefix("http://"),
                             scheme="http", region="us-east-1", access_key=KEY,
                             secret_key=SECRET, allow_bucket_creation=True)


# -- the client (its own process) -----------------------------------------------------------

async def record_client(url: str, n: int, data: str, spool: str, part_bytes: int) -> dict:
    import wsrec
    from wsrec.record.recorder import Recorder, RecordOptions
    from wsrec.store.verify import verify
    from wsrec.venues import Request, get_venue
    options = RecordOptions(max_frames=n, max_retries=0, watchdog=0, heartbeat=0,
                            compression=False, spool=spool, upload_timeout=600,
                            writer_settings={"part_bytes": part_bytes})
    rec = Recorder(get_venue("url"), Request(url=url), data=data, name="bench",
                   options=options)
    marks: dict = {}
    if rec.uploader is not None:   # time the close's wait for the uploads
        up = rec.uploader
        up_close = up.close

        def timed_close(timeout):
            marks["closing"] = time.perf_counter()
            marks["backlog"] = up.backlog()
            marks["uploaded_before"] = up.parts_uploaded
            try:
                return up_close(timeout)
            finally:
                marks["closed"] = time.perf_counter()
        up.close = timed_close
    peak = [rss_mb()]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.25):
            peak.append(rss_mb())
    threading.Thread(target=sample, daemon=True).start()
    t0 = time.perf_counter()
    result = await rec.run()
    end = time.perf_counter()
    stop.set()
    recorded = marks.get("closing", end) - t0
    out = {"frames": result.frames_in, "status": result.status, "error": result.error,
           "upload": result.upload, "seconds": recorded, "total": end - t0,
           "drain": marks["closed"] - marks["closing"] if marks else 0.0,
           "rss": max(peak), "path": str(result.path)}
    if rec.uploader is not None:
        parts, size = marks["backlog"]
        out.update(backlog_parts=parts, backlog_bytes=size,
                   uploaded_during=marks["uploaded_before"],
                   parts=rec.uploader.parts_uploaded, retries=rec.uploader.retries)
    session = wsrec.open_session(result.path)
    out["stored"] = sum(b.num_rows for b in session.batches(direction="in", columns=["seq"]))
    out["problems"] = [str(p) for p in verify(session)]
    out.setdefault("parts", len(session.manifest["parts"]))
    return out


# -- driver ---------------------------------------------------------------------------------

def trial(url: str, n: int, data: str, spool: str, part_bytes: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--client", "--url", url, "--frames",
                          str(n), "--data", data, "--spool", spool,
                          "--part-bytes", str(part_bytes)],
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"trial to {data} failed: {out.stderr.strip().splitlines()[-3:]}")
    return json.loads(out.stdout)


def replay_seconds(session: str, data: str) -> float:
    """``wsrec replay ID --data ROOT --speed max --quiet > /dev/null``, wall seconds."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "wsrec", "replay", session, "--data", data,
                          "--speed", "max", "--quiet"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"replay of {session} from {data} failed: {out.stderr.strip()}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--part-mib", type=float, default=16,
                    help="part size in MiB of payload (default 16: ~8 parts per 1M frames)")
    ap.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--spool", help=argparse.SUPPRESS)
    ap.add_argument("--part-bytes", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        print(json.dumps(asyncio.run(record_client(args.url, args.frames, args.data,
                                                   args.spool, args.part_bytes))))
        return

    part_bytes = int(args.part_mib * (1 << 20))
    work = Path(tempfile.mkdtemp(prefix="wsrec-bench-s3-"))
    moto, endpoint = start_moto()
    server = None
    results: dict[str, list[dict]] = {"local": [], "bucket": []}
    try:
        s3_env(endpoint)
        fs = filesystem(endpoint)
        fs.create_dir(BUCKET)
        server, url = start_server(args.frames, work)
        for i in range(args.runs):
            order = ("local", "bucket") if i % 2 == 0 else ("bucket", "local")
            for kind in order:
                local = work / f"root{i + 1}"
                data = str(local) if kind == "local" else f"s3://{BUCKET}/run{i + 1}"
                r = trial(url, args.frames, data, str(work / f"spool{i + 1}"), part_bytes)
                if r["stored"] != args.frames or r["problems"] or r["status"] != "complete" \
                        or r["upload"]:
                    raise SystemExit(f"{kind}: frames lost or the recording failed: {r}")
                r["replay"] = replay_seconds(r["path"].rstrip("/").rpartition("/")[2], data)
                results[kind].append(r)
                extra = ""
                if kind == "bucket":
                    extra = (f", drain {r['drain']:.2f} s ({r['backlog_parts']} of "
                             f"{r['parts']} parts waiting at the end)")
                print(f"run {i + 1} {kind:6}: {r['frames'] / r['seconds']:>9,.0f} frames/s, "
                      f"replay {r['replay']:.2f} s{extra}", file=sys.stderr)
                if kind == "local":
                    shutil.rmtree(local, ignore_errors=True)
                else:
                    fs.delete_dir(f"{BUCKET}/run{i + 1}")
    finally:
        if server is not None:
            server.kill()
        moto.kill()
        moto.wait()
        shutil.rmtree(work, ignore_errors=True)

    def med(kind: str, fn) -> float:
        return statistics.median(fn(r) for r in results[kind])

    def runs(kind: str, fn, fmt: str) -> str:
        return " / ".join(format(fn(r), fmt) for r in results[kind])

    rate = lambda r: r["frames"] / r["seconds"]            # noqa: E731
    end_to_end = lambda r: r["frames"] / r["total"]        # noqa: E731
    loc, bkt = med("local", rate), med("bucket", rate)
    rl, rb = med("local", lambda r: r["replay"]), med("bucket", lambda r: r["replay"])
    b = results["bucket"]
    print(f"frames per trial: {args.frames:,}; parts of {args.part_mib:g} MiB of payload "
          f"({runs('bucket', lambda r: r['parts'], 'd')} per session in the bucket); "
          f"{args.runs} alternated runs each, median")
    print(f"{'measure':<40}{'local':>14}{'bucket':>14}{'ratio':>8}")
    print(f"{'record, frames/s':<40}{loc:>14,.0f}{bkt:>14,.0f}{bkt / loc:>8.2f}")
    print(f"{'  runs':<40}{runs('local', rate, ',.0f'):>14}  {runs('bucket', rate, ',.0f')}")
    print(f"{'record incl. upload drain, frames/s':<40}{med('local', end_to_end):>14,.0f}"
          f"{med('bucket', end_to_end):>14,.0f}"
          f"{med('bucket', end_to_end) / med('local', end_to_end):>8.2f}")
    print(f"{'drain at close, s':<40}{'-':>14}{med('bucket', lambda r: r['drain']):>14.2f}"
          f"   runs {runs('bucket', lambda r: r['drain'], '.2f')}")
    print(f"{'parts waiting at the end of recording':<40}{'-':>14}"
          f"{runs('bucket', lambda r: r['backlog_parts'], 'd'):>14}"
          f"   (upload retries "
          f"{sum(r['retries'] for r in b)})")
    print(f"{'recorder peak RSS, MB':<40}{med('local', lambda r: r['rss']):>14.0f}"
          f"{med('bucket', lambda r: r['rss']):>14.0f}")
    print(f"{'replay --speed max, s':<40}{rl:>14.2f}{rb:>14.2f}{rb / rl:>8.2f}")
    print(f"{'  runs':<40}{runs('local', lambda r: r['replay'], '.2f'):>14}  "
          f"{runs('bucket', lambda r: r['replay'], '.2f')}")
    print(f"ratio bucket / local, recording: {bkt / loc:.2f} (target >= 0.9); "
          f"replay time: {rb / rl:.2f}; frames lost: 0")


if __name__ == "__main__":
    main()
