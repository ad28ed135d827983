"""How frames become text lines: the ``raw`` and ``envelope`` formats.

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
  * ``enc: "json"``: the payload is JSON text and ``data`` is that JSON value;
  * ``enc: "text"``: other UTF-8 text, ``data`` is the string;
  * ``enc: "base64"``: anything else, ``data`` is base64;
  * ``enc: "msgpack"``: a msgpack frame, ``data`` is the decoded value and ``raw`` the
    original bytes in base64.

The raw format at full speed never touches frames one by one in Python when a batch
holds only plain text: the batch's payloads, each followed by a newline, are one Arrow
buffer written as is.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import json

import msgpack
import pyarrow as pa
import pyarrow.compute as pc

from wsrec.timefmt import format_ns, parse_time
from wsrec.venues.alpaca import decode_msgpack, rfc3339

__all__ = ["raw_line", "envelope", "encode_envelope", "decode_envelope", "ENCODINGS",
           "b64_field", "raw_block", "is_msgpack_session", "decode_msgpack"]

_NL = pa.scalar(b"\n", pa.binary())
_EMPTY = pa.scalar(b"", pa.binary())


_NOT_JSON = object()


def is_msgpack_session(manifest: dict) -> bool:
    """Whether binary frames of this session are msgpack (recorded so, per the manifest)."""
    return (manifest.get("args") or {}).get("binary") == "msgpack"


def _default(obj):
    if isinstance(obj, msgpack.Timestamp):
        return rfc3339(obj)
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode()
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _dumps(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                      default=_default).encode()


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
    if pc.all(pc.equal(kinds, "text")).as_py() is not False and not _has_line_break(payload):
        # payload + "\n" for every row: the result's data buffer is the output
        return _buffer_view(pc.binary_join_element_wise(payload, _EMPTY, _NL))
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


def _has_line_break(arr: pa.Array) -> bool:
    """Whether any value of a binary array holds a newline or carriage return."""
    if len(arr) == 0:
        return False
    first, last = _value_span(arr)
    data = arr.buffers()[2]
    if data is None or last == first:
        return False
    if _memchr is not None:
        start = data.address + first
        return bool(_memchr(start, 10, last - first) or _memchr(start, 13, last - first))
    chunk = data[first:last].to_pybytes()
    return b"\n" in chunk or b"\r" in chunk


def _buffer_view(arr: pa.Array) -> memoryview:
    """The concatenated values of a binary array: a view of its data buffer, no copy."""
    if len(arr) == 0:
        return memoryview(b"")
    first, last = _value_span(arr)
    return memoryview(arr.buffers()[2])[first:last]


def envelope(frame, venue: str, session: str, msgpack_mode: bool) -> dict:
    """One frame (a ``wsrec.Frame``) as the envelope object."""
    payload = frame.payload
    out = {"seq": frame.seq, "ts": format_ns(frame.ts), "mono_ns": frame.mono_ns,
           "venue": venue, "session": session, "conn": frame.conn, "stream": frame.stream,
           "dir": frame.dir,
           "kind": frame.kind, "channel": frame.channel, "symbols": frame.symbols,
           "channels": frame.channels}
    if frame.kind == "binary" and msgpack_mode:
        try:
            out["data"] = json.loads(_dumps(decode_msgpack(payload)))
            out["enc"] = "msgpack"
            out["raw"] = base64.b64encode(payload).decode()
            return out
        except Exception:  # noqa: BLE001
            pass
    if frame.kind != "binary":
        try:
            text = payload.decode()
        except UnicodeDecodeError:
            text = None
        if text is not None:
            try:
                value = json.loads(text)
            except ValueError:
                value = _NOT_JSON
            # "json" only when compact re-encoding gives these exact bytes back, so the
            # envelope stays lossless; other JSON (spaces, 1e5, escapes) is kept as text
            if value is not _NOT_JSON and _dumps(value) == payload:
                out["data"], out["enc"] = value, "json"
            else:
                out["data"], out["enc"] = text, "text"
            return out
    out["data"], out["enc"] = base64.b64encode(payload).decode(), "base64"
    return out


def encode_envelope(frame, venue: str, session: str, msgpack_mode: bool) -> bytes:
    """One frame as an envelope line (compact JSON, UTF-8), without the newline."""
    return json.dumps(envelope(frame, venue, session, msgpack_mode), separators=(",", ":"),
                      ensure_ascii=False).encode()


#: the envelope's ``enc`` values
ENCODINGS = ("json", "text", "base64", "msgpack")
_ENVELOPE_KEYS = ("ts", "dir", "kind", "enc", "data")


def decode_envelope(obj) -> dict:
    """An envelope object (a parsed line) back to a row: ``payload`` (the recorded bytes,
    exactly), ``ts`` (int ns) and the other fields as they are given (``seq``, ``mono_ns``,
    ``conn``, ``stream``, ``dir``, ``kind``, ``channel``, ``channels``, ``symbols``; None
    when absent), for the caller to check. ValueError saying what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    for key in _ENVELOPE_KEYS:
        if key not in obj:
            raise ValueError(f"no {key!r}")
    ts = obj["ts"]
    row = {key: obj.get(key) for key in ("seq", "mono_ns", "conn", "stream", "dir", "kind",
                                         "channel", "channels", "symbols")}
    row["payload"] = _envelope_payload(obj)
    if isinstance(ts, bool) or not isinstance(ts, (str, int)):
        raise ValueError(f"ts is not a time ({_short(ts)})")
    try:
        row["ts"] = parse_time(ts)
    except ValueError as exc:
        raise ValueError(f"ts: {exc}") from None
    return row


def _envelope_payload(obj: dict) -> bytes:
    enc, value = obj["enc"], obj["data"]
    if enc == "json":
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
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
