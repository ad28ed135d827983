"""wsrec convert, and the convert -> import round trip."""

import csv
import io
import json

import msgpack
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from click.testing import CliRunner

import wsrec
from wsrec.cli.commands import cli

from conftest import write_session


def run(data, *args):
    return CliRunner().invoke(cli, [str(a) for a in args], env={"WSREC_DATA": str(data)})


@pytest.fixture
def session(data):
    folder, _ = write_session(data, n=300, part_bytes=4000, flush_every=40)
    return wsrec.open_session(folder)


def test_jsonl_round_trip_is_lossless(data, session, tmp_path):
    out = tmp_path / "s.jsonl"
    assert run(data, "convert", session.path, "--format", "jsonl", "--direction", "all",
               "-o", out).exit_code == 0
    result = run(data, "import", out, "--venue", "copy", "--json")
    assert result.exit_code == 0, result.output
    copy = wsrec.open_session("copy", data=data)
    fields = lambda f: (f.payload, f.ts, f.mono_ns, f.dir, f.kind, f.conn, f.channels,  # noqa
                        f.symbols)
    assert [fields(f) for f in copy.frames()] == [fields(f) for f in session.frames()]
    assert any(f.kind == "binary" for f in copy.frames())


def test_msgpack_frames_round_trip_and_become_json(data, tmp_path):
    packed = msgpack.packb([{"T": "t", "S": "X", "t": msgpack.Timestamp.from_unix_nano(5)}])
    with wsrec.SessionWriter("mp", data=data, args={"binary": "msgpack"}) as w:
        w.append(packed, kind="binary", ts_ns=10, mono_ns=10)
    out = tmp_path / "m.jsonl"
    run(data, "convert", "mp", "--format", "jsonl", "-o", out)
    line = json.loads(out.read_text())
    assert line["enc"] == "msgpack" and line["data"][0]["t"] == "1970-01-01T00:00:00.000000005Z"
    assert run(data, "import", out, "--venue", "mp2").exit_code == 0
    [f] = wsrec.open_session("mp2", data=data).frames()
    assert f.payload == packed


def test_csv_parquet_arrow_and_zst(data, session, tmp_path):
    n = len(list(session.frames(direction="in")))
    assert run(data, "convert", session.path, "--format", "csv", "-o",
               tmp_path / "s.csv").exit_code == 0
    rows = list(csv.DictReader(open(tmp_path / "s.csv", newline="")))
    assert len(rows) == n and set(rows[0]) >= {"seq", "ts", "data", "enc", "symbols"}
    run(data, "convert", session.path, "--format", "parquet", "--direction", "all",
        "-o", tmp_path / "s.parquet", "--level", "9")
    table = pq.read_table(tmp_path / "s.parquet")
    assert table.num_rows == session.rows() and table.schema.equals(wsrec.store.schema.SCHEMA)
    assert table.column("payload").to_pylist() == [f.payload for f in session.frames()]
    run(data, "convert", session.path, "--format", "arrow", "-o", tmp_path / "s.arrow")
    assert pa.ipc.open_file(tmp_path / "s.arrow").read_all().num_rows == n
    result = run(data, "convert", session.path, "--format", "jsonl.zst", "--symbols", "AAPL")
    text = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(result.stdout_bytes)).read()
    lines = [json.loads(x) for x in text.splitlines()]
    assert lines and all("AAPL" in x["symbols"] for x in lines)


def test_existing_output_is_refused_unless_forced(data, session, tmp_path):
    out = tmp_path / "keep.csv"
    out.write_text("precious")
    result = run(data, "convert", session.path, "--format", "csv", "-o", out)
    assert result.exit_code == 1 and "--force" in result.stderr
    assert out.read_text() == "precious"
    assert run(data, "convert", session.path, "--format", "csv", "-o", out,
               "--force").exit_code == 0
    assert out.read_text().startswith("seq,")
    assert not list(tmp_path.glob(".*wsrec-tmp"))


# -- where -o writes: regular files are replaced atomically, streams are written into,
# -- anything else is refused (with or without --force)

def device(tmp_path, name, minor):
    """A character device node in the test's folder (1,3: like /dev/null; 1,7: /dev/full)."""
    import os
    import stat
    path = tmp_path / name
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    return path


def one_error_line(result, fragment):
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0], lines
    assert "Traceback" not in result.output


def no_temporaries(folder):
    return not list(folder.glob(".*wsrec-tmp"))


def test_force_keeps_the_mode_of_a_replaced_file(data, session, tmp_path):
    out = tmp_path / "keep.csv"
    out.write_text("old")
    out.chmod(0o640)
    assert run(data, "convert", session.path, "--format", "csv", "-o", out, "--force",
               "-q").exit_code == 0
    assert out.read_text().startswith("seq,") and (out.stat().st_mode & 0o777) == 0o640


@pytest.mark.parametrize("force", [False, True])
def test_symlinks_lead_to_their_target(data, session, tmp_path, force):
    target = tmp_path / "real.csv"
    link = tmp_path / "link.csv"
    link.symlink_to(target)                         # dangling: the target is created
    assert run(data, "convert", session.path, "--format", "csv", "-o", link, "-q",
               *(["--force"] if force else [])).exit_code == 0
    assert link.is_symlink() and target.read_text().startswith("seq,")
    again = run(data, "convert", session.path, "--format", "csv", "-o", link, "-q",
                *(["--force"] if force else []))
    if force:                                       # replaces the target, not the link
        assert again.exit_code == 0 and link.is_symlink()
    else:
        one_error_line(again, "exists; pass --force")
    assert no_temporaries(tmp_path)


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("kind", ["directory", "link to a directory", "socket", "loop",
                                  "missing folder", "trailing slash"])
def test_refused_targets(data, session, tmp_path, kind, force):
    import socket
    target = tmp_path / "target"
    server = None
    fragment = {"directory": "is a directory: convert replaces regular files only",
                "link to a directory": "is a directory: convert replaces regular files only",
                "socket": "is a socket: convert replaces regular files only",
                "loop": "Too many levels of symbolic links",
                "missing folder": "No such file or directory",
                "trailing slash": "names a directory that does not exist"}[kind]
    if kind == "directory":
        target.mkdir()
        (target / "inside").write_text("kept")
    elif kind == "link to a directory":
        (tmp_path / "dir").mkdir()
        target.symlink_to(tmp_path / "dir")
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(target))
    elif kind == "loop":
        target.symlink_to(target)
    elif kind == "missing folder":
        target = tmp_path / "nowhere" / "out.csv"
    else:
        target = f"{tmp_path}/newdir/"
    try:
        result = run(data, "convert", session.path, "--format", "csv", "-o", target, "-q",
                     *(["--force"] if force else []))
        one_error_line(result, fragment)
    finally:
        if server is not None:
            server.close()
    if kind == "directory":
        assert (target / "inside").read_text() == "kept"
    if kind == "socket":
        import stat
        assert stat.S_ISSOCK(target.lstat().st_mode)
    assert no_temporaries(tmp_path) and not (tmp_path / "newdir").exists()


@pytest.mark.parametrize("force", [False, True])
def test_a_fifo_is_written_into(data, session, tmp_path, force):
    import os
    import stat
    import threading
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = run(data, "convert", session.path, "--format", "jsonl", "-o", fifo, "-q",
                 *(["--force"] if force else []))
    reader.join(30)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and no_temporaries(tmp_path)
    expected = run(data, "convert", session.path, "--format", "jsonl").stdout_bytes
    assert got == [expected]


@pytest.mark.parametrize("through_link", [False, True])
def test_character_devices_are_written_into(data, session, tmp_path, through_link):
    import stat
    null, full = device(tmp_path, "null", 3), device(tmp_path, "full", 7)
    if through_link:
        (tmp_path / "to-null").symlink_to(null)
        (tmp_path / "to-full").symlink_to(full)
        null, full = tmp_path / "to-null", tmp_path / "to-full"
    assert run(data, "convert", session.path, "--format", "parquet", "-o", null,
               "-q").exit_code == 0
    one_error_line(run(data, "convert", session.path, "--format", "csv", "-o", full, "-q",
                       "--force"), f"disk full while writing {full}: No space left on device")
    for name in ("null", "full"):
        assert stat.S_ISCHR((tmp_path / name).lstat().st_mode)
    assert (tmp_path / "to-full").is_symlink() if through_link else True
    assert no_temporaries(tmp_path)


def test_a_failed_conversion_leaves_the_old_file(data, session, tmp_path, monkeypatch):
    import errno
    out = tmp_path / "keep.csv"
    out.write_text("precious")

    def fail(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("wsrec.replay.convert._write_text", fail)
    one_error_line(run(data, "convert", session.path, "--format", "csv", "-o", out, "--force"),
                   "disk full while writing")
    assert out.read_text() == "precious" and no_temporaries(tmp_path)


def test_empty_output_path_is_a_usage_error(data, session):
    result = run(data, "convert", session.path, "--format", "csv", "-o", "")
    assert result.exit_code == 2 and "the output path is empty" in result.stderr


@pytest.mark.parametrize("name", ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"])
@pytest.mark.parametrize("stdout_is", ["file", "pipe"])
def test_open_descriptors_are_written_where_they_stand(data, session, tmp_path, name,
                                                         stdout_is):
    """-o /dev/stdout is -o -: no --force, no rename, the shell's redirection stands."""
    import os
    import subprocess
    import sys
    env = {**os.environ, "WSREC_DATA": str(data)}
    command = [sys.executable, "-m", "wsrec", "convert", str(session.path), "--format", "csv",
               "-q"]
    expected = subprocess.run(command, env=env, capture_output=True, timeout=60).stdout
    if stdout_is == "pipe":
        out = subprocess.run(command + ["-o", name], env=env, capture_output=True, timeout=60)
        assert out.returncode == 0 and out.stdout == expected, out.stderr
        return
    target = tmp_path / "out.csv"
    target.write_bytes(b"first line\n")
    with open(target, "ab") as f:  # >> : appended after what is there
        out = subprocess.run(command + ["-o", name], env=env, stdout=f,
                             stderr=subprocess.PIPE, timeout=60)
    assert out.returncode == 0, out.stderr
    assert target.read_bytes() == b"first line\n" + expected


# -- the text formats against the per-frame code -------------------------------------------------

def mixed_session(data, venue="mix", msgpack_mode=False):
    """A session holding every kind of row of ``text_cases``."""
    import text_cases
    args = {"binary": "msgpack"} if msgpack_mode else {}
    with wsrec.SessionWriter(venue, data=data, args=args) as w:
        for payload, kw in text_cases.session_rows():
            w.append(payload, **kw)
    return wsrec.open_session(venue, data=data)


def reference_csv(session) -> bytes:
    """CSV as the csv module writes it, row by row, with the envelope's enc and the raw
    format's data (what convert wrote before it built columns)."""
    from wsrec.store.lines import envelope, is_msgpack_session, raw_line
    mp = is_msgpack_session(session.manifest)
    text = io.StringIO()
    table = csv.writer(text)
    table.writerow(["seq", "ts", "mono_ns", "venue", "session", "conn", "stream", "dir",
                    "kind", "channel", "channels", "symbols", "enc", "data"])
    for f in session.frames(direction="all"):
        e = envelope(f, session.venue, session.id, mp)
        data = raw_line(f.payload, f.kind, mp).decode("utf-8", errors="replace")
        table.writerow([e["seq"], e["ts"], e["mono_ns"], e["venue"], e["session"],
                        "" if e["conn"] is None else e["conn"], e["stream"] or "", e["dir"],
                        e["kind"], e["channel"] or "", " ".join(e["channels"]),
                        " ".join(e["symbols"]), e["enc"], data])
    return text.getvalue().encode()


@pytest.mark.parametrize("msgpack_mode", [False, True])
def test_text_formats_are_the_per_frame_code(data, tmp_path, msgpack_mode):
    from wsrec.store.lines import encode_envelope
    s = mixed_session(data, msgpack_mode=msgpack_mode)
    frames = list(s.frames(direction="all"))
    for fmt, as_string in [("jsonl", False), ("jsonl", True), ("csv", False)]:
        out = tmp_path / f"out-{fmt}-{as_string}"
        args = ["--data-as-string"] if as_string else []
        result = run(data, "convert", s.path, "--format", fmt, "--direction", "all", "-o", out,
                     *args)
        assert result.exit_code == 0, result.output
        if fmt == "csv":
            assert out.read_bytes() == reference_csv(s)
        else:
            assert out.read_bytes() == b"".join(
                encode_envelope(f, s.venue, s.id, msgpack_mode, as_string) + b"\n"
                for f in frames)


def test_csv_fields_are_quoted_as_the_csv_module_quotes(data):
    """Every ASCII character, alone and among others, in every text column."""
    with wsrec.SessionWriter("q", data=data) as w:
        for i in range(128):
            c = chr(i)
            w.append(f"a{c}b".encode(), kind=f"k{c}", stream=f"s{c}", channels=(f"c{c}",),
                     symbols=(c, "x"), ts_ns=i, mono_ns=i)
            w.append(c.encode(), kind="text", ts_ns=i, mono_ns=i)
    s = wsrec.open_session("q", data=data)
    out = io.BytesIO()
    from wsrec.replay.convert import convert
    from wsrec.store.filters import Filters
    convert([s], Filters(directions=None), "csv", None, stdout=out)
    assert out.getvalue() == reference_csv(s)


def test_jsonl_data_as_string_round_trips_and_polars_reads_it(data, tmp_path):
    s = mixed_session(data)
    out = tmp_path / "s.jsonl"
    assert run(data, "convert", s.path, "--format", "jsonl", "--data-as-string",
               "--direction", "all", "-o", out).exit_code == 0
    assert all(isinstance(json.loads(line)["data"], str) for line in out.open())
    result = run(data, "import", out, "--venue", "copy", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["bad_lines"] == []
    fields = lambda f: (f.payload, f.ts, f.mono_ns, f.dir, f.kind, f.conn, f.stream,  # noqa
                        f.channels, f.symbols)
    copy = wsrec.open_session("copy", data=data)
    assert [fields(f) for f in copy.frames(direction="all")] == \
        [fields(f) for f in s.frames(direction="all")]
    polars = pytest.importorskip("polars")
    frame = polars.read_ndjson(out)
    assert frame.height == s.rows() and frame.schema["data"] == polars.String


def test_data_as_string_is_for_jsonl(data, session, tmp_path):
    result = run(data, "convert", session.path, "--format", "csv", "--data-as-string",
                 "-o", tmp_path / "x.csv")
    assert result.exit_code == 2 and "jsonl" in result.stderr


def test_zst_holds_the_same_lines(data, session, tmp_path):
    plain, packed = tmp_path / "s.jsonl", tmp_path / "s.jsonl.zst"
    for fmt, out in (("jsonl", plain), ("jsonl.zst", packed)):
        assert run(data, "convert", session.path, "--format", fmt, "-o", out).exit_code == 0
    assert zstandard.ZstdDecompressor().decompressobj().decompress(packed.read_bytes()) == \
        plain.read_bytes()


def test_csv_lines_of_every_kind_of_row():
    """_csv_lines, the column-at-a-time CSV, against the csv module row by row, on rows of
    every kind (times before 1970, none, lists empty or missing, nulls)."""
    import types
    import text_cases
    from wsrec.replay.convert import _csv_lines
    from wsrec.store.lines import envelope, raw_line
    items = text_cases.rows()
    items[3] = dict(items[3], ts=None)
    for mp in (False, True):
        session = types.SimpleNamespace(venue="v,e", id='s"1',
                                        manifest={"args": {"binary": "msgpack"} if mp else {}})
        text = io.StringIO()
        table = csv.writer(text)
        for r in items:
            e = envelope(text_cases.frame(r), session.venue, session.id, mp)
            table.writerow([r["seq"], e["ts"], r["mono_ns"], session.venue, session.id,
                            r["conn"], r["stream"], r["dir"], r["kind"], r["channel"],
                            " ".join(r["channels"] or ()), " ".join(r["symbols"] or ()),
                            e["enc"], raw_line(r["payload"], r["kind"], mp).decode(
                                "utf-8", errors="replace")])
        block, rows = _csv_lines((text_cases.batch(items), session))
        assert rows == len(items) and bytes(block) == text.getvalue().encode()
