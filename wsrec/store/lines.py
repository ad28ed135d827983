"""How frames become text lines, and envelope lines rows again: the ``raw`` and
``envelope`` formats.

``raw``: one line per message.
  * a text payload is written as is, unless it holds a newline (or is not UTF-8): then
    it is written as a JSON string;
  * a binary payload of a session recorded in msgpack mode (Alpaca's binary frames,
    known from the manifest, never guessed) is decoded and written as JSON, msgpack
    Timestamps as RFC 3339 strings with nine fractional digits;
  * any other binary payload is written as base64.

``envelope``: one JSON object per frame, lossless (``wsrec import`` rebuilds the rows):
``seq``, ``ts`` (RFC 3339, 9 digits, Z), ``mono_ns``, ``venue``, ``session``, ``conn``,
``stream``, ``dir``, ``kind``, ``channel``, ``symbols`` and ``channels``, ``data`` and
``enc`` (``encode_envelope`` writes the line, ``decode_envelope`` reads it back, the
payload byte for byte):
  * ``enc: "json"``: the payload is JSON text (``is_json_text``: UTF-8, standard JSON,
    on one line, no whitespace around it) and ``data`` is that text, embedded byte for
    byte as it was received (``decode_envelope`` takes it back from the line as it
    stands, whitespace inside and all);
  * ``enc: "text"``: other UTF-8 text, ``data`` is the string;
  * ``enc: "base64"``: anything else, ``data`` is base64;
  * ``enc: "msgpack"``: a msgpack frame, ``data`` is the decoded value and ``raw`` the
    original bytes in base64.

With ``data_as_string`` every text payload, JSON or not, is written as ``enc: "text"``
(and a msgpack frame's decoded value as a JSON string), so ``data`` is a string on every
line: engines that want one shape per column (Polars' ``read_ndjson``, Spark) read such
files, and ``wsrec import`` reads both forms.

Lines written before payloads were embedded as received hold compact JSON as ``data``
(``json`` was then only used when compact re-encoding gave the payload back), the same
bytes either way: those files import unchanged.

Whole batches: ``raw_block`` and ``envelope_block`` build every line of a batch as Arrow
string columns joined row by row (numbers cast, times formatted once per second, the
combinations of the few distinct values of ``conn`` .. ``channels`` encoded once each:
``ts_texts``, ``row_texts``). Which text payloads are JSON is decided over the column by
an anchored regular expression (``json_classes``; RE2: standard JSON nested up to three
deep, a proof, never a guess); the rows it can't decide (deeper JSON, very long numbers)
are decided by ``is_json_text`` one by one, and binary frames and text that is not
UTF-8 go through ``envelope_data``, row by row. The lines are the same bytes
``encode_envelope`` writes for every row. ``decode_envelope_block`` reads a block of
envelope lines back the same way: the lines in the form ``envelope_block`` writes, every
piece checked, as columns; the others are left to ``decode_envelope``.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import json
import re
import sys
from typing import Callable

import msgpack
import pyarrow as pa

from wsrec.store._compute import call, pc
from wsrec.store.session import Frame
from wsrec.timefmt import MAX_NS, NS, format_ns, parse_time

__all__ = ["raw_line", "envelope", "encode_envelope", "decode_envelope", "ENCODINGS",
           "b64_field", "raw_block", "envelope_block", "envelope_data", "is_json_text",
           "is_msgpack_session", "decode_msgpack", "json_classes", "ts_texts", "ts_pieces",
           "row_texts",
           "escape_bytes", "chunks", "ENVELOPE_COLUMNS", "buffer_view",
           "has_line_break", "newline_ends", "decode_envelope_block", "per_frame"]

_NL = pa.scalar(b"\n", pa.binary())
_NEWLINE = pa.scalar(10, pa.uint8())  # (typed: a Python int would widen the bytes first)
_EMPTY = pa.scalar(b"", pa.binary())
_TEXT = pa.scalar("text", pa.string())


def is_msgpack_session(manifest: dict) -> bool:
    """Whether binary frames of this session are msgpack (recorded so, per the manifest)."""
    return (manifest.get("args") or {}).get("binary") == "msgpack"


def decode_msgpack(payload: bytes):
    """``wsrec.venues.alpaca.decode_msgpack``, the venues loaded on first use (replaying
    text needs none of them)."""
    from wsrec.venues.alpaca import decode_msgpack as decode
    return decode(payload)


def _default(obj):
    if isinstance(obj, msgpack.Timestamp):
        from wsrec.venues.alpaca import rfc3339
        return rfc3339(obj)
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode()
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _dumps(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                      default=_default).encode()


def _json_string(text: str) -> bytes:
    """``text`` as a JSON string literal (UTF-8, nothing escaped that need not be)."""
    return json.dumps(text, ensure_ascii=False).encode()


# -- raw ------------------------------------------------------------------------------------

def raw_line(payload: bytes, kind: str, msgpack_mode: bool) -> bytes:
    """One frame in the raw format, without the newline."""
    if kind == "binary":
        if msgpack_mode:
            try:
                return _dumps(decode_msgpack(payload))
            except Exception:  # noqa: BLE001 - not msgpack after all: base64 below
                pass
        return base64.b64encode(payload)
    if b"\n" in payload or b"\r" in payload:
        return _dumps(payload.decode("utf-8", errors="surrogateescape")
                      if _utf8(payload) else base64.b64encode(payload).decode())
    return payload


def _utf8(payload: bytes) -> bool:
    try:
        payload.decode()
    except UnicodeDecodeError:
        return False
    return True


def raw_block(batch: pa.RecordBatch, msgpack_mode: bool) -> bytes | memoryview:
    """A whole batch in the raw format (lines with newlines), vectorised when it can be:
    for a batch of plain text, a view of one Arrow buffer (keep the batch alive while
    using it)."""
    payload = batch.column("payload")
    kinds = batch.column("kind")
    # (by name: this path, replay at full speed, doesn't import pyarrow.compute)
    if call("all", call("equal", kinds, _TEXT)).as_py() is not False \
            and not has_line_break(payload):
        # payload + "\n" for every row: the result's data buffer is the output
        return buffer_view(call("binary_join_element_wise", payload, _EMPTY, _NL))
    out = []
    for p, k in zip(payload.to_pylist(), kinds.to_pylist()):
        out.append(raw_line(p, k, msgpack_mode))
        out.append(b"\n")
    return b"".join(out)


def _value_span(arr: pa.Array) -> tuple[int, int]:
    """Byte offsets of a binary array's values inside its data buffer."""
    n = len(arr)
    offsets = arr.buffers()[1]
    first = int.from_bytes(offsets[arr.offset * 4:arr.offset * 4 + 4], "little")
    last = int.from_bytes(offsets[(arr.offset + n) * 4:(arr.offset + n) * 4 + 4], "little")
    return first, last


try:  # memchr over Arrow's buffer in place: ~10 GB/s, no copy, no per-row work
    _libc = ctypes.CDLL(None)
    _memchr = _libc.memchr
    _memchr.restype = ctypes.c_void_p
    _memchr.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
except (OSError, AttributeError):  # pragma: no cover - no C library to call
    _memchr = None


def _has_byte(arr: pa.Array, *values: int) -> bool:
    """Whether any value of a binary array holds one of the bytes ``values``."""
    if len(arr) == 0:
        return False
    first, last = _value_span(arr)
    data = arr.buffers()[2]
    if data is None or last == first:
        return False
    if _memchr is not None:
        start = data.address + first
        return any(_memchr(start, v, last - first) for v in values)
    chunk = data[first:last].to_pybytes()
    return any(bytes([v]) in chunk for v in values)


def has_line_break(arr: pa.Array) -> bool:
    """Whether any value of a binary array holds a newline or carriage return."""
    return _has_byte(arr, 10, 13)


def newline_ends(data) -> pa.Array:
    """Where each line of ``data`` (a buffer) ends, just past its newline (int32): the
    bytes seen as an Arrow array of uint8, the newlines' positions found by Arrow."""
    data = pa.py_buffer(data)
    newlines = pc.indices_nonzero(pc.equal(
        pa.Array.from_buffers(pa.uint8(), data.size, [None, data]), _NEWLINE))
    return pc.add(newlines, 1).cast(pa.int32())


def buffer_view(arr: pa.Array) -> memoryview:
    """The concatenated values of a binary array: a view of its data buffer, no copy."""
    if len(arr) == 0:
        return memoryview(b"")
    first, last = _value_span(arr)
    return memoryview(arr.buffers()[2])[first:last]


# -- envelope, one frame ----------------------------------------------------------------------

def _no_constant(name: str):
    raise ValueError(f"{name} is not standard JSON")


_STRICT = json.JSONDecoder(parse_constant=_no_constant)
_LENIENT = json.JSONDecoder()  # as json.loads: older lines may hold NaN


def is_json_text(payload: bytes) -> bool:
    """Whether a text payload goes into the envelope as JSON (``enc: "json"``), embedded
    as it is: UTF-8 JSON text that is standard JSON (no NaN or Infinity), on one line (no
    CR or LF, which would end the envelope's line), with no whitespace around it (which
    would be the line's, not the value's), whose strings are all valid text (no lone
    surrogate escape such as ``"\\ud800"``) and that Python's JSON decoder reads."""
    if b"\n" in payload or b"\r" in payload or payload.strip(b" \t") != payload:
        return False
    try:
        _dumps(_STRICT.decode(payload.decode()))  # re-encoding finds lone surrogates
    except (ValueError, RecursionError):  # (UnicodeError is a ValueError)
        return False
    return True


def envelope_data(payload: bytes, kind: str, msgpack_mode: bool,
                  data_as_string: bool = False) -> tuple[bytes, str, bytes | None]:
    """A frame's ``data`` (as JSON text), ``enc``, and ``raw`` (base64, msgpack frames
    only, else None), by the rules in the module doc."""
    if kind == "binary" and msgpack_mode:
        try:
            value = _dumps(decode_msgpack(payload))
        except Exception:  # noqa: BLE001 - not msgpack after all: base64 below
            pass
        else:
            data = _json_string(value.decode()) if data_as_string else value
            return data, "msgpack", base64.b64encode(payload)
    if kind != "binary":
        if is_json_text(payload):
            if data_as_string:
                return _json_string(payload.decode()), "text", None
            return payload, "json", None
        try:
            return _json_string(payload.decode()), "text", None
        except UnicodeDecodeError:
            pass
    return b'"' + base64.b64encode(payload) + b'"', "base64", None


def _tail(enc: str, raw: bytes | None) -> bytes:
    """What follows ``data`` on an envelope line."""
    if raw is None:
        return b',"enc":"' + enc.encode() + b'"}'
    return b',"enc":"' + enc.encode() + b'","raw":"' + raw + b'"}'


def encode_envelope(frame, venue: str, session: str, msgpack_mode: bool,
                    data_as_string: bool = False) -> bytes:
    """One frame (a ``wsrec.Frame``) as an envelope line (JSON, UTF-8), without the
    newline."""
    head = json.dumps({"seq": frame.seq, "ts": format_ns(frame.ts), "mono_ns": frame.mono_ns,
                       "venue": venue, "session": session, "conn": frame.conn,
                       "stream": frame.stream, "dir": frame.dir, "kind": frame.kind,
                       "channel": frame.channel, "symbols": frame.symbols,
                       "channels": frame.channels},
                      separators=(",", ":"), ensure_ascii=False).encode()
    data, enc, raw = envelope_data(frame.payload, frame.kind, msgpack_mode, data_as_string)
    return head[:-1] + b',"data":' + data + _tail(enc, raw)


def envelope(frame, venue: str, session: str, msgpack_mode: bool) -> dict:
    """One frame as the envelope object (its line, parsed)."""
    return json.loads(encode_envelope(frame, venue, session, msgpack_mode))


# -- envelope, read back ----------------------------------------------------------------------

#: the envelope's ``enc`` values
ENCODINGS = ("json", "text", "base64", "msgpack")
_ENVELOPE_KEYS = ("ts", "dir", "kind", "enc", "data")


def decode_envelope(line: str) -> dict:
    """An envelope line back to a row: ``payload`` (the recorded bytes, exactly), ``ts``
    (int ns) and the other fields as they are given (``seq``, ``mono_ns``, ``conn``,
    ``stream``, ``dir``, ``kind``, ``channel``, ``channels``, ``symbols``; None when
    absent), for the caller to check. ValueError saying what is wrong."""
    try:
        obj = json.loads(line)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    for key in _ENVELOPE_KEYS:
        if key not in obj:
            raise ValueError(f"no {key!r}")
    ts = obj["ts"]
    row = {key: obj.get(key) for key in ("seq", "mono_ns", "conn", "stream", "dir", "kind",
                                         "channel", "channels", "symbols")}
    row["payload"] = _envelope_payload(obj, line)
    if isinstance(ts, bool) or not isinstance(ts, (str, int)):
        raise ValueError(f"ts is not a time ({_short(ts)})")
    try:
        row["ts"] = parse_time(ts)
    except ValueError as exc:
        raise ValueError(f"ts: {exc}") from None
    return row


def _envelope_payload(obj: dict, line: str) -> bytes:
    enc, value = obj["enc"], obj["data"]
    if enc == "json":
        try:
            json.dumps(value, ensure_ascii=False).encode()  # every string valid text
            start, end = _member_span(line, "data")
            return line[start:end].encode()
        except (UnicodeEncodeError, ValueError):
            raise ValueError("data is not valid UTF-8 JSON") from None
    if enc == "text":
        if not isinstance(value, str):
            raise ValueError("data is not a string")
        try:
            return value.encode("utf-8", errors="surrogateescape")
        except UnicodeEncodeError:
            raise ValueError("data is not valid text") from None
    if enc == "base64":
        return b64_field(value, "data")
    if enc == "msgpack":
        return b64_field(obj.get("raw"), "raw")
    raise ValueError(f"enc must be one of {', '.join(ENCODINGS)}, not {_short(enc)}")


_WS = re.compile(r"[ \t\n\r]*")


def _member_span(text: str, name: str) -> tuple[int, int]:
    """Where the value of member ``name`` of the JSON object ``text`` (known to parse)
    starts and ends in it; the last one, as ``json.loads`` keeps the last."""
    scan, ws = _LENIENT.scan_once, _WS.match
    span = None
    i = ws(text, 0).end() + 1  # past "{"
    while True:
        i = ws(text, i).end()
        if text[i] == "}":
            break
        key, i = json.decoder.scanstring(text, i + 1)
        i = ws(text, ws(text, i).end() + 1).end()  # past ":"
        _, end = scan(text, i)
        if key == name:
            span = (i, end)
        i = ws(text, end).end()
        if text[i] == ",":
            i += 1
    if span is None:  # pragma: no cover - the caller found the member
        raise ValueError(f"no {name!r}")
    return span


def b64_field(value, what: str) -> bytes:
    """A base64 string's bytes; ValueError naming ``what`` when it is not one."""
    if not isinstance(value, str):
        raise ValueError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64") from None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + "..."


# -- JSON text, decided for a whole column ------------------------------------------------------

#: a JSON string (RE2), any escape (lone surrogates too: Python's decoder takes them)
_STRING = '"(?:[^"\\\\\\x00-\\x1f]|\\\\["\\\\/bfnrt]|\\\\u[0-9a-fA-F]{4})*"'


def _json_re(depth: int, full: bool = True) -> str:
    """An RE2 pattern matching exactly the standard JSON texts nested at most ``depth``
    deep (whitespace: space and tab only, and none around the value; no lone surrogate
    escapes); not ``full``: a fifth faster, those without whitespace or ``\\u``
    escapes."""
    ws = "[ \\t]*" if full else ""
    unicode = ("|\\\\u(?:[0-9a-cA-CefEF][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2}"
               "|[dD][89abAB][0-9a-fA-F]{2}\\\\u[dD][c-fC-F][0-9a-fA-F]{2})") if full else ""
    string = f'"(?:[^"\\\\\\x00-\\x1f]|\\\\["\\\\/bfnrt]{unicode})*"'
    number = "-?(?:0|[1-9][0-9]*)(?:\\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
    scalar = f"(?:{string}|{number}|true|false|null)"
    value = scalar
    for _ in range(depth):
        array = f"\\[{ws}(?:{value}{ws}(?:,{ws}{value}{ws})*)?\\]"
        member = f"{string}{ws}:{ws}{value}{ws}"
        obj = f"\\{{{ws}(?:{member}(?:,{ws}{member})*)?\\}}"
        value = f"(?:{scalar}|{array}|{obj})"
    return f"^{value}$"


#: Three levels is what RE2's automaton keeps in its memory budget (a fourth makes the
#: pattern four times larger and the match twenty times slower); it covers most venues'
#: messages (Alpaca's ``[{"c":["R"]}]`` is three). Deeper JSON is decided row by row.
_JSON_RE = _json_re(3)
_COMPACT_JSON_RE = _json_re(3, full=False)  # tried first: most messages are so
#: what a JSON text can start with (anything else is text, no need to ask Python)
_JSON_START = '^[\\[{"0-9tfn-]'


def _digit_limit() -> int:
    """Rows with this many digits in a row go to Python, whose int() refuses integers
    longer than ``sys.get_int_max_str_digits()`` (0: no such row)."""
    limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 0
    return min(limit + 1, 1000) if limit else 0


def json_classes(payload: pa.Array, kinds: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Per row, whether ``envelope_data`` makes it ``json`` and whether ``text`` (given
    ``data_as_string`` False), as two boolean arrays; rows that are neither (binary
    frames, text that is not UTF-8) are the per-frame code's. Vectorised but for the rows
    the pattern can't decide, which ``is_json_text`` decides."""
    n = len(payload)
    textual = pc.fill_null(pc.not_equal(kinds, "binary"), True)
    textual_all = pc.all(textual).as_py() is not False
    subset = payload if textual_all else pc.filter(payload, textual)
    valid = _utf8_rows(subset)
    fast = pc.match_substring_regex(subset, _COMPACT_JSON_RE)
    missed = pc.invert(fast)
    if pc.any(missed).as_py():
        fast = pc.replace_with_mask(fast, missed, pc.match_substring_regex(
            pc.filter(subset, missed), _JSON_RE))
    if valid is not None:
        fast = pc.and_(fast, valid)
    digits = _digit_limit()
    if digits and len(subset) and (pc.max(pc.binary_length(subset)).as_py() or 0) >= digits:
        runs = pc.match_substring_regex(subset, f"[0-9]{{{digits}}}")
        fast = pc.and_(fast, pc.invert(runs))
    # left: rows that are UTF-8, not matched, and could be JSON: Python decides
    open_ = pc.invert(fast) if valid is None else pc.and_(valid, pc.invert(fast))
    if pc.any(open_).as_py():
        ask = pc.and_(open_, pc.match_substring_regex(subset, _JSON_START))
        if pc.any(ask).as_py():
            said = pa.array(map(is_json_text, pc.filter(subset, ask).to_pylist()), pa.bool_())
            fast = pc.replace_with_mask(fast, ask, said)
    text = pc.invert(fast) if valid is None else pc.and_(valid, pc.invert(fast))
    if textual_all:
        return fast, text
    none = pa.repeat(pa.scalar(False), n)
    return (pc.replace_with_mask(none, textual, fast),
            pc.replace_with_mask(none, textual, text))


def _utf8_rows(arr: pa.Array) -> pa.Array | None:
    """Which values of a binary array are valid UTF-8; None: all of them."""
    try:
        arr.cast(pa.string())
        return None
    except pa.ArrowInvalid:
        return pa.array(map(_utf8, arr.to_pylist()), pa.bool_())


# -- columns as text ----------------------------------------------------------------------------

def chunks(batch: pa.RecordBatch, max_bytes: int = 64 << 20):
    """``batch`` in slices of at most ``max_bytes`` of payload (at least one row each),
    so the lines built from one stay within Arrow's 2 GiB per array."""
    payload = batch.column("payload")
    first, last = _value_span(payload) if len(payload) else (0, 0)
    if last - first <= max_bytes:
        yield batch
        return
    ends = pc.cumulative_sum(pc.binary_length(payload).fill_null(0)).to_pylist()
    start, base = 0, 0
    for i, end in enumerate(ends):
        if end - base > max_bytes and i > start:
            yield batch.slice(start, i - start)
            start, base = i, ends[i - 1]
    yield batch.slice(start)


def row_texts(columns: list[pa.Array], text: Callable[[tuple], bytes]) -> pa.Array:
    """``text(values)`` for each row of ``columns`` (strings, ints, lists of strings; the
    row's values as a tuple, lists as lists, nulls as None), each distinct row converted
    once: for the columns of few distinct values (``stream``, ``dir``, ``symbols``, ...)
    a handful of Python calls per batch."""
    n = len(columns[0])
    key, radix, base, size = None, [], [()], 1
    for column in columns:
        codes, distinct = _codes(column)
        if len(distinct) == 1:  # one value in every row: nothing to number
            radix.append(distinct)
            continue
        if size * len(distinct) >= 1 << 62:  # renumber the combinations seen so far
            coded = pc.dictionary_encode(key)
            base = [_decoded(k, radix, base) for k in coded.dictionary.to_pylist()]
            key, radix, size = coded.indices.cast(pa.int64()), [], len(base)
        key = codes if key is None else pc.add(pc.multiply(key, len(distinct)), codes)
        radix.append(distinct)
        size *= len(distinct)
    if key is None:
        return pa.repeat(pa.scalar(text(_decoded(0, radix, base)), pa.binary()), n)
    if size <= max(4096, n // 8):  # few combinations: all of them, looked up by number
        texts = pa.array([text(_decoded(k, radix, base)) for k in range(size)], pa.binary())
        return pc.take(texts, key)
    seen = pc.unique(key)
    texts = pa.array([text(_decoded(k, radix, base)) for k in seen.to_pylist()], pa.binary())
    return pc.take(texts, pc.index_in(key, seen))


def _decoded(key: int, radix: list[list], base: list[tuple]) -> tuple:
    """The values of a combined key: digits in ``radix`` (last column last) over ``base``."""
    values = []
    for distinct in reversed(radix):
        key, digit = divmod(key, len(distinct))
        values.append(distinct[digit])
    return base[key] + tuple(reversed(values))


def _codes(values: pa.Array) -> tuple[pa.Array, list]:
    """Each row's number among the column's distinct values (int64, no nulls), and those
    values (null last when there is one; lists as lists)."""
    if not pa.types.is_list(values.type):
        return _scalar_codes(values)
    lengths = pc.list_value_length(values)
    if not values.null_count and pc.min_max(lengths).as_py() == {"min": 1, "max": 1}:
        codes, distinct = _scalar_codes(values.flatten())  # the common case: one each
        return codes, [[v] for v in distinct]
    # each list as a key: its items' JSON joined by NUL (never raw in JSON text)
    lengths = pc.fill_null(lengths, 0)
    offsets = pc.cumulative_sum(pa.concat_arrays([pa.array([0], lengths.type), lengths]))
    items, texts = _scalar_codes(values.flatten())
    keys = pa.array([json.dumps(v).encode() for v in texts], pa.binary())
    keys = pc.binary_join(pa.ListArray.from_arrays(offsets, pc.take(keys, items),
                                                   mask=values.is_null()), b"\x00")
    codes, distinct = _scalar_codes(keys)
    return codes, [None if key is None else
                   [json.loads(k) for k in key.split(b"\x00")] if key else []
                   for key in distinct]


def _scalar_codes(values: pa.Array) -> tuple[pa.Array, list]:
    """``_codes`` of a column of strings or ints."""
    runs = pc.run_end_encode(values)  # cheaper than hashing: often one value throughout
    if len(runs.values) == 1:
        return pa.repeat(pa.scalar(0, pa.int64()), len(values)), runs.values.to_pylist()
    coded = pc.dictionary_encode(values)
    distinct = coded.dictionary.to_pylist()
    codes = coded.indices
    if codes.null_count:
        codes = pc.fill_null(codes, len(distinct))
        distinct.append(None)
    return codes.cast(pa.int64()), distinct


def ts_texts(ts: pa.Array, before: bytes = b"", after: bytes = b"") -> pa.Array:
    """A timestamp column as ``format_ns`` writes each, between ``before`` and ``after``
    (nulls stay null), the date and time formatted once per second."""
    return pc.binary_join_element_wise(*ts_pieces(ts, before, after), _EMPTY)


def ts_pieces(ts: pa.Array, before: bytes = b"", after: bytes = b"") -> list:
    """``ts_texts`` in pieces to join with the rest of a line (one join instead of two):
    ``before`` with the date and time up to the second's dot, the nine digits, ``Z`` with
    ``after``. Null where the time is."""
    ns = pc.cast(ts, pa.int64())
    if ns.null_count:
        ns = ns.fill_null(0)
    secs = pc.divide(ns, _NS)   # truncated towards zero: step back where that went up
    frac = pc.subtract(ns, pc.multiply(secs, _NS))
    if len(frac) and pc.min(frac).as_py() < 0:
        below = pc.less(frac, 0)
        secs = pc.if_else(below, pc.subtract(secs, 1), secs)
        frac = pc.if_else(below, pc.add(frac, _NS), frac)
    low, high = pc.min_max(secs).values() if len(secs) else (pa.scalar(0), pa.scalar(0))
    low, high = low.as_py(), high.as_py()
    if high - low < max(4096, len(secs) // 8):  # in time order: every second of the span
        seconds = range(low, high + 1)
        index = pc.subtract(secs, low)
    else:
        distinct = pc.unique(secs)
        seconds = distinct.to_pylist()
        index = pc.index_in(secs, distinct)
    stamps = pc.take(pa.array([before + format_ns(s * NS)[:20].encode() for s in seconds],
                              pa.binary()), index)
    if ts.null_count:
        stamps = pc.if_else(pc.is_valid(ts), stamps, pa.scalar(None, pa.binary()))
    # the nine digits: 1_000_000_000 + frac as text, less its leading 1
    digits = pc.binary_slice(pc.cast(pc.add(frac, _NS), pa.string()).cast(pa.binary()), 1, 10)
    return [stamps, digits, pa.scalar(b"Z" + after, pa.binary())]


_NS = pa.scalar(NS, pa.int64())


def _ints(values: pa.Array, null: bytes) -> pa.Array:
    """An integer column as decimal text, nulls as ``null``."""
    return pc.fill_null(pc.cast(pc.cast(values, pa.string()), pa.binary()),
                        pa.scalar(null, pa.binary()))


def escape_bytes(arr: pa.Array, pairs: tuple[tuple[bytes, bytes], ...]) -> pa.Array:
    """Each value of a binary array (no nulls) with every byte ``old`` of ``pairs``
    replaced by ``new``, in the order given: one ``bytes.replace`` over the whole column
    per byte that occurs, the offsets moved by how many each row holds."""
    first, last = _value_span(arr) if len(arr) else (0, 0)
    data = memoryview(arr.buffers()[2])[first:last].tobytes() if last > first else b""
    growth = None
    for old, new in pairs:
        if old not in data:
            continue
        step = pc.multiply(pc.count_substring(arr, old.decode("latin-1")), len(new) - 1)
        growth = step if growth is None else pc.add(growth, step)
        data = data.replace(old, new)
    if growth is None:
        return arr
    starts = pa.Array.from_buffers(pa.int32(), len(arr) + 1, [None, arr.buffers()[1]],
                                   offset=arr.offset)
    moved = pc.cumulative_sum(pa.concat_arrays([pa.array([0], pa.int32()),
                                                growth.cast(pa.int32())]))
    offsets = pc.add(pc.subtract(starts, first), moved).cast(pa.int32())
    return pa.Array.from_buffers(pa.binary(), len(arr),
                                 [None, offsets.buffers()[1], pa.py_buffer(data)])


_JSON_ESCAPES = ((b"\\", b"\\\\"), (b'"', b'\\"'))
_CONTROL = "[\\x00-\\x1f]"


def _json_strings(arr: pa.Array) -> pa.Array:
    """Each value (UTF-8 text) as a JSON string literal, as ``_json_string`` writes it:
    ``"`` and ``\\`` escaped in the column; rows holding control characters (rare) row by
    row."""
    quoted = pc.binary_join_element_wise(b'"', escape_bytes(arr, _JSON_ESCAPES), b'"', _EMPTY)
    control = pc.match_substring_regex(arr, _CONTROL)
    if pc.any(control).as_py():
        rows = pc.filter(arr, control).to_pylist()
        quoted = pc.replace_with_mask(quoted, control, pa.array(
            [_json_string(p.decode()) for p in rows], pa.binary()))
    return quoted




# -- envelope, a whole batch --------------------------------------------------------------------

_TAIL_JSON = pa.scalar(_tail("json", None) + b"\n", pa.binary())
_TAIL_TEXT = pa.scalar(_tail("text", None) + b"\n", pa.binary())
#: the columns between ``mono_ns`` and ``data``, in the envelope's order
_MIDDLE = ("conn", "stream", "dir", "kind", "channel", "symbols", "channels")
#: what ``envelope_block`` reads
ENVELOPE_COLUMNS = ["seq", "ts", "mono_ns", *_MIDDLE, "payload"]


def envelope_block(batch: pa.RecordBatch, venue: str, session: str, msgpack_mode: bool,
                   data_as_string: bool = False) -> memoryview:
    """Every row of ``batch`` (the ``Frame`` columns, found by name) as an envelope line
    with its newline, exactly as ``encode_envelope`` writes each: a view of one Arrow
    buffer (keep it alive while using the view)."""
    payload, kinds = batch.column("payload"), batch.column("kind")
    is_json, is_text = json_classes(payload, kinds)
    data, tail = payload, pa.repeat(_TAIL_JSON, len(payload))
    strings = pc.or_(is_text, is_json) if data_as_string else is_text
    if pc.any(strings).as_py():
        data = pc.replace_with_mask(data, strings, _json_strings(pc.filter(payload, strings)))
        tail = pc.if_else(strings, _TAIL_TEXT, tail)
    rest = pc.invert(pc.or_(is_json, is_text))
    if pc.any(rest).as_py():  # binary, msgpack, not UTF-8: frame by frame
        made = [envelope_data(p, k, msgpack_mode, data_as_string) for p, k in
                zip(pc.filter(payload, rest).to_pylist(), pc.filter(kinds, rest).to_pylist())]
        data = pc.replace_with_mask(data, rest, pa.array([d for d, _, _ in made], pa.binary()))
        tail = pc.replace_with_mask(tail, rest, pa.array(
            [_tail(e, r) + b"\n" for _, e, r in made], pa.binary()))
    start = f',"venue":{_json_value(venue).decode()},"session":{_json_value(session).decode()}'

    def middle(values: tuple) -> bytes:
        return start.encode() + b"".join(
            b',"' + name.encode() + b'":' + _json_value(value)
            for name, value in zip(_MIDDLE, values)) + b',"data":'

    lines = pc.binary_join_element_wise(
        b'{"seq":', _ints(batch.column("seq"), b"null"),
        *ts_pieces(batch.column("ts"), b',"ts":"', b'","mono_ns":'),
        _ints(batch.column("mono_ns"), b"null"),
        row_texts([batch.column(name) for name in _MIDDLE], middle), data, tail, _EMPTY)
    if lines.null_count:  # no time (never written so): those rows as encode_envelope does
        lines = per_frame(lines, batch, lambda f: encode_envelope(
            f, venue, session, msgpack_mode, data_as_string) + b"\n")
    return buffer_view(lines)


def per_frame(lines: pa.Array, batch: pa.RecordBatch, line: Callable) -> pa.Array:
    """``lines`` with its null rows made by ``line(frame)``, frame by frame."""
    missing = pc.is_null(lines)
    rows = batch.filter(missing)
    columns = [rows.column(name) if name in rows.schema.names else pa.nulls(rows.num_rows)
               for name in Frame._fields]
    columns[1] = columns[1].cast(pa.int64())
    frames = [Frame._make(values) for values in zip(*(c.to_pylist() for c in columns))]
    return pc.replace_with_mask(lines, missing, pa.array(map(line, frames), pa.binary()))


def _json_value(value) -> bytes:
    """A value as ``encode_envelope`` writes it in a line (compact, UTF-8)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


# -- envelope lines back to rows, a block at a time ----------------------------------------------

#: what precedes ``venue`` on a line as ``envelope_block`` writes it (checked), given the
#: line's part before ``,"data":``
_HEAD_RE = ('^\\{"seq":(?:0|-?[1-9][0-9]*),"ts":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:'
            '[0-9]{2}\\.[0-9]{9}Z","mono_ns":(?:null|0|-?[1-9][0-9]{0,17}),"venue":')
_DATA_KEY = ',"data":'
#: the middle of a line: these members, in this order, as json.loads reads them
_MIDDLE_KEYS = ["venue", "session", *_MIDDLE]
_TAILS = [(_tail(enc, None), enc) for enc in ("json", "text", "base64")]
_BASE64_RE = '^"[A-Za-z0-9+/]*={0,2}"$'


def decode_envelope_block(lines: pa.Array) -> tuple[pa.Array, dict]:
    """Envelope lines (a binary array, each with its newline or not) back to rows, for the
    lines
    in the form ``envelope_block`` writes; what ``decode_envelope`` gives for each of them,
    as columns. Returns ``ok`` (which lines were read here; the others are for
    ``decode_envelope``, one by one) and ``payload`` (binary), ``ts`` and ``mono_ns``
    (int64), ``middle`` (int64: which of ``middles``, the distinct parsed members
    ``venue`` .. ``channels`` of these lines, each a dict for the caller to check) for the
    rows ``ok`` says. Nothing is taken on trust: each piece of a line is checked against
    the form (patterns in the column, the few distinct middles with ``json.loads``), so a
    line read here is valid JSON that ``decode_envelope`` reads the same way.

    A line is ``{"seq":SEQ,"ts":"<30 bytes>","mono_ns":MONO,"venue":MIDDLE,"data":DATA``
    and a tail per ``enc``; where the pieces start is found with a substring search, and
    each piece is cut out of the lines' own buffer (no copy of whole lines)."""
    n = len(lines)
    ok = pc.match_substring_regex(lines, _HEAD_RE)  # SEQ, the time, MONO, then venue
    valid = _utf8_rows(lines)
    if valid is not None:
        ok = pc.and_(ok, valid)
    ts_at = pc.add(pc.find_substring(lines, ',"ts":"'), 7)
    venue_at = pc.find_substring(lines, ',"venue":')
    data_at = pc.find_substring(lines, _DATA_KEY)
    ended = pc.ends_with(lines, "\n")  # (lines may come with their newline)
    tail = pa.repeat(pa.scalar(0, pa.int32()), n)
    enc = pa.repeat(pa.scalar(None, pa.string()), n)
    for text, name in _TAILS:
        these = pc.if_else(ended, pc.ends_with(lines, text.decode() + "\n"),
                           pc.ends_with(lines, text.decode()))
        tail = pc.if_else(these, pa.scalar(len(text), pa.int32()), tail)
        enc = pc.if_else(these, name, enc)
    data_end = pc.subtract(pc.subtract(pc.binary_length(lines), tail), ended.cast(pa.int32()))
    ok = pc.and_(ok, pc.and_(pc.greater(tail, 0), pc.greater_equal(data_at, 0)))
    ok = pc.and_(ok, pc.less_equal(pc.add(data_at, 8), data_end))
    # the time is 30 bytes, MONO 12 after it
    seconds, nanos, mono, middle, data = _pieces(lines, ok, [
        ts_at, pc.add(ts_at, 19), pc.add(ts_at, 20), pc.add(ts_at, 29), pc.add(ts_at, 42),
        venue_at, pc.add(venue_at, 9), data_at, pc.add(data_at, 8), data_end])
    # the times: each distinct second once, the nanoseconds after it added
    distinct = pc.unique(seconds)
    base = pc.take(pa.array([_second_ns(t) for t in distinct.to_pylist()], pa.int64()),
                   pc.index_in(seconds, distinct))
    ok = pc.and_(ok, pc.is_valid(base))
    ts = pc.add(base, pc.cast(_only(nanos, ok).cast(pa.string()), pa.int64()))
    mono = pc.cast(_only(mono, pc.and_(ok, pc.not_equal(mono, b"null"))).cast(pa.string()),
                   pa.int64())
    # the middles: few distinct ones, each parsed once
    coded = pc.dictionary_encode(_only(middle, ok))
    middles = [_middle(m) for m in coded.dictionary.to_pylist()] + [None]
    codes = pc.fill_null(coded.indices, len(middles) - 1).cast(pa.int64())
    ok = pc.and_(ok, pc.take(pa.array([m is not None for m in middles]), codes))
    # the payloads, by enc
    payload = pa.nulls(n, pa.binary())
    for _, name in _TAILS:
        these = pc.fill_null(pc.and_(ok, pc.equal(enc, name)), False)
        if pc.any(these).as_py():
            payload = pc.replace_with_mask(payload, these,
                                           _data_payloads(pc.filter(data, these), name))
    ok = pc.and_(ok, pc.is_valid(payload))
    return ok, {"payload": payload, "ts": ts, "mono_ns": mono, "middle": codes,
                "middles": middles}


def _pieces(lines: pa.Array, ok: pa.Array, bounds: list[pa.Array]) -> list[pa.Array]:
    """The pieces of each line between ``bounds`` (byte positions in it, increasing:
    where the first piece starts and ends, the second, ...), cut out of the lines' own
    buffer: one binary array over it whose values are the pieces and what lies between
    them (for a row ``ok`` says not, all empty), from which each kind of piece is taken.
    Null for the rows ``ok`` says not."""
    n, k = len(lines), len(bounds)
    starts = pa.Array.from_buffers(pa.int32(), n + 1, [None, lines.buffers()[1]],
                                   offset=lines.offset)
    first = starts.slice(0, n)
    zero = pa.scalar(0, pa.int32())
    at = [pc.add(first, pc.if_else(ok, b.cast(pa.int32()), zero)) for b in bounds]
    # interleaved: row 0's bounds, row 1's, ..., then where the last line ends
    order = _count(n * k)
    row = pc.divide(order, k)
    index = pc.add(pc.multiply(pc.subtract(order, pc.multiply(row, k)), n), row)
    offsets = pa.concat_arrays([pc.take(pa.concat_arrays(at), index), starts.slice(n)])
    cut = pa.Array.from_buffers(pa.binary(), n * k, [None, offsets.buffers()[1],
                                                     lines.buffers()[2]])
    step = pc.multiply(_count(n), k)
    return [_only(pc.take(cut, pc.add(step, i)), ok) for i in range(0, k, 2)]


def _count(n: int) -> pa.Array:
    """0, 1, ... n - 1 (int32)."""
    return pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int32()), n)), 1)


def _only(values: pa.Array, mask: pa.Array) -> pa.Array:
    """``values`` where ``mask`` is true, null elsewhere."""
    if pc.all(mask).as_py() is not False:
        return values
    return pc.if_else(mask, values, pa.scalar(None, values.type))


def _second_ns(text: bytes | None) -> int | None:
    """The time of ``YYYY-MM-DDTHH:MM:SS`` (UTC), when ``parse_time`` takes it and any
    nanoseconds after it stay in range; else None."""
    if text is None:
        return None
    try:
        ns = parse_time(text.decode("ascii") + "Z")
    except (ValueError, UnicodeDecodeError):
        return None
    return ns if ns <= MAX_NS - (NS - 1) else None


def _middle(text: bytes | None) -> dict | None:
    """The members ``venue`` .. ``channels`` of a line, parsed, when they are exactly
    those, in the envelope's order; else None."""
    if text is None:
        return None
    try:
        pairs = json.loads(b'{"venue":' + text + b"}", object_pairs_hook=list)
    except (ValueError, RecursionError):
        return None
    if [key for key, _ in pairs] != _MIDDLE_KEYS:
        return None
    return dict(pairs)


def _data_payloads(data: pa.Array, enc: str) -> pa.Array:
    """The payloads of ``data`` of one ``enc`` as ``decode_envelope`` makes them (null
    where it is not in the form read here)."""
    if enc == "json":
        is_json, _ = json_classes(data, pa.repeat(pa.scalar("text"), len(data)))
        return pc.if_else(is_json, data, pa.scalar(None, pa.binary()))
    if enc == "text":
        good = pc.match_substring_regex(data, f"^{_STRING}$")
        inner = pc.binary_slice(data, 1, -1)
        escaped = pc.and_(good, pc.match_substring(inner, "\\"))
        out = pc.if_else(good, inner, pa.scalar(None, pa.binary()))
        if pc.any(escaped).as_py():  # one JSON array of these strings, read at C speed
            texts = json.loads(b"[" + b",".join(pc.filter(data, escaped).to_pylist()) + b"]")
            out = pc.replace_with_mask(out, escaped, pa.array(map(_text_bytes, texts),
                                                              pa.binary()))
        return out
    good = pc.match_substring_regex(data, _BASE64_RE)
    return pa.array([_base64(d) if g else None for d, g in
                     zip(pc.binary_slice(data, 1, -1).to_pylist(), good.to_pylist())],
                    pa.binary())


def _text_bytes(text: str) -> bytes | None:
    try:
        return text.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        return None


def _base64(data: bytes) -> bytes | None:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
