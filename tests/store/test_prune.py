"""wsrec prune: whole sessions that ended before a cutoff removed, nothing else touched."""

import fcntl
import json
import os
import shutil
import time

import pytest
from click.testing import CliRunner

import wsrec
from conftest import crashed_session
from s3 import s3  # noqa: F401
from wsrec.cli import cli
from wsrec.errors import UsageError
from wsrec.store import _lock as lock_module
from wsrec.store import prune as prune_module
from wsrec.store._lock import SessionLock
from wsrec.store.layout import DAY_NS, date_of
from wsrec.store.prune import is_wsrec_file, prune
from wsrec.store.repair import repair
from wsrec.store.roots import session_folders
from wsrec.store.verify import verify
from wsrec.timefmt import format_ns, parse_time

NOW = parse_time("2026-12-01T12:00:00Z")
DAYS30 = 30 * DAY_NS


def session(data, venue="alpaca", *, began_days, ended_days, n=10, now=NOW, **kw):
    """A closed session that began and ended that many days before ``now`` (its ``ended``
    is its newest row's time); its folder."""
    start, end = now - int(began_days * DAY_NS), now - int(ended_days * DAY_NS)
    with wsrec.SessionWriter(venue, data=data, started_ns=start, **kw) as w:
        for i in range(n):
            w.append(b'{"i":%d}' % i, kind="text", ts_ns=start + (end - start) * i // (n - 1),
                     mono_ns=i)
    return w.folder


def files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_removes_what_ended_before_the_cutoff_and_nothing_else(data):
    old = session(data, began_days=32, ended_days=31)
    young = session(data, began_days=30, ended_days=29)
    long = session(data, "hyperliquid", began_days=40, ended_days=1)   # began long ago
    report = prune(data, DAYS30, now_ns=NOW)
    [removed] = report.removed
    assert (removed.venue, removed.id, removed.frames, removed.status) == \
        ("alpaca", old.name, 10, "complete")
    assert removed.ended_ns == NOW - 31 * DAY_NS and removed.bytes > 0
    assert report.kept == []
    assert not old.exists() and not old.parent.exists()    # its emptied date folder too
    assert young.exists() and long.exists() and old.parent.parent.exists()
    for folder in (young, long):
        assert verify(wsrec.open_session(folder)) == []
    assert removed.line() == (f"removed alpaca/{old.name} (ended "
                              f"{date_of(NOW - 31 * DAY_NS)}T12:00:00Z, 10 frames, "
                              f"{prune_module.format_size(removed.bytes)})")
    assert report.summary().startswith("removed 1 session(s) ended before "
                                       "2026-11-01T12:00:00Z (")
    assert prune(data, DAYS30, now_ns=NOW).removed == []     # idempotent


def test_dry_run_removes_nothing_and_says_the_same(data):
    old = session(data, began_days=50, ended_days=45)
    before = files(data)
    report = prune(data, DAYS30, now_ns=NOW, dry_run=True)
    assert [r.id for r in report.removed] == [old.name] and files(data) == before
    assert report.removed[0].line(dry_run=True).startswith(f"would remove alpaca/{old.name} ")
    assert report.summary().startswith("would remove 1 session(s)")
    assert [r.id for r in prune(data, DAYS30, now_ns=NOW).removed] == [old.name]


def test_venue_and_older_than_choose(data):
    a = session(data, "alpaca", began_days=20, ended_days=10)
    h = session(data, "hyperliquid", began_days=20, ended_days=10)
    assert prune(data, DAYS30, now_ns=NOW).removed == []
    assert [r.id for r in prune(data, 5 * DAY_NS, venue="hyperliquid",
                                now_ns=NOW).removed] == [h.name]
    assert a.exists() and not h.exists()
    with pytest.raises(UsageError) as info:
        prune(data, DAYS30, venue="../etc")
    assert info.value.param == "venue"
    with pytest.raises(UsageError):
        prune(data, -1)


def test_a_session_being_recorded_is_never_removed(data):
    start = NOW - 40 * DAY_NS
    w = wsrec.SessionWriter("alpaca", data=data, started_ns=start)
    try:
        w.append(b"x", kind="text", ts_ns=start, mono_ns=1)
        w.flush()
        for dry_run in (True, False):
            report = prune(data, DAYS30, now_ns=NOW, dry_run=dry_run)
            assert report.removed == [] and [k.reason for k in report.kept] == ["live"]
            assert "1 being recorded" in report.summary()
        assert w.folder.exists()
    finally:
        w.close()
    assert [r.id for r in prune(data, DAYS30, now_ns=NOW).removed] == [w.folder.name]


def test_the_lock_is_taken_for_the_removal(data):
    # closed, but its lock held (a writer closing, a repair): prune's own lock says so
    old = session(data, began_days=40, ended_days=40)
    with SessionLock(old):
        report = prune(data, DAYS30, now_ns=NOW)
    assert report.removed == [] and report.kept[0].reason == "live" and old.exists()
    assert prune(data, DAYS30, now_ns=NOW).removed


def test_crashed_sessions_stay_unless_included_or_repaired(data):
    folder = crashed_session(data, n=20)
    later = wsrec.open_session(folder).end_ns + 31 * DAY_NS
    report = prune(data, DAYS30, now_ns=later)
    assert report.removed == [] and [k.reason for k in report.kept] == ["crashed"]
    assert "1 crashed (run 'wsrec repair', or pass --include-crashed)" in report.summary()
    repair(folder)                          # recovered: an ordinary closed session
    [removed] = prune(data, DAYS30, now_ns=later, dry_run=True).removed
    assert removed.status == "recovered" and removed.frames == 21
    other = crashed_session(data, n=5)
    report = prune(data, DAYS30, now_ns=later, include_crashed=True)
    assert {r.id for r in report.removed} == {folder.name, other.name}
    assert not folder.exists() and not other.exists()


def test_a_crashed_session_is_aged_by_its_newest_row(data):
    folder = crashed_session(data, n=20)
    newest = wsrec.open_session(folder).end_ns
    assert prune(data, DAYS30, now_ns=newest + DAYS30 - 1, include_crashed=True).removed == []
    assert prune(data, DAYS30, now_ns=newest + DAYS30 + 1, include_crashed=True).removed


def test_the_legacy_layout_and_its_emptied_venue_folder(data):
    folder = session(data, "flow", began_days=60, ended_days=59)
    legacy = data / "flow" / folder.name
    legacy.parent.mkdir()
    os.rename(folder, legacy)
    keep = session(data, "flow", began_days=3, ended_days=2)
    [removed] = prune(data, DAYS30, now_ns=NOW).removed
    assert removed.id == legacy.name and removed.venue == "flow"
    assert not (data / "flow").exists() and keep.exists()


def test_date_folders_of_today_stay(data):
    today = session(data, began_days=0.4, ended_days=0.3)
    assert date_of(NOW - int(0.4 * DAY_NS)) == date_of(NOW)
    yesterday = session(data, "vega", began_days=1, ended_days=0.9)
    report = prune(data, 0, now_ns=NOW)
    assert len(report.removed) == 2
    assert today.parent.exists() and list(today.parent.iterdir()) == []
    assert not yesterday.parent.exists()


def test_what_wsrec_did_not_write_is_left_alone(data):
    notes = session(data, began_days=40, ended_days=40)
    (notes / "notes.txt").write_text("mine")
    sub = session(data, began_days=41, ended_days=40)
    (sub / "extra").mkdir()
    lost = session(data, began_days=42, ended_days=40)
    os.unlink(lost / "session.json")                           # parts, no manifest
    other = session(data, began_days=43, ended_days=40)
    shutil.copy(notes / "session.json", other / "session.json")  # another session's
    stray = data / "venue=alpaca" / "date=2026-01-01" / "stray"
    stray.mkdir(parents=True)
    (stray / "readme").write_text("not a session")
    fine = session(data, began_days=44, ended_days=40)
    damaged = fine / "part-000000.journal.damaged.1"           # names repair writes
    damaged.write_bytes(b"x")
    before = {f: files(f) for f in (notes, sub, lost, other, stray)}
    report = prune(data, DAYS30, now_ns=NOW)
    assert [r.id for r in report.removed] == [fine.name] and not fine.exists()
    reasons = {k.id: k.detail for k in report.kept if k.reason == "left"}
    assert "holds notes.txt, which wsrec does not write" in reasons[notes.name]
    assert "holds extra/" in reasons[sub.name]
    assert "missing manifest" in reasons[lost.name]
    assert f"session.json is of alpaca/{notes.name}, not of this folder" in reasons[other.name]
    assert {f: files(f) for f in before} == before                # untouched
    assert "; kept 4 left alone (see the warnings)" in report.summary()


def test_names_wsrec_writes():
    for name in ("session.json", "session.json.tmp", "session.lock", "part-000000.parquet",
                 "part-1234567.journal", "part-000002.parquet.tmp",
                 "part-000003.journal.damaged", "session.json.damaged.2"):
        assert is_wsrec_file(name), name
    for name in ("notes.txt", "part-1.parquet", "session.json.bak", "part-000000.parquet/x",
                 ".session.json", "session.jsonx"):
        assert not is_wsrec_file(name), name


def test_symbolic_links_are_never_followed_out_of_the_root(data, tmp_path):
    outside = tmp_path / "outside"
    elsewhere = session(outside, began_days=40, ended_days=40)
    linked = data / "venue=alpaca" / "date=2026-10-01" / elsewhere.name
    linked.parent.mkdir(parents=True)
    linked.symlink_to(elsewhere)                                 # a session folder link
    (data / "venue=vega").symlink_to(outside / "venue=alpaca")   # a venue folder link
    inside = session(data, "flow", began_days=40, ended_days=40)
    target = tmp_path / "precious.parquet"
    target.write_bytes(b"keep me")
    os.unlink(inside / "session.lock")
    (inside / "session.lock").symlink_to(target)                 # a file link inside
    report = prune(data, DAYS30, now_ns=NOW)
    assert report.removed == []
    assert {k.reason for k in report.kept} == {"left"} and len(report.kept) == 3
    assert any("is a symbolic link" in k.detail for k in report.kept)
    assert "holds session.lock" in next(k.detail for k in report.kept if k.venue == "flow")
    assert elsewhere.exists() and verify(wsrec.open_session(elsewhere)) == []
    assert target.read_bytes() == b"keep me" and inside.exists()


def test_rotated_chains_lose_their_older_sessions(data):
    first = session(data, "hyperliquid", began_days=45, ended_days=44)
    start = NOW - 44 * DAY_NS
    with wsrec.SessionWriter("hyperliquid", data=data, started_ns=start,
                             continues=first.name) as w:
        for i in range(5):
            w.append(b'{"i":%d}' % i, kind="text", ts_ns=start + i * 8 * DAY_NS, mono_ns=i)
    manifest = json.loads((first / "session.json").read_text())
    manifest["continued_by"] = w.id
    (first / "session.json").write_text(json.dumps(manifest))
    [removed] = prune(data, DAYS30, now_ns=NOW).removed
    assert removed.id == first.name
    later = wsrec.open_session(w.folder)
    assert later.manifest["continues"] == first.name and verify(later) == []
    assert len(list(later.frames())) == 5
    r = CliRunner().invoke(cli, ["replay", "--data", str(data), "hyperliquid", "--speed",
                                 "max", "--start", "2026-01-01", "--end", "2027-01-01"])
    assert r.exit_code == 0 and r.stdout.count("\n") == 5


def test_an_interrupted_prune_is_finished_by_the_next(data):
    old = session(data, began_days=40, ended_days=40)
    hidden = old.with_name(".pruning-" + old.name)
    os.rename(old, hidden)
    os.unlink(hidden / "session.json")                   # it stopped half way
    assert session_folders(data) == []                   # readers don't see it
    assert prune(data, DAYS30, now_ns=NOW, dry_run=True).removed == []
    assert hidden.exists()                               # a dry run touches nothing
    prune(data, DAYS30, now_ns=NOW)
    assert not hidden.exists() and not hidden.parent.exists()


def test_an_emptied_hidden_folder_is_removed_and_a_lockless_one_left(data):
    a = session(data, began_days=40, ended_days=40)
    b = session(data, "vega", began_days=40, ended_days=40)
    hidden_a, hidden_b = (f.with_name(".pruning-" + f.name) for f in (a, b))
    os.rename(a, hidden_a)
    os.rename(b, hidden_b)
    for f in hidden_a.iterdir():         # stopped between the lock's unlink and the rmdir
        f.unlink()
    (hidden_b / "session.lock").unlink()  # not a prune's doing: files but no lock
    before = files(hidden_b)
    warnings = []
    prune(data, DAYS30, now_ns=NOW, warn=warnings.append)
    assert not hidden_a.exists() and not hidden_a.parent.exists()
    assert files(hidden_b) == before and not (hidden_b / "session.lock").exists()
    assert warnings == [f"{hidden_b}: left alone: it holds files but no session.lock"]


def _after(monkeypatch, name, when, then, *, before=False):
    """Run ``then()`` once, around the first ``os.<name>(path)`` that ``when(path)`` picks."""
    real, done = getattr(os, name), []

    def hooked(path, *args, **kw):
        hit = not done and when(str(path))
        if hit:
            done.append(path)
            if before:
                then()
        out = real(path, *args, **kw)
        if hit and not before:
            then()
        return out
    monkeypatch.setattr(os, name, hooked)
    return done


@pytest.mark.parametrize("moment", ["lock held", "lock unlinked", "lock released"])
def test_a_second_prune_in_the_middle_of_a_removal_has_nothing_to_do(data, monkeypatch,
                                                                       moment):
    # the second one comes while the first removes the hidden folder: it finishes it, or
    # leaves it to the first, and neither says a word
    old = session(data, began_days=40, ended_days=40, now=time.time_ns())
    hidden = old.with_name(".pruning-" + old.name)
    second, warnings = [], []

    def another():
        second.append(prune(data, DAYS30, warn=warnings.append))
    if moment == "lock held":
        step = _after(monkeypatch, "unlink", lambda p: p == str(hidden / "session.json"),
                      another)
    elif moment == "lock unlinked":
        step = _after(monkeypatch, "unlink", lambda p: p == str(hidden / "session.lock"),
                      another)
    else:
        step = _after(monkeypatch, "rmdir", lambda p: p == str(hidden), another, before=True)
    r = run("--older-than", "30d", "--data", data)
    assert step and r.exit_code == 0, r.output
    assert r.stdout.startswith(f"removed alpaca/{old.name} ") and "warning" not in r.stderr
    [report] = second
    assert report.removed == [] and report.kept == [] and warnings == []
    assert not hidden.exists() and not old.exists() and not old.parent.exists()


def test_a_prune_locking_a_session_another_prune_just_removed_has_nothing_to_do(
        data, monkeypatch):
    # the second opened the session's lock, and takes it once the first removed it all
    old = session(data, began_days=40, ended_days=40, now=time.time_ns())
    first, real, done = [], lock_module.fcntl.flock, []

    def flock(fd, op):
        if not done and op & fcntl.LOCK_EX:
            done.append(fd)
            first.append(prune(data, DAYS30))
        return real(fd, op)
    monkeypatch.setattr(lock_module.fcntl, "flock", flock)
    r = run("--older-than", "30d", "--data", data)
    assert r.exit_code == 0 and r.stdout == "" and "warning" not in r.stderr, r.output
    assert r.stderr.startswith("removed 0 session(s)")
    assert [x.id for x in first[0].removed] == [old.name] and not old.parent.exists()


def test_two_prunes_finishing_one_hidden_folder(data, monkeypatch):
    # an interrupted prune's folder: the second locks it after the first removed it all
    old = session(data, began_days=40, ended_days=40)
    hidden = old.with_name(".pruning-" + old.name)
    os.rename(old, hidden)
    first, warnings, real, done = [], [], lock_module.fcntl.flock, []

    def flock(fd, op):
        if not done and op & fcntl.LOCK_EX:
            done.append(fd)
            first.append(prune(data, DAYS30, now_ns=NOW, warn=warnings.append))
        return real(fd, op)
    monkeypatch.setattr(lock_module.fcntl, "flock", flock)
    report = prune(data, DAYS30, now_ns=NOW, warn=warnings.append)
    assert done and report.removed == report.kept == [] and warnings == []
    assert first[0].removed == first[0].kept == []
    assert not hidden.exists() and not hidden.parent.exists()


def test_a_failed_removal_is_reported_and_the_rest_goes_on(data, monkeypatch):
    a = session(data, began_days=40, ended_days=40)
    b = session(data, "vega", began_days=40, ended_days=40)
    real = os.rename

    def rename(src, dst, *args, **kw):
        if str(src) == str(a):
            raise PermissionError(13, "Permission denied")
        return real(src, dst, *args, **kw)
    monkeypatch.setattr(prune_module.os, "rename", rename)
    report = prune(data, DAYS30, now_ns=NOW)
    assert [r.id for r in report.removed] == [b.name]
    [kept] = report.kept
    assert kept.reason == "error" and "Permission denied" in kept.detail
    assert "1 that could not be removed" in report.summary()
    assert a.exists() and verify(wsrec.open_session(a)) == []
    with SessionLock(a):      # the lock was released
        pass


# -- the command -----------------------------------------------------------------------------

def run(*args):
    return CliRunner().invoke(cli, ["prune", *map(str, args)])


def test_prune_command(data):
    now = time.time_ns()   # the command's clock
    old = session(data, began_days=40, ended_days=39, now=now)
    new = session(data, "vega", began_days=0.5, ended_days=0.4, now=now)
    r = run("--older-than", "30d", "--data", data, "--dry-run")
    assert r.exit_code == 0 and r.stdout.startswith(f"would remove alpaca/{old.name} (ended ")
    assert r.stdout.count("\n") == 1 and old.exists()
    assert r.stderr.startswith("would remove 1 session(s) ended before ")
    r = run("--older-than", "30d", "--data", data, "--json")
    out = json.loads(r.stdout)
    assert r.exit_code == 0 and [s["id"] for s in out["removed"]] == [old.name]
    assert out["removed"][0]["frames"] == 10 and out["kept"] == [] and not out["dry_run"]
    assert not old.exists() and new.exists()
    r = run("--older-than", "1h", "--venue", "alpaca", "--data", data)
    assert r.exit_code == 0 and r.stdout == "" and new.exists()
    assert r.stderr.startswith("removed 0 session(s)")


def test_prune_command_warnings_and_errors(data, monkeypatch):
    junk = session(data, began_days=40, ended_days=39, now=time.time_ns())
    (junk / "notes.txt").write_text("mine")
    crashed = crashed_session(data, n=3)
    r = run("--older-than", "0", "--data", data)
    assert r.exit_code == 0 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0] == (f"warning: alpaca/{junk.name}: holds notes.txt, which wsrec does not "
                        f"write")
    assert "kept 1 crashed" in lines[1] and "1 left alone" in lines[1]
    assert crashed.exists()

    def refuse(*args, **kw):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(prune_module.os, "rename", refuse)
    r = run("--older-than", "0", "--data", data, "--include-crashed")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.stderr.splitlines()[-1] == "Error: 1 session(s) could not be removed"
    assert "could not remove it: Permission denied" in r.stderr


@pytest.mark.parametrize("args, message", [
    ([], "Missing option '--older-than'"),
    (["--older-than", "30x"], "Invalid value for --older-than: not a duration"),
    (["--older-than", "30d", "--venue", "../x"], "Invalid value for --venue"),
    (["--older-than", "30d", "--data", "http://x/y"], "Invalid value for --data"),
])
def test_prune_usage_errors_exit_2(data, args, message):
    r = run(*args)
    assert r.exit_code == 2 and message in r.stderr and "Traceback" not in r.output


# -- in a bucket ---------------------------------------------------------------------------

def test_prune_in_a_bucket(s3, data):  # noqa: F811
    now = time.time_ns()   # the command's clock too
    old = session(data, began_days=40, ended_days=39, now=now)
    new = session(data, "vega", began_days=2, ended_days=1, now=now)
    uploading = session(data, "flow", began_days=50, ended_days=45, now=now)
    manifest = json.loads((uploading / "session.json").read_text())
    manifest["status"] = "recording"
    (uploading / "session.json").write_text(json.dumps(manifest))
    junk = session(data, "dfuse", began_days=50, ended_days=45, now=now)
    (junk / "notes.txt").write_text("mine")
    for folder in (data.glob("venue=*/date=*/*")):
        os.unlink(folder / "session.lock")     # the uploader never sends the lock
    s3.bucket("bkt")
    s3.upload(data, "bkt/raw")
    url = "s3://bkt/raw"
    report = prune(url, DAYS30, now_ns=now, dry_run=True)
    assert [r.id for r in report.removed] == [old.name]
    assert {k.venue: k.reason for k in report.kept} == {"flow": "uploading", "dfuse": "left"}
    report = prune(url, DAYS30, now_ns=now)
    assert [r.id for r in report.removed] == [old.name] and report.removed[0].frames == 10
    fs = s3.filesystem()
    import pyarrow.fs as pafs
    left = {i.path for i in fs.get_file_info(pafs.FileSelector("bkt/raw", recursive=True))
            if i.type == pafs.FileType.File}
    assert not any(old.name in p for p in left)
    assert any(new.name in p for p in left) and any(junk.name in p for p in left)
    r = CliRunner().invoke(cli, ["ls", "--data", url, "--json"])
    assert old.name not in r.stdout and new.name in r.stdout
    report = prune(url, DAYS30, now_ns=now, include_crashed=True)
    assert [r.id for r in report.removed] == [uploading.name]
    r = run("--older-than", "1h", "--data", url, "--dry-run")
    assert r.exit_code == 0 and r.stdout.startswith(
        f"would remove vega/{new.name} (ended {format_ns(now - DAY_NS)[:19]}Z, 10 frames, ")
    assert f"warning: dfuse/{junk.name}: holds notes.txt" in r.stderr


def test_a_half_deleted_bucket_session_is_finished(s3, data):  # noqa: F811
    old = session(data, began_days=40, ended_days=39)
    s3.bucket("bkt")
    s3.upload(data, "bkt/raw")
    rel = old.relative_to(data).as_posix()
    s3.filesystem().delete_file(f"bkt/raw/{rel}/part-000000.parquet")   # stopped half way
    [removed] = prune("s3://bkt/raw", DAYS30, now_ns=NOW).removed
    assert removed.id == old.name
    r = CliRunner().invoke(cli, ["ls", "--data", "s3://bkt/raw", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout) == []
