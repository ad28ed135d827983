"""A full disk on every output: one line, exit 1, nothing half-written left, nothing lost.

The disk is made full for the command alone with RLIMIT_FSIZE (files cannot grow past the
limit: EFBIG, which wsrec treats as ENOSPC); SIGXFSZ is ignored, as it would be for a real
full disk, which sends no signal.
"""

import json
import resource
import signal
import subprocess
import sys

import pytest

import wsrec

from conftest import crashed_session, write_session

LIMIT = 60_000


def _full_disk():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def wsrec_full(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "wsrec", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120, preexec_fn=_full_disk)


def one_line_error(out, *needles):
    assert out.returncode == 1, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, out.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def big(data):
    folder, _ = write_session(data, n=4000, venue="alpaca")
    return folder


def test_convert_to_a_full_disk(big, data, tmp_path):
    for fmt in ("jsonl", "csv", "parquet", "arrow", "jsonl.zst"):
        target = tmp_path / f"out.{fmt}"
        out = wsrec_full("convert", "--data", data, "alpaca", "--format", fmt, "-o", target,
                         "--direction", "all", "-q")
        one_line_error(out, "disk full")
        assert list(tmp_path.iterdir()) == [data] or not target.exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], fmt
    assert wsrec.open_session(big).rows() == 4002  # the source is untouched


def test_import_to_a_full_disk(big, data, tmp_path):
    dump = tmp_path / "all.jsonl"
    ok = subprocess.run([sys.executable, "-m", "wsrec", "convert", "--data", str(data), "alpaca",
                         "--format", "jsonl", "--direction", "all", "-o", str(dump), "-q"],
                        capture_output=True, timeout=120)
    assert ok.returncode == 0
    copies = tmp_path / "copies"
    out = wsrec_full("import", dump, "--venue", "copy", "--data", copies)
    one_line_error(out, "disk full")
    assert not (copies / "copy").exists() or not list((copies / "copy").iterdir())


def test_record_to_a_full_disk(data):
    out = wsrec_full("record", "alpaca", "-s", "FAKEPACA", "--sim", "--sim-rate", "2000",
                     "--duration", "20s", "--flush-interval", "0.05", "--data", data, "-q")
    one_line_error(out, "disk full")
    [folder] = list(data.glob("venue=alpaca/date=*/*"))
    session = wsrec.open_session(folder)
    assert session.status in ("failed", "recording")
    assert session.rows() > 10            # what was flushed stays readable
    frames = list(session.frames(direction="all"))
    assert [f.seq for f in frames] == list(range(len(frames)))


def test_repair_on_a_full_disk_loses_nothing(data):
    folder = crashed_session(data, n=30000)
    journal = next(folder.glob("*.journal"))
    before = journal.read_bytes()
    out = wsrec_full("repair", folder)
    one_line_error(out, "disk full")
    assert journal.read_bytes() == before                        # the journal is kept whole
    assert not list(folder.glob("*.tmp"))
    assert wsrec.open_session(folder).rows() == 30001            # every row still readable
    fixed = subprocess.run([sys.executable, "-m", "wsrec", "repair", str(folder)],
                           capture_output=True, text=True, timeout=120)
    assert fixed.returncode == 0, fixed.stderr
    assert wsrec.open_session(folder).state == "recovered"


def test_stdout_on_a_full_disk(big, data, tmp_path):
    """Data to stdout that is a file on a full disk: one line, exit 1."""
    target = tmp_path / "stdout.txt"
    with open(target, "wb") as sink:
        out = subprocess.run([sys.executable, "-m", "wsrec", "replay", "--data", str(data),
                              "alpaca", "--speed", "max", "-q", "--direction", "all"],
                             stdout=sink, stderr=subprocess.PIPE, text=True, timeout=120,
                             preexec_fn=_full_disk)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert [line for line in out.stderr.splitlines() if line.startswith("Error: ")]
    json.dumps(out.stderr)  # printable
