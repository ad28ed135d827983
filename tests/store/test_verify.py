import pyarrow.parquet as pq

import wsrec
from wsrec.store.manifest import load_manifest, save_manifest
from wsrec.store._part import file_sha256
from wsrec.store.verify import verify

from conftest import write_session


def _session(data, **kw):
    folder, _ = write_session(data, n=400, part_bytes=4_000, flush_every=40, **kw)
    return folder


def test_sound_session_has_no_problems(data):
    folder = _session(data)
    assert len(load_manifest(folder)["parts"]) > 2
    assert verify(wsrec.open_session(folder)) == []


def test_bit_rot_is_caught_by_checksum(data):
    folder = _session(data)
    part = folder / "part-000001.parquet"
    raw = bytearray(part.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    part.write_bytes(bytes(raw))
    problems = verify(wsrec.open_session(folder))
    assert any("part-000001.parquet: checksum mismatch" in p for p in problems)


def test_truncated_part(data):
    folder = _session(data)
    part = folder / "part-000000.parquet"
    part.write_bytes(part.read_bytes()[:-100])
    problems = verify(wsrec.open_session(folder))
    assert any("truncated or modified" in p for p in problems)
    assert any("not a readable Parquet file" in p for p in problems)


def test_missing_part(data):
    folder = _session(data)
    (folder / "part-000001.parquet").unlink()
    problems = verify(wsrec.open_session(folder))
    assert any("part-000001.parquet: listed in the manifest but missing" in p for p in problems)
    assert any("seq jumps" in p for p in problems)


def test_row_count_mismatch(data):
    folder = _session(data)
    m = load_manifest(folder)
    m["parts"][0]["rows"] += 1
    save_manifest(folder, m)
    problems = verify(wsrec.open_session(folder))
    assert any("rows, the manifest says" in p for p in problems)


def test_seq_gap_and_mono_backwards(data):
    folder = _session(data)
    table = pq.read_table(folder / "part-000000.parquet")
    seq = table.column("seq").to_pylist()
    seq[5] += 10
    mono = table.column("mono_ns").to_pylist()
    mono[7] = 0
    import pyarrow as pa
    table = table.set_column(2, "seq", pa.array(seq, pa.int64()))
    table = table.set_column(1, "mono_ns", pa.array(mono, pa.int64()))
    path = folder / "part-000000.parquet"
    pq.write_table(table, path)
    m = load_manifest(folder)
    m["parts"][0].update(sha256=file_sha256(path), bytes=path.stat().st_size)
    save_manifest(folder, m)
    problems = verify(wsrec.open_session(folder))
    assert "part-000000.parquet: seq jumps from 4 to 15" in problems
    assert any("mono_ns goes backwards at seq" in p for p in problems)


def test_live_session_is_sound(data):
    w = wsrec.SessionWriter("v", data=data, flush_interval=60)
    try:
        w.append(b"x")
        w.flush()
        s = wsrec.open_session(w.folder)
        assert s.live and verify(s) == []
    finally:
        w.close()


def test_each_damaged_journal_range_is_one_line(data):
    from wsrec.store._journal import scan_journal
    w = wsrec.SessionWriter("v", data=data, flush_interval=60)
    try:
        for i in range(4):
            for j in range(5):
                w.append(b"x%d" % (i * 5 + j))
            w.flush()
        journal = w.folder / "part-000000.journal"
        records = scan_journal(journal).records
        raw = bytearray(journal.read_bytes())
        for r in (records[0], records[2]):  # two separate ranges
            raw[r.offset + r.length - 30] ^= 0x08
        journal.write_bytes(bytes(raw))
        problems = verify(wsrec.open_session(w.folder))  # live: no crash lines
        assert problems == [
            f"{journal}: damaged bytes {r.offset}..{r.offset + r.length - 1} "
            f"({r.length:,} bytes, 5 rows lost: seq {r.seq_first}..{r.seq_last}); "
            f"run 'wsrec repair'" for r in (records[0], records[2])]
    finally:
        w.close()


def test_flipped_bytes_in_a_part_are_reported_never_raised(data):
    folder = _session(data)
    part = folder / "part-000001.parquet"
    clean = part.read_bytes()
    cases = 0
    for k in range(60):  # spread over the file: header, pages, footer
        offset = k * (len(clean) - 1) // 59
        raw = bytearray(clean)
        raw[offset] ^= 0xFF
        part.write_bytes(bytes(raw))
        problems = verify(wsrec.open_session(folder))
        assert any("part-000001.parquet: checksum mismatch" in p for p in problems), offset
        cases += 1
    part.write_bytes(clean)
    assert cases == 60 and verify(wsrec.open_session(folder)) == []


def test_a_loss_the_manifest_records_is_not_a_problem(data):
    folder = _session(data)
    m = load_manifest(folder)
    gone = m["parts"].pop(1)
    (folder / gone["file"]).rename(folder / (gone["file"] + ".damaged"))
    save_manifest(folder, m)
    problems = verify(wsrec.open_session(folder))
    assert problems == [f"part-000002.parquet: seq jumps from {gone['seq_first'] - 1} to "
                        f"{gone['seq_last'] + 1}"]
    m["lost"] = [{"file": gone["file"] + ".damaged", "offset": 0, "bytes": gone["bytes"],
                  "rows": gone["rows"], "seq_first": gone["seq_first"],
                  "seq_last": gone["seq_last"]}]
    save_manifest(folder, m)
    assert verify(wsrec.open_session(folder)) == []
    m["lost"][0]["seq_last"] -= 1  # a loss that does not explain the jump
    save_manifest(folder, m)
    assert len(verify(wsrec.open_session(folder))) == 1
