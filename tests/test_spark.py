"""Spark reads wsrec parts: the code in docs/FORMAT.md, on sessions with many row groups.

Runs where PySpark and a Java runtime are installed (``.ci/run`` installs both); skipped
elsewhere. Spark binds to 127.0.0.1 only and runs no UI.
"""

import os
import re
import shutil
from pathlib import Path

import pytest

import wsrec

from conftest import write_session

if os.environ.get("WSREC_REQUIRE_SPARK"):  # .ci/run: a skip would hide a broken setup
    import pyspark  # noqa: F401
    assert shutil.which("java"), "no Java runtime"
pyspark = pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("no Java runtime", allow_module_level=True)

pytestmark = pytest.mark.timeout(300)
DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture(scope="module")
def local_only():
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    from pyspark.sql import SparkSession
    builder = (SparkSession.builder.master("local[2]")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "2"))
    session = builder.getOrCreate()  # the doc's getOrCreate() reuses this one
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def test_format_md_spark_example(local_only, tmp_path):
    data = tmp_path / "wsrec-data"
    write_session(data, n=3000, venue="alpaca", seed=1, row_group_rows=500, part_bytes=40_000)
    write_session(data, n=700, venue="hyperliquid", seed=3, row_group_rows=100)
    [block] = re.findall(r"```python spark\n(.*?)```", (DOCS / "FORMAT.md").read_text(),
                         flags=re.S)
    folders = sorted(data.glob("venue=*/date=*/*"))
    [day] = {folder.parent.name[len("date="):] for folder in folders}
    # the JVM keeps the directory it started in: give the root as an absolute path
    block = block.replace('root = "wsrec-data"', f'root = "{data}"', 1)
    ns: dict = {}
    exec(compile(block.replace("2026-11-22", day), "FORMAT.md", "exec"), ns)
    expected_hours, expected_aapl, per_symbol = {}, 0, {}
    for folder in folders:
        session = wsrec.open_session(folder)
        for f in session.frames(direction="all"):
            if session.venue == "alpaca" and "trades" in f.channels and f.symbol is not None:
                per_symbol[f.symbol] = per_symbol.get(f.symbol, 0) + 1
            if f.dir != "in":
                continue
            key = (session.venue, f.ts // 3_600_000_000_000 * 3600)
            expected_hours[key] = expected_hours.get(key, 0) + 1
            expected_aapl += "AAPL" in f.symbols
    got = {(r.venue, int(r.hour.timestamp())): r.frames for r in ns["per_venue_hour"]}
    assert got == expected_hours
    assert ns["aapl"] == expected_aapl
    assert [(r.symbol, r.frames) for r in ns["trades_per_symbol"]] == sorted(per_symbol.items())
    plan = ns["frames"].where("venue = 'alpaca' AND date = DATE'%s'" % day)._jdf \
        .queryExecution().executedPlan().toString()
    assert "PartitionFilters" in plan and "alpaca" in plan   # pruned by the folders
    # exact nanoseconds, payload bytes, nullable conn, lists
    spark_rows = {(r.session, r.seq): r for r in ns["frames"].collect()}
    for folder in folders:
        for f in wsrec.open_session(folder).frames(direction="all"):
            r = spark_rows[(folder.name, f.seq)]
            assert (r.ts, bytes(r.payload), r.conn, r.stream, list(r.symbols)) == \
                (f.ts, f.payload, f.conn, f.stream, f.symbols)
