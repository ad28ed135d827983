"""One-byte flips in the journal of a killed recording: nothing readable is lost, nothing
damaged is deleted, no traceback, no crash.

The journal under test is what a recorder killed after four flushes leaves: a magic
header and four records. Every one of its bytes is flipped in turn and read in-process;
a deterministic sample of them also goes through ``verify`` and ``repair``; a few go
through the command line in subprocesses (a segfault there would be exit 139).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import wsrec
from wsrec.errors import WsrecError
from wsrec.store._journal import MAGIC, read_journal, scan_journal
from wsrec.store.repair import repair
from wsrec.store.verify import verify

CRASH = """
import os, sys, wsrec
w = wsrec.SessionWriter("crashy", data=sys.argv[1], flush_interval=60)
w.event("open", url="wss://example.test/ws")
i = 0
for n in (5, 9, 4, 7):                       # four flushes: four journal records
    for _ in range(n):
        w.append(b'{"i":%d,"pad":"%s"}' % (i, b"x" * (i % 13)), kind="text",
                 symbols=("S%d" % (i % 2),))
        i += 1
    w.flush()
print(w.folder, flush=True)
os._exit(0)   # dies without closing: status stays 'recording', the lock is freed
"""

JOURNAL = "part-000000.journal"


class Pristine:
    """The killed recording, and what each of its journal records holds."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files = {p.name: p.read_bytes() for p in folder.iterdir()}
        self.journal = self.files[JOURNAL]
        scan = scan_journal(folder / JOURNAL, first_seq=0)
        assert scan.ok and scan.torn_tail_bytes == 0 and len(scan.records) == 4
        self.records = scan.records
        self.frames = list(wsrec.open_session(folder).frames(direction="all"))
        assert [f.seq for f in self.frames] == list(range(scan.rows)) and scan.rows == 26

    def lost_seqs(self, offset: int) -> set:
        """The seqs a flip at ``offset`` must cost: none in the magic or in a record's
        marker or length (the CRC still proves the body), the record's own otherwise."""
        for r in self.records:
            if r.offset <= offset < r.offset + r.length:
                if offset < r.offset + 8:
                    return set()
                return set(range(r.seq_first, r.seq_last + 1))
        assert offset < len(MAGIC)
        return set()

    def record_of(self, offset: int):
        return next((i for i, r in enumerate(self.records)
                     if r.offset <= offset < r.offset + r.length), None)

    def copy_to(self, folder: Path, offset: int, mask: int) -> Path:
        folder.mkdir(parents=True)
        for name, data in self.files.items():
            (folder / name).write_bytes(data)
        flipped = bytearray(self.journal)
        flipped[offset] ^= mask
        (folder / JOURNAL).write_bytes(bytes(flipped))
        return folder


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    out = subprocess.run([sys.executable, "-c", CRASH, str(data)], capture_output=True,
                         text=True, timeout=60, check=True)
    return Pristine(Path(out.stdout.strip()))


def _mask(offset: int) -> int:
    """A different bit for neighbouring offsets, and every eighth a whole byte."""
    return 0xFF if offset % 8 == 7 else 1 << (offset * 3 % 8)


def _sample(p: Pristine) -> list[int]:
    """Every byte of the magic and of each record header, and 200 body offsets spread
    evenly over the file: 256 offsets."""
    offsets = set(range(len(MAGIC)))
    for r in p.records:
        offsets.update(range(r.offset, r.offset + 12))
    bodies = [o for o in range(len(p.journal)) if o not in offsets]
    step = len(bodies) / 200
    offsets.update(bodies[int(i * step)] for i in range(200))
    return sorted(offsets)


def _region(p: Pristine, record: int) -> range:
    """The offsets of journal record ``record`` (the first with the magic before it)."""
    r = p.records[record]
    return range(0 if record == 0 else r.offset, r.offset + r.length)


@pytest.mark.parametrize("record", range(4))
def test_every_offset_flipped_reads_every_intact_record(pristine, tmp_path, record):
    """Every byte of the journal flipped (one record's bytes per test), read in-process:
    the records the flip missed are all kept; the flip is always reported, never read as
    a torn tail; the rows it cost are counted exactly when an intact record follows.
    Every fifth case also reads the rows back (both readers) and compares them with what
    was recorded."""
    journal = tmp_path / JOURNAL
    by_seq = {f.seq: f.payload for f in pristine.frames}
    cases = 0
    offsets = _region(pristine, record)
    for offset in offsets:
        flipped = bytearray(pristine.journal)
        flipped[offset] ^= _mask(offset)
        journal.write_bytes(bytes(flipped))
        scan = scan_journal(journal, first_seq=0)
        lost = pristine.lost_seqs(offset)
        kept = [(r.seq_first, r.seq_last) for r in pristine.records
                if not set(range(r.seq_first, r.seq_last + 1)) & lost]
        assert [(r.seq_first, r.seq_last) for r in scan.records] == kept, offset
        assert scan.damaged and scan.torn_tail_bytes == 0, offset
        assert any(d.offset <= offset < d.offset + d.length for d in scan.damaged), offset
        last = pristine.record_of(offset) == len(pristine.records) - 1
        if not lost:
            assert scan.rows_lost == 0, offset
        elif not last:
            assert scan.rows_lost == len(lost), offset
            assert [(d.seq_first, d.seq_last) for d in scan.damaged] == \
                [(min(lost), max(lost))], offset
        else:
            assert scan.rows_lost is None and scan.damaged[0].seq_first == min(lost), offset
        if offset % 5 == 0:
            got = [(s, p) for b in scan.batches for s, p in
                   zip(b.column("seq").to_pylist(), b.column("payload").to_pylist())]
            assert [s for s, _ in got] == [s for s in sorted(by_seq) if s not in lost], offset
            assert all(by_seq[s] == payload for s, payload in got), offset  # never garbled
            assert [b.column("seq")[0].as_py() for b in read_journal(journal)] == \
                [first for first, _ in kept], offset
        cases += 1
    assert cases == len(offsets) > 2_000
    if record == 3:
        assert offsets.stop == len(pristine.journal)  # the four tests cover every byte


@pytest.mark.parametrize("record", range(4))
def test_flips_are_named_by_verify_and_repair_keeps_every_readable_row(pristine, tmp_path,
                                                                        record):
    """A deterministic sample of 256 flips (those in one record per test) through verify,
    repair, and verify again."""
    sample = _sample(pristine)
    assert len(sample) == 256
    offsets = [o for o in sample if o in _region(pristine, record)]
    assert len(offsets) > 40
    for n, offset in enumerate(offsets):
        folder = pristine.copy_to(tmp_path / str(n) / "crashy" / pristine.folder.name,
                                  offset, _mask(offset))
        flipped = (folder / JOURNAL).read_bytes()
        lost = pristine.lost_seqs(offset)
        try:
            session = wsrec.open_session(folder)
            problems = verify(session)
            damage = [p for p in problems if JOURNAL in p and "damaged bytes" in p]
            assert len(damage) == 1 and damage[0].endswith("run 'wsrec repair'"), offset

            actions = repair(folder)
            assert not (folder / JOURNAL).exists(), offset  # moved aside, never deleted
            assert (folder / (JOURNAL + ".damaged")).read_bytes() == flipped, offset
            assert any("moved it aside to part-000000.journal.damaged" in a
                       for a in actions), offset
            assert "marked the session recovered" in actions, offset

            rebuilt = wsrec.open_session(folder)
            assert rebuilt.status == "recovered"
            assert list(rebuilt.frames(direction="all")) == \
                [f for f in pristine.frames if f.seq not in lost], offset
            assert verify(rebuilt) == [], (offset, verify(rebuilt))
            assert repair(folder) == [], offset  # done: a no-op now
        except WsrecError as exc:  # wsrec's own errors are allowed, but none is expected
            pytest.fail(f"offset {offset}: {exc}")
        shutil.rmtree(tmp_path / str(n))


#: one flip per kind of place: the magic, a marker, a length, a CRC, the first record's
#: body, the last record's body
CLI_FLIPS = ("magic", "marker", "length", "crc", "first body", "last body")


def _cli_offset(p: Pristine, where: str) -> int:
    first, second, last = p.records[0], p.records[1], p.records[-1]
    return {"magic": 3, "marker": second.offset + 1, "length": second.offset + 5,
            "crc": second.offset + 9, "first body": first.offset + first.length // 2,
            "last body": last.offset + last.length // 3}[where]


@pytest.mark.parametrize("where", CLI_FLIPS)
def test_cli_on_flipped_journals_exits_0_or_1_without_a_traceback(pristine, tmp_path, where):
    offset = _cli_offset(pristine, where)
    data = tmp_path / "data"
    folder = pristine.copy_to(data / "crashy" / pristine.folder.name, offset, 0xFF)
    env = {**os.environ, "WSREC_DATA": str(data)}
    wsrec_cmd = [sys.executable, "-m", "wsrec"]
    reads = [["replay", str(folder), "--speed", "max", "--direction", "all"],
             ["info", str(folder)],
             ["verify", str(folder)],
             ["convert", str(folder), "--format", "jsonl", "--direction", "all", "-o",
              str(tmp_path / "out.jsonl")]]
    runs = [subprocess.Popen(wsrec_cmd + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=env, cwd=tmp_path) for args in reads]
    results = []
    try:
        for args, run in zip(reads, runs):
            out, err = run.communicate(timeout=60)
            results.append((args[0], run.returncode, out, err))
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait()
    for args in (["repair", str(folder)], ["verify", str(folder)]):
        run = subprocess.run(wsrec_cmd + args, capture_output=True, env=env, cwd=tmp_path,
                             timeout=60)
        results.append((args[0] + " after repair" * (args[0] == "verify"), run.returncode,
                        run.stdout, run.stderr))
    for name, code, out, err in results:
        assert code in (0, 1), (where, name, code, err.decode(errors="replace"))
        assert b"Traceback" not in err and b"Traceback" not in out, (where, name, err)
    codes = {name: code for name, code, _, _ in results}
    assert codes["verify"] == 1 and codes["repair"] == 0 and codes["verify after repair"] == 0
    assert codes["replay"] == 0 and codes["info"] == 0 and codes["convert"] == 0
    verify_out = next(out for name, _, out, _ in results if name == "verify")
    assert b"part-000000.journal: damaged bytes" in verify_out
    replayed = next(out for name, _, out, _ in results if name == "replay").splitlines()
    assert len(replayed) == 26 - len(pristine.lost_seqs(offset))  # every intact row
    assert (folder / (JOURNAL + ".damaged")).exists()
