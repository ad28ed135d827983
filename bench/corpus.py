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


COINS = ["BTC", "ETH", "SOL", "ARB", "DOGE", "AVAX", "OP", "LINK"]


def hyperliquid_frames(n: int, seed: int = 2):
    """Yield ``(ts_ns, mono_ns, channel, coin, payload)`` for ``n`` Hyperliquid-shaped
    frames: 80% ``trades`` frames of one to three trades (numbers as strings, ms times),
    20% ``l2Book`` frames of five levels a side."""
    r = random.Random(seed)
    px = {c: r.uniform(1, 70_000) for c in COINS}
    t = START_NS
    received = 0
    tid = 456615105517601
    for _ in range(n):
        t += int(r.expovariate(1 / 200_000))
        coin = r.choice(COINS)
        px[coin] *= 1 + r.gauss(0, 0.0002)
        ms = t // 1_000_000
        if r.random() < 0.8:
            trades = []
            for _ in range(r.choice((1, 1, 1, 2, 3))):
                tid += 1
                trades.append(
                    f'{{"coin":"{coin}","side":"{r.choice("AB")}","px":"{px[coin]:.1f}",'
                    f'"sz":"{r.uniform(0.0001, 3):.5f}","time":{ms},"hash":"0x{tid:064x}",'
                    f'"tid":{tid},"users":["0x{r.getrandbits(160):040x}",'
                    f'"0x{r.getrandbits(160):040x}"]}}')
            channel = "trades"
            payload = f'{{"channel":"trades","data":[{",".join(trades)}]}}'
        else:
            mid = px[coin]
            side = [",".join(f'{{"px":"{mid + k * d:.1f}","sz":"{r.uniform(0.1, 9):.5f}",'
                             f'"n":{r.randint(1, 40)}}}' for k in range(1, 6)) for d in (-1, 1)]
            channel = "l2Book"
            payload = (f'{{"channel":"l2Book","data":{{"coin":"{coin}","time":{ms},'
                       f'"levels":[[{side[0]}],[{side[1]}]]}}}}')
        received = max(t + 800_000 + int(r.expovariate(1 / 200_000)), received + 500)
        yield (received, received - MONO_OFFSET + r.randint(0, 300), channel, coin,
               payload.encode())
