"""A session at production shape: several parts, several row groups per part, read every way.

300,000 frames with small parts and row groups, then every reader must agree on the count:
``wsrec verify``, pyarrow's ``iter_batches`` on every part at a small batch size,
``replay --speed max``, ``convert``, DuckDB, Polars (lazy and streaming) and
``pyarrow.dataset``.
"""

import glob
import subprocess
import sys

import duckdb
import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import wsrec
from wsrec.store.verify import verify

FRAMES = 300_000
CHANNELS = ["trades", "l2Book", "bbo"]
COINS = ["BTC", "ETH", "SOL", "DOGE"]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    data = tmp_path_factory.mktemp("soak") / "data"
    ts, mono = 1_795_000_000_000_000_000, 10**12
    with wsrec.SessionWriter("hyperliquid", data=data, part_bytes=6 << 20,
                             row_group_rows=20_000) as w:
        w.event("open", conn=0, stream="main", url="ws://127.0.0.1/ws", ts_ns=ts, mono_ns=mono)
        for i in range(FRAMES):
            ts += 1_000 + i % 7
            mono += 1_000 + i % 7
            channel, coin = CHANNELS[i % 3], COINS[i % 4]
            payload = b'{"channel":"%s","data":[{"coin":"%s","px":"%d.5","tid":%d}]}' % (
                channel.encode(), coin.encode(), 60000 + i % 997, i)
            symbols = (coin,) if i % 5 else (coin, COINS[(i + 1) % 4])  # multi-symbol too
            w.append(payload, conn=0, stream="main", kind="text", channels=(channel,),
                     symbols=symbols, ts_ns=ts, mono_ns=mono)
        w.event("close", conn=0, stream="main", code=1000, ts_ns=ts + 1, mono_ns=mono + 1)
    return data, wsrec.open_session(w.folder)


def wsrec_cmd(*args):
    return subprocess.run([sys.executable, "-m", "wsrec", *args], capture_output=True,
                          timeout=120)


def test_shape(big):
    _, session = big
    parts = session.parts
    assert len(parts) >= 3
    for part in parts[:-1]:  # the last part holds what was left at close
        assert pq.ParquetFile(part).metadata.num_row_groups >= 2
    assert session.rows() == FRAMES + 2


def test_verify(big):
    _, session = big
    assert verify(session) == []


def test_iter_batches_on_every_part(big):
    _, session = big
    total = 0
    for part in session.parts:
        for batch in pq.ParquetFile(part).iter_batches(batch_size=1000):
            assert batch.num_rows <= 1000
            total += batch.num_rows
    assert total == FRAMES + 2


def test_replay_and_convert_counts(big, tmp_path):
    data, session = big
    out = wsrec_cmd("replay", "--data", str(data), "hyperliquid", "--speed", "max", "-q")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count(b"\n") == FRAMES
    target = tmp_path / "all.parquet"
    out = wsrec_cmd("convert", "--data", str(data), "hyperliquid", "--format", "parquet",
                    "--direction", "all", "-o", str(target), "-q")
    assert out.returncode == 0, out.stderr
    assert pq.ParquetFile(target).metadata.num_rows == FRAMES + 2
    eth = sum(b.num_rows for b in session.batches(symbols="ETH", columns=["seq"]))
    assert eth == sum(1 for i in range(FRAMES) if COINS[i % 4] == "ETH"
                      or (i % 5 == 0 and COINS[(i + 1) % 4] == "ETH"))


def test_engines_agree(big):
    data, _ = big
    pattern = f"{data}/**/*.parquet"
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{pattern}') "
                      f"WHERE dir = 'in'").fetchall()[0][0] == FRAMES
    lazy = pl.scan_parquet(pattern).filter(pl.col("dir") == "in").select(pl.len())
    assert lazy.collect().item() == FRAMES
    assert lazy.collect(engine="streaming").item() == FRAMES
    files = sorted(glob.glob(pattern, recursive=True))
    dataset = ds.dataset(files, format="parquet")
    assert dataset.count_rows(filter=ds.field("dir") == "in") == FRAMES
    per_channel = dict(duckdb.sql(f"SELECT channel, count(*) FROM read_parquet('{pattern}') "
                                  f"WHERE dir = 'in' GROUP BY channel").fetchall())
    assert per_channel == {c: FRAMES // 3 for c in CHANNELS}
