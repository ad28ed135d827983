import base64
import gzip
import json

import pytest
import zstandard

import wsrec
from wsrec.errors import WsrecError
from wsrec.importer import detect_format, epoch_ns, import_file


@pytest.mark.parametrize("text,ns", [("1700000000", 1_700_000_000 * 10**9),
                                     ("1700000000.5", 1_700_000_000_500_000_000),
                                     ("1700000000123", 1_700_000_000_123_000_000),
                                     ("1700000000123456", 1_700_000_000_123_456_000),
                                     ("1700000000123456789", 1_700_000_000_123_456_789),
                                     ("2023-11-14T22:13:20Z", 1_700_000_000 * 10**9)])
def test_epoch_units_by_magnitude(text, ns):
    assert epoch_ns(text) == ns


@pytest.mark.parametrize("suffix,pack", [(".txt", lambda b: b), (".gz", gzip.compress),
                                         (".zst", zstandard.ZstdCompressor().compress)])
def test_lines_with_classification(data, tmp_path, suffix, pack):
    text = ('1700000000000 {"channel":"trades","data":[{"coin":"BTC"}]}\n'
            "garbage\n"
            '1700000000500 {"channel":"l2Book","data":{"coin":"ETH"}}\n')
    path = tmp_path / f"cap{suffix}"
    path.write_bytes(pack(text.encode()))
    assert detect_format(path) == "lines"
    result = import_file(path, "hyperliquid", data)
    assert result.rows == 2 and result.bad == [2]
    frames = list(wsrec.open_session(result.path).frames())
    assert [(f.channel, f.symbol) for f in frames] == [("trades", "BTC"), ("l2Book", "ETH")]
    assert frames[1].mono_ns - frames[0].mono_ns == 500_000_000  # paced by time
    before = sorted(p.name for p in (data / "hyperliquid").iterdir())
    with pytest.raises(WsrecError, match=":2: not '<timestamp> <message>'"):
        import_file(path, "hyperliquid", data, strict=True)
    assert sorted(p.name for p in (data / "hyperliquid").iterdir()) == before  # nothing left


def test_har(data, tmp_path):
    har = {"log": {"entries": [
        {"request": {"url": "wss://example.test/feed"}, "_webSocketMessages": [
            {"type": "send", "time": 1700000000.1, "opcode": 1, "data": '{"sub":1}'},
            {"type": "receive", "time": 1700000000.2, "opcode": 1, "data": '{"x":1}'},
            {"type": "receive", "time": 1700000000.3, "opcode": 2,
             "data": base64.b64encode(b"\x00\x01").decode()}]},
        {"request": {"url": "https://example.test/"}},
        {"request": {"url": "wss://other.test/"}, "_webSocketMessages": [
            {"type": "receive", "time": 1700000000.25, "opcode": 1, "data": "hi"}]}]}}
    path = tmp_path / "site.har"
    path.write_text(json.dumps(har))
    result = import_file(path, "site", data)
    frames = list(wsrec.open_session(result.path).frames())
    assert [(f.conn, f.dir, f.kind, f.payload) for f in frames if f.dir != "event"] == [
        (0, "out", "text", b'{"sub":1}'), (0, "in", "text", b'{"x":1}'),
        (1, "in", "text", b"hi"), (0, "in", "binary", b"\x00\x01")]
    opens = [json.loads(f.payload)["url"] for f in frames if f.kind == "open"]
    assert sorted(opens) == ["wss://example.test/feed", "wss://other.test/"]


def test_bad_files(data, tmp_path):
    with pytest.raises(WsrecError, match="no such file"):
        import_file(tmp_path / "missing", "v", data)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(WsrecError, match="empty file"):
        import_file(empty, "v", data)
    bad = tmp_path / "x.har"
    bad.write_text("{not json")
    with pytest.raises(WsrecError, match="not a HAR file"):
        import_file(bad, "v", data)
    assert not (data / "v").exists() or not list((data / "v").iterdir())
