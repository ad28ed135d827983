import os

import pyarrow as pa
import pytest

from wsrec.errors import CorruptData
from wsrec.journal import JournalWriter, journal_rows, read_journal
from wsrec.schema import columns_to_batch


def _rows(start, n):
    return [(i, 1_000 + i, 2_000 + i, 0, "main", "in", "text", ("c",), ("S",), b"p%d" % i)
            for i in range(start, start + n)]


def _write(path, sizes):
    j = JournalWriter(path)
    start = 0
    ends = []
    for n in sizes:
        j.write(columns_to_batch(list(map(list, zip(*_rows(start, n))))))
        start += n
        ends.append((os.path.getsize(path), start))
    j.close()
    return ends


def test_reads_back_every_batch(tmp_path):
    path = tmp_path / "part-000000.journal"
    _write(path, [3, 1, 5])
    table = pa.Table.from_batches(list(read_journal(path)))
    assert table.column("seq").to_pylist() == list(range(9))
    assert table.column("payload").to_pylist() == [b"p%d" % i for i in range(9)]
    assert journal_rows(path) == 9


def test_torn_tail_at_every_offset_is_dropped_cleanly(tmp_path):
    path = tmp_path / "full.journal"
    ends = _write(path, [2, 3, 4])
    data = path.read_bytes()
    torn = tmp_path / "torn.journal"
    for cut in range(len(data) + 1):
        torn.write_bytes(data[:cut])
        rows = journal_rows(torn)  # never raises
        complete = [n for size, n in ends if size <= cut]
        assert rows == (complete[-1] if complete else 0), cut


def test_trailing_zeros_are_ignored(tmp_path):
    path = tmp_path / "z.journal"
    _write(path, [4])
    with open(path, "ab") as f:
        f.write(b"\0" * 4096)  # what a filesystem can leave after power loss
    assert journal_rows(path) == 4


def test_empty_journal(tmp_path):
    path = tmp_path / "e.journal"
    path.write_bytes(b"")
    assert journal_rows(path) == 0


def test_not_a_journal(tmp_path):
    path = tmp_path / "x.journal"
    with pa.ipc.new_stream(str(path), pa.schema([("x", pa.int8())])) as w:
        w.write_batch(pa.record_batch([pa.array([1], pa.int8())], names=["x"]))
    with pytest.raises(CorruptData, match="not a wsrec journal"):
        journal_rows(path)


def test_journal_never_ends_in_parquet(tmp_path):
    j = JournalWriter(tmp_path / "part-000000.journal")
    j.close()
    assert not j.path.name.endswith(".parquet")
