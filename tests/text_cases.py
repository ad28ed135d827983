"""Rows that the text formats (the envelope, CSV) and their column-at-a-time builders must
get right: every kind of payload and field value, for the tests of ``wsrec.store.lines``,
``convert`` and ``import``. Deterministic: no randomness, no clock."""

import json
from types import SimpleNamespace

import msgpack
import pyarrow as pa

from wsrec.timefmt import MAX_NS, MIN_NS

TS = msgpack.Timestamp.from_unix_nano(1_795_000_000_123_456_789)

#: text payloads that are JSON by ``is_json_text`` (embedded as they are)
JSON = [
    b'{"a":[1,2.5,"x"],"b":null}', b"[1,2]", b"{}", b"[]", b'"str"', b"123", b"-0", b"0",
    b"-1.5e-7", b"1E400", b"true", b"null", b'{"a": 1}', b'{\t"a":1}',
    b'{"a":1e5}', b'"\\u00e9"', b'"\\ud83d\\ude00"', b'"\\/"', b'{"a":1,"a":2}',
    b"[[[[1]]]]", b"[" * 50 + b"]" * 50, b"1." + b"9" * 5000, b'{"k":"' + b"9" * 2000 + b'"}',
    b'{"a":"x\\ny"}', '{"\u00e9":"\u2603"}'.encode(), b'"\x7f"', b'{"a":"\\"q\\\\"}',
    b'[{"T":"q","S":"AAPL","bp":110.46,"c":["R"],"t":"2026-11-18T11:06:40.000287332Z"}]',
]
#: text payloads that are not (written as a JSON string, or base64 when not UTF-8)
TEXT = [
    b' {"a":1}', b'[] ', b'"\\ud800"', b'"\\udc00x"', b"NaN", b"Infinity", b"[NaN]",
    b"-Infinity", b"01", b"[1,]",
    b'{"a":1}{"b":2}', b"1 2", b'"abc', b'{"a"}', b"\xef\xbb\xbf{}", b"[" * 3000 + b"]" * 3000,
    b"9" * 5000, b"[" + b"9" * 5000 + b"]", b'{"a":\n1}', b'{"a":1}\r', b'{"a":"\x01"}',
    b"hello", b"", b"two\nlines", b"cr\r", b'quote " and \\ backslash', b"tab\there",
    "caf\u00e9 \u2603".encode(), b"\x00nul", b"comma, here", b" ", "\u2028".encode(),
    b"\xff not utf-8", b"\xed\xa0\x80 surrogate bytes", b"x" * 70_000,
]
BINARY = [b"\x00\x01\xff", b"", msgpack.packb([{"T": "q", "t": TS, "b": b"\x01"}]),
          b"\xc1 not msgpack", msgpack.packb({"x": 1}), msgpack.packb([float("nan"), 1.5])]

_FIELDS = [  # (conn, stream, dir, kind, channel, channels, symbols)
    (0, None, "in", None, "quotes", ["quotes"], ["AAPL"]),
    (3, "main", "out", None, None, [], []),
    (None, None, "event", "reconnect", None, [], []),
    (2**31 - 1, 's"q', "in", "k,ind", "c,h", ["a", "b"], ["a,b"]),
    (-(2**31), "\u00e9", "in", 'ki"nd', "c\\h", ["c"], ['q"x', "\u00e9", ""]),
    (1, "s\n2", "in", "open", "\u2603", ["x y"], ["s"]),
]
_TIMES = [1_795_000_000_000_000_001, 0, -1, -1_000_000_001, MIN_NS, MAX_NS, 1_795_000_001_5]


def rows(lists_can_be_null: bool = True) -> list[dict]:
    """One row per payload above, the fields and times going round their lists."""
    out = []
    payloads = [(p, "text") for p in JSON + TEXT] + [(p, "binary") for p in BINARY]
    for i, (payload, kind) in enumerate(payloads):
        conn, stream, direction, event, channel, channels, symbols = _FIELDS[i % len(_FIELDS)]
        if lists_can_be_null and i % 11 == 5:
            channels = symbols = None
        out.append(dict(seq=i, ts=_TIMES[i % len(_TIMES)], mono_ns=None if i % 7 == 3 else i,
                        conn=conn, stream=stream, dir=direction,
                        kind=event if event and kind == "text" else kind, channel=channel,
                        symbol=None, channels=channels, symbols=symbols, payload=payload))
    return out


_TYPES = {"seq": pa.int64(), "ts": pa.timestamp("ns", tz="UTC"), "mono_ns": pa.int64(),
          "conn": pa.int32(), "stream": pa.string(), "dir": pa.string(), "kind": pa.string(),
          "channel": pa.string(), "symbol": pa.string(), "channels": pa.list_(pa.string()),
          "symbols": pa.list_(pa.string()), "payload": pa.binary()}


def batch(items: list[dict]) -> pa.RecordBatch:
    """The rows as a batch with a session's column types."""
    return pa.record_batch({name: pa.array([r[name] for r in items], kind)
                            for name, kind in _TYPES.items()})


def frame(row: dict) -> SimpleNamespace:
    """A row as what the per-frame code takes (a ``Frame``'s attributes)."""
    return SimpleNamespace(**row)


def session_rows() -> list[tuple[bytes, dict]]:
    """The rows as ``SessionWriter.append`` takes them (mono_ns never decreasing)."""
    out = []
    for i, r in enumerate(rows(lists_can_be_null=False)):
        out.append((r["payload"], dict(
            conn=r["conn"], stream=r["stream"], dir=r["dir"], kind=r["kind"],
            channels=tuple(r["channels"]), symbols=tuple(r["symbols"]),
            ts_ns=r["ts"], mono_ns=i)))
    return out


def hostile_lines(good: dict) -> list[str]:
    """Lines that look like an envelope but are not, or not in the form wsrec writes:
    ``good`` (an envelope object) changed piece by piece."""
    line = json.dumps(good, separators=(",", ":"), ensure_ascii=False)
    head, _, rest = line.partition(',"data":')
    return [
        line.replace('"ts":"', '"ts":"2026-02-30T00:00:00.000000000Z","x":"'),
        line.replace(good["ts"], "2026-02-30T00:00:00.000000000Z"),
        line.replace(good["ts"], "2262-04-11T23:47:16.854775808Z"),
        line.replace(good["ts"], "1677-09-21T00:12:43.145224192Z"),
        line.replace(good["ts"], "1677-09-21T00:12:43.145224193Z"),
        line.replace(good["ts"], "2026-11-18T11:06:40.00000000Z"),
        line.replace(f'"mono_ns":{good["mono_ns"]}', '"mono_ns":9223372036854775808'),
        line.replace(f'"mono_ns":{good["mono_ns"]}', '"mono_ns":-0'),
        line.replace(f'"mono_ns":{good["mono_ns"]}', '"mono_ns":01'),
        line.replace('"conn":0', '"conn":2147483648'),
        line.replace('"conn":0', '"conn":"0"'),
        line.replace('"dir":"in"', '"dir":"sideways"'),
        line.replace('"kind":"text"', '"kind":""'),
        line.replace('"kind":"text"', '"kind":5'),
        line.replace('"stream":null', '"stream":5'),
        line.replace('"stream":null', '"stream":"\\ud800"'),
        line.replace('"channel":"quotes"', '"channel":"quotes","data":1'),
        line.replace('"symbols":["AAPL"]', '"symbols":["AAPL"],"symbols":["X"]'),
        line.replace('"symbols":["AAPL"]', '"symbols":[1]'),
        line.replace('"venue":"v"', '"venue":"v,\\"data\\":{"'),
        line.replace('"session":"s"', '"session":"s","seq":2'),
        head + ',"data":{bad,"enc":"json"}',
        head + ',"data":NaN,"enc":"json"}',
        head + ',"data":[1,],"enc":"json"}',
        head + ',"data":"\\ud800","enc":"text"}',
        head + ',"data":"x\\u0041\\n","enc":"text"}',
        head + ',"data":"!!","enc":"base64"}',
        head + ',"data":"QQ=","enc":"base64"}',
        head + ',"data":"QQ==","enc":"base64"}',
        head + ',"data":{"k":"\\ud800"},"enc":"json"}',
        head + ',"data":' + '[' * 5000 + ']' * 5000 + ',"enc":"json"}',
        line + " ",
        line + "\r",
        " " + line,
        line[:-1],
        line + "x",
        line.replace('{"seq":', '{"seq": '),
        line.replace('"enc":"', '"enc" :"'),
        '{"seq":1' + line[len('{"seq":') + len(str(good["seq"])):],
        "",
        "   ",
        "[1,2]",
        '"just a string"',
        "{not json",
        "[" * 100_000,
    ]
