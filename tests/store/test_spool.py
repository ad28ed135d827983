"""Spool paths (wsrec.store.spool): where a recording to a bucket waits on the local disk."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from wsrec.errors import UsageError
from wsrec.store.location import Root, open_root
from wsrec.store.spool import (TARGET, sessions, spool_dir, target_folder, target_key,
                               targets)


def test_the_spool_is_the_option_else_the_variable_else_the_cache(tmp_path):
    assert spool_dir("/x/s", environ={"WSREC_SPOOL": "/y"}) == Path("/x/s")
    assert spool_dir(None, environ={"WSREC_SPOOL": "/y", "XDG_CACHE_HOME": "/c"}) == Path("/y")
    assert spool_dir(None, environ={"XDG_CACHE_HOME": "/c"}) == Path("/c/wsrec/spool")
    assert spool_dir(None, environ={}) == Path.home() / ".cache" / "wsrec" / "spool"


def test_one_folder_per_root_holding_the_url_and_no_credential(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    root = open_root("s3://bkt/x", endpoint="http://127.0.0.1:9000")
    folder = target_folder(root, tmp_path)
    assert folder == tmp_path / target_key("s3://bkt/x") and len(folder.name) == 12
    assert json.loads((folder / TARGET).read_text()) == \
        {"url": "s3://bkt/x", "endpoint": "http://127.0.0.1:9000"}
    assert b"s3cr3t" not in (folder / TARGET).read_bytes()
    assert target_folder(root, tmp_path) == folder            # idempotent
    other = target_folder(open_root("s3://bkt/y"), tmp_path)
    assert other != folder
    assert [(t.folder, t.url) for t in targets(tmp_path)] == sorted(
        [(folder, "s3://bkt/x"), (other, "s3://bkt/y")])


def test_targets_leave_foreign_or_tampered_folders_alone(tmp_path):
    folder = target_folder(open_root("s3://bkt/x"), tmp_path)
    (tmp_path / "junk").mkdir()
    (tmp_path / "abcdefabcdef").mkdir()
    (tmp_path / "abcdefabcdef" / TARGET).write_text('{"url": "s3://bkt/x"}')  # wrong key
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / TARGET).write_text("not json")
    assert [t.folder for t in targets(tmp_path)] == [folder]
    assert targets(tmp_path / "none") == []


def test_a_local_root_needs_no_spool(tmp_path):
    with pytest.raises(UsageError):
        target_folder(Root(pafs.LocalFileSystem(), str(tmp_path), str(tmp_path), True),
                      tmp_path)


def test_sessions_are_the_session_folders_oldest_first(tmp_path):
    for rel in ("venue=a/date=2026-01-02/20260102T000000Z-bbbb",
                "venue=a/date=2026-01-01/20260101T000000Z-aaaa"):
        (tmp_path / rel).mkdir(parents=True)
        (tmp_path / rel / "session.json").write_text("{}")
    (tmp_path / "venue=a" / "date=2026-01-01" / "empty").mkdir()
    assert [p.name for p in sessions(tmp_path)] == ["20260101T000000Z-aaaa",
                                                    "20260102T000000Z-bbbb"]
