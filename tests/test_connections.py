from wsrec.connections import ConnectionTracker


def test_connections_and_gaps_per_conn():
    t = ConnectionTracker()
    assert t.feed("open", 0, 100, 100, b'{"url":"wss://a"}')
    assert t.feed("open", 1, 110, 110, b'{"url":"wss://b"}')
    assert t.feed("close", 1, 200, 200, b'{"code":1006,"reason":""}')
    assert not t.feed("error", 1, 201, 201, b'{"error":"x"}')  # same loss, once
    assert not t.feed("reconnect", 1, 250, 250, b"{}")
    assert t.feed("open", 1, 400, 400, b"not json")
    assert [c["conn"] for c in t.connections] == [0, 1, 1]
    assert t.connections[1]["code"] == 1006 and t.connections[1]["closed"]
    assert t.connections[0]["closed"] is None
    assert [(g["conn"], g["duration_ns"]) for g in t.gaps] == [(1, 200)]
