import base64
import json

import msgpack
import pyarrow as pa
import pytest

from wsrec.store.lines import decode_envelope, encode_envelope, envelope, raw_block, raw_line
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


_EVERY_KIND = [  # (frame, msgpack session)
    (frame(b'{"a":[1,2.5,"x"],"b":null}', channel="c", channels=["c"], symbols=["AAPL"]), False),
    (frame(b'{"a": 1}'), False),                      # JSON, not compact: text
    (frame(b'{"a":1e5}'), False),                     # JSON that re-encodes differently
    (frame(b'"\\u00e9"'), False),                    # an escape: text
    (frame("caf\u00e9 \u2603".encode()), False),       # non-ASCII text
    (frame(b"two\nlines\r"), False),
    (frame(b""), False),
    (frame(b"\xff not utf-8"), False),                 # text kind, not UTF-8: base64
    (frame(b"\x00\x01\xff", kind="binary"), False),
    (frame(msgpack.packb([{"T": "q", "t": TS, "b": b"\x01"}]), kind="binary"), True),
    (frame(b"\xc1 not msgpack", kind="binary"), True),  # msgpack session, not msgpack
    (frame(msgpack.packb({"x": 1}), kind="binary"), False),  # msgpack, not a msgpack session
    (frame(b'{"url":"wss://x/y","code":1000}', kind="open")._replace(dir="event"), False),
    (frame(b"{}", kind="reconnect")._replace(dir="event", conn=None, stream=None), False),
    (frame(b'[1,2]')._replace(dir="out", conn=3, stream="s2"), False),
]


@pytest.mark.parametrize("f, mp", _EVERY_KIND)
def test_envelope_round_trip_is_byte_identical(f, mp):
    line = encode_envelope(f, "v", "s", mp)
    row = decode_envelope(json.loads(line))
    assert row["payload"] == f.payload and row["ts"] == f.ts
    again = Frame(seq=row["seq"], ts=row["ts"], mono_ns=row["mono_ns"], conn=row["conn"],
                  stream=row["stream"], dir=row["dir"], kind=row["kind"],
                  channel=row["channel"], symbol=None, channels=row["channels"],
                  symbols=row["symbols"], payload=row["payload"])
    assert encode_envelope(again, "v", "s", mp) == line


@pytest.mark.parametrize("obj, why", [
    ([], "not a JSON object"),
    ({"ts": 0, "dir": "in", "kind": "text", "enc": "json"}, "no 'data'"),
    ({"ts": 0, "dir": "in", "kind": "text", "enc": "zip", "data": ""}, "enc must be one of"),
    ({"ts": 0, "dir": "in", "kind": "text", "enc": "base64", "data": "@@"}, "not valid base64"),
    ({"ts": 0, "dir": "in", "kind": "binary", "enc": "msgpack", "data": 1}, "raw is not a base64"),
    ({"ts": True, "dir": "in", "kind": "text", "enc": "text", "data": "x"}, "ts is not a time"),
])
def test_decode_envelope_says_what_is_wrong(obj, why):
    with pytest.raises(ValueError, match=why):
        decode_envelope(obj)
