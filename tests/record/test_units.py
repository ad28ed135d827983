"""Durations, sizes and ranges as users write them (the record options and the config)."""

import pytest

from wsrec.errors import UsageError
from wsrec.record.units import MAX_DURATION, bounded, parse_seconds, parse_size


@pytest.mark.parametrize("text,seconds", [("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0),
                                          ("250ms", 0.25), ("2", 2.0), (1.5, 1.5)])
def test_seconds(text, seconds):
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize("text", ["0s", "0", f"{MAX_DURATION + 1}s"])
def test_seconds_out_of_range_name_the_option(text):
    with pytest.raises(UsageError, match="omit duration to record"):
        parse_seconds(text, "duration")


@pytest.mark.parametrize("text,size", [("1GiB", 1 << 30), ("500MB", 500_000_000), ("0", 0),
                                       ("1048576", 1 << 20), (" 1.5 kb ", 1500), (42, 42)])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "5 parsecs", "-1", "", True, -5, 1.5])
def test_not_sizes(text):
    with pytest.raises(UsageError, match="is not a size"):
        parse_size(text)


def test_bounded():
    assert bounded(0.5, "backoff", 0, 86400, low_open=True) == 0.5
    assert bounded(0, "watchdog", 0, 10) == 0
    for value, message in [(0, "backoff: 0 is out of range (more than 0 and at most 86400)"),
                           (86401, "out of range"), (float("nan"), "not a finite number"),
                           (True, "not a finite number"), ("1", "not a finite number")]:
        with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
            bounded(value, "backoff", 0, 86400, low_open=True)
