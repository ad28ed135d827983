"""Session store benchmark: writer throughput, read throughput, bytes on disk.

    python bench/store.py [--frames N]

Prints each measurement beside its baseline or target, in one run:

* writer: frames/s through SessionWriter.append + close, the process pinned to one
  core (the flush thread shares it), against the 200,000 frames/s target;
* reader: frames/s of Session.batches() over every column, on all cores (median of
  three passes after a warm-up pass), against 2,000,000;
* size: bytes of the session's parts against ``zstd -3`` of the same frames written
  as ``<ts> <payload>`` lines (compressed in the same run with libzstd level 3).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import frames  # noqa: E402

import wsrec  # noqa: E402


def _write(n, root, out) -> None:
    """Child process: pinned to one core before Arrow starts any thread; makes its own
    corpus (sharing the parent's would time copy-on-write faults, not the writer)."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    corpus = list(frames(n))
    t0 = time.perf_counter()
    with wsrec.SessionWriter("bench", data=root) as w:
        append = w.append
        for ts, mono, sym, payload in corpus:
            append(payload, kind="text", channels=("quotes",), symbols=(sym,),
                   ts_ns=ts, mono_ns=mono)
    out.put((time.perf_counter() - t0, str(w.folder)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--keep", action="store_true", help="keep the temporary data root")
    args = ap.parse_args()
    n = args.frames
    root = Path(tempfile.mkdtemp(prefix="wsrec-bench-"))
    try:
        # writer: a forked child pinned to one core (Arrow's pool threads would keep
        # the pinning if it were done here)
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        child = ctx.Process(target=_write, args=(n, root, out))
        child.start()
        write_s, folder = out.get()
        child.join()
        write_rate = n / write_s

        # reader, on every core as a reading process has them
        session = wsrec.open_session(folder)
        times = []
        for _ in range(4):  # the first pass warms Arrow's pools; median of the other 3
            t0 = time.perf_counter()
            rows = sum(b.num_rows for b in session.batches())
            times.append(time.perf_counter() - t0)
            assert rows == n, rows
        read_rate = n / statistics.median(times[1:])

        # size
        corpus = list(frames(n))
        avg = sum(len(p) for *_, p in corpus) / n
        parts = sum(p.stat().st_size for p in session.parts)
        lines = b"".join(b"%d %s\n" % (ts, payload) for ts, _, _, payload in corpus)
        t0 = time.perf_counter()
        baseline = len(zstandard.ZstdCompressor(level=3).compress(lines))
        zstd_s = time.perf_counter() - t0
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root)

    print(f"frames: {n:,} of {avg:.0f} bytes on average; writer pinned to 1 core, "
          f"reader on {len(os.sched_getaffinity(0))}")
    print(f"{'measure':<34}{'wsrec':>16}{'baseline':>16}{'ratio':>9}")
    print(f"{'writer frames/s (target 200k)':<34}{write_rate:>16,.0f}{200_000:>16,}"
          f"{write_rate / 200_000:>9.2f}")
    print(f"{'read batches frames/s (target 2M)':<34}{read_rate:>16,.0f}{2_000_000:>16,}"
          f"{read_rate / 2_000_000:>9.2f}")
    print(f"{'  first (cold) pass':<34}{n / times[0]:>16,.0f}{2_000_000:>16,}"
          f"{n / times[0] / 2_000_000:>9.2f}")
    print(f"{'bytes on disk vs zstd -3 lines':<34}{parts:>16,}{baseline:>16,}"
          f"{parts / baseline:>9.3f}")
    print(f"(zstd -3 alone compressed the lines at {n / zstd_s:,.0f} frames/s)")


if __name__ == "__main__":
    main()
