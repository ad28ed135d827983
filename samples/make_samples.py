"""Regenerate the sample sessions in this folder (a wsrec data root).

    python samples/make_samples.py

Deterministic: fixed seed, fixed session ids and timestamps, so the files only
change when the format or this script does.
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import wsrec

HERE = Path(__file__).resolve().parent
START = 1_795_000_000_000_000_000        # 2026-11-18T11:06:40Z
SYMBOLS = ["FAKEPACA"]


def alpaca(data: Path) -> None:
    r = random.Random(20261121)
    sid = "20261118T110640Z-a1a1"
    shutil.rmtree(data / "alpaca" / sid, ignore_errors=True)
    ts, mono = START, 5_000_000_000
    price = 134.0

    def tick(lo=20_000, hi=900_000):
        nonlocal ts, mono
        step = r.randint(lo, hi)
        ts += step
        mono += step
        return dict(ts_ns=ts, mono_ns=mono)

    def stamp(ns):
        secs, frac = divmod(ns, 1_000_000_000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"

    with wsrec.SessionWriter("alpaca", data=data, session_id=sid, started_ns=START,
                             args={"symbols": SYMBOLS, "feed": "test"}) as w:
        w.event("open", url="wss://stream.data.alpaca.markets/v2/test", **tick())
        w.append(b'[{"T":"success","msg":"connected"}]', kind="text", **tick())
        w.append(b'{"action":"auth","key":"***","secret":"***"}', dir="out", kind="text",
                 **tick())
        w.append(b'[{"T":"success","msg":"authenticated"}]', kind="text", **tick())
        w.append(b'{"action":"subscribe","trades":["FAKEPACA"],"quotes":["FAKEPACA"],'
                 b'"bars":["FAKEPACA"]}', dir="out", kind="text", channels=(
                     "trades", "quotes", "bars"), symbols=("FAKEPACA",), **tick())
        w.append(b'[{"T":"subscription","trades":["FAKEPACA"],"quotes":["FAKEPACA"],'
                 b'"bars":["FAKEPACA"],"updatedBars":[],"dailyBars":[],"statuses":[],'
                 b'"lulds":[],"corrections":["FAKEPACA"],"cancelErrors":["FAKEPACA"]}]',
                 kind="text", **tick())
        for i in range(300):
            t = tick(200_000, 80_000_000)
            price = round(price * (1 + r.gauss(0, 0.0004)), 2)
            exch = stamp(t["ts_ns"] - r.randint(300_000, 2_000_000))
            if i % 40 == 39:
                payload = (f'[{{"T":"b","S":"FAKEPACA","o":{price},"h":{price + 0.4:.2f},'
                           f'"l":{price - 0.3:.2f},"c":{price},"v":{r.randint(50, 400)},'
                           f'"t":"{exch[:17]}00Z","n":{r.randint(5, 30)},"vw":{price}}}]')
                channel = "bars"
            elif r.random() < 0.3:
                payload = (f'[{{"T":"t","S":"FAKEPACA","i":{1000 + i},"x":"V","p":{price},'
                           f'"s":{r.randint(1, 300)},"c":["@"],"z":"C","t":"{exch}"}}]')
                channel = "trades"
            else:
                payload = (f'[{{"T":"q","S":"FAKEPACA","bx":"V","bp":{price - 0.01:.2f},'
                           f'"bs":{r.randint(1, 9)},"ax":"V","ap":{price + 0.01:.2f},'
                           f'"as":{r.randint(1, 9)},"c":["R"],"z":"C","t":"{exch}"}}]')
                channel = "quotes"
            w.append(payload.encode(), kind="text", channels=(channel,),
                     symbols=("FAKEPACA",), **t)
        w.event("close", code=1000, reason="", **tick())


def main() -> None:
    alpaca(HERE)
    print(f"samples written under {HERE}")


if __name__ == "__main__":
    main()
