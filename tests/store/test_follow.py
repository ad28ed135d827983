"""Following a live session (wsrec.store.follow): driven step by step through the
follower's injected sleep, so every poll sees a known state of the recording."""

import threading
import time

import pytest

import wsrec
from wsrec.errors import SessionCrashed, UsageError
from wsrec.store._journal import MAGIC, JournalWriter, tail_journal
from wsrec.store.follow import Follower, chain_start
from wsrec.store.manifest import load_manifest, save_manifest
from wsrec.store.rolling import RollingWriter, Rotation
from wsrec.store.schema import JOURNAL_SCHEMA
from wsrec.store.schema import columns_to_batch
from wsrec.timefmt import parse_time

from tests.conftest import crashed_session

T0 = parse_time("2026-11-22T23:59:58Z")
SEC = 1_000_000_000
COLS = ["seq", "payload", "session"]


class Script:
    """The follower's sleep: each call runs the next step (what the recorder does while
    the follower waits) and records how many rows had been given by then; once the
    steps are done, a call ends the follow (a test that hangs would fail instead)."""

    def __init__(self, *steps):
        self.steps = list(steps)
        self.rows: list = []
        self.seen_at_sleep: list[int] = []
        self.calls = 0

    def __call__(self, seconds):
        assert seconds == pytest.approx(0.05)
        self.calls += 1
        self.seen_at_sleep.append(len(self.rows))
        if not self.steps:
            return True
        self.steps.pop(0)()
        return False


def follow(session, script, **kw):
    """Run a follower to its end, collecting (session id, seq, payload) per row."""
    f = Follower(session, sleep=script, columns=kw.pop("columns", COLS), **kw)
    for s, batch in f:
        assert set(batch.column("session").to_pylist()) == {s.id}
        script.rows.extend(zip([s.id] * batch.num_rows, batch.column("seq").to_pylist(),
                               batch.column("payload").to_pylist()))
    return f


def put(w, *payloads, flush=True):
    for p in payloads:
        w.append(p, kind="text", channels=("trades" if b"t" in p else "quotes",))
    if flush:
        w.flush()


def test_rows_as_they_are_flushed_and_sealed_each_once_in_order(data):
    # parts of ~40 bytes: some flushes seal a part holding rows already read from its
    # journal; the follower gives each row once, in seq order, and ends at the close
    w = wsrec.SessionWriter("v", data=data, flush_interval=3600, part_bytes=40)
    put(w, b"a0", b"a1")                                   # journal 0 only
    session = wsrec.open_session(w.folder)
    script = Script(lambda: None,                            # nothing new: sleeps again
                    lambda: put(w, b"b2", b"b3"),           # more in journal 0
                    lambda: put(w, b"c4" * 20),             # part 0 sealed: a0..c4
                    lambda: put(w, b"d5"),                  # journal 1
                    lambda: put(w, b"e6", flush=False),     # not flushed: not visible
                    lambda: w.close())                      # e6 flushed, part 1 sealed
    follow(session, script)
    assert [r[1] for r in script.rows] == list(range(7))
    assert [r[2] for r in script.rows] == [b"a0", b"a1", b"b2", b"b3", b"c4" * 20, b"d5",
                                           b"e6"]
    # what each poll had given when it went to sleep: unflushed rows never showed
    assert script.seen_at_sleep == [2, 2, 4, 5, 6, 6]
    assert len(wsrec.open_session(w.folder).manifest["parts"]) == 2


def test_a_part_sealed_between_the_manifest_read_and_the_journals_is_read_first(data):
    """The manifest is read at the start of a poll, the journals listed later: a part
    sealed in between (its journal gone, the next one there) is read from the manifest
    read again, before the next journal, never skipped."""
    w = wsrec.SessionWriter("v", data=data, flush_interval=3600, part_bytes=40)
    put(w, b"a0" * 25)                      # part 0, sealed at once
    put(w, b"b1")                           # journal 1
    script = Script()
    f = Follower(wsrec.open_session(w.folder), sleep=script, columns=COLS)
    it = iter(f)
    _, batch = next(it)                     # the poll's manifest lists part 0 only
    seqs = batch.column("seq").to_pylist()
    put(w, b"c2" * 25)                      # meanwhile: part 1 (b1, c2) sealed
    put(w, b"d3")                           # and journal 2 begun
    seqs += [x for _, b in it for x in b.column("seq").to_pylist()]
    w.close()
    assert seqs == [0, 1, 2, 3]
    assert script.seen_at_sleep == [0]      # all of it in that one poll


def test_a_journal_gone_before_it_is_opened_is_read_from_its_listed_part(data, monkeypatch):
    """The folder lists journal 1; the recorder seals part 1 and begins journal 2 before
    the follower opens it: part 1 comes from the manifest read again, then journal 2,
    with filters and no row twice."""
    w = wsrec.SessionWriter("v", data=data, flush_interval=3600, part_bytes=40)
    put(w, b"t0" * 25)                      # part 0
    put(w, b"t1")                           # journal 1
    from wsrec.store import follow as follow_module
    real = follow_module.tail_journal
    opened = []

    def tail_journal(path, offset=0):
        if not opened:
            put(w, b"q2" * 25)              # part 1 sealed: journal 1 gone
            put(w, b"t3", b"q4")            # journal 2
        opened.append(path.name)
        return real(path, offset)

    monkeypatch.setattr(follow_module, "tail_journal", tail_journal)
    script = Script(w.close)
    follow(wsrec.open_session(w.folder), script, filters=wsrec.Filters.make(channels="trades"))
    assert [r[1] for r in script.rows] == [0, 1, 3]
    assert opened[:2] == ["part-000001.journal", "part-000002.journal"]


def _unlist(folder, index, delete=False):
    """Take part ``index`` out of the manifest (and off the disk): what a damaged
    session, or a manifest the recorder has not saved yet, looks like."""
    manifest = load_manifest(folder)
    name = f"part-{index:06d}.parquet"
    manifest["parts"] = [p for p in manifest["parts"] if p["file"] != name]
    save_manifest(folder, manifest)
    if delete:
        (folder / name).unlink()


def test_a_part_sealed_but_not_listed_fills_the_hole_before_the_next_journal(data):
    """Part 1 is on disk, its journal gone, and the manifest (read again) does not list
    it: its rows come from the part, before journal 2's; the rows of it the filter
    leaves out still count as given (no hole is made of them)."""
    w = wsrec.SessionWriter("v", data=data, flush_interval=3600, part_bytes=40)
    try:
        put(w, b"t0" * 25)                  # part 0
        put(w, b"t1", b"q2" * 25)           # part 1: a trade, then a quote
        put(w, b"t3")                       # journal 2
        _unlist(w.folder, 1)
        lines = []
        script = Script()
        follow(wsrec.open_session(w.folder), script, warn=lines.append,
               filters=wsrec.Filters.make(channels="trades"))
        assert [r[1] for r in script.rows] == [0, 1, 3]
        assert lines == []
    finally:
        w.close()


@pytest.mark.parametrize("dropped, seqs", [(1, "seq 1..2"), (2, "seq 3")])
def test_rows_nowhere_to_be_found_are_said_once_and_passed_over(data, dropped, seqs):
    """A part gone from the manifest and the disk (a damaged session): the follow says
    which rows are lost, once, and goes on after them instead of waiting for them."""
    w = wsrec.SessionWriter("v", data=data, flush_interval=3600, part_bytes=40)
    try:
        put(w, b"a0" * 25)                  # part 0: seq 0
        put(w, b"b1", b"b2" * 25)           # part 1: seq 1, 2
        put(w, b"c3" * 25)                  # part 2: seq 3
        put(w, b"d4")                       # journal 3
        _unlist(w.folder, dropped, delete=True)
        lines = []
        script = Script(lambda: put(w, b"e5"), lambda: None)
        follow(wsrec.open_session(w.folder), script, warn=lines.append)
        lost = {1: [1, 2], 2: [3]}[dropped]
        assert [r[1] for r in script.rows] == [i for i in range(6) if i not in lost]
        assert len(lines) == 1 and f"{len(lost)} row(s) lost, {seqs}:" in lines[0]
        assert str(w.folder) in lines[0] and "wsrec verify" in lines[0]
    finally:
        w.close()


def test_filters_and_columns_apply(data):
    w = wsrec.SessionWriter("v", data=data, flush_interval=3600, part_bytes=30)
    put(w, b"t0", b"q1", b"t2")
    script = Script(lambda: put(w, b"q3", b"t4" * 20), lambda: put(w, b"t5"), w.close)
    f = Follower(wsrec.open_session(w.folder), wsrec.Filters.make(channels="trades"),
                 columns=["payload"], sleep=script)
    got = [p for _, b in f for p in b.column("payload").to_pylist()]
    assert got == [b"t0", b"t2", b"t4" * 20, b"t5"]
    assert f.columns == ["payload"]


def test_a_record_being_written_is_waited_for_never_read_torn(data):
    """The writer is stopped half-way through a journal record: the poll that sees half
    a record gives nothing of it; once the record is whole, its rows come."""
    w = wsrec.SessionWriter("v", data=data, flush_interval=3600)
    put(w, b"r0", b"r1")
    journal = w._flusher._journal
    half, resume, real = threading.Event(), threading.Event(), journal._file

    class Halting:
        """The journal's file: a flush writes half of what waits, then stops until told."""
        def __init__(self):
            self.pending = b""

        def write(self, data):
            self.pending += bytes(data)

        def flush(self):
            cut = len(self.pending) // 2
            real.write(self.pending[:cut])
            real.flush()
            half.set()
            assert resume.wait(30)
            real.write(self.pending[cut:])
            real.flush()
            self.pending = b""

        def fileno(self):
            return real.fileno()

        def close(self):
            real.close()

    journal._file = Halting()
    flushing = threading.Thread(target=put, args=(w, b"r2", b"r3"))

    def start_half_write():
        flushing.start()
        assert half.wait(30)

    def finish_write():
        resume.set()
        flushing.join(30)

    script = Script(start_half_write, finish_write, w.close)
    follow(wsrec.open_session(w.folder), script)
    assert [r[2] for r in script.rows] == [b"r0", b"r1", b"r2", b"r3"]
    assert script.seen_at_sleep == [2, 2, 4]   # the torn record gave nothing


def test_tail_journal_reads_whole_records_and_tells_torn_from_damaged(tmp_path):
    path = tmp_path / "part-000000.journal"
    w = JournalWriter(path)
    rows = [(i, b"x%d" % i) for i in range(3)]

    def batch(i, payload):
        return columns_to_batch([[i], [T0 + i], [i], [0], [None], ["in"], ["text"], [[]], [[]],
                                 [payload]])

    w.write(batch(*rows[0]))
    w.close()
    got, offset, damaged = tail_journal(path)
    assert [b.column("seq").to_pylist() for b in got] == [[0]] and not damaged
    whole = path.read_bytes()
    # a second record, written in three pieces: nothing until it is whole
    w2 = JournalWriter(tmp_path / "scratch.journal")
    w2.write(batch(*rows[1]))
    w2.close()
    record = (tmp_path / "scratch.journal").read_bytes()[len(MAGIC):]
    for cut in (5, len(record) - 1):
        path.write_bytes(whole + record[:cut])
        assert tail_journal(path, offset) == ([], offset, False)
    path.write_bytes(whole + record)
    got, end, damaged = tail_journal(path, offset)
    assert [b.column("seq").to_pylist() for b in got] == [[1]] and end == len(whole + record)
    assert not damaged
    # a record that fails its CRC with more after it is damage: reading stops there
    bad = bytearray(record)
    bad[-20] ^= 0xFF
    path.write_bytes(whole + bytes(bad) + record)
    assert tail_journal(path, offset) == ([], offset, True)
    # a file shorter than the magic is not written yet; another magic is damage
    path.write_bytes(MAGIC[:3])
    assert tail_journal(path) == ([], 0, False)
    path.write_bytes(b"NOTJRNL\n" + record)
    assert tail_journal(path) == ([], 0, True)
    path.unlink()
    with pytest.raises(FileNotFoundError):
        tail_journal(path)
    assert JOURNAL_SCHEMA.names[0] == "seq"


def _rolling(data):
    clock = {"now": T0}
    w = RollingWriter("v", data, rotation=Rotation(2 * SEC, origin_ns=T0 + SEC),
                      now_ns=lambda: clock["now"], flush_interval=3600)
    state = {"i": 0, "mono": 1_000}

    def put_at(step):
        """Rows 100 ms apart from T0, up to row ``step``; flushed."""
        while state["i"] <= step:
            state["mono"] += 100_000_000
            w.append(b"f%d" % state["i"], kind="text", ts_ns=T0 + state["i"] * 100_000_000,
                     mono_ns=state["mono"])
            state["i"] += 1
        w.flush()
    return w, put_at


def _settle(w):
    """Wait for the sessions a roll left to be closed (the closer threads)."""
    deadline = time.monotonic() + 30
    while any(t.is_alive() for t in w._closers) and time.monotonic() < deadline:
        time.sleep(0.01)


def test_rotation_carries_on_into_the_next_session(data):
    w, put_at = _rolling(data)
    put_at(5)                                   # the first session: rows 0..5
    first = wsrec.open_session(w.folder)

    def roll():
        put_at(14)                              # past T0 + 1 s: rows 10.. go to session 2
        _settle(w)

    def roll_again():
        put_at(40)                              # past T0 + 3 s: a third session
        _settle(w)

    script = Script(roll, lambda: None, roll_again, w.close)
    f = follow(first, script)
    ids = [s.id for s in w.sessions]
    assert len(ids) == 3 and [s.id for s in f.sessions] == ids
    # every payload once, in order, across the three sessions; each session's seq gapless
    assert [r[2] for r in script.rows if r[2].startswith(b"f")] == \
        [b"f%d" % i for i in range(41)]
    for sid in ids:
        seqs = [r[1] for r in script.rows if r[0] == sid]
        assert seqs == list(range(len(seqs)))
    # the rotate rows are there too (the old session's last row, the new one's first)
    assert sum(1 for r in script.rows if r[2].startswith(b"{")) == 4

    # a start before the newest session begins in the session that holds it
    newest = wsrec.open_session(w.sessions[-1].folder)
    assert chain_start(newest, T0 + 1).id == ids[0]
    assert chain_start(newest, T0 + 2 * SEC).id == ids[1]
    assert chain_start(newest, None).id == ids[2]
    again = Script()
    follow(newest, again, filters=wsrec.Filters.make(start=T0 + 12 * 100_000_000))
    assert [r[2] for r in again.rows if r[2].startswith(b"f")] == \
        [b"f%d" % i for i in range(12, 41)]
    assert again.calls == 0                     # everything was sealed: no wait


def test_a_crashed_session_gives_what_it_flushed_then_says_to_repair(data):
    folder = crashed_session(data, n=20)
    script = Script()
    with pytest.raises(SessionCrashed, match=r"run 'wsrec repair .*' to finish it"):
        follow(wsrec.open_session(folder), script)
    assert [r[1] for r in script.rows] == list(range(21)) and script.calls == 0


def test_a_recorder_dying_mid_follow_ends_it(data):
    w = wsrec.SessionWriter("v", data=data, flush_interval=3600)
    put(w, b"a", b"b")

    def die():
        put(w, b"c")
        w._lock_file.release()          # what the kernel does when the recorder dies

    script = Script(die)
    with pytest.raises(SessionCrashed, match="recorder died"):
        follow(wsrec.open_session(w.folder), script)
    assert [r[2] for r in script.rows] == [b"a", b"b", b"c"]
    w._flusher._stop.set()
    w._flusher._wake.set()


def test_the_lock_let_go_after_the_final_manifest_is_not_a_crash(data, monkeypatch):
    """The writer saves its final manifest, then lets go of the lock: a poll that read
    the manifest before and the lock after reads the manifest again."""
    w = wsrec.SessionWriter("v", data=data, flush_interval=3600)
    put(w, b"a")
    session = wsrec.open_session(w.folder)
    from wsrec.store import follow as follow_module
    real = follow_module.is_locked

    def is_locked(folder):
        if not w._closed:
            w.close()                   # between the manifest read and the lock test
        return real(folder)

    monkeypatch.setattr(follow_module, "is_locked", is_locked)
    script = Script()
    follow(session, script)
    assert [r[2] for r in script.rows] == [b"a"]


def test_an_end_filter_ends_the_follow_of_a_live_session(data):
    w = wsrec.SessionWriter("v", data=data, flush_interval=3600)
    try:
        for i in range(3):
            w.append(b"x%d" % i, kind="text", ts_ns=T0 + i * SEC)
        w.flush()
        script = Script(lambda: [w.append(b"x%d" % i, kind="text", ts_ns=T0 + i * SEC)
                                 for i in range(3, 6)] and w.flush())
        follow(wsrec.open_session(w.folder), script,
               filters=wsrec.Filters.make(end=T0 + 4 * SEC))
        assert [r[2] for r in script.rows] == [b"x0", b"x1", b"x2", b"x3"]
        assert script.calls == 1
    finally:
        w.close()


def test_stopping_ends_the_follow_at_the_next_idle_poll(data):
    w = wsrec.SessionWriter("v", data=data, flush_interval=3600)
    try:
        put(w, b"a")
        stop = threading.Event()
        stop.set()
        f = wsrec.open_session(w.folder).follow(stop=stop, columns=["payload"])
        assert [b.column("payload").to_pylist() for _, b in f] == [[b"a"]]
    finally:
        w.close()


def test_a_failed_session_is_sealed_and_said_so(data):
    w = wsrec.SessionWriter("v", data=data, flush_interval=3600)
    put(w, b"a")
    w.close("failed", "the venue went away")
    lines = []
    f = Follower(wsrec.open_session(w.folder), columns=["payload"], warn=lines.append,
                 sleep=Script())
    assert [b.column("payload").to_pylist() for _, b in f] == [[b"a"]]
    assert lines == [f"note: v/{w.id} ended failed: the venue went away"]


def test_remote_sessions_and_unknown_columns_are_refused(data):
    folder, _ = write_small(data)
    s = wsrec.open_session(folder)
    with pytest.raises(UsageError, match="unknown column"):
        Follower(s, columns=["nope"])
    s.remote = True
    with pytest.raises(UsageError, match="local disk"):
        Follower(s)


def write_small(data):
    from tests.conftest import write_session
    return write_session(data, n=5)


def test_read_part_skips_the_row_groups_before_from_seq(data):
    with wsrec.SessionWriter("v", data=data, row_group_rows=10) as w:
        put(w, *(b"r%d" % i for i in range(35)))
    s = wsrec.open_session(w.folder)
    [entry] = s.manifest["parts"]
    path = s.path / entry["file"]
    seqs = [b.column("seq").to_pylist() for b in
            s.read_part(path, entry, wsrec.Filters(), ["seq"], from_seq=25)]
    assert [x for b in seqs for x in b] == list(range(20, 35))   # from row group 2 on
    assert sum(len(b) for b in s.read_part(path, entry, wsrec.Filters(), ["seq"])) == 35
