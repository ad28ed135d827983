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
