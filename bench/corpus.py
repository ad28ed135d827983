"""A deterministic corpus of market-data frames for benchmarks.

Alpaca-style quote frames of about 130-150 bytes over 12 symbols: random-walk
prices, exchange timestamps with nanoseconds, and receive times that trail them
by a random network latency (so the receive time is not a copy of a field of the
payload, as on a real feed). Receive gaps are exponential, mean 200 us.
"""

from __future__ import annotations

import random
import time

SYMBOLS = ["AAPL", "MSFT", "AMD", "NVDA", "TSLA", "AMZN", "META", "GOOG", "SPY", "QQQ",
           "INTC", "NFLX"]
START_NS = 1_795_000_000_000_000_000
MONO_OFFSET = 1_794_990_000_000_000_000


def frames(n: int, seed: int = 1):
    """Yield ``(ts_ns, mono_ns, symbol, payload)`` for ``n`` frames."""
    r = random.Random(seed)
    px = {s: r.uniform(50, 500) for s in SYMBOLS}
    exchanges = "VKQPNZ"
    t = START_NS
    second, stamp = None, ""
    received = 0
    for _ in range(n):
        t += int(r.expovariate(1 / 200_000))
        s = r.choice(SYMBOLS)
        px[s] *= 1 + r.gauss(0, 0.0002)
        bp = round(px[s], 2)
        ap = round(bp + r.choice((0.01, 0.02, 0.03, 0.05)), 2)
        sec, ns = divmod(t, 1_000_000_000)
        if sec != second:
            second, stamp = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        payload = (f'[{{"T":"q","S":"{s}","bx":"{r.choice(exchanges)}","bp":{bp},'
                   f'"bs":{r.randint(1, 9)},"ax":"{r.choice(exchanges)}","ap":{ap},'
                   f'"as":{r.randint(1, 9)},"c":["R"],"z":"{r.choice("ABC")}",'
                   f'"t":"{stamp}.{ns:09d}Z"}}]').encode()
        received = max(t + 800_000 + int(r.expovariate(1 / 200_000)), received + 500)
        yield received, received - MONO_OFFSET + r.randint(0, 300), s, payload
