import glob
import itertools
import random

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

import wsrec
from wsrec.store.schema import SCHEMA
from wsrec.timefmt import format_ns

from conftest import CHANNELS, SYMBOLS, write_session


@pytest.fixture(scope="module")
def multipart(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    folder, written = write_session(data, n=4000, part_bytes=30_000, row_group_rows=400,
                                    flush_every=150)
    return data, folder


def _reference(session, **kw):
    """Brute force: every frame, filtered by plain Python."""
    f = wsrec.Filters.make(**kw)
    out = []
    for fr in session.frames():
        if f.start is not None and fr.ts < f.start:
            continue
        if f.end is not None and fr.ts >= f.end:
            continue
        if f.directions and fr.dir not in f.directions:
            continue
        if f.kinds and fr.kind not in f.kinds:
            continue
        if f.channels and not set(fr.channels) & f.channels:
            continue
        if f.symbols and not set(fr.symbols) & f.symbols:
            continue
        out.append(fr.seq)
    return out


def test_filters_match_brute_force(multipart):
    data, folder = multipart
    s = wsrec.open_session(folder)
    assert len(s.manifest["parts"]) > 4
    all_ts = [f.ts for f in s.frames()]
    r = random.Random(3)
    cases = [dict(), dict(direction="in"), dict(direction="out"), dict(direction="event"),
             dict(direction="in,out"), dict(kind="binary"), dict(symbols="AAPL"),
             dict(symbols="AAPL,TSLA"), dict(channels=["trades"]),
             dict(channels="quotes,bars", symbols="MSFT", direction="in")]
    for _ in range(12):
        a, b = sorted(r.sample(all_ts, 2))
        cases.append(dict(start=format_ns(a), end=format_ns(b),
                          symbols=r.choice([None, r.choice(SYMBOLS)]),
                          channels=r.choice([None, r.choice(CHANNELS)])))
    for kw in cases:
        got = [f.seq for f in s.frames(**kw)]
        assert got == _reference(s, **kw), kw
        table = pa.Table.from_batches(list(s.batches(**kw)), schema=SCHEMA)
        assert table.column("seq").to_pylist() == got


def test_batches_stream_in_seq_order_with_columns(multipart):
    _, folder = multipart
    s = wsrec.open_session(folder)
    seqs = []
    for b in s.batches(columns=["seq"], symbols="AMD", batch_size=100):
        assert b.schema.names == ["seq"] and b.num_rows <= 100
        seqs.extend(b.column("seq").to_pylist())
    assert seqs == sorted(seqs) and seqs == _reference(s, symbols="AMD")
    with pytest.raises(ValueError, match="unknown column"):
        next(s.batches(columns=["nope"]))


def test_time_filter_skips_parts_by_manifest(multipart, monkeypatch):
    _, folder = multipart
    s = wsrec.open_session(folder)
    last = s.manifest["parts"][-1]
    read = []
    original = s._part_batches
    monkeypatch.setattr(s, "_part_batches",
                        lambda path, *a: (read.append(path.name), original(path, *a))[1])
    list(s.batches(start=last["start"]))
    assert read == [last["file"]]


def test_data_root_is_one_table_for_pyarrow_dataset(tmp_path):
    data = tmp_path / "data"
    write_session(data, n=300, venue="alpaca", seed=1)
    write_session(data, n=200, venue="hyperliquid", seed=2, part_bytes=2_000, flush_every=20)
    write_session(data, n=100, venue="alpaca", seed=3)
    files = sorted(glob.glob(f"{data}/**/*.parquet", recursive=True))
    dataset = ds.dataset(files, format="parquet")  # <root>/**/*.parquet
    assert dataset.schema.equals(SCHEMA)
    table = dataset.to_table().unify_dictionaries()  # one dictionary per column
    assert table.num_rows == 302 + 202 + 102
    counts = table.group_by("venue").aggregate([("seq", "count")]).to_pylist()
    assert {c["venue"]: c["seq_count"] for c in counts} == {"alpaca": 404, "hyperliquid": 202}
    assert len(set(table.column("session").to_pylist())) == 3


def test_live_session_reads_parts_and_journal(data):
    w = wsrec.SessionWriter("v", data=data, part_bytes=1_000, flush_interval=60)
    try:
        for i in range(200):
            w.append(b"frame %03d" % i, kind="text")
            if i % 10 == 9:
                w.flush()
        w.append(b"unflushed", kind="text")
        s = wsrec.open_session("v", data=data)
        assert s.live and not s.crashed and s.state == "live"
        assert s.parts and s.journals
        assert [f.payload for f in s.frames()] == [b"frame %03d" % i for i in range(200)]
    finally:
        w.close()
    s = wsrec.open_session("v", data=data)
    assert s.state == "complete" and s.rows() == 201


def test_frames_fields(data):
    with wsrec.SessionWriter("v", data=data) as w:
        w.append(b"x", conn=3, stream="s", dir="out", kind="text", channels=("a",),
                 symbols=("S", "T"), ts_ns=5, mono_ns=6)
    [f] = wsrec.open_session(w.folder).frames()
    assert f == wsrec.Frame(seq=0, ts=5, mono_ns=6, conn=3, stream="s", dir="out", kind="text",
                            channel="a", symbol=None, channels=["a"], symbols=["S", "T"],
                            payload=b"x")


def test_empty_session(data):
    w = wsrec.SessionWriter("v", data=data)
    w.close()
    s = wsrec.open_session(w.folder)
    assert list(s.frames()) == [] and s.rows() == 0 and s.manifest["parts"] == []


def test_bounded_memory_batches(data):
    # 40k rows in parts of many row groups: batches never exceed batch_size
    with wsrec.SessionWriter("v", data=data, row_group_rows=5000) as w:
        for i in itertools.islice(itertools.count(), 40_000):
            w.append(b"%d" % i, kind="text")
    sizes = [b.num_rows for b in wsrec.open_session(w.folder).batches(batch_size=1000)]
    assert max(sizes) <= 1000 and sum(sizes) == 40_000


# -- damaged parts: refused with one line, or skipped row group by row group -----------------

@pytest.fixture
def three_groups(data):
    """A session whose one part holds three row groups of 100 rows."""
    folder, _ = write_session(data, n=298, row_group_rows=100)
    part = folder / "part-000000.parquet"
    import pyarrow.parquet as pq
    meta = pq.ParquetFile(part).metadata
    assert meta.num_row_groups == 3
    frames = list(wsrec.open_session(folder).frames(direction="all"))
    # where the second row group's payload pages are: flip a byte in the middle of them
    column = [meta.row_group(1).column(i) for i in range(meta.num_columns)
              if meta.row_group(1).column(i).path_in_schema == "payload"][0]
    middle = column.data_page_offset + column.total_compressed_size // 2
    return folder, part, frames, middle


def _flip(path, offset, mask=0xFF):
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def test_page_checksums_are_written():
    from wsrec.store.schema import PARQUET_OPTIONS
    assert PARQUET_OPTIONS["write_page_checksum"] is True


def test_a_flipped_page_is_refused_naming_the_part(three_groups):
    folder, part, frames, middle = three_groups
    _flip(part, middle)
    s = wsrec.open_session(folder)
    got = []
    with pytest.raises(wsrec.CorruptData) as info:
        for f in s.frames(direction="all"):
            got.append(f)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{part}: cannot read part, it is "
                                                      f"damaged (")
    assert "row group 1" in message and "--read-damaged" in message
    assert got == frames[:len(got)] and len(got) <= 100   # only what came before the damage


def test_skip_leaves_out_the_damaged_row_group_with_one_warning(three_groups):
    folder, part, frames, middle = three_groups
    _flip(part, middle)
    s = wsrec.open_session(folder)
    warnings = []
    s.warn = warnings.append
    got = list(s.frames(direction="all", damaged="skip"))
    assert got == frames[:100] + frames[200:]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{part}: skipped row group 1 (100 rows, seq 100..199): ")
    # the same session object warns once per row group, however often it is read
    assert list(s.frames(direction="all", damaged="skip")) == got and len(warnings) == 1
    s.damaged = "skip"          # the default of every read of this session object
    assert [f.seq for f in s.frames(direction="all")] == [f.seq for f in got]
    with pytest.raises(ValueError, match="damaged must be one of refuse, skip"):
        next(s.batches(damaged="ignore"))


def test_a_time_filter_does_not_read_damage_outside_its_range(three_groups):
    folder, part, frames, middle = three_groups
    _flip(part, middle)
    s = wsrec.open_session(folder)
    start = frames[200].ts
    assert list(s.frames(direction="all", start=start)) == frames[200:]
    end = frames[99].ts + 1
    assert list(s.frames(direction="all", end=end)) == [f for f in frames if f.ts < end]


def test_a_size_that_differs_from_the_manifest(three_groups):
    folder, part, frames, _ = three_groups
    original = part.read_bytes()
    part.write_bytes(original + b"\0")                    # appended to
    with pytest.raises(wsrec.CorruptData, match=r"bytes, the manifest says"):
        list(wsrec.open_session(folder).frames())
    part.write_bytes(original[:len(original) // 2])       # truncated: no footer
    s = wsrec.open_session(folder)
    warnings = []
    s.warn = warnings.append
    assert list(s.frames(damaged="skip")) == []
    assert len(warnings) == 1 and "skipped the whole part (300 rows, seq 0..299)" in warnings[0]
    part.unlink()
    with pytest.raises(wsrec.CorruptData, match="part listed in the manifest is missing"):
        list(wsrec.open_session(folder).frames())
    s = wsrec.open_session(folder)
    s.warn = warnings.append
    assert list(s.frames(damaged="skip")) == [] and "missing" in warnings[-1]


def test_a_footer_that_disagrees_with_the_manifest(three_groups, tmp_path):
    import json
    folder, part, frames, _ = three_groups
    manifest = json.loads((folder / "session.json").read_text())
    manifest["parts"][0]["rows"] = 299
    (folder / "session.json").write_text(json.dumps(manifest))
    with pytest.raises(wsrec.CorruptData, match="its row groups hold 300 rows, the manifest "
                                                "says 299"):
        list(wsrec.open_session(folder).frames())
    manifest["parts"][0].update(rows=300, seq_first=1, seq_last=300)
    (folder / "session.json").write_text(json.dumps(manifest))
    s = wsrec.open_session(folder)
    warnings = []
    s.warn = warnings.append
    assert list(s.frames(damaged="skip")) == []   # every row group carries other seqs
    assert len(warnings) == 3 and "seq 0..99 where 1..100 belong" in warnings[0]


def test_an_unlistable_session_folder_is_corrupt_data(data, monkeypatch):
    from pathlib import Path
    folder, _ = write_session(data, n=5)
    real = Path.iterdir

    def iterdir(self):
        if self == folder:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    with pytest.raises(wsrec.CorruptData, match="cannot list the session folder "
                                                r"\(Permission denied\)"):
        wsrec.open_session(folder)


def test_disk_bytes_and_rows_survive_files_vanishing(data):
    folder, _ = write_session(data, n=5)
    s = wsrec.open_session(folder)
    expected = sum(p.stat().st_size for p in folder.iterdir())
    assert s.disk_bytes() == expected
    (folder / "part-000001.journal").write_bytes(b"")
    s = wsrec.open_session(folder)          # sees the journal ...
    (folder / "part-000001.journal").unlink()   # ... which a live writer then deletes
    assert s.rows() == 7 and s.disk_bytes() == expected


def test_lean_reading_gives_the_same_rows(data):
    folder, _ = write_session(data, n=3000, row_group_rows=700, part_bytes=60_000)
    session = wsrec.open_session(folder)
    for filters in ({}, {"symbols": "AAPL"}, {"direction": "all"}):
        full = pa.Table.from_batches(list(session.batches(**filters)))
        lean = list(session.batches(lean=True, batch_size=128, **filters))
        assert all(b.num_rows <= 128 for b in lean)
        assert pa.Table.from_batches(lean, schema=full.schema).equals(full)


def test_a_journal_published_since_opening_is_read_from_its_part(tmp_path):
    with wsrec.SessionWriter("v", data=tmp_path) as w:
        for i in range(5):
            w.append(b'{"i":%d}' % i, kind="text")
        w.flush()                                    # the rows are in part-000000.journal
        s = wsrec.open_session(w.folder)
        journal = w.folder / "part-000000.journal"
        assert list(s.unlisted()) == [("journal", journal)]
    # the writer has published the part and deleted the journal; s still lists neither
    part = w.folder / "part-000000.parquet"
    assert s.manifest["parts"] == [] and list(s.unlisted()) == [("part", part)]
    assert [f.payload for f in s.frames()] == [b'{"i":%d}' % i for i in range(5)]
    part.unlink()                                    # gone with no part: nothing to read
    assert list(s.unlisted()) == [] and list(s.frames()) == []
