"""Fault cases: malformed and odd import inputs, and stdout that can't be written.

Every failure is one line (``Error: ...``), exit 1, no traceback, and leaves nothing
behind under the data root. Everything happens inside the test's tmp folder; /dev/full
and /dev/null are only ever a subprocess's stdout or an input to read.
"""

import base64
import gzip
import json
import os
import socket
import stat
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import zstandard
from click.testing import CliRunner

import wsrec
from wsrec.cli.commands import cli
from wsrec.errors import StorageError, WsrecError
from wsrec.record.importer import import_file

from conftest import write_session

pytestmark = pytest.mark.timeout(300)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def leftovers(root):
    """Everything under the data root (the root itself counts when it is there)."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) or ["<empty root>"]


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# -- jsonl: every field checked ---------------------------------------------------------------

GOOD = {"seq": 0, "ts": "2026-01-01T00:00:00Z", "mono_ns": 1, "venue": "v", "session": "s",
        "conn": 0, "stream": None, "dir": "in", "kind": "text", "channel": None,
        "channels": [], "symbols": [], "enc": "text", "data": "x"}

DROP = object()

JSONL = [  # (changes to a good envelope (DROP: remove the key), fragment of the reason)
    ({"mono_ns": 2**70}, "mono_ns 1180591620717411303424 is out of range"),
    ({"mono_ns": -2**70}, "mono_ns -1180591620717411303424 is out of range"),
    ({"mono_ns": 1.5}, "mono_ns is not an integer"),
    ({"mono_ns": "5"}, "mono_ns is not an integer"),
    ({"mono_ns": True}, "mono_ns is not an integer"),
    ({"ts": "3000-01-01T00:00:00Z"}, "outside the times wsrec can represent"),
    ({"ts": "1600-01-01T00:00:00Z"}, "outside the times wsrec can represent"),
    ({"ts": 2**63}, "outside the times wsrec can represent"),
    ({"ts": "yesterday"}, "not an ISO 8601 time"),
    ({"ts": None}, "ts is not a time"),
    ({"ts": 1.5}, "ts is not a time"),
    ({"ts": [1]}, "ts is not a time"),
    ({"conn": 2**40}, "conn 1099511627776 is out of range"),
    ({"conn": -2**31 - 1}, "conn -2147483649 is out of range"),
    ({"conn": "0"}, "conn is not an integer"),
    ({"conn": False}, "conn is not an integer"),
    ({"stream": 5}, "stream is not a string"),
    ({"stream": "\ud800"}, "stream is not valid UTF-8 text"),
    ({"dir": "sideways"}, "dir must be in, out or event, not 'sideways'"),
    ({"dir": None}, "dir must be in, out or event"),
    ({"dir": ["in"]}, "dir must be in, out or event"),
    ({"kind": ""}, "kind is empty"),
    ({"kind": 5}, "kind is not a string"),
    ({"channels": "trades"}, "channels is not a list"),
    ({"channels": [1]}, "channels item is not a string"),
    ({"channels": ["\ud800"]}, "channels item is not valid UTF-8 text"),
    ({"symbols": {"a": 1}}, "symbols is not a list"),
    ({"symbols": [None]}, "symbols item is not a string"),
    ({"enc": "rot13"}, "enc must be one of json, text, base64, msgpack"),
    ({"enc": None}, "enc must be one of"),
    ({"enc": "base64", "data": "!!!"}, "data is not valid base64"),
    ({"enc": "base64", "data": 5}, "data is not a base64 string"),
    ({"enc": "msgpack", "data": {}}, "raw is not a base64 string"),
    ({"enc": "msgpack", "data": {}, "raw": "%%"}, "raw is not valid base64"),
    ({"enc": "text", "data": 5}, "data is not a string"),
    ({"enc": "text", "data": "\ud800"}, "data is not valid text"),
    ({"enc": "json", "data": {"k": "\ud800"}}, "data is not valid UTF-8 JSON"),
    ({"dir": DROP}, "no 'dir'"),
    ({"kind": DROP}, "no 'kind'"),
    ({"ts": DROP}, "no 'ts'"),
    ({"data": DROP}, "no 'data'"),
    ({"enc": DROP}, "no 'enc'"),
]


def envelope_line(changes):
    e = dict(GOOD)
    for key, value in changes.items():
        if value is DROP:
            e.pop(key)
        else:
            e[key] = value
    return json.dumps(e)


RAW_JSONL = [  # lines that are not even an envelope object
    ("[1, 2]", "not a JSON object"),
    ("{not json", "not JSON"),
    ("[" * 100_000, "nested too deeply"),
    ('"just a string"', "not a JSON object"),
]


def jsonl_file(tmp_path, bad_line):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + bad_line + "\n")
    return path


@pytest.mark.parametrize("bad,reason", [(envelope_line(c), r) for c, r in JSONL] + RAW_JSONL,
                         ids=[str(c)[:40] for c, _ in JSONL] + [r for _, r in RAW_JSONL])
def test_jsonl_line_checked(tmp_path, bad, reason):
    path = jsonl_file(tmp_path, bad)
    data = tmp_path / "data"
    strict = run("import", path, "--venue", "v", "--data", data, "--strict")
    assert_one_line_error(strict, f"{path}:2: not a wsrec envelope line", reason,
                          "drop --strict")
    assert leftovers(data) == []  # the session of line 1 is gone, and the folders it made
    lenient = run("import", path, "--venue", "v", "--data", data, "--json")
    assert lenient.exit_code == 0, lenient.output
    assert json.loads(lenient.stdout)["bad_lines"] == [2]
    assert f"skipped 1 unreadable line(s) of {path}: 2" in lenient.stderr
    assert [f.payload for f in wsrec.open_session("v", data=data).frames()] == [b"x"]


def test_jsonl_only_bad_lines_is_an_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(envelope_line({"dir": "sideways"}) + "\n")
    data = tmp_path / "data"
    result = run("import", path, "--venue", "v", "--data", data)
    assert_one_line_error(result, "no readable message to import (1 unreadable; first: "
                                  "line 1: not a wsrec envelope line: dir must be")
    assert leftovers(data) == []


def test_jsonl_extremes_in_range_are_kept(tmp_path):
    """The edges of each range import, exactly."""
    lines = [dict(GOOD, ts="1677-09-21T00:12:43.145224193Z", mono_ns=-2**63, conn=-2**31),
             dict(GOOD, ts="2262-04-11T23:47:16.854775807Z", mono_ns=2**63 - 1,
                  conn=2**31 - 1, stream="s", kind="x", channels=["c"], symbols=["s"])]
    path = tmp_path / "edges.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    result = import_file(path, "v", tmp_path / "data")
    frames = list(wsrec.open_session(result.path).frames())
    assert [(f.ts, f.mono_ns, f.conn) for f in frames] == [
        (-2**63 + 1, -2**63, -2**31), (2**63 - 1, 2**63 - 1, 2**31 - 1)]


# -- lines ------------------------------------------------------------------------------------

LINES = [
    ("99999999999999999999999999 x", "outside the times wsrec can represent"),
    ("-99999999999999999999 x", "outside the times wsrec can represent"),
    ("1e999999999 x", "outside the times wsrec can represent"),   # never turned into an int
    ("NaN x", "not a timestamp"),
    ("Infinity x", "not a timestamp"),
    ("3000-01-01T00:00:00Z x", "outside the times wsrec can represent"),
    ("yesterday x", "not an ISO 8601 time"),
    ("1700000000", "no message after the timestamp"),
]


@pytest.mark.parametrize("line,reason", LINES)
def test_lines_timestamp_checked(tmp_path, line, reason):
    path = tmp_path / "cap.txt"
    path.write_text(f"1700000000 ok\n{line}\n")
    data = tmp_path / "data"
    result = run("import", path, "--venue", "v", "--data", data, "--strict")
    assert_one_line_error(result, f"{path}:2: not '<timestamp> <message>'", reason)
    assert leftovers(data) == []
    lenient = import_file(path, "v", data)
    assert lenient.rows == 1 and lenient.bad == [2] and reason in lenient.problems[0]


# -- HAR --------------------------------------------------------------------------------------

def har(*entries):
    return json.dumps({"log": {"version": "1.2", "entries": list(entries)}})


def socket_entry(*messages, url="wss://example.test/ws"):
    return {"request": {"url": url}, "_webSocketMessages": list(messages)}


OK_MESSAGE = {"type": "receive", "time": 1700000000.5, "opcode": 1, "data": "ok"}

HAR_FILES = [  # (file text, fragment): the whole file is refused
    ("[1, 2]", 'not a HAR file (no "log" object)'),
    ('{"log": []}', 'not a HAR file (no "log" object)'),
    ('{"log": "x"}', 'not a HAR file (no "log" object)'),
    ('{"log": {}}', "not a HAR file (log.entries is not a list)"),
    ('{"log": {"entries": {}}}', "not a HAR file (log.entries is not a list)"),
    (har(5), "log.entries[0] is not an object"),
    (har({"_webSocketMessages": {"a": 1}}), "log.entries[0]._webSocketMessages is not a list"),
    (har({"_webSocketMessages": "x"}), "log.entries[0]._webSocketMessages is not a list"),
    (har({"request": 5, "_webSocketMessages": [OK_MESSAGE]}),
     "log.entries[0].request.url is not a string"),
    (har({"request": {"url": 5}, "_webSocketMessages": [OK_MESSAGE]}),
     "log.entries[0].request.url is not a string"),
    (har(socket_entry(OK_MESSAGE), 7), "log.entries[1] is not an object"),
    ("{not json", "not a HAR file ("),
    ('{"log": ' + "[" * 100_000, "not a HAR file (JSON nested too deeply)"),
    (har(), "no message in it, nothing to import"),
    (har({"request": {"url": "https://x.test/"}}), "no message in it, nothing to import"),
]


@pytest.mark.parametrize("text,reason", HAR_FILES, ids=lambda x: str(x)[:40])
def test_har_shape_checked(tmp_path, text, reason):
    path = tmp_path / "site.har"
    path.write_text(text)
    data = tmp_path / "data"
    result = run("import", path, "--venue", "v", "--data", data)
    assert_one_line_error(result, f"{path}: ", reason)
    assert leftovers(data) == []


HAR_MESSAGES = [  # (bad message, fragment): the message is skipped (or, strict, an error)
    (5, "not an object"),
    ([OK_MESSAGE], "not an object"),
    (dict(OK_MESSAGE, time=-1e12), "time -1000000000000.0 is outside 1677-09-21"),
    (dict(OK_MESSAGE, time=1e300), "is outside 1677-09-21 .. 2262-04-11"),
    (dict(OK_MESSAGE, time=-1e300), "is outside 1677-09-21 .. 2262-04-11"),
    (dict(OK_MESSAGE, time="abc"), "time is not a number"),
    (dict(OK_MESSAGE, time="NaN"), "time is not finite"),
    (dict(OK_MESSAGE, time="-Infinity"), "time is not finite"),
    (dict(OK_MESSAGE, time=None), "time is not a number"),
    ({k: v for k, v in OK_MESSAGE.items() if k != "time"}, "time is not a number"),
    (dict(OK_MESSAGE, time=True), "time is not a number"),
    (dict(OK_MESSAGE, time=[1]), "time is not a number"),
    (dict(OK_MESSAGE, type="sideways"), "type must be send or receive, not 'sideways'"),
    (dict(OK_MESSAGE, type=["x"]), "type must be send or receive"),
    ({k: v for k, v in OK_MESSAGE.items() if k != "type"}, "type must be send or receive"),
    (dict(OK_MESSAGE, opcode=7), "opcode must be 1 (text) or 2 (binary), not 7"),
    (dict(OK_MESSAGE, opcode="1"), "opcode must be 1 (text) or 2 (binary)"),
    (dict(OK_MESSAGE, opcode=1.0), "opcode must be 1 (text) or 2 (binary)"),
    (dict(OK_MESSAGE, opcode=True), "opcode must be 1 (text) or 2 (binary)"),
    (dict(OK_MESSAGE, data=5), "data is not a string"),
    (dict(OK_MESSAGE, data=None), "data is not a string"),
    (dict(OK_MESSAGE, data="\ud800"), "data is not valid text"),
    (dict(OK_MESSAGE, opcode=2, data="!!"), "data is not valid base64"),
    (dict(OK_MESSAGE, opcode=2, data=[1]), "data is not a base64 string"),
]


@pytest.mark.parametrize("message,reason", HAR_MESSAGES, ids=lambda x: str(x)[:40])
def test_har_message_checked(tmp_path, message, reason):
    path = tmp_path / "site.har"
    path.write_text(har(socket_entry(OK_MESSAGE, message)))
    data = tmp_path / "data"
    strict = run("import", path, "--venue", "v", "--data", data, "--strict")
    assert_one_line_error(strict, f"{path}: message 2: unreadable WebSocket message: ", reason,
                          "drop --strict to skip bad messages")
    assert leftovers(data) == []
    lenient = import_file(path, "v", data)
    assert lenient.rows == 2 and lenient.bad == [2]  # the open event and the good message


def test_har_control_frames_and_exact_times(tmp_path):
    path = tmp_path / "site.har"
    text = har(socket_entry(
        {"type": "receive", "time": "EXACT", "opcode": 1, "data": "a"},
        {"type": "send", "time": 1700000001, "opcode": 9, "data": ""},      # a ping: not stored
        {"type": "send", "time": "1700000002.000000001", "opcode": 2,
         "data": base64.b64encode(b"\x00").decode()}))
    path.write_text(text.replace('"EXACT"', "1700000000.123456789"))  # no float on the way
    result = import_file(path, "v", tmp_path / "data")
    assert result.bad == []
    frames = [f for f in wsrec.open_session(result.path).frames() if f.dir != "event"]
    assert [(f.ts, f.dir, f.kind, f.payload) for f in frames] == [
        (1_700_000_000_123_456_789, "in", "text", b"a"),
        (1_700_000_002_000_000_001, "out", "binary", b"\x00")]


# -- compressed input -------------------------------------------------------------------------

LINES_TEXT = b"".join(b"%d {\"i\":%d}\n" % (1_700_000_000_000 + i, i) for i in range(20_000))
GZ = gzip.compress(LINES_TEXT)
ZST = zstandard.ZstdCompressor().compress(LINES_TEXT)

COMPRESSED = [  # (name, bytes, fragment)
    ("cut.gz", GZ[:10], "truncated gzip stream at byte 10"),
    ("half.gz", GZ[:len(GZ) // 2], f"truncated gzip stream at byte {len(GZ) // 2}"),
    ("trailer.gz", GZ[:-4], f"truncated gzip stream at byte {len(GZ) - 4}"),
    ("magic.zst", ZST[:4], "truncated zstd stream at byte 4"),
    ("cut.zst", ZST[:50], "truncated zstd stream at byte 50"),
    ("end.zst", ZST[:-3], f"truncated zstd stream at byte {len(ZST) - 3}"),
    ("second.gz", GZ + GZ[:30], f"truncated gzip stream at byte {len(GZ) + 30}"),
    ("corrupt.gz", GZ[:40] + bytes(b ^ 0xFF for b in GZ[40:80]) + GZ[80:], "corrupt gzip"),
    ("garbage.zst", ZST + b"not zstd at all", "corrupt zstd stream"),
    ("empty.gz", gzip.compress(b""), "empty, nothing to import"),
    ("empty.zst", zstandard.ZstdCompressor().compress(b""), "empty, nothing to import"),
]


@pytest.mark.parametrize("name,blob,reason", COMPRESSED, ids=[c[0] for c in COMPRESSED])
def test_compressed_input_problems_are_named(tmp_path, name, blob, reason):
    path = tmp_path / name
    path.write_bytes(blob)
    data = tmp_path / "data"
    result = run("import", path, "--venue", "v", "--data", data, "--format", "lines")
    assert_one_line_error(result, f"{path}: ", reason)
    assert leftovers(data) == []


def test_several_members_and_frames_are_read(tmp_path):
    data = tmp_path / "data"
    for name, blob in (("two.gz", GZ + b"\x00\x00" + GZ),
                       ("two.zst", ZST + ZST)):
        path = tmp_path / name
        path.write_bytes(blob)
        assert import_file(path, "v", data).rows == 40_000


@pytest.mark.parametrize("fmt", ["lines", "jsonl"])
def test_overlong_lines_are_skipped_not_held(tmp_path, monkeypatch, fmt):
    """A 64 MiB line (from a 10 kB zstd file) past the line limit (here 1 MiB) is skipped
    and never held whole; the lines around it import."""
    monkeypatch.setattr("wsrec.record.importer._MAX_LINE", 1 << 20)
    good = json.dumps(GOOD).encode() if fmt == "jsonl" else b"1700000000 small"
    path = tmp_path / "bomb.zst"
    with open(path, "wb") as f, zstandard.ZstdCompressor(level=1).stream_writer(f) as w:
        w.write(good + b"\n" + b"1700000000 ")
        for _ in range(64):
            w.write(b"0" * (1 << 20))
        w.write(b"\n" + good + b"\n")
    assert path.stat().st_size < 100_000
    result = import_file(path, "v", tmp_path / "data", fmt=fmt)
    assert result.rows == 2 and result.bad == [2]
    assert "line longer than" in result.problems[0]


# -- what the input is ------------------------------------------------------------------------

def test_dev_null_is_empty_input(tmp_path):
    data = tmp_path / "data"
    assert_one_line_error(run("import", os.devnull, "--venue", "v", "--data", data),
                          f"{os.devnull}: empty, nothing to import")
    assert leftovers(data) == []


@pytest.mark.parametrize("content,rows", [(b"1700000000 a\n1700000001 b\n", 2),
                                          (gzip.compress(b"1700000000 a\n"), 1),
                                          (b"", None)])
def test_fifo_is_read_as_a_stream(tmp_path, content, rows):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as f:
            f.write(content)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    data = tmp_path / "data"
    result = run("import", fifo, "--venue", "v", "--data", data, "--json")
    writer.join(10)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    if rows is None:
        assert_one_line_error(result, f"{fifo}: empty, nothing to import")
        assert leftovers(data) == []
    else:
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["rows"] == rows


def test_stdin_can_be_imported(tmp_path):
    data = tmp_path / "data"
    out = subprocess.run([sys.executable, "-m", "wsrec", "import", "/dev/stdin", "--venue", "v",
                          "--data", str(data), "--format", "lines"],
                         input=b"1700000000 a\n", capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert wsrec.open_session("v", data=data).rows() == 1


def special_inputs(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    plain = tmp_path / "plain.txt"
    plain.write_text("1700000000 a\n")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\n")
    sock = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    return server, [
        (folder, f"{folder}: is a directory; give a capture file"),
        (tmp_path / "missing.txt", "missing.txt: no such file"),
        (dangling, "dangling: no such file"),
        (plain / "child", "child: cannot read (Not a directory)"),
        (loop, "loop: cannot read (Too many levels of symbolic links)"),
        (sock, "s.sock: is a socket; give a file, a FIFO or a character device"),
        (blank, "blank.txt: empty, nothing to import"),
    ]


def test_special_inputs_are_one_line_errors(tmp_path):
    server, cases = special_inputs(tmp_path)
    with server:
        data = tmp_path / "data"
        for path, message in cases:
            result = run("import", path, "--venue", "v", "--data", data)
            assert_one_line_error(result, message)
            assert leftovers(data) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text("1700000000 a\n")
    path.chmod(0)
    data = tmp_path / "data"
    assert_one_line_error(run("import", path, "--venue", "v", "--data", data),
                          "secret.txt: cannot read (Permission denied)")
    assert leftovers(data) == []


# -- nothing left behind ----------------------------------------------------------------------

def test_failure_keeps_folders_that_were_there(tmp_path):
    data = tmp_path / "data"
    folder, _ = write_session(data, n=5, venue="v")
    path = jsonl_file(tmp_path, envelope_line({"dir": "sideways"}))
    assert_one_line_error(run("import", path, "--venue", "v", "--data", data, "--strict"))
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]
    assert_one_line_error(run("import", path, "--venue", "w", "--data", data, "--strict"))
    # venue=w, made by the import, is gone
    assert sorted(p.name for p in data.iterdir()) == ["venue=v"]


def test_writer_failure_mid_import_leaves_nothing(tmp_path, monkeypatch):
    appended = []
    real = wsrec.SessionWriter.append

    def failing(self, *args, **kw):
        if len(appended) == 500:
            raise StorageError("disk full while writing the session: No space left on device")
        appended.append(1)
        return real(self, *args, **kw)

    monkeypatch.setattr(wsrec.SessionWriter, "append", failing)
    path = tmp_path / "cap.txt"
    path.write_bytes(LINES_TEXT)
    data = tmp_path / "data" / "nested"
    with pytest.raises(StorageError, match="disk full"):
        import_file(path, "v", data)
    assert not (tmp_path / "data").exists()  # the root (and its parent) the import made


def test_interrupted_import_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def interrupt(payload, text):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return (), ()

    monkeypatch.setattr("wsrec.record.importer.classifier", lambda venue: interrupt)
    path = tmp_path / "cap.txt"
    path.write_bytes(LINES_TEXT)
    data = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        import_file(path, "v", data)
    assert leftovers(data) == []


def test_the_api_raises_wsrec_errors(tmp_path):
    path = tmp_path / "x.har"
    path.write_text('{"log": []}')
    with pytest.raises(WsrecError, match="not a HAR file"):
        import_file(path, "v", tmp_path / "data")
    with pytest.raises(ValueError, match="invalid venue"):
        import_file(path, "../v", tmp_path / "data")
    with pytest.raises(ValueError, match="unknown import format"):
        import_file(path, "v", tmp_path / "data", fmt="csv")


# -- stdout that can't be written -------------------------------------------------------------

@pytest.fixture(scope="module")
def stdout_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("stdout")
    data = root / "data"
    write_session(data, n=300)
    capture = root / "cap.txt"
    capture.write_text("1700000000 a\n")
    return root, data, capture


def stdout_commands(root, capture):
    return [
        ["ls"], ["ls", "--json"], ["info", "last"], ["info", "last", "--json"],
        ["verify", "last"], ["verify", "last", "--json"], ["venues"], ["venues", "--json"],
        ["replay", "last", "--speed", "max", "--format", "envelope"],
        ["replay", "last", "--speed", "1000"],
        ["convert", "last", "--format", "jsonl", "-q"], ["convert", "last", "--format", "csv"],
        ["convert", "last", "--format", "jsonl.zst", "-q"],
        ["convert", "last", "--format", "parquet", "-q"],
        ["convert", "last", "--format", "csv", "-q", "-o", "/dev/stdout"],
        ["import", str(capture), "--venue", "imp", "--json", "--data", str(root / "imp")],
        ["--help"], ["--version"],
    ]


STDOUT_MODES = ["full", "closed", "no-reader"]


def run_with_stdout(args, data, mode):
    env = {**os.environ, "WSREC_DATA": str(data)}
    command = [sys.executable, "-m", "wsrec", *args]
    if mode == "full":
        with open("/dev/full", "wb") as full:  # a redirection of the child's stdout
            return subprocess.run(command, stdout=full, stderr=subprocess.PIPE, env=env,
                                  timeout=120)
    if mode == "closed":
        return subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", *command],
                              stderr=subprocess.PIPE, env=env, timeout=120)
    r, w = os.pipe()
    os.close(r)  # nobody will ever read: the first write gets EPIPE
    try:
        return subprocess.run(command, stdout=w, stderr=subprocess.PIPE, env=env, timeout=120)
    finally:
        os.close(w)


def test_stdout_failures_are_one_line(stdout_data):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    root, data, capture = stdout_data
    commands = stdout_commands(root, capture)
    cases = [(args, mode) for args in commands for mode in STDOUT_MODES]
    with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 2)) as pool:
        results = list(pool.map(lambda c: run_with_stdout(c[0], data, c[1]), cases))
    problems = []
    for (args, mode), out in zip(cases, results):
        err = out.stderr.decode(errors="replace")
        lines = [x for x in err.splitlines() if not x.startswith(("warning:", "note:"))]
        if mode == "no-reader":
            ok = out.returncode == 0 and not lines
        else:
            reason = "No space left on device" if mode == "full" else "Bad file descriptor"
            expected = f"Error: cannot write to stdout: {reason}"
            if "/dev/stdout" in args:  # convert -o: an output file, named as such
                expected = {"full": f"Error: disk full while writing /dev/stdout: {reason}",
                            "closed": f"Error: cannot write /dev/stdout: {reason}"}[mode]
            ok = out.returncode == 1 and lines == [expected]
        if not ok or "Traceback" in err:
            problems.append(f"{' '.join(args)} [{mode}]: exit {out.returncode}: {err[-300:]}")
    assert not problems, "\n".join(problems)
    assert len(cases) == len(commands) * len(STDOUT_MODES) == 54


def test_closed_stdout_never_lands_in_a_data_file(stdout_data, tmp_path):
    """With descriptor 1 closed, the first file wsrec opens would become stdout: the
    import's session files must hold what they should, and the command say it failed."""
    _, _, capture = stdout_data
    data = tmp_path / "data"
    out = run_with_stdout(["import", str(capture), "--venue", "v", "--json"], data, "closed")
    assert out.returncode == 1
    session = wsrec.open_session("v", data=data)
    assert [f.payload for f in session.frames()] == [b"a"]
    from wsrec.store.verify import verify
    assert verify(session) == []


def test_commands_that_print_nothing_work_with_stdout_closed(stdout_data, tmp_path):
    _, _, capture = stdout_data
    data = tmp_path / "data"
    out = run_with_stdout(["import", str(capture), "--venue", "v"], data, "closed")
    assert out.returncode == 0, out.stderr
    assert b"imported 1 rows" in out.stderr
