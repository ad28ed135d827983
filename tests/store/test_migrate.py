"""wsrec migrate: legacy-layout sessions into venue=/date= folders, no byte changed."""

import os

from click.testing import CliRunner

import wsrec
from conftest import write_session
from wsrec.cli import cli
from wsrec.store._lock import SessionLock
from wsrec.store.migrate import migrate
from wsrec.store.verify import verify


def legacy(data, venue, seed, session_id=None):
    """A session moved back to the old layout <root>/<venue>/<id>; its files' bytes."""
    folder, _ = write_session(data, n=50, venue=venue, seed=seed, session_id=session_id)
    old = data / venue / folder.name
    old.parent.mkdir(exist_ok=True)
    os.rename(folder, old)
    for empty in (folder.parent, folder.parent.parent):
        empty.rmdir()
    return old, {p.name: p.read_bytes() for p in old.iterdir()}


def test_migrate_moves_legacy_sessions_byte_for_byte(data):
    a, a_bytes = legacy(data, "alpaca", 1)
    b, _ = legacy(data, "alpaca", 2, session_id="mine")     # an id without a time
    new, _ = write_session(data, n=10, venue="flow", seed=3)
    moved, left = migrate(data, dry_run=True)
    assert len(moved) == 2 and not left and a.exists()       # dry run: nothing moved
    moved, left = migrate(data)
    assert len(moved) == 2 and not left
    assert not (data / "alpaca").exists()                    # the emptied venue folder
    [there] = data.glob(f"venue=alpaca/date=*/{a.name}")
    assert {p.name: p.read_bytes() for p in there.iterdir()} == a_bytes
    assert list(data.glob("venue=alpaca/date=*/mine"))
    for folder in data.glob("venue=*/date=*/*"):
        assert verify(wsrec.open_session(folder)) == []
    assert new.exists()
    assert migrate(data) == ([], [])                          # idempotent


def test_a_session_being_recorded_stays(data):
    a, _ = legacy(data, "alpaca", 1)
    with SessionLock(a):
        moved, left = migrate(data)
    assert moved == [] and "being recorded" in left[0] and a.exists()


def test_migrate_cli(data, tmp_path):
    legacy(data, "alpaca", 1)
    runner = CliRunner()
    r = runner.invoke(cli, ["migrate", "--dry-run", "--data", str(data)])
    assert r.exit_code == 0 and r.stdout.startswith("would move alpaca/")
    r = runner.invoke(cli, ["migrate", "--data", str(data)])
    assert r.exit_code == 0 and r.stdout.startswith("moved alpaca/")
    r = runner.invoke(cli, ["migrate", "--data", str(data)])
    assert r.exit_code == 0 and "nothing to migrate" in r.stderr
    r = runner.invoke(cli, ["migrate", "--data", "s3://bkt/x"])
    assert r.exit_code == 2 and "read-only" in r.output
