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
from wsrec.errors import SessionBusy
from wsrec.journal import JournalWriter
from wsrec.manifest import load_manifest, save_manifest
from wsrec.schema import JOURNAL_SCHEMA
from wsrec.repair import repair
from wsrec.verify import verify

from conftest import write_session

CRASH_CHILD = textwrap.dedent("""
    import os, random, sys, time
    import wsrec
    data, seed = sys.argv[1], int(sys.argv[2])
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
        if i % 20 == 0:
            time.sleep(0.001)
""")


def expected_payload(i):
    return (b"%d:" % i) + bytes([i % 256]) * (i % 61)


@pytest.mark.parametrize("run", range(12))
def test_sigkill_at_random_points_loses_nothing_older_than_a_flush(tmp_path, run):
    r = random.Random(run)
    child = subprocess.Popen([sys.executable, "-c", CRASH_CHILD, str(tmp_path), str(run)],
                             stdout=subprocess.PIPE)
    try:
        folder = child.stdout.readline().decode().strip()
        time.sleep(r.uniform(0.15, 1.5))  # let it record for a random while, then kill
        kill_mono = time.monotonic_ns()
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    handed = [tuple(map(int, line.split())) for line in out.decode().splitlines()
              if line.count(" ") == 1]
    must_have = sum(1 for i, t in handed if t < kill_mono - 100_000_000)  # one flush interval
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
