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
from wsrec.cli import cli

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
    assert table.num_rows == session.rows() and table.schema.equals(wsrec.schema.SCHEMA)
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
