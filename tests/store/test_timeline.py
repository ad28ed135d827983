"""Frames per bucket, down time and latency per bucket (wsrec.store.timeline): literal
tables in, exact counts and strings out."""

import json

import pytest

from wsrec.errors import UsageError
from wsrec.store.timeline import (BLOCKS, DOWN, MAX_BUCKETS, NICE_NS, Binner, choose_buckets,
                                  fit_width, session_range, sparkline, timeline, timeline_lines,
                                  width_label)
from wsrec.timefmt import NS, format_ns

from timeline_cases import MS, T0, rows, write


def test_bucket_widths_are_round_and_aligned():
    # 60 s in at most 60 buckets: 1 s each, from the whole second
    assert choose_buckets(T0, T0 + 59 * NS, 60) == (T0, NS, 60)
    # 60 s + 1 ns needs 61 one-second buckets: 2 s
    assert choose_buckets(T0, T0 + 60 * NS, 60) == (T0, 2 * NS, 31)
    # alignment can cost a bucket: 10.5 s .. 70.2 s spans 59.7 s, but from 10 s on it
    # takes 61 one-second buckets, so 2 s ones
    assert choose_buckets(T0 + 10_500 * MS, T0 + 70_200 * MS, 60) == (T0 + 10 * NS, 2 * NS, 31)
    # three days in 100: one hour each, from the hour
    day = 86_400 * NS
    first, width, n = choose_buckets(T0, T0 + 3 * day, 100)
    assert (width, n) == (3600 * NS, 73) and first % (3600 * NS) == 0
    # one instant: one bucket of 1 ns
    assert choose_buckets(T0 + 7, T0 + 7, 100) == (T0 + 7, 1, 1)
    # ends given the wrong way round
    assert choose_buckets(T0 + 59 * NS, T0, 60) == (T0, NS, 60)
    assert list(NICE_NS) == sorted(NICE_NS)


def test_an_explicit_bucket_width():
    assert choose_buckets(T0 + 5 * NS, T0 + 125 * NS, 10, bucket_ns=60 * NS) == (T0, 60 * NS, 3)
    with pytest.raises(UsageError, match=r"a 1ns bucket makes 86,400,000,000,001 buckets .* "
                                         r"more than 100,000: choose a wider bucket"):
        choose_buckets(T0, T0 + 86_400 * NS, 10, bucket_ns=1)
    assert choose_buckets(T0, T0 + MAX_BUCKETS - 1, 10, bucket_ns=1)[2] == MAX_BUCKETS
    with pytest.raises(UsageError, match="at least 1 bucket"):
        choose_buckets(T0, T0, 0)


def test_width_labels():
    assert [width_label(w) for w in (86_400 * NS, 6 * 3600 * NS, 15 * 60 * NS, 30 * NS,
                                     200 * MS, 5_000, 1, 90 * NS)] == \
        ["1d", "6h", "15m", "30s", "200ms", "5us", "1ns", "90s"]


def test_counts_received_frames_per_stream_and_channel():
    b = Binner(T0, T0 + 9 * NS, 10)
    b.add(rows([T0, T0 + 100 * MS, T0 + 2 * NS, T0 + 9 * NS + 999 * MS],
               stream=["a", "a", "b", None], channel=["x", "y", None, "x"]))
    b.add(rows([T0 + 1 * NS, T0 + 2 * NS], dirs=["out", "event"]))   # not received: not counted
    t = b.result()
    assert (t.start_ns, t.bucket_ns, t.buckets) == (T0, NS, 10)
    assert t.streams == {"(none)": [0] * 9 + [1], "a": [2] + [0] * 9,
                         "b": [0, 0, 1] + [0] * 7}
    assert t.channels == {"(other)": [0, 0, 1] + [0] * 7, "x": [1] + [0] * 8 + [1],
                          "y": [1] + [0] * 9}
    assert t.edges()[:2] == [T0, T0 + NS] and t.end_ns == T0 + 10 * NS


def test_rows_outside_the_range_count_in_the_edge_buckets():
    b = Binner(T0, T0 + 3 * NS, 4)
    b.add(rows([T0 - 50 * NS, T0 + 3 * NS, T0 + 400 * NS]))
    assert b.result().streams == {"a": [1, 0, 0, 2]}


def test_recorded_gaps_mark_their_buckets_down():
    b = Binner(T0, T0 + 9 * NS, 10)
    b.add(rows([T0, T0 + 5 * NS + 10]))
    links = {
        "connections": [{"conn": 0, "stream": "a"}, {"conn": 1, "stream": "quiet"}],
        # 2.5 s .. 4 s: buckets 2 and 3 (the end is exclusive); and one inside bucket 7
        "gaps": [{"stream": "a", "start": format_ns(T0 + 2500 * MS), "end": format_ns(T0 + 4 * NS)},
                 {"stream": "a", "start": format_ns(T0 + 7100 * MS),
                  "end": format_ns(T0 + 7200 * MS)},
                 {"stream": "a", "start": format_ns(T0 - 9 * NS), "end": format_ns(T0 - NS)}],
    }
    t = b.result(links)
    assert t.down["a"] == [False, False, True, True, False, False, False, True, False, False]
    assert t.streams["quiet"] == [0] * 10 and t.down["quiet"] == [False] * 10
    assert t.gaps[0] == ("a", T0 + 2500 * MS, T0 + 4 * NS)
    assert sparkline(t.streams["a"], t.down["a"]) == f"█ {DOWN}{DOWN} █ {DOWN}  "


def test_sparkline_levels():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7, 8]) == " " + BLOCKS
    # any frame shows; the peak is the top block; the scale is each line's own
    assert sparkline([1, 1000, 0], [False, False, True]) == "▁█" + DOWN
    assert sparkline([3, 3]) == "██"
    assert sparkline([]) == ""
    assert sparkline([0, 0], [True, False]) == DOWN + " "


def test_timeline_lines():
    b = Binner(T0, T0 + 59 * NS, 6)
    b.add(rows([T0 + i * NS for i in range(0, 20)] + [T0 + 45 * NS], stream="iex"))
    b.add(rows([T0 + 30 * NS], stream="shard-10"))
    t = b.result({"gaps": [{"stream": "iex", "start": format_ns(T0 + 21 * NS),
                            "end": format_ns(T0 + 39 * NS)}]}).as_dict()
    assert timeline_lines(t) == [
        "10s/column from 2026-11-18T00:00:00Z ('·' down, ' ' silent)",
        "iex       ██··▁   peak 1.0/s",
        "shard-10     █    peak 0.1/s",
    ]
    assert json.loads(json.dumps(t)) == {
        "start": "2026-11-18T00:00:00Z", "end": "2026-11-18T00:01:00Z", "bucket_ns": 10 * NS,
        "buckets": 6,
        "streams": {"iex": {"frames": [10, 10, 0, 0, 1, 0],
                            "down": [False, False, True, True, False, False]},
                    "shard-10": {"frames": [0, 0, 0, 1, 0, 0], "down": [False] * 6}}}
    b = Binner(T0, T0, 5)
    assert timeline_lines(b.result({"connections": [{"stream": "a"}]}).as_dict()) == [
        "1ns/column from 2026-11-18T00:00:00Z ('·' down, ' ' silent)", "a     no frames"]
    assert timeline_lines(Binner(T0, T0, 5).result().as_dict()) == ["-"]
    assert timeline_lines(None) == ["-"]


def test_peak_rates_per_second():
    b = Binner(T0, T0 + 99 * MS, 1)    # one 100 ms bucket
    b.add(rows([T0 + i * MS for i in range(25)]))
    assert timeline_lines(b.result().as_dict())[1] == "a  █  peak 250/s"
    b = Binner(T0, T0 + 9 * MS, 1)    # 10 ms
    b.add(rows([T0 + i * 10_000 for i in range(500)]))
    assert timeline_lines(b.result().as_dict())[1] == "a  █  peak 50,000/s"


def test_latency_percentiles_per_bucket():
    b = Binner(T0, T0 + 2 * NS - 1, 2, latency=True)
    late = [2 * MS] * 98 + [300 * MS] * 2          # bucket 0: p50 2 ms, p99 300 ms
    ts = [T0 + i * MS for i in range(100)]
    b.add(rows(ts, exch=[t - d for t, d in zip(ts, late)]))
    # bucket 1: a venue clock 5 ms ahead, a frame without a time, one under 1 us
    b.add(rows([T0 + NS, T0 + NS + 1, T0 + NS + 2], exch=[T0 + NS + 5 * MS, None, T0 + NS]))
    b.add(rows([T0 + NS], channel="y", exch=[T0 + NS - 40 * NS]))
    b.add(rows([T0 + NS], channel="old", exch=[T0 + NS - 13 * 86_400 * NS]))   # 13 days
    t = b.result()
    p = t.percentiles("x")
    assert p[0][0] == pytest.approx(2, rel=0.06) and p[0][1] == pytest.approx(300, rel=0.06)
    assert p[1][0] == pytest.approx(-5, rel=0.06) and p[1][1] == 0.0
    assert t.percentiles("y") == [[None, None], [pytest.approx(40_000, rel=0.06)] * 2]
    assert t.percentiles("x", (0.0, 1.0))[0] == [pytest.approx(2, rel=0.06),
                                                 pytest.approx(300, rel=0.06)]
    assert t.percentiles("old")[1] == [pytest.approx(13 * 86_400_000, rel=0.06)] * 2
    assert t.percentiles("nothing") == [[None, None]] * 2
    assert Binner(T0, T0, 1).result().latency == {}   # only counted when asked for


def test_fit_width():
    assert fit_width(80) == 39 and fit_width(100) == 59
    assert fit_width(400) == 120 and fit_width(20) == 10 and fit_width(300, cap=200) == 200


def test_a_session_timeline_reads_only_its_columns(data, monkeypatch):
    s = write(data, [T0 + i * 100 * MS for i in range(50)] + [T0 + 9 * NS],
              gaps=[(T0 + 5 * NS + 1, T0 + 8 * NS)])
    asked = []
    batches = type(s).batches
    monkeypatch.setattr(type(s), "batches", lambda self, *a, **kw: (
        asked.append(kw.get("columns")), batches(self, *a, **kw))[1])
    t = timeline(s, 10, latency=True)
    assert asked == [["ts", "dir", "stream", "channel", "exch_ts"]]
    assert (t.start_ns, t.bucket_ns) == (T0, NS)
    assert t.streams["main"][:6] == [10, 10, 10, 10, 10, 0]
    assert t.down["main"][4:9] == [False, True, True, True, False]
    assert t.channels["trades"][9] == 1
    assert t.percentiles("trades")[0] == [pytest.approx(20, rel=0.06)] * 2
    assert session_range(s)[0] == T0


def test_empty_and_one_frame_sessions(data):
    empty = write(data / "e", [])
    t = timeline(empty, 50)
    assert t.streams == {"main": [0] * t.buckets} and t.channels == {}
    assert timeline_lines(t.as_dict())[1].endswith("no frames")
    one = write(data / "o", [T0 + 5 * NS])
    t = timeline(one, 50)
    assert sum(t.streams["main"]) == 1 and t.buckets <= 50


def test_a_session_spanning_days(data):
    s = write(data, [T0 + h * 3600 * NS for h in range(0, 24 * 4, 6)])
    t = timeline(s, 100)
    assert width_label(t.bucket_ns) == "1h" and t.buckets <= 100
    assert sum(t.streams["main"]) == 16 and t.streams["main"][::6] == [1] * 16


def test_times_at_the_ends_of_int64_fall_in_the_edge_buckets():
    b = Binner(T0, T0 + 9 * NS, 10)
    b.add(rows([-(2**63) + 1, 2**63 - 1]))
    assert b.result().streams == {"a": [1] + [0] * 8 + [1]}


def test_a_stream_lost_at_the_end_is_down_not_silent():
    """A stream whose last connection dropped and did not come back before the session
    ended is down from then on (the buckets wholly after the close); a clean stop closes
    within the last bucket and marks nothing."""
    b = Binner(T0, T0 + 9 * NS, 10)   # 10 buckets of 1 s, the session ending at 9 s
    b.add(rows([T0, T0 + NS]))
    links = {"connections": [
        {"conn": 0, "stream": "a", "opened": format_ns(T0), "closed": format_ns(T0 + 2 * NS)},
        {"conn": 1, "stream": "a", "opened": format_ns(T0 + 3 * NS),
         "closed": format_ns(T0 + 6500 * MS)},
        {"conn": 2, "stream": "b", "opened": format_ns(T0), "closed": format_ns(T0 + 8900 * MS)},
        {"conn": 3, "stream": "c", "opened": format_ns(T0), "closed": None}]}
    t = b.result(links)
    assert t.down["a"] == [False] * 7 + [True] * 3
    assert t.down["b"] == [False] * 10 and t.down["c"] == [False] * 10
    assert t.gaps == [("a", T0 + 6500 * MS, T0 + 9 * NS)]
