"""Start-up time of the wsrec command, as a ratio to ``python -c "import click"`` in the
same run (issue #14: target <= 2x for --help, CMD --help and venues).

    python bench/startup.py [-n 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = [
    ("import click", ["-c", "import click"]),
    ("wsrec --help", ["-m", "wsrec", "--help"]),
    ("wsrec replay --help", ["-m", "wsrec", "replay", "--help"]),
    ("wsrec venues", ["-m", "wsrec", "venues"]),
]


def median_s(args: list[str], n: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], env=env, stdout=subprocess.DEVNULL,
                       check=True, timeout=60)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=15, help="runs of each (median)")
    n = parser.parse_args().n
    base = None
    for name, args in CASES:
        t = median_s(args, n)
        base = base or t
        print(f"{name:22s} {t * 1000:7.1f} ms  {t / base:5.2f}x import click")


if __name__ == "__main__":
    main()
