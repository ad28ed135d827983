"""Soak test: one long recording, then every way of reading it back, each counted.

    python bench/soak.py [--frames 10000000] [--part-mb 256] [--keep] [--tmp DIR]

The local server of ``bench/record.py`` (its own process) writes N pre-framed text frames
(130 to 150 bytes, 132 on average) as fast as the client reads. ``wsrec record url
ws://127.0.0.1:PORT/ --max-frames N`` records them at full rate into ONE session of a
temporary data root (with the default 256 MiB part size, 10,000,000 frames make 5 parts;
another ``--part-mb`` drives the same recorder from Python with
``RecordOptions(writer_settings={"part_bytes": ...})``, the CLI having no option for it).
Then, each step in
its own child process, timed (wall time, process start-up included) with its own peak
resident memory (``ru_maxrss`` of that child alone, from ``wait4``):

* ``record``: frames stored, from ``--json``;
* ``verify``: must exit 0; its row count must be N plus the recorder's events (open, close);
* ``replay``: ``wsrec replay --speed max -q`` piped into ``wc -l`` (lines counted as they
  stream by, nothing kept);
* ``convert``: ``wsrec convert --format parquet -o FILE``, rows from the file's metadata;
* ``duckdb``: ``SELECT count(*) FROM read_parquet('ROOT/**/*.parquet') WHERE dir='in'``;
* ``polars``: ``scan_parquet(...).filter(dir == 'in').select(pl.len())``, streaming engine;
* ``pyarrow``: ``ParquetFile.iter_batches(batch_size=65536, columns=['dir'])`` over every
  part, counting the 'in' rows.

Prints a table (step, seconds, frames/s, peak RSS, count, OK/MISMATCH), the recorder's and
the replay's peak RSS against the 300 MB target, and exits 1 if any count differs from N
or any step fails. The temporary root is removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

RSS_TARGET_MB = 300
DEFAULT_PART_MB = 256


# -- steps that run inside a child process of this script (--step NAME) -------------------

def step_duckdb(root: str) -> int:
    import duckdb
    con = duckdb.connect()
    return con.execute(f"SELECT count(*) FROM read_parquet('{root}/**/*.parquet') "
                       "WHERE dir = 'in'").fetchone()[0]


def step_polars(root: str) -> int:
    import polars as pl
    return pl.scan_parquet(f"{root}/**/*.parquet").filter(pl.col("dir") == "in") \
        .select(pl.len()).collect(engine="streaming").item()


def step_pyarrow(root: str) -> int:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    count = 0
    for part in sorted(Path(root).rglob("*.parquet")):
        for batch in pq.ParquetFile(part).iter_batches(batch_size=65536, columns=["dir"]):
            count += pc.sum(pc.equal(batch.column(0), "in")).as_py() or 0
    return count


def step_record(url: str, n: int, root: str, part_mb: int) -> None:
    """The recorder driven from Python, for a part size the CLI has no option for; same
    options as ``wsrec record url URL --max-frames N``, same JSON out."""
    from wsrec.record.recorder import RecordOptions, record
    from wsrec.venues import Request, get_venue
    from wsrec.venues.url import Url
    request = Request(url=url, params={"send": []})
    result = record(get_venue("url"), request, data=root, name=Url.default_name(url),
                    options=RecordOptions(max_frames=n,
                                          writer_settings={"part_bytes": part_mb << 20}))
    print(json.dumps({"path": str(result.path), "status": result.status,
                      "error": result.error, "frames_in": result.frames_in,
                      "frames_out": result.frames_out, "events": result.events,
                      "seconds": round(result.seconds, 3)}))
    if result.status != "complete":
        sys.exit(1)


STEPS = {"duckdb": step_duckdb, "polars": step_polars, "pyarrow": step_pyarrow}


# -- measuring a child --------------------------------------------------------------------

class Run:
    def __init__(self, seconds: float, rss_mb: float, rc: int, out: bytes, lines: int,
                 samples: list[tuple[float, float]]):
        self.seconds, self.rss_mb, self.rc, self.out, self.lines = seconds, rss_mb, rc, out, lines
        self.samples = samples  # (seconds since start, VmRSS MB), twice a second


def sample_rss(pid: int, t0: float, samples: list, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        samples.append((time.perf_counter() - t0, int(line.split()[1]) / 1024))
        except OSError:
            return


def run(cmd: list[str], count_lines: bool = False, sample: bool = False) -> Run:
    """Run ``cmd``; wall seconds, and the peak RSS of that child alone (``wait4``: its own
    ``ru_maxrss``, not the running maximum over every child, as ``RUSAGE_CHILDREN`` is).

    ``count_lines``: stdout goes through a pipe into ``wc -l`` (a fraction of the CPU a
    Python loop takes on a 2-core machine, where it would compete with the child being
    measured), else into a Python loop; either way nothing is kept. ``sample``: also
    record the child's resident memory twice a second (to see whether it grows)."""
    wc = shutil.which("wc") if count_lines else None
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    counter = None
    if wc:
        counter = subprocess.Popen([wc, "-l"], stdin=proc.stdout, stdout=subprocess.PIPE)
        proc.stdout.close()  # wc holds the read end now
    # stderr is drained by a thread so a chatty child never blocks on it
    err: list[bytes] = []
    drain = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    drain.start()
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    if sample:
        threading.Thread(target=sample_rss, args=(proc.pid, t0, samples, stop),
                         daemon=True).start()
    lines, out = 0, b""
    if counter:
        out = counter.communicate()[0]
        lines = int(out.split()[0]) if out.strip() else -1
    elif count_lines:
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
        buf = bytearray(1 << 20)
        while k := proc.stdout.readinto(buf):
            lines += buf.count(b"\n", 0, k)
    else:
        out = proc.stdout.read()
    stop.set()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    drain.join()
    for f in (proc.stdout, proc.stderr):
        f.close()
    if proc.returncode != 0:
        tail = b"".join(err).decode(errors="replace").strip().splitlines()[-5:]
        print(f"  ! {' '.join(cmd[:4])} ... exited {proc.returncode}: " + " | ".join(tail),
              file=sys.stderr)
    return Run(seconds, usage.ru_maxrss / 1024, proc.returncode, out, lines, samples)


def wsrec_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "wsrec", *map(str, args)]


def self_cmd(*args) -> list[str]:
    return [sys.executable, __file__, *map(str, args)]


# -- driver -------------------------------------------------------------------------------

def start_server(n: int, workdir: Path) -> tuple[subprocess.Popen, str]:
    port_file = workdir / "port"
    server = subprocess.Popen([sys.executable, str(HERE / "record.py"), "--serve",
                               str(port_file), "--frames", str(n)])
    deadline = time.monotonic() + 600  # building 10M frames takes a while
    while not port_file.exists() or not port_file.read_text():
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise SystemExit("the benchmark server did not start")
        time.sleep(0.1)
    return server, f"ws://127.0.0.1:{port_file.read_text()}/"


def mb(nbytes: int) -> str:
    return f"{nbytes / (1 << 20):,.0f} MB"


def soak(args) -> int:
    n = args.frames
    work = Path(tempfile.mkdtemp(prefix="wsrec-soak-", dir=args.tmp))
    root = work / "data"
    rows: list[tuple] = []   # (step, seconds, rss, count, expected)
    rss = {}
    own_seconds = None
    record_samples: list[tuple[float, float]] = []
    try:
        print(f"soak: {n:,} frames, part size {args.part_mb} MiB, temporary root {work}",
              file=sys.stderr)
        server, url = start_server(n, work)
        try:
            if args.part_mb == DEFAULT_PART_MB:
                cmd = wsrec_cmd("record", "url", url, "--max-frames", n, "--data", root,
                                "-q", "--json")
            else:
                cmd = self_cmd("--record-child", url, "--frames", n, "--data", root,
                               "--part-mb", args.part_mb)
            print("  record ...", file=sys.stderr, flush=True)
            r = run(cmd, sample=True)
        finally:
            server.kill()
            server.wait()
        result = json.loads(r.out) if r.out.strip() else {}
        stored = result.get("frames_in", -1) if r.rc == 0 else -1
        rows.append(("record", r.seconds, r.rss_mb, stored, n))
        rss["record"] = r.rss_mb
        record_samples = r.samples
        if r.rc != 0 or not result:
            raise RuntimeError("the recording failed")
        session = result["path"]
        own_seconds = result.get("seconds")
        events = result.get("events", 0) + result.get("frames_out", 0)

        files = sorted(Path(session).iterdir())
        parts = [f for f in files if f.suffix == ".parquet"]
        leftovers = [f.name for f in files
                     if f.suffix in (".journal", ".tmp") or f.name.endswith(".parquet.tmp")]
        part_bytes = sum(p.stat().st_size for p in parts)

        print("  verify ...", file=sys.stderr, flush=True)
        r = run(wsrec_cmd("verify", session, "--data", root))
        verified = -1
        if r.rc == 0:
            # "ok: venue/id, 10,000,002 rows": the in-rows plus the recorder's events
            found = re.search(r"([\d,]+) rows", r.out.decode())
            verified = int(found.group(1).replace(",", "")) - events if found else -1
        rows.append(("verify", r.seconds, r.rss_mb, verified, n))

        print("  replay ...", file=sys.stderr, flush=True)
        r = run(wsrec_cmd("replay", session, "--data", root, "--speed", "max", "-q"),
                count_lines=True)
        rows.append(("replay --speed max", r.seconds, r.rss_mb, r.lines if r.rc == 0 else -1, n))
        rss["replay"] = r.rss_mb

        print("  convert ...", file=sys.stderr, flush=True)
        out = work / "converted" / "session.parquet"
        out.parent.mkdir()
        r = run(wsrec_cmd("convert", session, "--data", root, "--format", "parquet",
                          "-o", out, "-q"))
        converted, out_bytes = -1, 0
        if r.rc == 0 and out.exists():
            import pyarrow.parquet as pq
            converted = pq.ParquetFile(out).metadata.num_rows
            out_bytes = out.stat().st_size
            out.unlink()  # not needed any more; frees the disk for the rest
        rows.append(("convert --format parquet", r.seconds, r.rss_mb, converted, n))

        for step, label in (("duckdb", "duckdb count(*)"), ("polars", "polars streaming"),
                            ("pyarrow", "pyarrow iter_batches")):
            print(f"  {step} ...", file=sys.stderr, flush=True)
            r = run(self_cmd("--step", step, "--data", root))
            count = int(r.out) if r.rc == 0 and r.out.strip() else -1
            rows.append((label, r.seconds, r.rss_mb, count, n))
    except RuntimeError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        parts, leftovers, part_bytes, out_bytes = [], [], 0, 0
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    ok_all = True
    print(f"frames sent: {n:,}; session: {len(parts)} parts, {mb(part_bytes)} on disk"
          + (f"; converted parquet {mb(out_bytes)}" if out_bytes else "")
          + (f"; LEFTOVERS {leftovers}" if leftovers else ""))
    print(f"{'step':<26}{'seconds':>9}{'frames/s':>13}{'peak RSS MB':>13}{'count':>13}  result")
    for step, seconds, peak, count, expected in rows:
        ok = count == expected
        ok_all &= ok
        print(f"{step:<26}{seconds:>9.2f}{n / seconds:>13,.0f}{peak:>13,.0f}{count:>13,}  "
              f"{'OK' if ok else 'MISMATCH'}")
    if own_seconds:
        print(f"recorder's own time (its --json 'seconds', connect to close, start-up "
              f"excluded): {own_seconds:.2f} s, {n / own_seconds:,.0f} frames/s")
    if len(rows) < 7 or leftovers:
        ok_all = False
    if record_samples:
        # resident memory along the recording: flat is the target, growth is a leak
        end = record_samples[-1][0]
        tenths: list[float | None] = [None] * 10
        for t, resident in record_samples:
            i = min(int(10 * t / end), 9)
            tenths[i] = max(resident, tenths[i] or 0)
        print("recorder RSS, highest in each tenth of the run (MB): "
              + " ".join("-" if x is None else f"{x:.0f}" for x in tenths))
    for step in ("record", "replay"):
        if step in rss:
            verdict = "ok" if rss[step] < RSS_TARGET_MB else "OVER TARGET"
            print(f"{step} peak RSS: {rss[step]:,.0f} MB (target < {RSS_TARGET_MB} MB): {verdict}")
    print("all counts match" if ok_all else "MISMATCH: see above")
    return 0 if ok_all else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10_000_000)
    ap.add_argument("--part-mb", type=int, default=DEFAULT_PART_MB,
                    help="part size in MiB of payload (default: wsrec's, 256)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary root")
    ap.add_argument("--tmp", help="where to make the temporary root (default: $TMPDIR)")
    ap.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    ap.add_argument("--record-child", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        print(STEPS[args.step](args.data))
        return
    if args.record_child:
        step_record(args.record_child, args.frames, args.data, args.part_mb)
        return
    sys.exit(soak(args))


if __name__ == "__main__":
    main()
