"""replay --follow: the schedule fed by a follower (fake clock and injected sleep), the
stdout replay in-process, and the command end to end against a real recorder."""

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import wsrec
from wsrec.errors import UsageError
from wsrec.replay._schedule import Schedule
from wsrec.replay.stdout import ReplayOptions, replay_to_stream
from wsrec.store.filters import Filters

from tests.conftest import crashed_session
from tests.store.test_follow import Script, _rolling, _settle

MS = 1_000_000
T0 = 1_795_000_000_000_000_000
PY = [sys.executable, "-m", "wsrec"]


def env(data):
    return {**os.environ, "WSREC_DATA": str(data)}


def put(w, first, n, step_ms=100):
    """Rows ``first..first+n-1``, ``step_ms`` apart on both clocks, then a flush."""
    for i in range(first, first + n):
        w.append(b'{"i":%d}' % i, kind="text", ts_ns=T0 + i * step_ms * MS,
                 mono_ns=10**12 + i * step_ms * MS)
    w.flush()


def dues_of(schedule):
    return [(b.column("payload").to_pylist(), d.to_pylist()) for b, d in schedule]


def test_caught_up_the_schedule_waits_for_the_recorder_without_drifting(data):
    """At 10x the replay catches up with the recording; a batch read after it was due is
    moved to when it was read, the frames of the batch keeping their spacing."""
    w = wsrec.SessionWriter("v", data=data, flush_interval=3600)
    put(w, 0, 3)
    clock = {"now": 5 * MS}

    def more():
        put(w, 3, 3)
        clock["now"] += 2_000 * MS          # the recorder took 2 s to flush them

    script = Script(more, w.close)
    schedule = Schedule([wsrec.open_session(w.folder)], speed=10, follow=True,
                        sleep=script, clock=lambda: clock["now"],
                        columns=["ts", "mono_ns", "payload", "session"])
    got = dues_of(schedule)
    assert got[0][1] == [0, 10 * MS, 20 * MS]                 # anchored at the first frame
    # read 2.005 s after the start: due then, 10 ms apart (100 ms recorded, at 10x)
    assert got[1][1] == [2_000 * MS, 2_010 * MS, 2_020 * MS]
    assert [p for payloads, _ in got for p in payloads] == [b'{"i":%d}' % i for i in range(6)]


def test_ahead_of_the_recording_nothing_moves(data):
    """At 1x from the start of a recording an hour old, every frame is read before it is
    due: the due times are the recorded ones; at full speed they are never moved."""
    w = wsrec.SessionWriter("v", data=data, flush_interval=3600)
    put(w, 0, 3, step_ms=1_000)
    clock = {"now": 0}

    def more():
        put(w, 3, 2, step_ms=1_000)
        clock["now"] += 1_500 * MS

    for speed, expected in ((1, [0, 1_000, 2_000, 3_000, 4_000]),
                            (None, [0, 1_000, 2_000, 3_000, 4_000])):
        script = Script(more, lambda: None) if speed == 1 else Script()
        schedule = Schedule([wsrec.open_session(w.folder)], speed=speed, follow=True,
                            sleep=script, clock=lambda: clock["now"],
                            columns=["ts", "mono_ns", "payload", "session"])
        dues = [d for _, ds in dues_of(schedule) for d in ds]
        assert dues == [ms * MS for ms in expected]
    w.close()


def test_follow_takes_one_session_and_no_loop(data):
    w = wsrec.SessionWriter("v", data=data)
    w.close()
    s = wsrec.open_session(w.folder)
    with pytest.raises(UsageError, match="one session"):
        Schedule([s, s], follow=True)
    with pytest.raises(UsageError, match="loop and skip_gaps"):
        ReplayOptions(follow=True, loop=2)


@pytest.mark.parametrize("fmt,speed", [("raw", None), ("envelope", None), ("raw", 1000.0)])
def test_stdout_follows_until_the_session_ends(data, fmt, speed):
    """A writer appending while replay_to_stream follows: every line once, in order, the
    same lines a replay of the finished session gives."""
    w = wsrec.SessionWriter("v", data=data, flush_interval=0.05, part_bytes=300)
    put(w, 0, 5, step_ms=1)

    def record():
        for k in range(1, 8):
            time.sleep(0.02)
            put(w, k * 5, 5, step_ms=1)
        w.close()

    recorder = threading.Thread(target=record)
    recorder.start()
    out = io.BytesIO()
    session = wsrec.open_session(w.folder)
    n = replay_to_stream([session], Filters(), ReplayOptions(speed=speed, format=fmt,
                                                             follow=True), out)
    recorder.join(30)
    done = io.BytesIO()
    replay_to_stream([wsrec.open_session(w.folder)], Filters(),
                     ReplayOptions(speed=None, format=fmt), done)
    assert n == 40 and out.getvalue() == done.getvalue()
    if fmt == "raw":
        assert out.getvalue().splitlines() == [b'{"i":%d}' % i for i in range(40)]


def test_stdout_follows_across_a_rotation(data):
    w, put_at = _rolling(data)
    put_at(5)
    first = wsrec.open_session(w.folder)

    def record():
        time.sleep(0.1)
        put_at(14)
        _settle(w)
        time.sleep(0.1)
        put_at(25)
        w.close()

    recorder = threading.Thread(target=record)
    recorder.start()
    out = io.BytesIO()
    replay_to_stream([first], Filters.make(direction="all"),
                     ReplayOptions(speed=None, follow=True), out)
    recorder.join(30)
    lines = out.getvalue().splitlines()
    assert [x for x in lines if x.startswith(b"f")] == [b"f%d" % i for i in range(26)]
    assert sum(b'"to"' in x for x in lines) == 1 and sum(b'"from"' in x for x in lines) == 1


def test_a_stop_event_ends_a_follow_of_an_idle_session(data):
    w = wsrec.SessionWriter("v", data=data, flush_interval=3600)
    try:
        put(w, 0, 2)
        for speed in (None, 1.0):
            stop = threading.Event()
            threading.Timer(0.3, stop.set).start()
            out = io.BytesIO()
            began = time.monotonic()
            n = replay_to_stream([wsrec.open_session(w.folder)], Filters(),
                                 ReplayOptions(speed=speed, follow=True), out, stop=stop)
            assert n == 2 and time.monotonic() - began < 10
    finally:
        w.close()


# -- the command ----------------------------------------------------------------------------

def _readline(proc, timeout=60):
    """The next line of ``proc``'s stdout, waiting at most ``timeout`` seconds."""
    got = []
    reader = threading.Thread(target=lambda: got.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert got, "no line within the timeout"
    return got[0]


def _finish(proc, timeout=120):
    """The rest of ``proc``'s stdout (through the same buffered reader as ``_readline``)
    and its stderr, once it exits."""
    got = []
    reader = threading.Thread(target=lambda: got.append(proc.stdout.read()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert got, "the process did not end within the timeout"
    proc.wait(timeout)
    return got[0], proc.stderr.read()


def _wait_for_session(data, venue, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list(Path(data).glob(f"venue={venue}/date=*/*/session.json")):
            return
        time.sleep(0.05)
    raise AssertionError(f"no {venue} session within {timeout} s")


def test_follow_a_real_recording_to_its_end(data):
    """`wsrec record ... --sim` in one process, `wsrec replay VENUE --follow --speed max`
    in another: lines come while it records, and when it ends the follow has given
    exactly what a replay of the finished session gives."""
    rec = subprocess.Popen(PY + ["record", "hyperliquid", "--symbols", "BTC,ETH", "--sim",
                                 "--sim-rate", "200", "--duration", "4s", "--flush-interval",
                                 "0.1", "-q"], env=env(data), stderr=subprocess.PIPE)
    try:
        _wait_for_session(data, "hyperliquid")
        follow = subprocess.Popen(PY + ["replay", "hyperliquid", "--follow", "--speed", "max"],
                                  env=env(data), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        first = _readline(follow)
        assert first.startswith(b"{") and rec.poll() is None   # while it is recording
        rest, err = _finish(follow)
        assert follow.returncode == 0 and err == b""
        assert rec.wait(60) == 0
    finally:
        if rec.poll() is None:
            rec.kill()
    replayed = subprocess.run(PY + ["replay", "hyperliquid", "--speed", "max"], env=env(data),
                              capture_output=True, timeout=60).stdout
    assert first + rest == replayed and replayed.count(b"\n") > 100


def test_ctrl_c_and_sigterm_end_a_follow_quietly(data):
    w = wsrec.SessionWriter("v", data=data, flush_interval=3600)
    try:
        put(w, 0, 3)
        for sig, speed in ((signal.SIGINT, "1"), (signal.SIGTERM, "max")):
            follow = subprocess.Popen(PY + ["replay", "v", "--follow", "--speed", speed],
                                      env=env(data), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
            assert _readline(follow) == b'{"i":0}\n'
            time.sleep(0.5)
            follow.send_signal(sig)
            out, err = _finish(follow, 30)
            assert follow.returncode == 0 and err == b"", err
            assert out == b'{"i":1}\n{"i":2}\n'
    finally:
        w.close()


def test_lines_are_flushed_as_they_come_and_a_closed_pipe_ends_quietly(data, tmp_path):
    w = wsrec.SessionWriter("v", data=data, flush_interval=0.05)
    put(w, 0, 1)
    stop = threading.Event()

    def record():
        i = 1
        while not stop.wait(0.05):
            put(w, i, 1)
            i += 1

    recorder = threading.Thread(target=record)
    recorder.start()
    try:
        err = tmp_path / "err"
        out = subprocess.run(f"{sys.executable} -m wsrec replay v --follow --speed max "
                             f"2>{err} | head -2", shell=True, env=env(data),
                             capture_output=True, timeout=60)
        assert out.stdout == b'{"i":0}\n{"i":1}\n' and err.read_text() == ""
    finally:
        stop.set()
        recorder.join(30)
        w.close()


def test_a_crashed_session_ends_the_follow_with_one_line(data):
    folder = crashed_session(data, n=5)
    out = subprocess.run(PY + ["replay", "crashy", "--follow", "--speed", "max"], env=env(data),
                         capture_output=True, timeout=60)
    assert out.returncode == 1 and out.stdout.count(b"\n") == 5
    err = out.stderr.decode()
    assert err.count("\n") == 1 and f"run 'wsrec repair {folder}'" in err, err


@pytest.mark.parametrize("args,message", [
    (["v", "v"], "--follow plays one SESSION"),
    (["v", "--loop", "2"], "--loop and --skip-gaps do not apply to --follow"),
    (["v", "--skip-gaps"], "--loop and --skip-gaps do not apply to --follow"),
    (["v", "--normalize", "trades"], "--normalize does not follow"),
])
def test_usage_errors(data, args, message):
    w = wsrec.SessionWriter("v", data=data)
    w.close()
    out = subprocess.run(PY + ["replay", "--follow", *args], env=env(data),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_a_tcp_server_follows_a_live_session(data):
    """`--to tcp://` with --follow: the client gets the lines as they are recorded, and
    the end of the session ends the replay (--once: then the server)."""
    w = wsrec.SessionWriter("v", data=data, flush_interval=0.05)
    put(w, 0, 2)
    server = subprocess.Popen(PY + ["replay", "v", "--follow", "--speed", "max", "--once",
                                    "--to", "tcp://127.0.0.1:0"], env=env(data),
                              stderr=subprocess.PIPE, text=True)
    try:
        first = server.stderr.readline()
        assert first.startswith("listening on tcp://"), first
        host, port = first.split()[-1][len("tcp://"):].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            reader = sock.makefile("rb")
            assert reader.readline() == b'{"i":0}\n' and reader.readline() == b'{"i":1}\n'
            put(w, 2, 2)
            assert reader.readline() == b'{"i":2}\n' and reader.readline() == b'{"i":3}\n'
            w.close()
            assert reader.read() == b""                   # the session ended
        assert server.wait(60) == 0
    finally:
        if server.poll() is None:
            server.kill()
        w.close()


def test_sigterm_stops_a_following_server_with_an_idle_session(data):
    w = wsrec.SessionWriter("v", data=data, flush_interval=3600)
    put(w, 0, 1)
    server = subprocess.Popen(PY + ["replay", "v", "--follow", "--speed", "1", "--to",
                                    "tcp://127.0.0.1:0"], env=env(data),
                              stderr=subprocess.PIPE, text=True)
    try:
        first = server.stderr.readline()
        host, port = first.split()[-1][len("tcp://"):].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            assert sock.makefile("rb").readline() == b'{"i":0}\n'
            began = time.monotonic()
            server.send_signal(signal.SIGTERM)
            assert server.wait(30) == 0 and time.monotonic() - began < 20
    finally:
        if server.poll() is None:
            server.kill()
        w.close()
