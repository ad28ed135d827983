"""wsrec replay to stdout: bytes, timing, filters, merging, loops, pipes, bad input."""

import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

import wsrec
from wsrec.cli.commands import cli
from wsrec.record.recorder import RecordOptions
from wsrec.sim import SimOptions

from conftest import record_from_sim

pytestmark = pytest.mark.timeout(120)
MS = 1_000_000


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    record_from_sim("alpaca", data, sim=SimOptions(rate=300), symbols=["FAKEPACA", "AAPL"],
                    options=RecordOptions(duration=1.0))
    record_from_sim("hyperliquid", data, sim=SimOptions(rate=300), symbols=["BTC"],
                    options=RecordOptions(duration=0.5))
    return data


def wsrec_cmd(*args, data, input=None, timeout=60):
    env = {**os.environ, "WSREC_DATA": str(data)}
    return subprocess.run([sys.executable, "-m", "wsrec", *map(str, args)], env=env,
                          capture_output=True, timeout=timeout)


def run(data, *args):
    return CliRunner().invoke(cli, [str(a) for a in args], env={"WSREC_DATA": str(data)})


def test_max_speed_stdout_is_byte_exact(recorded):
    out = wsrec_cmd("replay", "alpaca", "--speed", "max", data=recorded)
    assert out.returncode == 0, out.stderr
    s = wsrec.open_session("alpaca", data=recorded)
    expected = b"".join(f.payload + b"\n" for f in s.frames(direction="in"))
    assert out.stdout == expected
    for line in out.stdout.splitlines():
        json.loads(line)  # every line is a JSON document for jq


def make(data, venue, gaps_ms, n=50, step_ms=10):
    """A session of n frames every step_ms, with a disconnect of gaps_ms in the middle."""
    with wsrec.SessionWriter(venue, data=data) as w:
        t = 1_000_000
        w.event("open", ts_ns=t * MS, mono_ns=t * MS)
        for i in range(n):
            if i == n // 2 and gaps_ms:
                w.event("close", code=1006, ts_ns=t * MS, mono_ns=t * MS)
                t += gaps_ms
                w.event("open", ts_ns=t * MS, mono_ns=t * MS)
            w.append(b'{"i":%d}' % i, kind="text", symbols=("S%d" % (i % 3),),
                     channels=("c",), ts_ns=t * MS, mono_ns=t * MS)
            t += step_ms
    return w.folder


def paced(folder, speed, **kw):
    import io
    from wsrec.store.filters import Filters
    from wsrec.replay._pacing import Lateness
    from wsrec.replay.stdout import ReplayOptions, replay_to_stream
    out, lateness = io.BytesIO(), Lateness()
    t0 = time.monotonic()
    n = replay_to_stream([wsrec.open_session(folder)], Filters.make(direction="in"),
                         ReplayOptions(speed=speed, **kw), out, lateness=lateness)
    return out.getvalue(), time.monotonic() - t0, n, lateness.summary()


def dues_ms(folder, speed, **kw):
    """When each frame is due (ms after the first), as the paced replay is told."""
    from wsrec.store.filters import Filters
    from wsrec.replay.stdout import ReplayOptions, scheduled_frames
    return [due / MS for _, _, dues, _ in
            scheduled_frames([wsrec.open_session(folder)], Filters.make(direction="in"),
                             ReplayOptions(speed=speed, **kw))
            for due in dues]


def test_paced_at_1x_and_10x(data):
    folder = make(data, "paced", gaps_ms=0, n=61, step_ms=10)  # 600 ms of frames
    # the schedule: exact, whatever the machine's load (the pacer's waiting is tested on
    # a fake clock in test_pacing)
    assert dues_ms(folder, 1.0) == [10.0 * i for i in range(61)]
    assert dues_ms(folder, 10.0) == pytest.approx([1.0 * i for i in range(61)])
    # end to end on the real clock: never early; the upper bounds only catch a replay
    # that ignores the speed (precise figures are benched)
    fast, _, n, _ = paced(folder, None)
    one, t1, _, late1 = paced(folder, 1.0)
    ten, t10, _, late10 = paced(folder, 10.0)
    assert one == ten == fast and n == 61
    assert 0.6 <= t1 < 0.6 + 10      # the last frame is due at 600 ms
    assert 0.06 <= t10 < 0.6 + 10
    for late in (late1, late10):
        assert late["frames"] == 61 and 0 <= late["p50_ms"] <= late["max_ms"]


def test_stats_on_the_command_line(data):
    folder = make(data, "stats", gaps_ms=0, n=20, step_ms=2)
    out = wsrec_cmd("replay", folder, "--stats", data=data)
    assert out.returncode == 0
    assert b"frames sent: 20; lateness p50" in out.stderr


def test_gaps_are_kept_or_skipped(data):
    folder = make(data, "gappy", gaps_ms=800, n=20, step_ms=5)
    before = [5.0 * i for i in range(10)]
    assert dues_ms(folder, 1.0) == before + [850.0 + 5.0 * i for i in range(10)]
    assert dues_ms(folder, 1.0, skip_gaps=True) == [5.0 * i for i in range(20)]
    _, kept, _, _ = paced(folder, 1.0)   # end to end: the gap is waited out
    assert kept >= 0.895


def test_filters(recorded):
    s = wsrec.open_session("alpaca", data=recorded)
    out = run(recorded, "replay", "alpaca", "--speed", "max", "--symbols", "AAPL",
              "-c", "trades")
    expected = [f.payload for f in s.frames(direction="in", symbols="AAPL", channels="trades")]
    assert out.stdout_bytes.splitlines() == expected and expected
    everything = run(recorded, "replay", "alpaca", "--speed", "max", "--direction", "all",
                     "--format", "envelope")
    dirs = {json.loads(line)["dir"] for line in everything.stdout.splitlines()}
    assert dirs == {"in", "out", "event"}
    start = s.start_ns
    part = run(recorded, "replay", "alpaca", "--speed", "max", "--start", "+0.5s",
               "--format", "envelope")
    first = json.loads(part.stdout.splitlines()[0])
    assert wsrec.timefmt.parse_time(first["ts"]) >= start + 500 * MS


def test_merges_sessions_and_loops(recorded):
    a = wsrec.open_session("alpaca", data=recorded)
    h = wsrec.open_session("hyperliquid", data=recorded)
    out = run(recorded, "replay", "alpaca", "hyperliquid", "--speed", "max",
              "--format", "envelope")
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert len(rows) == a.rows() - len(list(a.frames(direction="out,event"))) + \
        h.rows() - len(list(h.frames(direction="out,event")))
    assert {r["venue"] for r in rows} == {"alpaca", "hyperliquid"}
    times = [wsrec.timefmt.parse_time(r["ts"]) for r in rows]
    assert times == sorted(times)
    looped = run(recorded, "replay", "hyperliquid", "--speed", "max", "--loop", "3")
    single = run(recorded, "replay", "hyperliquid", "--speed", "max")
    assert looped.stdout_bytes == single.stdout_bytes * 3


def test_closed_pipe_ends_quietly(recorded):
    env = {**os.environ, "WSREC_DATA": str(recorded)}
    out = subprocess.run(f"{sys.executable} -m wsrec replay alpaca --speed max --loop 50 "
                         f"| head -2", shell=True, env=env, capture_output=True, timeout=60)
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 2
    assert b"Traceback" not in out.stderr and b"Broken pipe" not in out.stderr
    paced = subprocess.run(f"{sys.executable} -m wsrec replay alpaca --speed 100 | head -1",
                           shell=True, env=env, capture_output=True, timeout=60)
    assert paced.returncode == 0 and b"Traceback" not in paced.stderr


@pytest.mark.parametrize("args,code,message", [
    (["nope"], 1, "no session matches 'nope'"),
    (["alpaca", "--speed", "0"], 2, "speed must be positive"),
    (["alpaca", "--speed", "-2"], 2, "not a speed"),
    (["alpaca", "--speed", "fast"], 2, "not a speed"),
    (["alpaca", "--start", "2026-01-02", "--end", "2026-01-01"], 2, "--start is after --end"),
    (["alpaca", "--start", "noon"], 2, "ISO 8601"),
    (["alpaca", "alpaca"], 2, "given twice"),
    (["alpaca", "--to", "ftp://x"], 2, "unknown target"),
    (["alpaca", "--to", "tcp://127.0.0.1"], 2, "needs a port"),
    (["alpaca", "--speed", "0.0000001"], 2, "speed '0.0000001' is too slow (at least 1e-06)"),
    (["alpaca", "--speed", "1" * 400], 2, "speed must be a finite number"),
    (["alpaca", "-c", "\udcff\udcfe"], 2,
     "Invalid value for --channels: channel b'\\xff\\xfe' is not valid UTF-8 text"),
    (["alpaca", "-s", "ok,\udcff"], 2, "Invalid value for --symbols: symbol b'\\xff'"),
])
def test_bad_input(recorded, args, code, message):
    result = run(recorded, "replay", *args)
    assert result.exit_code == code, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_filter_matching_nothing_says_so(recorded):
    result = run(recorded, "replay", "alpaca", "--speed", "max", "--symbols", "NOPE")
    assert result.exit_code == 0 and result.stdout == ""
    assert "no frame has symbol 'NOPE'; symbols here: " in result.stderr


def test_live_session_replays_what_is_flushed(data):
    w = wsrec.SessionWriter("live", data=data)
    try:
        w.append(b'{"a":1}', kind="text")
        w.flush()
        result = run(data, "replay", "live", "--speed", "max")
        assert result.exit_code == 0 and result.stdout == '{"a":1}\n'
        assert "still being recorded" in result.stderr
    finally:
        w.close()


# -- time bounds, speeds and due times that int64 can't hold ---------------------------------

TIME_BOUNDS = [
    ("--end", "3000-01-01", "'3000-01-01' is outside the times wsrec can represent"),
    ("--start", "3000-01-01", "'3000-01-01' is outside the times wsrec can represent"),
    ("--start", "1600-01-01", "'1600-01-01' is outside the times wsrec can represent"),
    ("--end", "1677-09-21", "'1677-09-21' is outside the times wsrec can represent"),
    ("--end", "2262-04-11T23:47:16.854775808Z", "is outside the times wsrec can represent"),
    ("--start", "9999-12-31T23:59:59+14:00", "is outside the times wsrec can represent"),
    ("--start", "+36526d", "duration '36526d' is too long (at most 100 years)"),
    ("--end", "+" + "9" * 30 + "s", "is too long (at most 100 years)"),
    ("--end", "+", "not a duration: ''"),
]


@pytest.mark.parametrize("command", ["replay", "convert"])
@pytest.mark.parametrize("option,value,message", TIME_BOUNDS)
def test_time_bounds_outside_the_range_are_usage_errors(recorded, command, option, value,
                                                        message):
    extra = ["--format", "jsonl"] if command == "convert" else ["--speed", "max"]
    result = run(recorded, command, "alpaca", *extra, option, value)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {option}: " in result.stderr and message in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("command", ["replay", "convert"])
def test_an_offset_past_2262_is_a_usage_error(data, command):
    late = wsrec.timefmt.parse_time("2262-01-01")
    with wsrec.SessionWriter("late", data=data, started_ns=late) as w:
        w.append(b"x", kind="text", ts_ns=late, mono_ns=0)
    extra = ["--format", "jsonl"] if command == "convert" else ["--speed", "max"]
    result = run(data, command, "late", *extra, "--end", "+365d")
    assert result.exit_code == 2 and "Invalid value for --end: '+365d' is outside" in \
        result.stderr
    assert run(data, command, "late", *extra, "--end", "+30d").exit_code == 0


@pytest.mark.parametrize("command", ["replay", "convert"])
def test_undecodable_filter_arguments_from_the_shell(recorded, command):
    """Bytes that are not UTF-8 on the real command line (surrogate escapes): one line."""
    extra = [b"--format", b"jsonl"] if command == "convert" else [b"--speed", b"max"]
    out = subprocess.run([sys.executable, "-m", "wsrec", command, "alpaca", *extra,
                          b"-c", b"\xff\xfe"], env={**os.environ, "WSREC_DATA": str(recorded)},
                         capture_output=True, timeout=60)
    assert out.returncode == 2 and b"Traceback" not in out.stderr
    assert b"Invalid value for --channels: channel b'\\xff\\xfe' is not valid UTF-8 text" \
        in out.stderr


@pytest.mark.parametrize("text,message", [
    ("0.0000001", "too slow"), ("0.0000009", "too slow"), ("1" * 400, "finite"),
    (float("inf"), "finite"), (float("nan"), "finite"), (1e-7, "too slow"), (0, "positive"),
    (-1.0, "positive"), ("-1", "not a speed"), ("1e3", "not a speed"), (True, "not a speed"),
])
def test_parse_speed_refuses(text, message):
    from wsrec.replay.stdout import parse_speed
    with pytest.raises(ValueError, match=message):
        parse_speed(text)


def test_parse_speed_accepts():
    from wsrec.replay.stdout import parse_speed
    assert parse_speed("0.000001") == 1e-6 and parse_speed(1e-6) == 1e-6
    assert parse_speed("10x") == 10 and parse_speed("max") is None and parse_speed(2) == 2.0


HOUR = 3600 * 10**9


def three_hours(data):
    with wsrec.SessionWriter("slow", data=data, started_ns=10**18) as w:
        w.append(b"a", kind="text", ts_ns=10**18, mono_ns=5)
        w.append(b"b", kind="text", ts_ns=10**18 + 3 * HOUR, mono_ns=5 + 3 * HOUR)
    return wsrec.open_session(w.folder)


def test_a_speed_that_would_overflow_is_a_usage_error(data):
    three_hours(data)
    result = run(data, "replay", "slow", "--speed", "0.000001")
    assert result.exit_code == 2, result.output
    assert "Invalid value for --speed: 1e-06 is too slow for 3h00m00s of recording" in \
        result.stderr and "give at least 1.17e-06" in result.stderr


def test_the_schedule_never_wraps_due_times(data):
    from wsrec.replay._schedule import Schedule, ScheduleOverflow
    session = three_hours(data)
    with pytest.raises(ScheduleOverflow, match="speed 1e-06 is too slow") as caught:
        list(Schedule([session], speed=1e-6))
    assert isinstance(caught.value, wsrec.errors.WsrecError) and \
        isinstance(caught.value, ValueError)
    [(_, due)] = list(Schedule([session], speed=0.01))
    assert due.to_pylist() == [0, 3 * HOUR * 100]  # slow, exact, positive


def test_clocks_spanning_more_than_int64_are_an_error_not_wrapped(data):
    from wsrec.replay._schedule import Schedule, ScheduleOverflow
    with wsrec.SessionWriter("wide", data=data, started_ns=10**18) as w:
        w.append(b"a", kind="text", ts_ns=10**18, mono_ns=-(2**63) + 5)
        w.append(b"b", kind="text", ts_ns=10**18 + 1, mono_ns=2**63 - 5)
    session = wsrec.open_session(w.folder)
    with pytest.raises(ScheduleOverflow, match="spans more than int64"):
        list(Schedule([session], speed=1.0))
    result = run(data, "replay", "wide", "--speed", "1")
    assert result.exit_code == 1 and "Error: " in result.stderr and \
        "spans more than int64" in result.stderr
    # converting one session needs no due times: it still works
    assert run(data, "convert", "wide", "--format", "jsonl").stdout.count("\n") == 2
