"""Normalized rows out: write_normalized in every format, replay --normalize paced."""

import io
import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import zstandard
from click.testing import CliRunner

from conftest import T0, hyperliquid_session
from wsrec.cli import cli
from wsrec.replay.normalized import json_lines, write_normalized
from wsrec.venues.normalize import schema


def test_json_lines_types_and_nulls(data):
    s = hyperliquid_session(data)
    batch = next(iter(s.normalized("book_snapshots:2:0")))
    row = json.loads(json_lines(batch)[0])
    assert row == {"local_ts": "2026-08-20T03:04:06.300000000Z",
                   "exch_ts": "2026-08-20T03:04:27.883000000Z", "venue": "hyperliquid",
                   "symbol": "BTC", "bid_0_px": 69172.0, "bid_0_sz": 1.21098,
                   "bid_1_px": None, "bid_1_sz": None, "ask_0_px": 69173.0,
                   "ask_0_sz": 8.45682, "ask_1_px": None, "ask_1_sz": None, "seq": 3}


@pytest.mark.parametrize("fmt", ["parquet", "arrow", "csv", "jsonl", "jsonl.zst"])
def test_every_format_holds_the_same_rows(data, fmt):
    s = hyperliquid_session(data)
    sink = io.BytesIO()
    assert write_normalized(s.normalized("trades"), fmt, sink) == 1
    raw = sink.getvalue()
    if fmt == "parquet":
        table = pq.read_table(io.BytesIO(raw))
        assert table.schema.equals(schema("trades"))
    elif fmt == "arrow":
        table = pa.ipc.open_file(io.BytesIO(raw)).read_all()
        assert table.schema.equals(schema("trades"))
    elif fmt == "csv":
        table = pacsv.read_csv(io.BytesIO(raw))
    else:
        if fmt == "jsonl.zst":
            raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
        table = pa.Table.from_pylist([json.loads(line) for line in raw.splitlines()])
    assert table.column("price").to_pylist() == [69170.0]
    assert table.column("id").cast(pa.string()).to_pylist() == ["456615105517601"]


def run(data, *args):
    return CliRunner().invoke(cli, [*args, "--data", str(data)], catch_exceptions=False)


def test_replay_normalize_to_stdout_and_unmapped_report(data):
    hyperliquid_session(data)
    r = run(data, "replay", "hyperliquid", "--normalize", "trades", "--speed", "max")
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [(x["symbol"], x["side"], x["price"]) for x in lines] == [("BTC", "sell", 69170.0)]
    assert "1 of 2 frames could not be mapped to trades" in r.stderr


@pytest.mark.timeout(60)
def test_replay_normalize_is_paced_by_receive_time(data):
    import time

    import wsrec
    from conftest import TRADE
    with wsrec.SessionWriter("hyperliquid", data=data) as w:
        for i in range(2):   # two trades 600 ms apart
            w.append(TRADE, kind="text", conn=1, channels=("trades",), symbols=("BTC",),
                     ts_ns=T0 + i * 600_000_000, mono_ns=i * 600_000_000)
    began = time.monotonic()
    r = run(data, "replay", "hyperliquid", "--normalize", "trades", "--speed", "1")
    paced = time.monotonic() - began
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 2
    assert paced >= 0.55
    r = run(data, "replay", "hyperliquid", "--normalize", "trades", "--speed", "2", "--stats")
    assert r.exit_code == 0 and "frames sent: 2" in r.stderr


def test_replay_normalize_usage_errors(data):
    hyperliquid_session(data)
    r = run(data, "replay", "hyperliquid", "--normalize", "candles")
    assert r.exit_code == 2 and "unknown table 'candles'" in r.output
    r = run(data, "replay", "hyperliquid", "--normalize", "blocks")
    assert r.exit_code == 2 and "no blocks" in r.output
    r = run(data, "replay", "hyperliquid", "--normalize", "trades", "--to", "tcp://127.0.0.1:0")
    assert r.exit_code == 2 and "--normalize plays rows to stdout" in r.output
    assert T0


def test_convert_normalize_writes_a_file_and_reports(data, tmp_path):
    hyperliquid_session(data)
    out = tmp_path / "trades.parquet"
    r = run(data, "convert", "hyperliquid", "--normalize", "trades", "--format", "parquet",
            "-o", str(out))
    assert r.exit_code == 0, r.output
    assert "wrote 1 trades rows" in r.stderr
    assert "1 of 2 frames could not be mapped to trades" in r.stderr
    table = pq.read_table(out)
    assert table.schema.equals(schema("trades")) and table.column("side").to_pylist() == ["sell"]
    r = run(data, "convert", "hyperliquid", "--normalize", "book_snapshots:1:1s",
            "--format", "csv")
    assert r.exit_code == 0 and r.stdout.splitlines()[0].startswith('"local_ts","exch_ts"')
    r = run(data, "convert", "hyperliquid", "--normalize", "trades", "--format", "jsonl",
            "--data-as-string")
    assert r.exit_code == 2 and "data as a string" in r.output
    r = run(data, "convert", "hyperliquid", "--normalize", "trades", "--format", "csv",
            "--symbols", "ETH")
    assert r.exit_code == 0 and "no frame of the channels that carry trades" in r.stderr
    r = run(data, "convert", "hyperliquid", "--normalize", "trades", "--format", "csv",
            "--end", "2026-08-20T03:04:06Z")
    assert r.exit_code == 0 and "no frame of the channels" in r.stderr


def test_json_lines_escape_strings_and_keep_floats_floats():
    from wsrec.venues.normalize import schema as schema_of
    s = schema_of("actions")
    batch = pa.RecordBatch.from_pylist([
        {"local_ts": 1, "exch_ts": None, "venue": "dfuse", "height": 7, "block_id": "b",
         "tx_id": 'say "hi"\n\\', "type": "transfer", "account": "eosio.token",
         "data": '{"memo":"é"}', "seq": 3}], schema=s)
    line = json_lines(batch)[0]
    assert line.endswith(b"}\n")
    row = json.loads(line)
    assert row["tx_id"] == 'say "hi"\n\\' and row["data"] == '{"memo":"é"}'
    assert row["exch_ts"] is None and row["local_ts"] == "1970-01-01T00:00:00.000000001Z"
    quotes = pa.RecordBatch.from_pylist([
        {"local_ts": 0, "exch_ts": 0, "venue": "v", "symbol": "X", "bid_px": 69170.0,
         "bid_sz": 1e-05, "ask_px": None, "ask_sz": -0.0, "seq": 1}], schema=schema_of("quotes"))
    text = json_lines(quotes)[0].decode()
    assert '"bid_px":69170.0' in text and '"ask_px":null' in text
    back = json.loads(text)
    assert back["bid_sz"] == 1e-05 and isinstance(back["bid_px"], float)
