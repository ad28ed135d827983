import os

import pytest

from wsrec.store import atomic
from wsrec.store.atomic import publish, write_atomic


def test_write_atomic_replaces_the_file_whole(tmp_path):
    target = tmp_path / "session.json"
    target.write_bytes(b"old")
    write_atomic(target, b"new contents\n")
    assert target.read_bytes() == b"new contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session.json"]  # no .tmp left


def test_publish_syncs_the_file_then_the_folder(tmp_path, monkeypatch):
    synced, renamed = [], []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    monkeypatch.setattr(atomic.os, "replace",
                        lambda a, b: (renamed.append(len(synced)), real_replace(a, b)))
    tmp, final = tmp_path / "x.tmp", tmp_path / "x"
    f = open(tmp, "wb")
    f.write(b"data")
    publish(f, tmp, final)
    assert f.closed and final.read_bytes() == b"data" and not tmp.exists()
    assert renamed == [1] and len(synced) == 2  # the file before the rename, the folder after


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "session.json"
    target.write_bytes(b"old")

    def full(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
