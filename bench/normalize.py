"""Normalized export benchmark: ``convert --normalize trades`` against raw replay.

    python bench/normalize.py [--frames 1000000] [--runs 3]

A Hyperliquid-shaped session (bench/corpus.py ``hyperliquid_frames``: 80% trades frames of
one to three trades, 20% five-level l2Book frames) is written, then, in the same run and
interleaved, the wall time of each command (start-up included) is measured:

* ``wsrec replay SESSION --speed max --quiet > /dev/null`` (the baseline: raw frames out);
* ``wsrec convert SESSION --normalize trades --format parquet`` and ``--format jsonl``;
* ``wsrec convert SESSION --normalize book_snapshots:10:100ms --format parquet``.

Printed per command: the median seconds, session frames per second, and the ratio of its
frames/s to raw replay's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import wsrec  # noqa: E402
from corpus import hyperliquid_frames  # noqa: E402
from replay import run_timed, wsrec_cmd  # noqa: E402


def build(root: Path, n: int) -> None:
    with wsrec.SessionWriter("hyperliquid", data=root) as w:
        for ts, mono, channel, coin, payload in hyperliquid_frames(n):
            w.append(payload, kind="text", channels=(channel,), symbols=(coin,), ts_ns=ts,
                     mono_ns=mono)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="wsrec-bench-"))
    try:
        build(root, args.frames)
        env = {**os.environ, "WSREC_DATA": str(root)}
        out = root / "out"
        commands = {
            "replay --speed max (raw)": wsrec_cmd("replay", "hyperliquid", "--speed", "max",
                                                  "--quiet"),
            "convert --normalize trades parquet": wsrec_cmd(
                "convert", "hyperliquid", "--normalize", "trades", "--format", "parquet",
                "-o", out, "--force", "--quiet"),
            "convert --normalize trades jsonl": wsrec_cmd(
                "convert", "hyperliquid", "--normalize", "trades", "--format", "jsonl",
                "-o", out, "--force", "--quiet"),
            "convert --normalize book_snapshots:10:100ms": wsrec_cmd(
                "convert", "hyperliquid", "--normalize", "book_snapshots:10:100ms",
                "--format", "parquet", "-o", out, "--force", "--quiet"),
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):   # interleaved: drift of the machine hits all alike
            for name, cmd in commands.items():
                times[name].append(run_timed(cmd, env=env)[0])
        base = args.frames / statistics.median(times["replay --speed max (raw)"])
        print(f"{args.frames:,} Hyperliquid-shaped frames, median of {args.runs} runs")
        print(f"{'command':<46}{'seconds':>9}{'frames/s':>12}{'vs raw':>8}")
        for name, values in times.items():
            s = statistics.median(values)
            rate = args.frames / s
            print(f"{name:<46}{s:>9.2f}{rate:>12,.0f}{rate / base:>8.2f}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
