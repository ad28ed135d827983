import pytest

from wsrec.store.layout import (DAY_NS, SessionPath, date_of, dates_between, parse_rel,
                                session_rel, start_of, venue_of)
from wsrec.timefmt import parse_time


def test_session_rel_files_a_session_under_its_start_date():
    sid = "20261122T235959Z-3f9a"
    assert session_rel("alpaca", sid) == "venue=alpaca/date=2026-11-22/" + sid
    assert start_of(sid) == parse_time("2026-11-22T23:59:59Z")
    assert date_of(parse_time("2026-11-23T00:00:00Z")) == "2026-11-23"
    assert date_of(parse_time("2026-11-22T23:59:59.999999999Z")) == "2026-11-22"


def test_an_id_without_a_time_takes_the_start_given():
    assert start_of("my-session") is None
    assert start_of("20261399T000000Z-aaaa") is None          # month 13: not a time
    assert session_rel("v", "my-session", parse_time("2026-01-02T03:00:00Z")) == \
        "venue=v/date=2026-01-02/my-session"
    with pytest.raises(ValueError, match="started_ns"):
        session_rel("v", "my-session")


@pytest.mark.parametrize("rel, parsed", [
    ("venue=alpaca/date=2026-11-22/20261122T000000Z-3f9a",
     SessionPath("alpaca", "2026-11-22", "20261122T000000Z-3f9a", False)),
    ("alpaca/20261122T000000Z-3f9a", SessionPath("alpaca", None, "20261122T000000Z-3f9a", True)),
    ("/venue=a/date=2026-01-01/x/", SessionPath("a", "2026-01-01", "x", False)),
    ("venue=a/2026-01-01/x", None),          # a date folder must say date=
    ("venue=/date=2026-01-01/x", None),
    ("venue=a/date=26-1-1/x", None),
    ("venue=a/x", None),                     # a partition is not a legacy venue folder
    ("a/b/c/d", None),
    ("a/.hidden", None),
    ("", None),
])
def test_parse_rel_reads_both_layouts(rel, parsed):
    assert parse_rel(rel) == parsed


def test_round_trip():
    for sid in ("20260101T000000Z-0000", "20261231T235959Z-ffff"):
        rel = session_rel("hyperliquid", sid)
        assert parse_rel(rel) == SessionPath("hyperliquid", sid[:4] + "-" + sid[4:6] + "-"
                                             + sid[6:8], sid, False)


def test_venue_of_a_folder_in_either_layout():
    assert venue_of("/d/venue=alpaca/date=2026-01-01/20260101T000000Z-aaaa") == "alpaca"
    assert venue_of("/d/alpaca/20260101T000000Z-aaaa") == "alpaca"
    assert venue_of("/d/date=2026-01-01/20260101T000000Z-aaaa") == "date=2026-01-01"


def test_dates_between_is_inclusive_and_utc():
    t = parse_time("2026-11-22T23:00:00Z")
    assert dates_between(t, t) == ["2026-11-22"]
    assert dates_between(t, t + 3_600_000_000_000) == ["2026-11-22", "2026-11-23"]
    assert dates_between(t - 2 * DAY_NS, t) == ["2026-11-20", "2026-11-21", "2026-11-22"]
    assert dates_between(t, t - DAY_NS) == []
    assert dates_between(None, t) is None and dates_between(t, None) is None
    with pytest.raises(ValueError):
        dates_between(0, 10**6 * DAY_NS)


def test_new_sessions_go_to_date_folders_and_legacy_ones_are_still_found(tmp_path):
    """A session of the older layout (``<root>/<venue>/<id>``, made here by moving one)
    and one of the new: ls, info and replay find both."""
    import json
    import os

    from click.testing import CliRunner

    from conftest import write_session
    from wsrec.cli.commands import cli

    old, _ = write_session(tmp_path, n=30, venue="alpaca", session_id="20250101T000000Z-0ld0")
    new, _ = write_session(tmp_path, n=20, venue="alpaca", session_id="20260101T000000Z-new0")
    assert old.relative_to(tmp_path).as_posix() == \
        "venue=alpaca/date=2025-01-01/20250101T000000Z-0ld0"
    legacy = tmp_path / "alpaca" / old.name
    legacy.parent.mkdir()
    os.rename(old, legacy)
    os.rmdir(old.parent)
    run = CliRunner().invoke
    listed = run(cli, ["ls", "--json", "--data", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(r["venue"], r["id"], r["rows"]) for r in rows] == \
        [("alpaca", old.name, 32), ("alpaca", new.name, 22)]   # with open, close
    assert run(cli, ["info", "alpaca/20250101", "--data", str(tmp_path)]).exit_code == 0
    assert run(cli, ["verify", old.name, "--data", str(tmp_path)]).exit_code == 0
    for ref, frames in (("alpaca", 20), ("alpaca/20250101", 30)):   # a venue: its newest
        out = run(cli, ["replay", ref, "--speed", "max", "--data", str(tmp_path)])
        assert out.exit_code == 0, out.output
        assert out.stdout_bytes.count(b"\n") >= frames
