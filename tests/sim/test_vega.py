import pytest
from websockets.exceptions import InvalidStatus

from wsrec.sim.vega import MARKETS

from conftest import recv_json, talk

pytestmark = pytest.mark.timeout(60)


def test_snapshot_pages_then_updates_for_the_filtered_market():
    async def script(ws):
        pages = []
        while True:
            msg = await recv_json(ws)
            if "snapshot" not in msg["result"]:
                return pages, msg
            pages.append(msg["result"]["snapshot"])
    pages, update = talk("vega", f"/api/v2/stream/orders?marketIds={MARKETS[1]}", script)
    assert all(len(p["orders"]) == 50 for p in pages[:-1]) and pages[-1]["lastPage"] is True
    assert all("lastPage" not in p for p in pages[:-1])
    assert {o["marketId"] for p in pages for o in p["orders"]} == {MARKETS[1]}
    assert update["result"]["updates"]["orders"][0]["marketId"] == MARKETS[1]


def test_bad_filter_ends_the_stream_and_unknown_path_is_404():
    async def script(ws):
        return await recv_json(ws)
    assert talk("vega", "/api/v2/stream/trades?nope=1", script)["error"]["code"] == 3
    assert talk("vega", "/api/v2/stream/candle/data", script)["error"]["code"] == 3
    with pytest.raises(InvalidStatus):
        talk("vega", "/api/v2/stream/unknown", script)


def test_market_ids_are_64_hex_from_names():
    from wsrec.sim.vega import MARKET_NAMES, market_id
    btc = "f63130fa07e784af5b9232a2fbb097836b3506d139ae4c46baea4711c113afc8"
    assert market_id("BTC/USDT-PERP") == btc   # its sha256
    assert market_id(btc.upper()) == btc   # an id is kept (in lower case)
    assert MARKETS == [market_id(n) for n in MARKET_NAMES] and len(set(MARKETS)) == 3
    assert all(len(m) == 64 and int(m, 16) >= 0 for m in MARKETS)


def test_a_market_named_in_the_filter_is_answered_with_its_id():
    from urllib.parse import quote

    from wsrec.sim.vega import market_id

    async def trades(ws):
        return [t for _ in range(20) for t in (await recv_json(ws))["result"]["trades"]]
    got = talk("vega", f"/api/v2/stream/trades?marketIds={quote('BTC/USDT-PERP', safe='')}",
               trades)
    assert {t["marketId"] for t in got} == {market_id("BTC/USDT-PERP")}
    assert all(800_000 < int(t["price"]) < 1_000_000 for t in got)   # 90,000.0 at 1 decimal
    everything = talk("vega", "/api/v2/stream/trades", trades)
    assert {t["marketId"] for t in everything} <= set(MARKETS)
    assert len({t["marketId"] for t in everything}) > 1


def test_depth_sequence_numbers_climb_even_within_one_vega_time():
    import random

    from wsrec.sim.vega import _Book, _Prices
    rng = random.Random(1)
    book = _Book(rng, MARKETS[0], 10**18, _Prices(rng, {}))
    seqs = [book.seq]
    for _ in range(300):   # every change at the same time, as in one block
        book.change(rng, 10**18)
        seqs.append(book.seq)
    assert all(a < b for a, b in zip(seqs, seqs[1:]))
    assert book.prev == seqs[-2]
