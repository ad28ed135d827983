import base64
import json
import re

import msgpack
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import text_cases
from wsrec.store import lines
from wsrec.store.lines import (decode_envelope, decode_envelope_block, encode_envelope,
                               envelope, envelope_block, is_json_text, json_classes, raw_block,
                               raw_line, row_texts, ts_texts)
from wsrec.store.session import Frame
from wsrec.timefmt import MAX_NS, MIN_NS, format_ns

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
    # JSON that is not compact is embedded as received, byte for byte
    line = encode_envelope(frame(b'{"a": 1,\t"b":1e5}'), "v", "s", False)
    assert line.endswith(b',"data":{"a": 1,\t"b":1e5},"enc":"json"}')
    assert envelope(frame(b"hello"), "v", "s", False)["enc"] == "text"
    assert envelope(frame(b"NaN"), "v", "s", False) == dict(
        envelope(frame(b"x"), "v", "s", False), data="NaN")  # not standard JSON: text
    b = envelope(frame(b"\xff\x00", kind="binary"), "v", "s", False)
    assert b["enc"] == "base64" and base64.b64decode(b["data"]) == b"\xff\x00"
    bad_utf8 = envelope(frame(b"\xff text"), "v", "s", False)
    assert bad_utf8["enc"] == "base64"
    packed = msgpack.packb([{"T": "q", "t": TS}])
    m = envelope(frame(packed, kind="binary"), "v", "s", True)
    assert m["enc"] == "msgpack" and base64.b64decode(m["raw"]) == packed
    assert m["data"] == [{"T": "q", "t": "2026-11-18T11:06:40.123456789Z"}]


def test_data_as_string_gives_every_line_one_shape():
    for f, mp in [(frame(b'{"a":1}'), False), (frame(b"[1]"), False), (frame(b"x"), False),
                  (frame(msgpack.packb({"a": 1}), kind="binary"), True)]:
        e = json.loads(encode_envelope(f, "v", "s", mp, data_as_string=True))
        assert isinstance(e["data"], str)
        assert e["enc"] == ("msgpack" if mp else "text")
    assert json.loads(encode_envelope(frame(b'{"a": 1}'), "v", "s", False, True))["data"] == \
        '{"a": 1}'


def test_lines_of_the_old_form_still_read():
    """Before payloads were embedded as received, json data was compact re-encoding (and
    NaN could be there): the same bytes come back."""
    old = {"seq": 1, "ts": "2026-01-01T00:00:00Z", "mono_ns": 1, "venue": "v", "session": "s",
           "conn": 0, "stream": None, "dir": "in", "kind": "text", "channel": None,
           "symbols": [], "channels": []}
    for payload in (b'{"a":[1,2.5,"x"]}', b"NaN", b'"\xc3\xa9"'):
        line = json.dumps(dict(old, data=json.loads(payload), enc="json"),
                          separators=(",", ":"), ensure_ascii=False)
        assert decode_envelope(line)["payload"] == payload


_EVERY_KIND = [  # (frame, msgpack session)
    (frame(b'{"a":[1,2.5,"x"],"b":null}', channel="c", channels=["c"], symbols=["AAPL"]), False),
    (frame(b'{"a": 1}'), False),                      # JSON, not compact
    (frame(b'{"a":1e5}'), False),                     # JSON that re-encodes differently
    (frame(b'"\\u00e9"'), False),                    # an escape
    (frame(b'"\\ud800"'), False),                    # a lone surrogate: text
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


@pytest.mark.parametrize("as_string", [False, True])
@pytest.mark.parametrize("f, mp", _EVERY_KIND)
def test_envelope_round_trip_is_byte_identical(f, mp, as_string):
    line = encode_envelope(f, "v", "s", mp, as_string)
    row = decode_envelope(line.decode())
    assert row["payload"] == f.payload and row["ts"] == f.ts
    again = Frame(seq=row["seq"], ts=row["ts"], mono_ns=row["mono_ns"], conn=row["conn"],
                  stream=row["stream"], dir=row["dir"], kind=row["kind"],
                  channel=row["channel"], symbol=None, channels=row["channels"],
                  symbols=row["symbols"], payload=row["payload"])
    assert encode_envelope(again, "v", "s", mp, as_string) == line


@pytest.mark.parametrize("obj, why", [
    ([], "not a JSON object"),
    ({"ts": 0, "dir": "in", "kind": "text", "enc": "json"}, "no 'data'"),
    ({"ts": 0, "dir": "in", "kind": "text", "enc": "zip", "data": ""}, "enc must be one of"),
    ({"ts": 0, "dir": "in", "kind": "text", "enc": "base64", "data": "@@"}, "not valid base64"),
    ({"ts": 0, "dir": "in", "kind": "binary", "enc": "msgpack", "data": 1}, "raw is not a base64"),
    ({"ts": True, "dir": "in", "kind": "text", "enc": "text", "data": "x"}, "ts is not a time"),
    ({"ts": 0, "dir": "in", "kind": "text", "enc": "json", "data": ["\ud800"]},
     "data is not valid UTF-8 JSON"),
])
def test_decode_envelope_says_what_is_wrong(obj, why):
    with pytest.raises(ValueError, match=why):
        decode_envelope(json.dumps(obj))


@pytest.mark.parametrize("text, why", [("{not json", "not JSON"), ("[" * 100_000, "nested")])
def test_decode_envelope_of_what_is_not_json(text, why):
    with pytest.raises(ValueError, match=why):
        decode_envelope(text)


# -- whole batches, against the per-frame code ---------------------------------------------------

def per_frame(items, mp, as_string=False, venue="v", session="s"):
    return b"".join(encode_envelope(text_cases.frame(r), venue, session, mp, as_string) + b"\n"
                    for r in items)


@pytest.mark.parametrize("as_string", [False, True])
@pytest.mark.parametrize("mp", [False, True])
def test_envelope_block_is_the_per_frame_code_for_every_row(mp, as_string):
    items = text_cases.rows()
    batch = text_cases.batch(items)
    venue, session = 've"n', "s\u00e9"
    assert bytes(envelope_block(batch, venue, session, mp, as_string)) == \
        per_frame(items, mp, as_string, venue, session)
    for start, length in [(1, 5), (7, 30), (len(items) - 3, 3), (0, 1)]:  # slices
        part = batch.slice(start, length)
        assert bytes(envelope_block(part, venue, session, mp, as_string)) == \
            per_frame(items[start:start + length], mp, as_string, venue, session)


def test_envelope_block_of_one_kind_of_row_at_a_time():
    """Batches of a single class (all JSON, all text, all binary, all events) take the
    shortcuts for what they lack, and still write what the per-frame code writes."""
    items = text_cases.rows()
    groups = {}
    for r in items:
        key = (r["kind"] == "binary", r["payload"] in text_cases.JSON, r["dir"])
        groups.setdefault(key, []).append(r)
    for group in groups.values():
        assert bytes(envelope_block(text_cases.batch(group), "v", "s", True)) == \
            per_frame(group, True)


def test_envelope_block_with_many_distinct_values():
    """More distinct streams, kinds and symbols than the combined key keeps numbered at
    once: renumbered as it goes, the same lines."""
    items = []
    for i in range(3000):
        items.append(dict(seq=i, ts=i * 1_000_003, mono_ns=i, conn=i, stream=f"s{i}",
                          dir="in", kind=f"k{i % 1500}", channel=f"c{i % 999}", symbol=None,
                          channels=[f"c{i % 999}"], symbols=[f"s{i}", f"t{i % 7}"],
                          payload=b'{"i":%d}' % i))
    assert bytes(envelope_block(text_cases.batch(items), "v", "s", False)) == \
        per_frame(items, False)


def test_json_classes_are_is_json_text():
    payloads = text_cases.JSON + text_cases.TEXT
    is_json, is_text = json_classes(pa.array(payloads, pa.binary()),
                                    pa.array(["text"] * len(payloads)))
    expected = [is_json_text(p) for p in payloads]
    assert is_json.to_pylist() == expected
    assert all(is_json_text(p) for p in text_cases.JSON)
    assert not any(is_json_text(p) for p in text_cases.TEXT)
    utf8 = [lines._utf8(p) for p in payloads]
    assert is_text.to_pylist() == [u and not j for u, j in zip(utf8, expected)]


def test_the_json_pattern_only_matches_json():
    """The pattern is a proof: whatever it matches (with no run of digits long enough for
    Python's limit on int(), looked for apart), Python's decoder reads (as standard JSON,
    every string valid text). Cases around each of its rules."""
    patterns = [re.compile(lines._JSON_RE.encode()), re.compile(lines._COMPACT_JSON_RE.encode())]
    digits = re.compile(b"[0-9]{%d}" % lines._digit_limit())
    cases = text_cases.JSON + text_cases.TEXT + [
        b"[[[1]]]", b"[[[[1]]]]", b'{"a":{"b":[1]}}', b'{"a":{"b":{"c":1}}}', b"-", b"1.",
        b".5", b"1e", b"+1", b"0x1", b"tru", b"nul", b'"\\x"', b'"\\u12"', b'"\\uDFFF"',
        b'"\\uD800\\uDC00"', b'"\\ud800\\u0041"', b"[1 2]", b"{,}", b'{"a":1,}', b"[,1]",
        b'{"a" "b"}', b"\t[]\t", b"[]  ", b'"\t"', b"\x00", b"[\x00]"]
    for pattern in patterns:
        for payload in cases:
            if pattern.match(payload) and not digits.search(payload):
                assert is_json_text(payload), payload
        assert pattern.match(b'{"a":{"b":[1]}}') and not pattern.match(b"[[[[1]]]]")
    assert not patterns[1].match(b'{"a": 1}') and not patterns[1].match(b'"\\u00e9"')


def test_times_as_format_ns_writes_them():
    values = [0, -1, 1, -999_999_999, -1_000_000_000, -1_000_000_001, 999_999_999, MIN_NS,
              MAX_NS, 1_795_000_000_123_456_789, None] + [i * 7_919_000_017 for i in range(500)]
    got = ts_texts(pa.array(values, pa.timestamp("ns", tz="UTC")), b"<", b">").to_pylist()
    assert got == [None if v is None else b"<" + format_ns(v).encode() + b">" for v in values]
    spread = [i * 86_400_000_000_000 for i in range(-5000, 5000, 7)]  # many seconds: unique()
    assert ts_texts(pa.array(spread, pa.timestamp("ns", tz="UTC"))).to_pylist() == \
        [format_ns(v).encode() for v in spread]


def test_row_texts_converts_each_distinct_row():
    a = pa.array([1, 2, None, 1, 2] * 3, pa.int32())
    b = pa.array(["x", None, "y", "x", None] * 3)
    c = pa.array([["p"], [], None, ["p"], ["q", "r"]] * 3, pa.list_(pa.string()))
    calls = []

    def text(values):
        calls.append(values)
        return repr(values).encode()

    got = row_texts([a, b, c], text).to_pylist()
    assert got == [repr(t).encode() for t in zip(a.to_pylist(), b.to_pylist(), c.to_pylist())]
    assert len(calls) == 3 * 3 * 4  # few: every combination of the distinct values, once


def test_chunks_cut_by_payload_bytes():
    batch = pa.record_batch({"payload": pa.array([b"x" * 10] * 10, pa.binary())})
    pieces = list(lines.chunks(batch, max_bytes=25))
    assert [p.num_rows for p in pieces] == [2, 2, 2, 2, 2]
    assert list(lines.chunks(batch.slice(3), max_bytes=1000))[0].num_rows == 7
    big = pa.record_batch({"payload": pa.array([b"x" * 100, b"y"], pa.binary())})
    assert [p.num_rows for p in lines.chunks(big, max_bytes=25)] == [1, 1]


# -- envelope lines back, a block at a time ------------------------------------------------------

def block_vs_line_by_line(texts: list[str]):
    """decode_envelope_block against decode_envelope for each line: every line read in the
    block is read the same way one by one (and is an envelope)."""
    ok, columns = decode_envelope_block(pa.array([t.encode("utf-8", "surrogateescape")
                                                  for t in texts], pa.binary()))
    read = 0
    for i, text in enumerate(texts):
        if not ok[i].as_py():
            continue
        read += 1
        row = decode_envelope(text)
        assert columns["payload"][i].as_py() == row["payload"], text
        assert columns["ts"][i].as_py() == row["ts"]
        assert columns["mono_ns"][i].as_py() == row["mono_ns"]
        middle = columns["middles"][columns["middle"][i].as_py()]
        for key in ("conn", "stream", "dir", "kind", "channel", "channels", "symbols"):
            assert middle[key] == row[key], (key, text)
    return ok.to_pylist(), read


@pytest.mark.parametrize("as_string", [False, True])
def test_decode_envelope_block_reads_what_envelope_block_writes(as_string):
    items = [r for r in text_cases.rows() if MIN_NS + 10**9 < r["ts"] < MAX_NS - 10**9]
    texts = bytes(envelope_block(text_cases.batch(items), "v", "s", True, as_string)
                  ).decode().split("\n")[:-1]
    ok, read = block_vs_line_by_line(texts)
    assert read >= len(items) * 0.7  # the form covers most of them
    # the ones it leaves: msgpack, escapes in the middle, JSON it can't prove
    for i, fine in enumerate(ok):
        if not fine:
            assert '"enc":"msgpack"' in texts[i] or "\\" in texts[i].split('"data":')[0] \
                or not as_string, texts[i]


def test_decode_envelope_block_leaves_hostile_lines_to_the_careful_code():
    good = json.loads(encode_envelope(frame(b'{"a":1}', channel="quotes", channels=["quotes"],
                                            symbols=["AAPL"])._replace(stream=None),
                                      "v", "s", False))
    texts = text_cases.hostile_lines(good)
    ok, read = block_vs_line_by_line(texts)
    for fine, text in zip(ok, texts):
        if fine:  # read here only if the careful code takes it as it is
            decode_envelope(text)
    assert not any(ok[:6]) and not any(ok[6:9])


def test_decode_envelope_block_of_non_utf8_lines():
    line = encode_envelope(frame(b"x"), "v", "s", False)
    bad = line.replace(b'"main"', b'"ma\xffin"')
    ok, columns = decode_envelope_block(pa.array([line, bad, line], pa.binary()))
    assert ok.to_pylist() == [True, False, True]


def test_escape_bytes_moves_the_offsets():
    values = pa.array([b'a"b', b"", b'\\"', b"plain", b'""'], pa.binary()).slice(1)
    got = lines.escape_bytes(values, lines._JSON_ESCAPES)
    assert got.to_pylist() == [b"", b'\\\\\\"', b"plain", b'\\"\\"']
    assert lines.escape_bytes(pa.array([b"x"]), lines._JSON_ESCAPES).to_pylist() == [b"x"]
    strings = lines._json_strings(pa.array([b'a"\\b', b"\x01\n", b"\xc3\xa9", b""]))
    assert strings.to_pylist() == [json.dumps(t, ensure_ascii=False).encode()
                                   for t in ['a"\\b', "\x01\n", "\u00e9", ""]]


def test_json_classes_with_binary_rows_between():
    payloads = [b"[1]", b"\x00", b"x", b"[1]", b"\xff"]
    kinds = ["text", "binary", "text", "binary", "text"]
    is_json, is_text = json_classes(pa.array(payloads, pa.binary()), pa.array(kinds))
    assert is_json.to_pylist() == [True, False, False, False, False]
    assert is_text.to_pylist() == [False, False, True, False, False]
    assert pc.sum(is_json).as_py() == 1


def test_envelope_block_rows_without_a_time():
    """A row with no time (never written so, but the schema allows it) is made by the
    per-frame code, in place."""
    items = text_cases.rows()[:6]
    items[2] = dict(items[2], ts=None)
    assert bytes(envelope_block(text_cases.batch(items), "v", "s", False)) == \
        per_frame(items, False)
