"""The progress bar of the long commands (wsrec.cli.progress): a total and an ETA when
the total is known, redrawn by time, off with --quiet and when stderr is no terminal, and
never on the line of data written to the same terminal."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from wsrec.cli import progress as progress_module
from wsrec.cli.commands import cli
from wsrec.cli.progress import Bar

from conftest import crashed_session, write_session

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def shown(out: io.StringIO) -> str:
    """What the bar shows last (the text after the last carriage return)."""
    return out.getvalue().rstrip("\r ").rsplit("\r", 1)[-1]


def test_total_and_eta_when_the_total_is_known():
    out, clock = io.StringIO(), Clock()
    bar = Bar(100, file=out, terminal=True, clock=clock)
    clock.now += 2
    bar(25)
    assert "25/100" in shown(out)
    assert "[00:02<00:06" in shown(out)   # 2 s for 25: 6 s for the other 75
    bar.close()


def test_a_count_without_a_total():
    out, clock = io.StringIO(), Clock()
    bar = Bar(None, file=out, terminal=True, clock=clock)
    clock.now += 1
    bar(7)
    assert "7 frames" in shown(out) and "/" not in shown(out).split("[")[0]
    bar.of(7, 70)   # an engine that learns the total as it goes
    assert "7/70" in shown(out)
    bar.close()


def test_redrawn_by_time_not_by_count():
    out, clock = io.StringIO(), Clock()
    bar = Bar(1000, file=out, terminal=True, clock=clock, interval=0.25)
    for n in (1, 2, 3):       # within the interval of the last drawing: not drawn
        clock.now += 0.05
        bar(n)
    assert "3/1000" not in out.getvalue()
    clock.now += 0.2          # the interval is up: the next count is drawn at once
    bar(4)
    assert "4/1000" in shown(out)
    clock.now += 30           # a slow stream: one frame in 30 s is drawn when it comes
    bar(5)
    assert "5/1000" in shown(out)
    bar.close()


def test_the_note_follows_the_count():
    out, clock = io.StringIO(), Clock()
    bar = Bar(10, file=out, terminal=True, clock=clock)
    clock.now += 1
    bar(3, "2026-12-02 10:00:00")
    assert shown(out).endswith("2026-12-02 10:00:00]")
    bar.close()


def test_nothing_with_quiet_without_a_terminal_or_with_json_logs(monkeypatch):
    asked = []

    def total():
        asked.append(1)
        return 10

    out = io.StringIO()
    for bar in (Bar(total, file=out, quiet=True, terminal=True),
                Bar(total, file=out),              # a StringIO is no terminal
                Bar(total, file=out, terminal=False)):
        bar(5)
        bar.close()
        assert not bar.active
    assert out.getvalue() == ""
    assert not asked          # the total is not even counted
    from wsrec.logs import set_format
    set_format("json")
    try:
        assert not Bar(10, file=io.StringIO(), terminal=True).active
    finally:
        set_format("text")


def test_is_terminal():
    assert not progress_module.is_terminal(io.StringIO())
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "wb", closefd=False) as f:
            assert progress_module.is_terminal(f)
    finally:
        os.close(master)
        os.close(slave)


class Screen:
    """A terminal's lines from what is written to it (carriage return, newline)."""

    def __init__(self):
        self.lines, self.line, self.col = [], [], 0

    def feed(self, text: str) -> None:
        for ch in text:
            if ch == "\r":
                self.col = 0
            elif ch == "\n":
                self.lines.append("".join(self.line).rstrip())
                self.line, self.col = [], 0
            else:
                if self.col < len(self.line):
                    self.line[self.col] = ch
                else:
                    self.line.append(ch)
                self.col += 1


def test_data_on_the_same_terminal_clears_the_bar_first(monkeypatch):
    monkeypatch.setattr(progress_module, "is_terminal", lambda stream: True)
    terminal, clock = io.StringIO(), Clock()

    class Data(io.RawIOBase):   # stdout on the same terminal
        def writable(self):
            return True

        def write(self, b):
            terminal.write(bytes(b).decode())
            return len(b)

    bar = Bar(6, file=terminal, clock=clock, interval=0)
    out = bar.stdout(Data())
    bar(0)
    for i in range(3):
        out.write(b"line %d, a little longer than most\n" % i)
        bar(i + 1)
        out.write(b"half ")            # a line written in two pieces: no bar between
        bar(i + 1)
        out.write(b"of line %d\n" % i)
        bar(i + 1)
    bar.close()
    screen = Screen()
    screen.feed(terminal.getvalue())
    assert screen.lines == [s for i in range(3) for s in
                            (f"line {i}, a little longer than most", f"half of line {i}")]
    assert "3/6" in terminal.getvalue()


def test_a_log_line_from_anywhere_goes_above_the_bar(monkeypatch):
    from wsrec.logs import log
    terminal, clock = io.StringIO(), Clock()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = Bar(6, file=terminal, terminal=True, clock=clock)
    clock.now += 1
    bar(2)
    log("reconnecting in 1.0s", "warning")
    screen = Screen()
    screen.feed(terminal.getvalue())
    assert screen.lines == ["warning: reconnecting in 1.0s"]
    assert "2/6" in "".join(screen.line)          # the bar is back under it
    bar.close()
    log("after the bar")                          # a closed bar is no longer told
    screen = Screen()
    screen.feed(terminal.getvalue())
    assert screen.lines == ["warning: reconnecting in 1.0s", "after the bar"]
    assert "".join(screen.line).strip() == ""


# -- the commands -------------------------------------------------------------------------

@pytest.fixture
def run(data):
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, [str(a) for a in args], env={"WSREC_DATA": str(data)})
    return invoke


@pytest.fixture
def on_terminal(monkeypatch):
    """stderr (and stdout) count as a terminal."""
    monkeypatch.setattr(progress_module, "is_terminal", lambda stream: True)


def _commands(data, tmp_path):
    folder, written = write_session(data, n=300)
    source = tmp_path / "in.txt"
    source.write_text("".join(f"{1795000000 + i} {{\"i\":{i}}}\n" for i in range(2000)))
    inbound = sum(kw["dir"] == "in" for _, kw in written)
    return [
        (["replay", folder, "--speed", "max"], f"/{inbound} ["),
        (["replay", folder, "--speed", "1000000"], f"/{inbound} ["),
        (["convert", folder, "--format", "jsonl", "-o", tmp_path / "out.jsonl"],
         f"/{inbound} ["),
        (["verify", folder], f"/{len(written)} ["),
        (["import", source, "--venue", "imported"], "k ["),
    ]


def test_every_long_command_shows_a_total_on_a_terminal(run, data, tmp_path, on_terminal):
    for args, total in _commands(data, tmp_path):
        result = run(*args)
        assert result.exit_code == 0, (args, result.output)
        assert total in result.stderr and "<" in result.stderr, (args, result.stderr)
        if args[0] == "convert":
            (tmp_path / "out.jsonl").unlink()


def test_quiet_and_no_terminal_show_nothing(run, data, tmp_path, monkeypatch):
    for args, _ in _commands(data, tmp_path):
        if args[0] == "convert":
            (tmp_path / "out.jsonl").unlink(missing_ok=True)
        result = run(*args)        # stderr is no terminal here
        assert result.exit_code == 0, (args, result.output)
        assert "\r" not in result.stderr, (args, result.stderr)
    monkeypatch.setattr(progress_module, "is_terminal", lambda stream: True)
    (tmp_path / "out.jsonl").unlink()
    for args, _ in _commands(data, tmp_path):
        result = run(*args, "--quiet")
        assert result.exit_code == 0, (args, result.output)
        assert "\r" not in result.stderr, (args, result.stderr)


def test_repair_shows_the_journal_it_reads(run, data, on_terminal):
    folder = crashed_session(data, n=2000)
    journal = sum(p.stat().st_size for p in folder.glob("*.journal"))
    result = run("repair", folder)
    assert result.exit_code == 0, result.output
    assert "recovered" in result.output
    from tqdm import tqdm
    assert "/" + tqdm.format_sizeof(journal, divisor=1024) + " [" in result.stderr, \
        result.stderr
    assert "\r" not in run("repair", folder, "--quiet").stderr


def test_record_shows_seconds_of_a_duration():
    from types import SimpleNamespace

    from wsrec.cli.commands import _Progress
    out, clock = io.StringIO(), Clock()
    progress = _Progress(False, None, 10.0, file=out, terminal=True, clock=clock)
    rec = SimpleNamespace(frames_in=1234, bytes_in=2048, frames_out=1, reconnects=0,
                          deadline=clock.now + 6.0, clock=clock)   # 4 s gone of 10
    clock.now += 4
    rec.deadline = clock.now + 6.0
    progress(rec, final=False)
    assert "| 4.0/10 s [" in shown(out) and "1,234 frames" in shown(out)
    assert "<00:06" in shown(out) and "s/s" not in shown(out)
    progress(rec, final=True)
    frames = _Progress(False, 5000, 10.0, file=out, terminal=True, clock=clock)
    clock.now += 1
    frames(rec, final=False)
    assert "1234/5000" in shown(out)   # --max-frames: the bar counts frames
    frames(rec, final=True)


def test_replay_lines_never_share_the_terminal_line_with_the_bar(data):
    """stdout and stderr on one pseudo-terminal, as a user runs it: every data line is
    on a line of its own, and the bar was drawn in between."""
    folder, written = write_session(data, n=300)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    expected = subprocess.run(
        [sys.executable, "-m", "wsrec", "replay", str(folder), "--speed", "max"],
        capture_output=True, timeout=60, env=env, cwd=ROOT, check=True).stdout
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    # the 300 frames span about 0.3 s: at 0.3x the replay takes about a second, in
    # which the bar is redrawn every 0.2 s between the lines
    proc = subprocess.Popen(
        [sys.executable, "-m", "wsrec", "replay", str(folder), "--speed", "0.3"],
        stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, cwd=ROOT, env=env)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:   # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert text.count(" frames") >= 3, text   # the bar was drawn, redrawn, with its total
    assert re.search(r"\d+/\d+ \[", text), text
    screen = Screen()
    screen.feed(text)
    lines = expected.decode("utf-8", "replace").replace("\r", "").splitlines()
    assert len(lines) > 200
    assert screen.lines == [line.rstrip() for line in lines]


# -- the engines' progress callbacks ------------------------------------------------------

def test_a_paced_replay_reports_every_frame_as_it_is_written(data):
    """Not every run of frames: on a slow stream the count is never a run behind."""
    from wsrec.replay.stdout import ReplayOptions, replay_to_stream
    from wsrec.store.filters import Filters
    import wsrec
    folder, written = write_session(data, n=300)
    frames = [kw for _, kw in written if kw["dir"] == "in"]
    out, calls = io.BytesIO(), []

    def progress(done, ts):
        calls.append((done, ts, out.getvalue().count(b"\n")))

    n = replay_to_stream([wsrec.open_session(folder)], Filters.make(direction="in"),
                         ReplayOptions(speed=1e6), out, progress=progress)
    assert n == len(frames)
    # one call per frame, right after its line, with that frame's time
    assert calls == [(i + 1, kw["ts_ns"], i + 1) for i, kw in enumerate(frames)]


def test_verify_reports_the_rows_checked(data):
    from wsrec.store.verify import verify
    import wsrec
    folder, written = write_session(data, n=300, flush_every=50)
    session = wsrec.open_session(folder)
    seen = []
    assert verify(session, progress=seen.append) == []
    assert seen and seen == sorted(seen) and seen[-1] == session.rows() == len(written)


CRASH = """
import os, sys, wsrec
w = wsrec.SessionWriter("crashy", data=sys.argv[1], flush_interval=60)
for i in range(3000):
    w.append(b'{"i":%d}' % i, kind="text")
    if i % 500 == 499:
        w.flush()
os._exit(0)   # dies without closing: the journal's records are all there is
"""


def test_repair_reports_the_journal_bytes_read(data):
    from wsrec.store.repair import repair
    from wsrec.store.roots import session_folders
    subprocess.run([sys.executable, "-c", CRASH, str(data)], timeout=60, check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    [folder] = session_folders(data)
    journal = sum(p.stat().st_size for p in folder.glob("*.journal"))
    seen = []
    assert repair(folder, progress=lambda done, total: seen.append((done, total)))
    assert {total for _, total in seen} == {journal}
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1][0] == journal
    assert len({d for d, _ in seen}) >= 6   # record by record, not only at the end


def test_import_reports_the_bytes_of_the_lines_added(data, tmp_path):
    """From 0 to the file's size, never going back, with steps in between: not the
    bytes read ahead (a file smaller than a block is read at once)."""
    from wsrec.record.importer import import_file
    folder, written = write_session(data, n=3000)
    source = tmp_path / "in.jsonl"
    assert CliRunner().invoke(cli, ["convert", str(folder), "--format", "jsonl",
                                    "--direction", "all", "-o", str(source)]).exit_code == 0
    spaced = tmp_path / "spaced.jsonl"   # not as wsrec writes it: read line by line
    spaced.write_text(source.read_text().replace('":', '": '))
    for path, steps in ((source, 1), (spaced, 100)):
        size = path.stat().st_size
        seen: list = []
        import_file(path, "imported", data, progress=lambda d, t, seen=seen: seen.append((d, t)))
        assert seen[0] == (0, size) and seen[-1] == (size, size)
        done = [d for d, _ in seen]
        assert done == sorted(done)
        assert len({d for d in done if 0 < d < size}) >= steps, (path, seen[:5])


def test_a_stderr_that_fails_ends_the_bar_not_the_command():
    class Gone(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    bar = Bar(10, file=Gone(), terminal=True, clock=Clock())
    bar(5)
    assert not bar.active
    bar.close()


def test_record_shows_its_bar_on_a_terminal(run, on_terminal):
    result = run("record", "alpaca", "-s", "FAKEPACA", "--sim", "--sim-rate", "200",
                 "--duration", "1s")
    assert result.exit_code == 0, result.output
    assert "/1 s [" in result.stderr and "s/s" not in result.stderr, result.stderr
    result = run("record", "alpaca", "-s", "FAKEPACA", "--sim", "--sim-rate", "200",
                 "--max-frames", "30")
    assert result.exit_code == 0, result.output
    assert "/30 [" in result.stderr, result.stderr       # of --max-frames frames
    result = run("record", "alpaca", "-s", "FAKEPACA", "--sim", "--max-frames", "30", "-q")
    assert result.exit_code == 0 and "\r" not in result.stderr, result.stderr
