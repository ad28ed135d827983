import base64
import json

import msgpack
import pyarrow as pa

from wsrec.store.lines import envelope, raw_block, raw_line
from wsrec.store.session import Frame

TS = msgpack.Timestamp.from_unix_nano(1_795_000_000_123_456_789)


def frame(payload, kind="text", **kw):
    return Frame(seq=7, ts=1_795_000_000_000_000_001, mono_ns=5, conn=0, stream="main", dir="in",
                 kind=kind,
                 channel=kw.get("channel"), symbol=None, channels=kw.get("channels", []),
                 symbols=kw.get("symbols", []), payload=payload)


def test_raw_rules():
    assert raw_line(b'{"a":1}', "text", False) == b'{"a":1}'
    assert raw_line(b"two\nlines", "text", False) == b'"two\\nlines"'
    assert raw_line(b"\x00\xff", "binary", False) == base64.b64encode(b"\x00\xff")
    packed = msgpack.packb([{"T": "t", "S": "A", "t": TS}])
    assert json.loads(raw_line(packed, "binary", True)) == [
        {"T": "t", "S": "A", "t": "2026-11-18T11:06:40.123456789Z"}]
    assert raw_line(packed, "binary", False) == base64.b64encode(packed)  # never guessed


def test_raw_block_matches_line_by_line():
    payloads = [b'{"a":1}', b"x", b"", b"multi\nline", b"\x01\x02"]
    kinds = ["text", "text", "text", "text", "binary"]
    batch = pa.record_batch({"payload": pa.array(payloads, pa.binary()),
                             "kind": pa.array(kinds).dictionary_encode()})
    expected = b"".join(raw_line(p, k, False) + b"\n" for p, k in zip(payloads, kinds))
    assert raw_block(batch, False) == expected
    plain = batch.slice(0, 3)  # the vectorised path
    assert raw_block(plain, False) == b'{"a":1}\nx\n\n'
    assert raw_block(batch.slice(1, 1), False) == b"x\n"
    assert raw_block(batch.slice(3, 1), False) == b'"multi\\nline"\n'  # found in a slice
    empty = pa.record_batch({"payload": pa.array([b"", b""], pa.binary()),
                             "kind": pa.array(["text", "text"]).dictionary_encode()})
    assert bytes(raw_block(empty, False)) == b"\n\n"


def test_envelope_encodings_are_lossless():
    e = envelope(frame(b'{"a":[1,2.5,"x"]}', channels=["c"], channel="c"), "v", "s", False)
    assert e["enc"] == "json" and e["data"] == {"a": [1, 2.5, "x"]}
    assert e["ts"] == "2026-11-18T11:06:40.000000001Z" and e["seq"] == 7
    assert {"seq", "ts", "mono_ns", "venue", "session", "conn", "dir", "kind", "channel",
            "symbols", "data", "enc"} <= set(e)
    spaced = envelope(frame(b'{"a": 1}'), "v", "s", False)  # JSON, but not compact
    assert spaced["enc"] == "text" and spaced["data"] == '{"a": 1}'
    assert envelope(frame(b"hello"), "v", "s", False)["enc"] == "text"
    b = envelope(frame(b"\xff\x00", kind="binary"), "v", "s", False)
    assert b["enc"] == "base64" and base64.b64decode(b["data"]) == b"\xff\x00"
    bad_utf8 = envelope(frame(b"\xff text"), "v", "s", False)
    assert bad_utf8["enc"] == "base64"
    packed = msgpack.packb([{"T": "q", "t": TS}])
    m = envelope(frame(packed, kind="binary"), "v", "s", True)
    assert m["enc"] == "msgpack" and base64.b64decode(m["raw"]) == packed
    assert m["data"] == [{"T": "q", "t": "2026-11-18T11:06:40.123456789Z"}]
