from wsrec.store._connections import ConnectionTracker


def test_connections_numbered_physically_and_gaps_per_stream():
    t = ConnectionTracker()
    assert t.feed("open", 0, "trades", 100, 100, b'{"url":"wss://a"}')
    assert t.feed("open", 1, "depth", 110, 110, b'{"url":"wss://b"}')
    assert t.feed("close", 1, "depth", 200, 200, b'{"code":1006,"reason":""}')
    assert not t.feed("error", 1, "depth", 201, 201, b'{"error":"x"}')  # same loss, once
    assert not t.feed("reconnect", None, "depth", 250, 250, b"{}")
    assert not t.feed("error", None, "depth", 260, 260, b'{"error":"refused"}')
    assert t.feed("open", 2, "depth", 400, 400, b"not json")
    assert [(c["conn"], c["stream"]) for c in t.connections] == [
        (0, "trades"), (1, "depth"), (2, "depth")]
    assert t.connections[1]["code"] == 1006 and t.connections[1]["closed"]
    assert t.connections[0]["closed"] is None and t.connections[2]["closed"] is None
    assert [(g["stream"], g["after_conn"], g["conn"], g["duration_ns"]) for g in t.gaps] == [
        ("depth", 1, 2, 200)]


def test_a_stream_without_a_name_is_one_stream():
    t = ConnectionTracker()
    t.feed("open", 0, None, 0, 0, b"{}")
    t.feed("close", 0, None, 10, 10, b"{}")
    t.feed("open", 1, None, 30, 30, b"{}")
    assert [(g["stream"], g["duration_ns"]) for g in t.gaps] == [(None, 20)]
