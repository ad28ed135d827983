import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import wsrec
from wsrec.errors import CorruptData, SessionBusy
from wsrec.store._journal import JournalWriter, scan_journal
from wsrec.store.manifest import load_manifest, save_manifest
from wsrec.store.schema import JOURNAL_SCHEMA
from wsrec.store.repair import repair
from wsrec.store.verify import verify

from conftest import write_session

CRASH_CHILD = textwrap.dedent("""
    import os, random, sys, time
    import wsrec
    data, seed, flush_every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    r = random.Random(seed)
    w = wsrec.SessionWriter("crash", data=data, flush_interval=0.1,
                            part_bytes=r.choice([3_000, 20_000, 200_000]),
                            row_group_rows=r.choice([50, 500, 5000]))
    os.write(1, (str(w.folder) + "\\n").encode())
    for i in range(10**9):
        payload = (b"%d:" % i) + bytes([i % 256]) * (i % 61)
        if i % 97 == 0:
            w.event("open" if i % 2 else "close", url="wss://x", code=1000)
        else:
            w.append(payload, kind="binary" if i % 5 == 0 else "text",
                     symbols=("S%d" % (i % 3),))
        os.write(1, b"%d %d\\n" % (i, time.monotonic_ns()))
        if flush_every and i % flush_every == flush_every - 1:
            w.flush()
            os.write(1, b"flushed %d\\n" % i)
        if i % 20 == 0:
            time.sleep(0.001)
""")


def expected_payload(i):
    return (b"%d:" % i) + bytes([i % 256]) * (i % 61)


@pytest.mark.parametrize("run", range(12))
def test_sigkill_at_random_points_loses_nothing_older_than_a_flush(tmp_path, run):
    """Even runs flush explicitly every 50 rows: every row a finished ``flush`` covered
    is kept, exactly, however loaded the machine. Odd runs rely on the background
    flusher (every 0.1 s): rows handed more than 0.5 s (five flush intervals) before the
    kill are kept."""
    r = random.Random(run)
    explicit = run % 2 == 0
    child = subprocess.Popen([sys.executable, "-c", CRASH_CHILD, str(tmp_path), str(run),
                              "50" if explicit else "0"], stdout=subprocess.PIPE)
    try:
        folder = child.stdout.readline().decode().strip()
        # let it record for a random while, then kill
        time.sleep(r.uniform(0.3, 1.5) if explicit else r.uniform(0.7, 1.5))
        kill_mono = time.monotonic_ns()
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    lines = out.decode().splitlines()
    if explicit:
        flushed = [int(line.split()[1]) for line in lines if line.startswith("flushed ")]
        must_have = flushed[-1] + 1 if flushed else 0
    else:
        handed = [tuple(map(int, line.split())) for line in lines
                  if line.count(" ") == 1 and not line.startswith("flushed")]
        must_have = sum(1 for i, t in handed if t < kill_mono - 500_000_000)
    assert must_have > 0

    s = wsrec.open_session(folder)
    assert s.state == "crashed"
    before = list(s.frames())
    assert len(before) >= must_have
    for i, f in enumerate(before):  # an exact prefix of what the child was handed
        assert f.seq == i
        if f.dir != "event":
            assert f.payload == expected_payload(i)
    assert any("crashed" in p for p in verify(s))

    actions = repair(folder)
    assert "marked the session recovered" in actions
    s = wsrec.open_session(folder)
    assert s.status == "recovered" and verify(s) == []
    assert list(s.frames()) == before
    assert not list(s.path.glob("*.journal")) and not list(s.path.glob("*.tmp"))
    assert repair(folder) == []  # a no-op now


def _journal_only(data, n=300):
    """A complete session whose rows are also in a journal, as a crash between publishing
    a part and deleting its journal leaves it; tests then edit the manifest."""
    folder, _ = write_session(data, n=n)
    table = pq.read_table(folder / "part-000000.parquet")
    journal = JournalWriter(folder / "part-000000.journal")
    for batch in table.select(JOURNAL_SCHEMA.names).to_batches(max_chunksize=50):
        journal.write(pa.RecordBatch.from_arrays(
            [batch.column(i).cast(field.type) for i, field in enumerate(JOURNAL_SCHEMA)],
            schema=JOURNAL_SCHEMA))
    journal.close()
    return folder, load_manifest(folder), table


def test_repair_adopts_a_published_but_unlisted_part(data):
    folder, m, table = _journal_only(data)
    parts = m["parts"]
    m.update(status="recording", parts=[], ended=None)
    save_manifest(folder, m)
    s = wsrec.open_session(folder)
    assert s.crashed and s.orphan_parts and s.journals
    assert [f.seq for f in s.frames()] == list(range(table.num_rows))  # read from the journal
    problems = verify(s)
    assert any("not listed" in p for p in problems) and any("only in the journal" in p
                                                            for p in problems)
    actions = repair(folder)
    assert actions[0].startswith("adopted part-000000.parquet")
    s = wsrec.open_session(folder)
    assert s.status == "recovered" and verify(s) == []
    assert s.manifest["parts"][0]["sha256"] == parts[0]["sha256"]


def test_repair_rebuilds_a_missing_part_and_drops_temp_files(data):
    folder, m, table = _journal_only(data)
    os.rename(folder / "part-000000.parquet", folder / "part-000000.parquet.tmp")
    m.update(status="recording", parts=[], ended=None)
    save_manifest(folder, m)
    expected = [f.payload for f in wsrec.open_session(folder).frames()]
    actions = repair(folder)
    assert "removed temporary part-000000.parquet.tmp" in actions
    assert any(a.startswith("rebuilt part-000000.parquet (302 rows)") for a in actions)
    s = wsrec.open_session(folder)
    assert [f.payload for f in s.frames()] == expected and verify(s) == []
    assert s.manifest["connections"][0]["code"] == 1000  # recomputed from event rows


def test_repair_removes_leftover_journal_of_listed_part(data):
    folder, m, table = _journal_only(data)
    s = wsrec.open_session(folder)
    assert s.status == "complete" and s.leftover_journals
    assert any("leftover journal" in p for p in verify(s))
    assert repair(folder) == ["removed leftover part-000000.journal"]
    assert verify(wsrec.open_session(folder)) == []


def test_repair_is_a_no_op_on_a_sound_session(data):
    folder, _ = write_session(data, n=100)
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert repair(folder) == []
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_repair_refuses_a_live_session(data):
    w = wsrec.SessionWriter("v", data=data)
    try:
        w.append(b"x")
        with pytest.raises(SessionBusy, match="being recorded"):
            repair(w.folder)
    finally:
        w.close()


# -- damaged journals, unreadable parts and manifests ----------------------------------------

def _flip(path, offset, mask=0xFF):
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def _multi_record_crash(data, sizes=(5, 9, 4, 7)):
    """A crashed session whose journal holds one record per size (the first also holds
    the open event)."""
    child = textwrap.dedent("""
        import os, sys, wsrec
        w = wsrec.SessionWriter("crashy", data=sys.argv[1], flush_interval=60)
        w.event("open", url="wss://example.test/ws")
        i = 0
        for n in map(int, sys.argv[2:]):
            for _ in range(n):
                w.append(b'{"i":%d}' % i, kind="text", symbols=("S%d" % (i % 2),))
                i += 1
            w.flush()
        print(w.folder, flush=True)
        os._exit(0)
    """)
    out = subprocess.run([sys.executable, "-c", child, str(data), *map(str, sizes)],
                         capture_output=True, text=True, timeout=60, check=True)
    from pathlib import Path
    return Path(out.stdout.strip())


def test_damaged_journal_is_moved_aside_and_its_rows_kept_in_gapless_parts(data):
    folder = _multi_record_crash(data)
    journal = folder / "part-000000.journal"
    records = scan_journal(journal).records
    before = list(wsrec.open_session(folder).frames(direction="all"))
    second = records[1]
    _flip(journal, second.offset + second.length // 2)
    flipped = journal.read_bytes()
    problems = verify(wsrec.open_session(folder))
    assert f"{journal}: damaged bytes {second.offset}..{second.offset + second.length - 1} " \
           f"({second.length:,} bytes, 9 rows lost: seq 6..14); run 'wsrec repair'" in problems

    actions = repair(folder)
    assert actions[:3] == [
        "rebuilt part-000000.parquet (6 rows) from part-000000.journal",
        "rebuilt part-000001.parquet (11 rows) from part-000000.journal",
        f"part-000000.journal: kept 17 rows; {second.length:,} damaged bytes could not be "
        f"recovered (9 rows lost); moved it aside to part-000000.journal.damaged"]
    assert (folder / "part-000000.journal.damaged").read_bytes() == flipped
    s = wsrec.open_session(folder)
    assert [f for f in s.frames(direction="all")] == [f for f in before
                                                      if not 6 <= f.seq <= 14]
    assert s.manifest["lost"] == [{"file": "part-000000.journal.damaged",
                                   "offset": second.offset, "bytes": second.length,
                                   "rows": 9, "seq_first": 6, "seq_last": 14}]
    assert [(p["seq_first"], p["seq_last"]) for p in s.manifest["parts"]] == [(0, 5), (15, 25)]
    assert verify(s) == [] and repair(folder) == []


def test_damaged_last_record_loses_an_unknown_number_of_rows(data):
    folder = _multi_record_crash(data)
    journal = folder / "part-000000.journal"
    last = scan_journal(journal).records[-1]
    _flip(journal, last.offset + 20)
    assert any("an unknown number of rows lost from seq 19 on" in p
               for p in verify(wsrec.open_session(folder)))
    actions = repair(folder)
    assert any("(an unknown number of rows lost); moved it aside" in a for a in actions)
    s = wsrec.open_session(folder)
    assert [f.seq for f in s.frames(direction="all")] == list(range(19))
    assert s.manifest["lost"][0]["seq_first"] == 19 and s.manifest["lost"][0]["rows"] is None
    assert verify(s) == []


def test_a_second_damaged_journal_name_is_never_overwritten(data):
    folder = _multi_record_crash(data, sizes=(3, 3))
    journal = folder / "part-000000.journal"
    (folder / "part-000000.journal.damaged").write_bytes(b"an earlier one")
    _flip(journal, 2)  # the magic: every row is kept
    actions = repair(folder)
    assert "moved it aside to part-000000.journal.damaged.1" in actions[1]
    assert "(no rows lost)" in actions[1]
    assert (folder / "part-000000.journal.damaged").read_bytes() == b"an earlier one"
    s = wsrec.open_session(folder)
    assert s.rows() == 7 and "lost" not in s.manifest and verify(s) == []


def test_an_interrupted_repair_is_finished_without_rewriting_its_parts(data, tmp_path):
    """A crash after a repair published the parts of a damaged journal but before it
    listed them: the next repair adopts them."""
    import shutil
    folder = _multi_record_crash(data)
    journal = folder / "part-000000.journal"
    _flip(journal, scan_journal(journal).records[2].offset + 100)
    copy = tmp_path / "copy" / folder.name
    shutil.copytree(folder, copy)
    repair(copy)
    for name in ("part-000000.parquet", "part-000001.parquet"):
        shutil.copy(copy / name, folder / name)  # published, not listed
    actions = repair(folder)
    assert actions[:2] == ["adopted part-000000.parquet (15 rows) from part-000000.journal",
                           "adopted part-000001.parquet (7 rows) from part-000000.journal"]
    assert not list(folder.glob("*.parquet.damaged"))
    s = wsrec.open_session(folder)
    assert s.manifest["parts"] == wsrec.open_session(copy).manifest["parts"]
    assert verify(s) == []


def test_adopted_part_with_a_damaged_journal_loses_nothing(data):
    folder, m, table = _journal_only(data)
    m.update(status="recording", parts=[], ended=None)
    save_manifest(folder, m)
    journal = folder / "part-000000.journal"
    _flip(journal, scan_journal(journal).records[1].offset + 300)
    actions = repair(folder)
    assert actions[0].startswith("adopted part-000000.parquet (302 rows)")
    assert "moved it aside to part-000000.journal.damaged" in actions[1]
    s = wsrec.open_session(folder)
    assert s.rows() == 302 and "lost" not in s.manifest and verify(s) == []


def test_unreadable_unlisted_part_is_moved_aside_and_rebuilt_from_the_journal(data):
    folder, m, table = _journal_only(data)
    m.update(status="recording", parts=[], ended=None)
    save_manifest(folder, m)
    part = folder / "part-000000.parquet"
    garbage = b"PAR1" + bytes(range(256)) * 8 + b"PAR1"
    part.write_bytes(garbage)
    actions = repair(folder)
    assert actions[0].startswith("moved unlisted part-000000.parquet aside to "
                                 "part-000000.parquet.damaged")
    assert actions[1].startswith("rebuilt part-000000.parquet (302 rows)")
    assert (folder / "part-000000.parquet.damaged").read_bytes() == garbage
    s = wsrec.open_session(folder)
    assert s.rows() == 302 and verify(s) == []


def test_empty_journal_is_deleted(data):
    folder = _multi_record_crash(data, sizes=(2,))
    journal = folder / "part-000000.journal"
    size = scan_journal(journal).size
    os.unlink(journal)
    JournalWriter(folder / "part-000001.journal").close()  # only the header
    m = load_manifest(folder)
    save_manifest(folder, m)
    assert repair(folder) == ["dropped empty part-000001.journal",
                              "marked the session recovered"]
    assert not list(folder.glob("*.journal*")) and size > 8


def test_listed_part_that_cannot_be_read_does_not_stop_the_repair(data):
    folder, _ = write_session(data, n=200, part_bytes=3_000, flush_every=30)
    m = load_manifest(folder)
    assert len(m["parts"]) > 2
    part = folder / m["parts"][1]["file"]
    part.write_bytes(b"\0" * part.stat().st_size)
    m.update(status="recording", ended=None)
    save_manifest(folder, m)
    actions = repair(folder)
    assert actions[0].startswith("kept the connections and gaps as they were: ")
    assert actions[1] == "marked the session recovered"
    assert any(part.name in p for p in verify(wsrec.open_session(folder)))


def _manifest_less(data, n=300):
    folder, _ = write_session(data, n=n, part_bytes=4_000, flush_every=40)
    return folder, load_manifest(folder)


def test_deleted_manifest_is_rebuilt_from_the_parts(data):
    folder, m = _manifest_less(data)
    before = list(wsrec.open_session(folder).frames(direction="all"))
    (folder / "session.json").unlink()
    actions = repair(folder)
    assert actions[0] == (f"rebuilt session.json (it was missing) for alpaca/{folder.name} "
                          f"from {len(m['parts'])} part(s)")
    assert actions[-1] == "marked the session recovered"
    s = wsrec.open_session(folder)
    assert (s.venue, s.id, s.status) == ("alpaca", folder.name, "recovered")
    assert s.manifest["parts"] == m["parts"]  # the same entries the writer computed
    assert s.manifest["connections"] == m["connections"] and s.manifest["gaps"] == m["gaps"]
    assert s.manifest["started"] == m["parts"][0]["start"]
    assert s.manifest["ended"] == m["parts"][-1]["end"]
    assert list(s.frames(direction="all")) == before
    assert verify(s) == [] and repair(folder) == []


@pytest.mark.parametrize("content, why", [
    (b"{garbage", "it was not valid JSON"),
    (b"", "it was not valid JSON"),
    (b"[1, 2]", "it was invalid"),
    (b'{"format_version": 2, "venue": "alpaca"}', "it was invalid"),
])
def test_unreadable_manifest_is_moved_aside_and_rebuilt(data, content, why):
    folder, m = _manifest_less(data, n=100)
    (folder / "session.json").write_bytes(content)
    actions = repair(folder)
    assert actions[0] == "moved the unreadable session.json aside to session.json.damaged"
    assert actions[1].startswith(f"rebuilt session.json ({why}")
    assert (folder / "session.json.damaged").read_bytes() == content
    s = wsrec.open_session(folder)
    assert s.manifest["parts"] == m["parts"] and verify(s) == []


def test_invalid_manifest_keeps_its_arguments_and_settings(data):
    folder, m = _manifest_less(data, n=100)
    broken = dict(m, args={"symbols": ["AAPL"]}, status="no such status")
    (folder / "session.json").write_text(json.dumps(broken))
    repair(folder)
    s = wsrec.open_session(folder)
    assert s.manifest["args"] == {"symbols": ["AAPL"]}
    assert s.manifest["settings"] == m["settings"] and s.status == "recovered"


def test_journal_only_session_without_manifest_is_rebuilt_from_folder_names(data):
    folder = _multi_record_crash(data, sizes=(4, 4))
    before = list(wsrec.open_session(folder).frames(direction="all"))
    (folder / "session.json").unlink()
    from click.testing import CliRunner
    from wsrec.cli.commands import cli
    result = CliRunner().invoke(cli, ["repair", str(folder)])
    assert result.exit_code == 0, result.output
    assert f"rebuilt session.json (it was missing) for crashy/{folder.name} from 0 part(s) " \
           f"and 1 journal(s)" in result.stdout
    assert "rebuilt part-000000.parquet (9 rows) from part-000000.journal" in result.stdout
    s = wsrec.open_session(folder)
    assert (s.venue, s.id, s.status) == ("crashy", folder.name, "recovered")
    assert list(s.frames(direction="all")) == before
    assert s.manifest["connections"][0]["url"] == "wss://example.test/ws"
    assert verify(s) == []


def test_unreadable_part_without_a_manifest_is_moved_aside_and_its_rows_recorded(data):
    folder, m = _manifest_less(data)
    assert len(m["parts"]) >= 3
    middle = m["parts"][1]
    (folder / middle["file"]).write_bytes(b"not parquet at all")
    (folder / "session.json").unlink()
    actions = repair(folder)
    assert actions[0].startswith(f"moved unreadable {middle['file']} aside to "
                                 f"{middle['file']}.damaged")
    s = wsrec.open_session(folder)
    assert s.manifest["lost"] == [{"file": middle["file"] + ".damaged", "offset": 0,
                                   "bytes": 18, "rows": middle["rows"],
                                   "seq_first": middle["seq_first"],
                                   "seq_last": middle["seq_last"]}]
    assert verify(s) == []


def test_manifest_of_a_newer_wsrec_is_not_replaced(data):
    folder, m = _manifest_less(data, n=50)
    text = json.dumps(dict(m, format_version=99))
    (folder / "session.json").write_text(text)
    with pytest.raises(CorruptData, match="newer than this wsrec"):
        repair(folder)
    assert (folder / "session.json").read_text() == text


def test_a_folder_without_session_files_is_not_made_a_session(tmp_path):
    folder = tmp_path / "v" / "notasession"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("hello")
    with pytest.raises(CorruptData, match="not a wsrec session folder"):
        repair(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
