import base64
import gzip
import json

import pyarrow as pa
import pytest
import zstandard

import wsrec
from click.testing import CliRunner
from wsrec.cli.commands import cli
from wsrec.errors import WsrecError
from wsrec.record.importer import detect_format, epoch_ns, import_file


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
    before = sorted(p.name for p in result.path.parent.iterdir())   # venue=/date= folder
    with pytest.raises(WsrecError, match=":2: not '<timestamp> <message>'"):
        import_file(path, "hyperliquid", data, strict=True)
    assert sorted(p.name for p in result.path.parent.iterdir()) == before  # nothing left


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
    connections = wsrec.open_session(result.path).manifest["connections"]
    assert sorted((c["conn"], c["stream"], c["url"]) for c in connections) == [
        (0, "socket-0", "wss://example.test/feed"), (1, "socket-1", "wss://other.test/")]


def test_bad_files(data, tmp_path):
    with pytest.raises(WsrecError, match="no such file"):
        import_file(tmp_path / "missing", "v", data)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(WsrecError, match="empty, nothing to import"):
        import_file(empty, "v", data)
    bad = tmp_path / "x.har"
    bad.write_text("{not json")
    with pytest.raises(WsrecError, match="not a HAR file"):
        import_file(bad, "v", data)
    assert not data.exists()  # nothing left: not even the folders an import would make


#: what differs between a session and its jsonl round trip: ids, paths, the times the
#: writer ran (start/end), what its bytes on disk come to (the ids are in every part), and
#: the arguments of the command that wrote it
_OF_WRITING = {"id", "path", "start", "end", "duration_ns", "bytes", "compression_ratio",
               "args"}


def test_jsonl_round_trip_keeps_connections_and_gaps(data, tmp_path):
    """A recording with reconnects survives convert --direction all | import whole."""
    from conftest import record_from_sim
    from wsrec.store.info import details
    from wsrec.record.recorder import RecordOptions
    from wsrec.sim import SimOptions

    result, _, session = record_from_sim(
        "hyperliquid", data, symbols=["BTC"], channels=["trades"],
        sim=SimOptions(rate=300, drop_every=60),
        options=RecordOptions(duration=1.5, backoff_initial=0.05, backoff_max=0.1))
    original = details(session)
    assert len(original["connections"]) >= 2 and original["gaps"]
    target = tmp_path / "s.jsonl"
    assert CliRunner().invoke(cli, ["convert", "--data", str(data), str(session.path),
                                    "--format", "jsonl", "--direction", "all",
                                    "-o", str(target), "-q"]).exit_code == 0
    copy = import_file(target, "copy", data)
    imported = details(wsrec.open_session(copy.path))
    for key in _OF_WRITING | {"venue"}:
        original.pop(key), imported.pop(key)
    # the timeline's buckets span the session's start to end (of writing); the frames in them
    # are the same
    frames = [{k: sum(v["frames"]) for k, v in d.pop("timeline")["streams"].items()}
              for d in (original, imported)]
    assert frames[0] == frames[1] and sum(frames[0].values()) == original["frames_in"]
    assert imported == original


# -- jsonl: the block-at-a-time reading against the line-by-line one ------------------------------

def _no_block_reading(lines):
    n = len(lines)
    return pa.array([False] * n), {"payload": pa.nulls(n, pa.binary()),
                                   "ts": pa.nulls(n, pa.int64()),
                                   "mono_ns": pa.nulls(n, pa.int64()),
                                   "middle": pa.array([0] * n, pa.int64()), "middles": [None]}


def _frames(path):
    return [(f.payload, f.ts, f.mono_ns, f.conn, f.stream, f.dir, f.kind, f.channels, f.symbols)
            for f in wsrec.open_session(path).frames(direction="all")]


def _mixed_jsonl(tmp_path, data):
    """The export of a session of every kind of row (both forms of data), hostile lines
    between them, blank lines, CRLF ends."""
    import text_cases
    from wsrec.store.lines import encode_envelope
    with wsrec.SessionWriter("mix", data=data, args={"binary": "msgpack"}) as w:
        for payload, kw in text_cases.session_rows():
            w.append(payload, **kw)
    session = wsrec.open_session("mix", data=data)
    good = [encode_envelope(f, "mix", session.id, True, as_string).decode("utf-8")
            for as_string in (False, True) for f in session.frames(direction="all")]
    hostile = text_cases.hostile_lines(json.loads(good[0]))
    out = []
    for i, line in enumerate(good):
        out.append(line)
        out.append(hostile[i % len(hostile)])
        if i % 9 == 0:
            out.append("")
        if i % 13 == 0:
            out.append(line + "\r")
    path = tmp_path / "mixed.jsonl"
    path.write_bytes("\n".join(out).encode("utf-8", "surrogateescape"))
    return path


def test_jsonl_block_reading_is_line_by_line_reading(data, tmp_path, monkeypatch):
    from wsrec.record import importer
    path = _mixed_jsonl(tmp_path, data)
    fast = import_file(path, "fast", data)
    monkeypatch.setattr(importer, "decode_envelope_block", _no_block_reading)
    slow = import_file(path, "slow", data)
    assert fast.rows == slow.rows and fast.rows > 100
    assert fast.bad == slow.bad and fast.problems == slow.problems and fast.bad
    assert _frames(fast.path) == _frames(slow.path)
    with pytest.raises(WsrecError) as one:
        import_file(path, "strict", data, strict=True)
    monkeypatch.undo()
    with pytest.raises(WsrecError) as other:
        import_file(path, "strict", data, strict=True)
    assert str(one.value) == str(other.value)


def test_jsonl_import_reports_progress(data, tmp_path):
    path = _mixed_jsonl(tmp_path, data)
    seen = []
    import_file(path, "p", data, progress=lambda done, total: seen.append((done, total)))
    size = path.stat().st_size
    assert seen and seen[-1] == (size, size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_jsonl_blocks_cut_anywhere(data, tmp_path, monkeypatch):
    """Blocks of any size (lines cut across reads) give the same import."""
    from wsrec.record import importer
    path = _mixed_jsonl(tmp_path, data)
    whole = import_file(path, "whole", data)
    for size in (1, 7, 4096):
        monkeypatch.setattr(importer, "_BLOCK", size)
        again = import_file(path, f"b{size}", data)
        assert again.bad == whole.bad and _frames(again.path) == _frames(whole.path)
