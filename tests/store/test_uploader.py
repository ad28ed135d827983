"""The uploader (wsrec.store._uploader): sealed parts from the spool to a bucket, checked
and removed locally, manifests listing only what is uploaded, retries with backoff on a
fake clock, a stop on refused access. A pyarrow ``PyFileSystem`` over a local folder
plays the bucket and fails on demand; the last tests use moto (tests/s3.py)."""

from __future__ import annotations

import io
import json
import random
import threading
import types
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

import wsrec
from wsrec.errors import DiskFull
from wsrec.retry import backoff_delay
from wsrec.store._uploader import Uploader, remove_spooled
from wsrec.store.location import Root, RootPath
from wsrec.store.session import Session
from wsrec.store.verify import verify

pytestmark = pytest.mark.timeout(60)

DOWN = ("When uploading part for key 'x/y' in bucket 'fake': AWS Error NETWORK_CONNECTION "
        "during UploadPart operation: curlCode: 7, Could not connect to server")
DENIED = ("When initiating multiple part upload for key 'x/y' in bucket 'fake': AWS Error "
          "ACCESS_DENIED during CreateMultipartUpload operation: Access Denied")


class Faulty(pafs.FileSystemHandler):
    """A local folder as a bucket; ``fail[op]`` is a list of messages raised by the next
    calls of ``op`` (``put``, ``get``, ``info``), one per call."""

    def __init__(self):
        self.fs = pafs.LocalFileSystem()
        self.fail: dict[str, list[str]] = {"put": [], "get": [], "info": []}
        self.puts: list[str] = []
        self.corrupt = 0      # the next N uploads store a flipped byte

    def _maybe(self, op):
        if self.fail[op]:
            raise OSError(self.fail[op].pop(0))

    def get_type_name(self):
        return "faulty"

    def equals(self, other):
        return self is other

    def get_file_info(self, paths):
        self._maybe("info")
        return self.fs.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.fs.get_file_info(selector)

    def create_dir(self, path, recursive):
        self.fs.create_dir(path, recursive=recursive)

    def delete_dir(self, path):
        self.fs.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self.fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):
        raise NotImplementedError

    def delete_file(self, path):
        self.fs.delete_file(path)

    def move(self, src, dest):
        self.fs.move(src, dest)

    def copy_file(self, src, dest):
        self.fs.copy_file(src, dest)

    def open_input_stream(self, path):
        self._maybe("get")
        return self.fs.open_input_stream(path)

    def open_input_file(self, path):
        self._maybe("get")
        return self.fs.open_input_file(path)

    def open_output_stream(self, path, metadata):
        self._maybe("put")
        self.puts.append(path)
        self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        if self.corrupt:
            self.corrupt -= 1
            return pa.PythonFile(_Flipping(path, "wb"), mode="w")
        return self.fs.open_output_stream(path)

    def open_append_stream(self, path, metadata):
        raise NotImplementedError

    def normalize_path(self, path):
        return path


class _Flipping(io.FileIO):
    """A file that stores its first byte flipped."""

    first = True

    def write(self, data):
        data = bytes(data)
        if self.first and data:
            data = bytes([data[0] ^ 1]) + data[1:]
            self.first = False
        return super().write(data)


class FakeClock:
    def __init__(self):
        self.now, self.slept = 0.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def fake_root(tmp_path, handler):
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    return Root(pafs.PyFileSystem(handler), str(bucket / "x"), "s3://fake/x", False)


def spool_writer(spool, uploader, **settings):
    return wsrec.SessionWriter("alpaca", data=spool, on_sealed=uploader.sealed,
                               on_closed=uploader.closed, flush_interval=60, part_bytes=1,
                               **settings)


def write_parts(w, parts=3, rows=40):
    for p in range(parts):
        for i in range(rows):
            w.append(b'{"p":%d,"i":%d}' % (p, i), kind="text")
        w.flush()       # part_bytes=1: every flush seals a part


def remote_session(root, folder, spool):
    return Session(RootPath(root, Path(folder).relative_to(spool).as_posix()))


def run_to_end(up, timeout=20):
    left = up.close(timeout)
    return left


def test_parts_and_manifests_are_uploaded_checked_and_removed_locally(tmp_path):
    handler = Faulty()
    root, spool = fake_root(tmp_path, handler), tmp_path / "spool"
    up = Uploader(root, spool, backoff=(0.001, 0.01)).start()
    w = spool_writer(spool, up)
    folder = w.folder
    write_parts(w, parts=3)
    w.close()
    assert run_to_end(up) is None
    assert not folder.exists()                   # the spool copy is gone
    session = remote_session(root, folder, spool)
    assert session.manifest["status"] == "complete"
    assert len(session.manifest["parts"]) == 3 and verify(session) == []
    assert [f.payload for f in session.frames()][:2] == [b'{"p":0,"i":0}', b'{"p":0,"i":1}']
    # each part uploaded once, and the manifest always after the parts it lists
    parts = [p for p in handler.puts if p.endswith(".parquet")]
    assert len(parts) == len(set(parts)) == 3
    assert handler.puts[-1].endswith("session.json")


def test_a_remote_manifest_never_names_a_part_not_uploaded(tmp_path):
    handler = Faulty()
    root, spool = fake_root(tmp_path, handler), tmp_path / "spool"
    seen = []
    real = Root.put_bytes

    def spy(self, rel, data):
        manifest = json.loads(data)
        for p in manifest["parts"]:       # every part it names is there, whole
            assert (Path(self.path(rel)).parent / p["file"]).stat().st_size == p["bytes"]
        seen.append((manifest["status"], len(manifest["parts"])))
        real(self, rel, data)

    Root.put_bytes = spy
    try:
        up = Uploader(root, spool, backoff=(0.001, 0.01)).start()
        w = spool_writer(spool, up)
        write_parts(w, parts=3)
        w.close()
        assert run_to_end(up) is None
    finally:
        Root.put_bytes = real
    assert seen[-1] == ("complete", 3)
    assert all(status == "recording" for status, _ in seen[:-1])


def test_transient_failures_are_retried_with_backoff_on_the_clock(tmp_path):
    handler = Faulty()
    handler.fail["put"] = [DOWN] * 4
    clock = FakeClock()
    root, spool = fake_root(tmp_path, handler), tmp_path / "spool"
    up = Uploader(root, spool, clock=clock, sleep=clock.sleep, rng=random.Random(3),
                  backoff=(0.5, 30.0))
    w = spool_writer(spool, up)
    write_parts(w, parts=2)
    w.close()
    assert up.backlog()[0] == 2          # queued, not uploaded: the thread isn't running
    up.start()
    assert run_to_end(up) is None
    rng = random.Random(3)
    assert clock.slept == [backoff_delay(n, 0.5, 30.0, rng) for n in (1, 2, 3, 4)]
    assert up.retries == 4 and up.parts_uploaded == 2 and up.failure is None
    assert verify(remote_session(root, w.folder, spool)) == []


def test_refused_access_stops_the_uploader_and_keeps_the_spool(tmp_path):
    handler = Faulty()
    handler.fail["put"] = [DENIED]
    root, spool = fake_root(tmp_path, handler), tmp_path / "spool"
    warned = []
    up = Uploader(root, spool, backoff=(0.001, 0.01), warn=warned.append).start()
    w = spool_writer(spool, up)
    write_parts(w, parts=2)
    w.close()
    left = run_to_end(up)
    assert "access denied" in left and "wsrec repair --spool" in left and "2 part(s)" in left
    assert len(warned) == 1 and "uploads stopped" in warned[0]
    assert sorted(p.name for p in w.folder.glob("*.parquet")) == \
        ["part-000000.parquet", "part-000001.parquet"]
    assert Session(w.folder).manifest["status"] == "complete"


def test_an_upload_that_does_not_match_is_deleted_and_sent_again(tmp_path):
    handler = Faulty()
    handler.corrupt = 2
    root, spool = fake_root(tmp_path, handler), tmp_path / "spool"
    up = Uploader(root, spool, backoff=(0.001, 0.01)).start()
    w = spool_writer(spool, up)
    write_parts(w, parts=1)
    w.close()
    assert run_to_end(up) is None
    assert len([p for p in handler.puts if p.endswith(".parquet")]) == 3
    assert verify(remote_session(root, w.folder, spool)) == []


def test_a_part_that_never_matches_stays_local(tmp_path):
    handler = Faulty()
    handler.corrupt = 3
    root, spool = fake_root(tmp_path, handler), tmp_path / "spool"
    up = Uploader(root, spool, backoff=(0.001, 0.01), warn=lambda line: None).start()
    w = spool_writer(spool, up)
    write_parts(w, parts=1)
    w.close()
    left = run_to_end(up)
    assert "does not match" in left
    assert (w.folder / "part-000000.parquet").exists()
    assert not Path(root.path(Path(w.folder).relative_to(spool).as_posix(),
                              "part-000000.parquet")).exists()


def test_a_spool_below_min_free_fails_the_session_with_one_line(tmp_path):
    handler = Faulty()
    handler.fail["put"] = [DOWN] * 1000
    root, spool = fake_root(tmp_path, handler), tmp_path / "spool"
    usage = types.SimpleNamespace(free=10 << 30, total=100 << 30)
    gate = threading.Event()
    up = Uploader(root, spool, backoff=(0.001, 0.01), disk_usage=lambda path: usage,
                  min_free=1 << 30, sleep=lambda s: gate.wait(0.01)).start()
    w = spool_writer(spool, up)
    write_parts(w, parts=1)
    usage.free = 812 << 20
    with pytest.raises(DiskFull) as info:
        write_parts(w, parts=1)
        w.append(b"more", kind="text")
    message = str(info.value)
    assert "812.0 MiB free, below --spool-min-free 1.0 GiB" in message
    assert "wait for s3://fake/x" in message and "NetworkConnection" in message
    with pytest.raises(DiskFull):
        w.close()
    assert Session(w.folder).manifest["status"] == "failed"
    assert "repair --spool" in up.close(0.2)
    assert len(list(w.folder.glob("*.parquet"))) == 2     # everything stays in the spool


def test_remove_spooled_keeps_a_folder_that_still_holds_data(tmp_path):
    folder = tmp_path / "venue=a" / "date=2026-01-01" / "s1"
    folder.mkdir(parents=True)
    (folder / "session.json").write_text("{}")
    (folder / "journal-000000.arrows").write_bytes(b"x")
    assert not remove_spooled(folder) and folder.exists()
    (folder / "journal-000000.arrows").unlink()
    assert remove_spooled(folder, parents=True)
    assert not (tmp_path / "venue=a").exists()
