"""Choosing sessions by time without reading every manifest: ls --since/--until, and a
venue name with --start/--end in replay and convert."""

import json

import pytest
from click.testing import CliRunner

import wsrec
from wsrec.cli import cli
from wsrec.store import roots
from wsrec.store.roots import resolve_range, sessions_between
from s3 import s3  # noqa: F401  (the fixture)

DAY = 86_400 * 10**9
T0 = 1_795_000_000 * 10**9 // DAY * DAY   # a UTC midnight


def session(data, venue, start, frames):
    """A session started at ``start`` (ns) with ``frames`` rows one second apart."""
    with wsrec.SessionWriter(venue, data=data, started_ns=start) as w:
        for i in range(frames):
            w.append(b'{"i":%d}' % i, kind="text", ts_ns=start + i * 10**9,
                     mono_ns=start + i * 10**9)
    return w.folder


def days(data):
    """Three daily sessions of one venue, another venue's, and one ten days before."""
    return {"old": session(data, "v", T0 - 10 * DAY, 3),
            "d0": session(data, "v", T0, 5), "d1": session(data, "v", T0 + DAY, 5),
            "d2": session(data, "v", T0 + 2 * DAY, 5), "w": session(data, "w", T0 + DAY, 5)}


def test_sessions_between_reads_only_the_manifests_it_must(data, monkeypatch):
    made = days(data)
    loaded = []
    real = roots.load_manifest
    monkeypatch.setattr(roots, "load_manifest", lambda f: loaded.append(f.name) or real(f))
    got = sessions_between(data, "v", T0 + DAY + 2 * 10**9, T0 + 2 * DAY + 10**9)
    assert got == [made["d1"], made["d2"]]
    # began before the start, on the day before it or that day: their ends were read; the
    # session ten days before was not even listed
    assert loaded == [made["d0"].name, made["d1"].name]
    assert sessions_between(data, "v", T0 + 10 * 10**9, T0 + DAY) == []   # d0 ended at +4 s
    assert set(sessions_between(data, None, T0 + DAY, T0 + DAY + 1)) == {made["d1"], made["w"]}
    assert sessions_between(data, "v", None, T0) == [made["old"]]


def test_a_venue_name_with_a_range_is_every_session_in_it(data):
    made = days(data)
    assert resolve_range("v", data, T0, T0 + 3 * DAY) == [made["d0"], made["d1"], made["d2"]]
    assert resolve_range("v", data) == [made["d2"]]             # no range: the newest
    assert resolve_range(made["d0"].name, data, T0, None) == [made["d0"]]   # an id: itself
    runner = CliRunner()
    r = runner.invoke(cli, ["replay", "v", "--speed", "max", "--data", str(data),
                            "--start", "2026-11-18T00:00:00Z"])
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["i"] for x in r.stdout.splitlines()] == [0, 1, 2, 3, 4] * 3
    r = runner.invoke(cli, ["replay", "v", "--speed", "max", "--data", str(data),
                            "--start", "2020-01-01", "--end", "2020-01-02"])
    assert r.exit_code == 0 and r.stdout == ""       # none in range: the newest says so
    assert "no frame between 2020-01-01" in r.stderr and "the sessions span 2026-11-20" \
        in r.stderr


def test_ls_since_until(data):
    made = days(data)
    r = CliRunner().invoke(cli, ["ls", "v", "--json", "--data", str(data), "--since",
                                 "2026-11-18T00:00:03Z", "--until", "2026-11-19T12:00:00Z"])
    assert r.exit_code == 0, r.output
    assert [row["id"] for row in json.loads(r.stdout)] == [made["d0"].name, made["d1"].name]
    r = CliRunner().invoke(cli, ["ls", "--since", "yesterday", "--data", str(data)])
    assert r.exit_code == 2 and "--since" in r.output


@pytest.mark.timeout(60)
def test_sessions_between_in_a_bucket_lists_only_the_dates_in_range(data, s3):  # noqa: F811
    made = days(data)
    s3.bucket("bkt")
    s3.upload(data, "bkt/root")
    got = sessions_between("s3://bkt/root", "v", T0 + DAY + 2 * 10**9, T0 + 2 * DAY + 10**9)
    assert [f.name for f in got] == [made["d1"].name, made["d2"].name]
    r = CliRunner().invoke(cli, ["ls", "v", "--json", "--data", "s3://bkt/root", "--since",
                                 "2026-11-20T00:00:00Z"])
    assert r.exit_code == 0, r.output
    assert [row["id"] for row in json.loads(r.stdout)] == [made["d2"].name]
