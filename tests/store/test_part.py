import pyarrow as pa

from wsrec.store._part import PartSpan, PartWriter, part_index
from wsrec.store.repair import _part_entry
from wsrec.store.schema import columns_to_batch


def _batch(first, n):
    return columns_to_batch([list(range(first, first + n)),
                             [1_795_000_000_000_000_000 + 10 * (n - i) for i in range(n)],
                             list(range(first, first + n)), [0] * n, ["s"] * n, ["in"] * n,
                             ["text"] * n, [()] * n, [()] * n,
                             [b"x" * (i % 7) for i in range(n)]])


def test_the_entry_of_a_written_part_is_the_entry_computed_from_its_file(tmp_path):
    part = PartWriter(tmp_path, 3, "v", "s", row_group_rows=40)
    for first in (0, 50, 100):
        part.add(_batch(first, 50))
    written = part.finish()
    found, ids = _part_entry(tmp_path / "part-000003.parquet")
    assert written == found and ids == ("v", "s")
    assert written["rows"] == 150 and written["seq_first"] == 0 and written["seq_last"] == 149
    assert written["start"] == "2026-11-18T11:06:40.000000010Z"  # the smallest ts, not the first


def test_span_of_rows_in_pieces():
    span = PartSpan()
    span.add(_batch(5, 0))  # nothing
    span.add(pa.Table.from_batches([_batch(5, 2)]))
    span.add(_batch(7, 3))
    entry = span.entry("part-000001.parquet", rows=5, raw_bytes=9, size=1, sha256="0")
    assert (entry["seq_first"], entry["seq_last"], entry["mono_first"], entry["mono_last"]) \
        == (5, 9, 5, 9)
    assert part_index(entry["file"]) == (1, "parquet")
