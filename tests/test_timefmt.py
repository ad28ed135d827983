import datetime as dt

import pytest

from wsrec.timefmt import format_duration, format_ns, parse_duration, parse_time


def test_format_ns_has_nine_digits_and_z():
    assert format_ns(1_795_000_000_000_000_001) == "2026-11-18T11:06:40.000000001Z"
    assert format_ns(0) == "1970-01-01T00:00:00.000000000Z"
    assert format_ns(None) is None


@pytest.mark.parametrize("text,expected", [
    ("2026-11-18T11:06:40.000000001Z", 1_795_000_000_000_000_001),
    ("2026-11-18T11:06:40Z", 1_795_000_000_000_000_000),
    ("2026-11-18 11:06:40", 1_795_000_000_000_000_000),          # naive means UTC
    ("2026-11-18T12:06:40+01:00", 1_795_000_000_000_000_000),
    ("2026-11-18T11:06:40.5", 1_795_000_000_500_000_000),
    ("2026-11-18", 1_794_960_000_000_000_000),
])
def test_parse_time(text, expected):
    assert parse_time(text) == expected


def test_parse_time_round_trips_format_ns():
    for ns in (0, 1, 1_795_000_000_123_456_789, 2_000_000_000_999_999_999):
        assert parse_time(format_ns(ns)) == ns


def test_parse_time_datetime_and_int():
    assert parse_time(dt.datetime(1970, 1, 1, 0, 0, 1)) == 1_000_000_000
    assert parse_time(5) == 5


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01", "2026-11-18T25:00", "", True])
def test_parse_time_rejects(bad):
    with pytest.raises(ValueError):
        parse_time(bad)


@pytest.mark.parametrize("text,ns", [("30s", 30 * 10**9), ("5m", 300 * 10**9),
                                     ("2h", 7200 * 10**9), ("1h30m", 5400 * 10**9),
                                     ("250ms", 250 * 10**6), ("2", 2 * 10**9),
                                     ("1.5s", 1_500_000_000)])
def test_parse_duration(text, ns):
    assert parse_duration(text) == ns


@pytest.mark.parametrize("bad", ["", "s", "5 parsecs", "-3s", "3s!"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration():
    assert format_duration(None) == "-"
    assert format_duration(350_000_000) == "350ms"
    assert format_duration(4_200_000_000) == "4.2s"
    assert format_duration(3723 * 10**9) == "1h02m03s"


# -- the representable range: int64 nanoseconds ------------------------------------------------

FIRST = "1677-09-21T00:12:43.145224193Z"
LAST = "2262-04-11T23:47:16.854775807Z"


def test_range_edges_are_exact():
    from wsrec.timefmt import MAX_NS, MIN_NS
    assert parse_time(FIRST) == MIN_NS == -(2**63) + 1
    assert parse_time(LAST) == MAX_NS == 2**63 - 1
    assert format_ns(MIN_NS) == FIRST and format_ns(MAX_NS) == LAST


@pytest.mark.parametrize("bad", [
    "3000-01-01", "1600-01-01", "9999-12-31T23:59:59Z", "0001-01-01",
    "1677-09-21", "1677-09-21T00:12:43.145224192Z",        # one ns before the first
    "2262-04-12", "2262-04-11T23:47:16.854775808Z",        # one ns after the last
    "2262-04-11T23:47:16.854775807-00:01",                 # an offset pushes it past
    2**63, -(2**63), 2**70, dt.datetime(3000, 1, 1), dt.datetime(1600, 1, 1),
])
def test_times_outside_the_range_are_refused(bad):
    with pytest.raises(ValueError, match="outside the times wsrec can represent"):
        parse_time(bad)


@pytest.mark.parametrize("bad,message", [
    ("101y", "not a duration"),
    ("36526d", "too long"),
    ("3155760001s", "too long"),
    ("1" * 30 + "ns", "too long"),
    ("9" * 1_000_001 + "s", "too long"),                  # never multiplied out
    ("100000000h", "too long"),
    ("36525d1ns", "too long"),
])
def test_absurd_durations_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        parse_duration(bad)


def test_durations_are_exact_up_to_a_hundred_years():
    assert parse_duration("36525d") == 36525 * 86400 * 10**9
    assert parse_duration("0.000000001s") == 1
    assert parse_duration("1.000000001s") == 1_000_000_001


def test_parse_time_counts_an_offset_from_the_origin():
    from wsrec.errors import UsageError
    assert parse_time("+30s", origin=10**18) == 10**18 + 30 * 10**9
    assert parse_time(" +1h30m", origin=0) == 5400 * 10**9
    assert parse_time("2026-11-18", origin=5) == 1_794_960_000_000_000_000  # not an offset
    with pytest.raises(UsageError, match="'\\+30s' is an offset, and there is no start time"):
        parse_time("+30s")
    with pytest.raises(UsageError, match="'\\+1d' is outside the times wsrec can represent"):
        parse_time("+1d", origin=2**63 - 10)
    with pytest.raises(UsageError, match="not a duration"):
        parse_time("+soon", origin=0)
