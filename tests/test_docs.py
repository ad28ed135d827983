"""The code in docs/FORMAT.md runs, and DuckDB, Polars and pyarrow agree with wsrec."""

import re
from pathlib import Path

import pytest

import wsrec

from conftest import T0, hyperliquid_session, write_session

DOCS = Path(__file__).resolve().parent.parent / "docs"


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def sessions(data):
    """Every session folder under a root (the venue=/date= layout), in order."""
    return sorted(data.glob("venue=*/date=*/*"))


def day_of(data) -> str:
    """The date=… folder the sessions were filed under (today's)."""
    [day] = {folder.parent.name[len("date="):] for folder in sessions(data)}
    return day


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "wsrec-data"
    write_session(data, n=400, venue="alpaca", seed=1, part_bytes=3_000, flush_every=30)
    write_session(data, n=250, venue="alpaca", seed=2)
    write_session(data, n=300, venue="hyperliquid", seed=3)
    hyperliquid_session(data)   # literal venue frames, with exchange times
    return data


def _expected(data):
    per_venue, aapl = {}, []
    for folder in sessions(data):
        session = wsrec.open_session(folder)
        for f in session.frames(direction="in"):
            per_venue.setdefault(session.venue, [0, set()])
            per_venue[session.venue][0] += 1
            per_venue[session.venue][1].add(folder.name)
            if "AAPL" in f.symbols:
                aapl.append((f.ts, f.payload))
    return ({v: (n, len(s)) for v, (n, s) in per_venue.items()},
            [p for _, p in sorted(aapl, key=lambda x: x[0])])


def test_format_md_examples_agree(root):
    blocks = python_blocks(DOCS / "FORMAT.md")
    assert len(blocks) == 4
    day = day_of(root)
    duck, polars, arrow, api = ({} for _ in range(4))
    for block, ns in zip(blocks, (duck, polars, arrow, api)):
        exec(compile(block.replace("2026-11-22", day), "FORMAT.md", "exec"), ns)
    per_venue, aapl = _expected(root)
    assert {v: (n, s) for v, n, s in duck["per_venue"]} == per_venue
    rows = duck["aapl"]
    assert [ts for ts, _ in rows] == sorted(ts for ts, _ in rows)
    assert [bytes(m) for _, m in rows] == aapl
    got = polars["per_venue"].to_dicts()
    assert {r["venue"]: (r["frames"], r["sessions"]) for r in got} == per_venue
    assert polars["aapl"].height == len(aapl)
    counts = {r["venue"]: r["seq_count"] for r in arrow["per_venue"].to_pylist()}
    assert counts == {v: n for v, (n, _) in per_venue.items()}
    expected = _per_connection(root)
    assert {(s, st, c): n for s, st, c, n in duck["per_connection"]} == expected
    assert {(r["session"], r["stream"], r["conn"]): r["len"]
            for r in polars["per_connection"].to_dicts()} == expected
    hours, per_symbol = _alpaca(root)
    assert [(int(h.timestamp()), n) for h, n in duck["alpaca_hours"]] == hours
    assert [(int(r["hour"].timestamp()), r["len"])
            for r in polars["alpaca_hours"].to_dicts()] == hours
    assert duck["trades_per_symbol"] == per_symbol and per_symbol
    _pruned(root, duck, polars, day)
    assert duck["latency"] == [("hyperliquid", "l2Book", 1, (T0 + 100_000_000
                                                             - 1787195067883000000) / 1e6),
                               ("hyperliquid", "trades", 1, (T0 - 1787195046105000000) / 1e6)]


def _per_connection(data):
    out = {}
    for folder in sessions(data):
        for f in wsrec.open_session(folder).frames(direction="in"):
            key = (folder.name, f.stream, f.conn)
            out[key] = out.get(key, 0) + 1
    return out


def _alpaca(data):
    """What the one-venue queries must give: alpaca's inbound frames per hour (epoch s),
    and its trades frames per symbol."""
    hours, symbols = {}, {}
    for folder in sessions(data):
        session = wsrec.open_session(folder)
        if session.venue != "alpaca":
            continue
        for f in session.frames(direction="all"):
            if f.dir == "in":
                hour = f.ts // 3_600_000_000_000 * 3600
                hours[hour] = hours.get(hour, 0) + 1
            if "trades" in f.channels and f.symbol is not None:
                symbols[f.symbol] = symbols.get(f.symbol, 0) + 1
    return sorted(hours.items()), sorted(symbols.items())


def _pruned(data, duck, polars, day):
    """The one-venue queries read only that venue's files: with a file that is no Parquet
    in another venue's date folder, they still run, and a query over everything fails."""
    import duckdb
    import polars as pl
    other = next(f for f in sessions(data) if "venue=hyperliquid" in str(f))
    (other / "part-999999.parquet").write_bytes(b"not parquet")
    query = f"""
        SELECT count(*) FROM read_parquet('{data}/**/*.parquet', hive_partitioning = true)
        WHERE venue = 'alpaca' AND date = DATE '{day}'"""
    assert duckdb.sql(query).fetchall()[0][0] > 0
    with pytest.raises(duckdb.Error):
        duckdb.sql(f"SELECT count(*) FROM read_parquet('{data}/**/*.parquet')").fetchall()
    frames = pl.scan_parquet(f"{data}/**/*.parquet", hive_partitioning=True)
    alpaca = frames.filter((pl.col("venue") == "alpaca")
                           & (pl.col("date") == pl.lit(day).str.to_date()))
    assert alpaca.select(pl.len()).collect().item() > 0
    (other / "part-999999.parquet").unlink()
