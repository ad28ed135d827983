import os
import struct
import zlib

import pyarrow as pa
import pytest

from wsrec.store import _journal as journal_module
from wsrec.errors import CorruptData
from wsrec.store._journal import (MAGIC, MARKER, JournalWriter, journal_rows, read_journal,
                                  scan_journal)
from wsrec.store.schema import JOURNAL_SCHEMA, columns_to_batch


def _rows(start, n):
    return [(i, 1_000 + i, 2_000 + i, 0, "main", "in", "text", ("c",), ("S",), b"p%d" % i)
            for i in range(start, start + n)]


def _batch(start, n):
    return columns_to_batch(list(map(list, zip(*_rows(start, n)))))


def _write(path, sizes):
    """A journal of one record per size; returns [(file size after it, rows so far)]."""
    j = JournalWriter(path)
    start = 0
    ends = []
    for n in sizes:
        j.write(_batch(start, n))
        start += n
        ends.append((os.path.getsize(path), start))
    j.close()
    return ends


def _seqs(batches):
    return [s for b in batches for s in b.column("seq").to_pylist()]


def test_reads_back_every_batch(tmp_path):
    path = tmp_path / "part-000000.journal"
    _write(path, [3, 1, 5])
    table = pa.Table.from_batches(list(read_journal(path)))
    assert table.column("seq").to_pylist() == list(range(9))
    assert table.column("payload").to_pylist() == [b"p%d" % i for i in range(9)]
    assert journal_rows(path) == 9
    scan = scan_journal(path, first_seq=0)
    assert scan.ok and scan.rows == 9 and scan.torn_tail_bytes == 0
    assert [(r.rows, r.seq_first, r.seq_last) for r in scan.records] == \
        [(3, 0, 2), (1, 3, 3), (5, 4, 8)]
    assert _seqs(scan.batches) == list(range(9))


def test_record_layout(tmp_path):
    """The documented framing: magic, then marker, u32 length, u32 crc32, IPC stream body."""
    path = tmp_path / "part-000000.journal"
    _write(path, [2, 3])
    data = path.read_bytes()
    assert data[:8] == MAGIC == b"WSRECJ2\n"
    pos, seqs = 8, []
    while pos < len(data):
        marker, length, crc = struct.unpack_from("<4sII", data, pos)
        body = data[pos + 12:pos + 12 + length]
        assert marker == MARKER and len(body) == length and zlib.crc32(body) == crc
        reader = pa.ipc.open_stream(body)  # one self-contained stream: schema + batch
        assert reader.schema.equals(JOURNAL_SCHEMA)
        batches = list(reader)
        assert len(batches) == 1
        seqs += batches[0].column("seq").to_pylist()
        pos += 12 + length
    assert pos == len(data) and seqs == list(range(5))


def test_torn_tail_at_every_offset_is_dropped_cleanly(tmp_path):
    path = tmp_path / "full.journal"
    ends = _write(path, [2, 3, 4])
    data = path.read_bytes()
    torn = tmp_path / "torn.journal"
    cases = 0
    for cut in range(len(data) + 1):
        torn.write_bytes(data[:cut])
        complete = [(size, n) for size, n in ends if size <= cut]
        scan = scan_journal(torn, first_seq=0)  # never raises
        assert scan.rows == (complete[-1][1] if complete else 0), cut
        assert scan.damaged == [], cut  # a torn tail is not damage
        intact_end = complete[-1][0] if complete else (len(MAGIC) if cut >= len(MAGIC) else 0)
        assert scan.torn_tail_bytes == cut - intact_end, cut
        if cut >= ends[-2][0]:  # every offset of the last record: read_journal too
            assert journal_rows(torn) == scan.rows, cut
        cases += 1
    assert cases == len(data) + 1


def test_trailing_zeros_are_ignored(tmp_path):
    path = tmp_path / "z.journal"
    _write(path, [4])
    with open(path, "ab") as f:
        f.write(b"\0" * 4096)  # what a filesystem can leave after power loss
    assert journal_rows(path) == 4
    scan = scan_journal(path)
    assert scan.ok and scan.torn_tail_bytes == 4096


def test_zero_filled_last_record_is_a_torn_tail(tmp_path):
    """Power loss can leave the last record's blocks as zeros within its length."""
    path = tmp_path / "z.journal"
    ends = _write(path, [4, 5])
    data = bytearray(path.read_bytes())
    start = ends[0][0]
    data[start + 40:] = bytes(len(data) - start - 40)
    path.write_bytes(bytes(data) + bytes(100))
    scan = scan_journal(path, first_seq=0)
    assert scan.ok and scan.rows == 4 and scan.torn_tail_bytes == len(data) + 100 - start


def test_torn_record_after_a_damaged_one(tmp_path):
    path = tmp_path / "t.journal"
    ends = _write(path, [2, 3, 4, 5])
    data = bytearray(path.read_bytes())
    data[ends[1][0] + 100] ^= 0xFF  # the third record's body
    path.write_bytes(bytes(data[:ends[2][0] + 30]))  # the fourth cut short
    scan = scan_journal(path, first_seq=0)
    assert _seqs(scan.batches) == list(range(5))
    assert [(d.offset, d.length) for d in scan.damaged] == [(ends[1][0], ends[2][0] - ends[1][0])]
    assert scan.torn_tail_bytes == 30
    assert scan.damaged[0].rows_lost is None and scan.damaged[0].seq_first == 5


def test_empty_and_header_only_journals(tmp_path):
    path = tmp_path / "e.journal"
    path.write_bytes(b"")
    assert journal_rows(path) == 0 and scan_journal(path).empty
    JournalWriter(tmp_path / "h.journal").close()
    scan = scan_journal(tmp_path / "h.journal")
    assert scan.empty and scan.size == len(MAGIC) and scan.torn_tail_bytes == 0
    for cut in range(len(MAGIC)):  # torn while the magic was written
        path.write_bytes(MAGIC[:cut])
        scan = scan_journal(path)
        assert scan.empty and scan.torn_tail_bytes == cut


def test_damage_in_the_middle_keeps_both_sides_and_counts_the_rows(tmp_path):
    path = tmp_path / "d.journal"
    ends = _write(path, [2, 3, 4])
    data = bytearray(path.read_bytes())
    data[(ends[0][0] + ends[1][0]) // 2] ^= 0x10  # the second record's body
    path.write_bytes(bytes(data))
    met = []
    assert _seqs(read_journal(path, on_damage=met.append)) == [0, 1, 5, 6, 7, 8]
    assert [(d.offset, d.length) for d in met] == [(ends[0][0], ends[1][0] - ends[0][0])]
    scan = scan_journal(path)
    assert [tuple(d) for d in scan.damaged] == \
        [(ends[0][0], ends[1][0] - ends[0][0], 3, 2, 4)]
    assert [r.after_damage for r in scan.records] == [False, True]
    assert scan.rows == 6 and scan.rows_lost == 3


def test_damage_at_the_start_needs_the_first_seq_to_count(tmp_path):
    path = tmp_path / "d.journal"
    ends = _write(path, [2, 3])
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    assert scan_journal(path).damaged[0].rows_lost is None
    damage = scan_journal(path, first_seq=0).damaged[0]
    assert (damage.offset, damage.length, damage.rows_lost) == (8, ends[0][0] - 8, 2)


def test_a_damaged_header_field_loses_no_rows(tmp_path):
    path = tmp_path / "d.journal"
    ends = _write(path, [2, 3, 4])
    clean = path.read_bytes()
    for offset, field in ((0, "magic"), (ends[0][0], "marker"), (ends[0][0] + 5, "length"),
                          (ends[1][0] + 4, "length of the last")):
        data = bytearray(clean)
        data[offset] ^= 0x80
        path.write_bytes(bytes(data))
        scan = scan_journal(path, first_seq=0)
        assert _seqs(scan.batches) == list(range(9)), field
        assert len(scan.damaged) == 1 and scan.damaged[0].rows_lost == 0, field
        assert scan.damaged[0].offset <= offset < sum(scan.damaged[0][:2]), field


def test_garbage_between_records_is_skipped(tmp_path):
    path = tmp_path / "g.journal"
    ends = _write(path, [2, 3])
    data = path.read_bytes()
    junk = b"junk" * 50 + MARKER + b"\xff" * 20
    path.write_bytes(data[:ends[0][0]] + junk + data[ends[0][0]:])
    scan = scan_journal(path, first_seq=0)
    assert _seqs(scan.batches) == list(range(5))
    assert [(d.offset, d.length, d.rows_lost) for d in scan.damaged] == \
        [(ends[0][0], len(junk), 0)]


def test_not_a_journal_is_damage_not_an_empty_journal(tmp_path):
    path = tmp_path / "x.journal"
    with pa.ipc.new_stream(str(path), pa.schema([("x", pa.int8())])) as w:
        w.write_batch(pa.record_batch([pa.array([1], pa.int8())], names=["x"]))
    assert journal_rows(path) == 0
    scan = scan_journal(path)
    assert [(d.offset, d.length) for d in scan.damaged] == [(0, path.stat().st_size)]
    assert not scan.empty


def test_a_record_with_a_valid_crc_but_the_wrong_schema_is_damage(tmp_path):
    path = tmp_path / "w.journal"
    other = pa.record_batch([pa.array([1], pa.int8())], names=["x"])
    body = journal_module._encode(other, other.schema).to_pybytes()
    path.write_bytes(MAGIC + struct.pack("<4sII", MARKER, len(body), zlib.crc32(body)) + body)
    scan = scan_journal(path)
    assert scan.rows == 0 and [d.offset for d in scan.damaged] == [8]


def test_a_body_that_fails_validation_is_damage_not_a_crash(tmp_path):
    """A record whose CRC is right but whose Arrow data is invalid (offsets that go
    backwards, text that is not UTF-8): refused by validate(full=True), never handed on."""
    path = tmp_path / "v.journal"
    good = _batch(2, 3)
    offsets = pa.array([0, 2, 1, 6], pa.int32()).buffers()[1]  # not monotonic
    bad_payload = pa.Array.from_buffers(pa.binary(), 3, [None, offsets, pa.py_buffer(b"abcdef")])
    bad_dir = pa.Array.from_buffers(pa.string(), 3, [  # not UTF-8
        None, pa.array([0, 2, 3, 5], pa.int32()).buffers()[1], pa.py_buffer(b"in\xffin")])
    arrays = [bad_payload if name == "payload" else bad_dir if name == "dir"
              else good.column(name) for name in JOURNAL_SCHEMA.names]
    bad = pa.RecordBatch.from_arrays(arrays, schema=JOURNAL_SCHEMA)
    body = journal_module._encode(bad).to_pybytes()
    j = JournalWriter(path)
    j.write(_batch(0, 2))
    j.close()
    with open(path, "ab") as f:
        f.write(struct.pack("<4sII", MARKER, len(body), zlib.crc32(body)) + body)
    j = JournalWriter(tmp_path / "tail.journal")
    j.write(_batch(5, 2))
    j.close()
    with open(path, "ab") as f:
        f.write((tmp_path / "tail.journal").read_bytes()[len(MAGIC):])
    scan = scan_journal(path, first_seq=0)
    assert _seqs(scan.batches) == [0, 1, 5, 6]
    assert [d.rows_lost for d in scan.damaged] == [3]


def test_oversized_bodies_are_split_into_records(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "_MAX_BODY", 3_000)
    path = tmp_path / "big.journal"
    j = JournalWriter(path)
    j.write(_batch(0, 40))
    j.close()
    scan = scan_journal(path, first_seq=0)
    assert len(scan.records) > 1 and scan.ok
    assert _seqs(scan.batches) == list(range(40))


def test_format_1_journals_are_read_unframed(tmp_path):
    schema = pa.schema([("seq", pa.uint64()), ("payload", pa.binary())])
    path = tmp_path / "v1.journal"
    with pa.ipc.new_stream(str(path), schema) as w:
        for i in range(3):
            w.write_batch(pa.record_batch([pa.array([i], pa.uint64()), pa.array([b"x"])],
                                          schema=schema))
    data = path.read_bytes()
    path.write_bytes(data[:-20])  # torn: no end of stream, last batch cut
    assert [b.column("seq")[0].as_py() for b in read_journal(path, schema)] == [0, 1]
    with pytest.raises(CorruptData, match="not a wsrec journal"):
        list(read_journal(path, pa.schema([("x", pa.int8())])))


def test_missing_journal_is_wsrecs_error(tmp_path):
    with pytest.raises(CorruptData, match="cannot open journal"):
        scan_journal(tmp_path / "nope.journal")
    with pytest.raises(CorruptData, match="cannot open journal"):
        list(read_journal(tmp_path / "nope.journal"))


def test_journal_never_ends_in_parquet(tmp_path):
    j = JournalWriter(tmp_path / "part-000000.journal")
    j.close()
    assert not j.path.name.endswith(".parquet")
