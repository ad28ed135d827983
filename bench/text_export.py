"""Text output benchmark: the text formats against raw replay, in the same run.

    python bench/text_export.py [--frames 1000000] [--runs 3]
    python bench/text_export.py --data ROOT --session REF     # an existing session

A session of ``--frames`` frames of the replay benchmark's corpus (``bench/corpus.py``,
~132-byte Alpaca-style quotes) is written once (or ``--session`` is taken as it is); then
each command runs ``--runs`` times, the commands taking turns, and the median wall time of
each (the whole command, Python's start-up included) is reported as frames/s and as a
ratio to raw replay's (target: at least 0.5 for jsonl, csv, envelope and import):

* raw        ``wsrec replay S --speed max --quiet > /dev/null`` (the baseline)
* envelope   ``wsrec replay S --speed max --format envelope --quiet > /dev/null``
* jsonl      ``wsrec convert S --format jsonl -o /dev/null -q``
* jsonl str  ``... --format jsonl --data-as-string``
* jsonl.zst  ``... --format jsonl.zst``
* csv        ``... --format csv``
* import     ``wsrec import S.jsonl --venue copy -q`` (the jsonl written once beforehand,
             each run into a fresh data root)
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
from corpus import frames  # noqa: E402
from replay import run_timed, wsrec_cmd  # noqa: E402


def build(root: Path, n: int) -> wsrec.Session:
    with wsrec.SessionWriter("bench", data=root) as w:
        for ts, mono, sym, payload in frames(n):
            w.append(payload, kind="text", channels=("quotes",), symbols=(sym,),
                     ts_ns=ts, mono_ns=mono)
    return wsrec.open_session("bench", data=root)


def commands(session: wsrec.Session, jsonl: Path, work: Path) -> dict[str, tuple]:
    """name -> (command, a folder to remove after each run or None)."""
    ref = str(session.path)
    convert = lambda fmt, *more: (wsrec_cmd("convert", ref, "--format", fmt, "-o",  # noqa
                                            os.devnull, "-q", *more), None)
    copies = work / "copies"
    return {
        "raw": (wsrec_cmd("replay", ref, "--speed", "max", "--quiet"), None),
        "envelope": (wsrec_cmd("replay", ref, "--speed", "max", "--format", "envelope",
                               "--quiet"), None),
        "jsonl": convert("jsonl"),
        "jsonl str": convert("jsonl", "--data-as-string"),
        "jsonl.zst": convert("jsonl.zst"),
        "csv": convert("csv"),
        "import": (wsrec_cmd("import", jsonl, "--venue", "copy", "--data", copies, "-q"),
                   copies),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data", help="the data root of --session")
    ap.add_argument("--session", help="an existing session to measure (else one is built)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wsrec-bench-"))
    try:
        if args.session:
            session = wsrec.open_session(args.session, data=args.data)
        else:
            print(f"writing a session of {args.frames:,} frames ...", flush=True)
            session = build(work / "data", args.frames)
        n = session.rows()
        jsonl = work / "s.jsonl"
        run_timed(wsrec_cmd("convert", str(session.path), "--format", "jsonl", "-o", jsonl,
                            "-q"))
        todo = commands(session, jsonl, work)
        times: dict[str, list[float]] = {name: [] for name in todo}
        for _ in range(args.runs):  # taking turns, so a busy moment hits every command
            for name, (cmd, empty) in todo.items():
                times[name].append(run_timed(cmd)[0])
                if empty is not None:
                    shutil.rmtree(empty, ignore_errors=True)
        base = statistics.median(times["raw"])
        print(f"{n:,} frames, {args.runs} runs each, median (range)")
        print(f"{'command':<12}{'seconds':>22}{'frames/s':>14}{'ratio to raw':>14}")
        for name, values in times.items():
            median = statistics.median(values)
            spread = f"{median:.2f} ({min(values):.2f}-{max(values):.2f})"
            print(f"{name:<12}{spread:>22}{n / median:>14,.0f}{base / median:>14.2f}",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
