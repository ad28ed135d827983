"""Start-up time of the wsrec command, as ratios to baselines measured in the same run
(issue #14): ``--help``, ``CMD --help`` and ``venues`` against ``python -c "import click"``
(target <= 2x); commands that read sessions (``replay --speed max``, ``ls``, ``info`` on
the samples/ data root, stdout to /dev/null) against ``python -c "import pyarrow.parquet"``
(target <= 1.5x for the replay).

    python bench/startup.py [-n 15]

The commands take turns, one run of each per round, so that a change of load on the
machine weighs on a command and its baseline alike; the figure is each one's median.
Each runs once before the rounds, with bytecode caching on (a run without
``__pycache__`` times the compiler, not the start-up).
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
SAMPLES = ["--data", str(ROOT / "samples")]
# (name, arguments of python, the baseline it is a ratio to: None for a baseline)
CASES = [
    ("import click", ["-c", "import click"], None),
    ("wsrec --help", ["-m", "wsrec", "--help"], "import click"),
    ("wsrec replay --help", ["-m", "wsrec", "replay", "--help"], "import click"),
    ("wsrec venues", ["-m", "wsrec", "venues"], "import click"),
    ("import pyarrow.parquet", ["-c", "import pyarrow.parquet"], None),
    ("wsrec replay --speed max", ["-m", "wsrec", "replay", *SAMPLES, "alpaca", "--speed", "max"],
     "import pyarrow.parquet"),
    ("wsrec ls", ["-m", "wsrec", "ls", *SAMPLES], "import pyarrow.parquet"),
    ("wsrec info", ["-m", "wsrec", "info", *SAMPLES, "alpaca"], "import pyarrow.parquet"),
]


def run_s(args: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True, timeout=60)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=15, help="runs of each (median)")
    n = parser.parse_args().n
    for _, args, _ in CASES:   # not counted: writes the bytecode
        run_s(args)
    times: dict[str, list[float]] = {name: [] for name, _, _ in CASES}
    for _ in range(n):
        for name, args, _ in CASES:
            times[name].append(run_s(args))
    measured = {name: statistics.median(t) for name, t in times.items()}
    for name, _, base in CASES:
        t = measured[name]
        ratio = f"{t / measured[base]:5.2f}x {base}" if base else "(baseline)"
        print(f"{name:26s} {t * 1000:7.1f} ms  {ratio}")


if __name__ == "__main__":
    main()
