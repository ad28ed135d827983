"""The code in docs/FORMAT.md runs, and DuckDB, Polars and pyarrow agree with wsrec."""

import re
from pathlib import Path

import pytest

import wsrec

from conftest import T0, hyperliquid_session, write_session

DOCS = Path(__file__).resolve().parent.parent / "docs"


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


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
    for venue in ("alpaca", "hyperliquid"):
        for folder in sorted((data / venue).iterdir()):
            for f in wsrec.open_session(folder).frames(direction="in"):
                per_venue.setdefault(venue, [0, set()])
                per_venue[venue][0] += 1
                per_venue[venue][1].add(folder.name)
                if "AAPL" in f.symbols:
                    aapl.append((f.ts, f.payload))
    return ({v: (n, len(s)) for v, (n, s) in per_venue.items()},
            [p for _, p in sorted(aapl, key=lambda x: x[0])])


def test_format_md_examples_agree(root):
    blocks = python_blocks(DOCS / "FORMAT.md")
    assert len(blocks) == 4
    duck, polars, arrow, api = ({} for _ in range(4))
    for block, ns in zip(blocks, (duck, polars, arrow, api)):
        exec(compile(block, "FORMAT.md", "exec"), ns)
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
    assert duck["latency"] == [("hyperliquid", "l2Book", 1, (T0 + 100_000_000
                                                             - 1787195067883000000) / 1e6),
                               ("hyperliquid", "trades", 1, (T0 - 1787195046105000000) / 1e6)]


def _per_connection(data):
    out = {}
    for folder in sorted(data.glob("*/*")):
        for f in wsrec.open_session(folder).frames(direction="in"):
            key = (folder.name, f.stream, f.conn)
            out[key] = out.get(key, 0) + 1
    return out
