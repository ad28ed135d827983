"""Recording to a bucket (moto on 127.0.0.1): the sessions go through the spool and are
uploaded part by part; the bucket stopped mid-recording and restarted (the backlog
drains, nothing lost or doubled); a recorder killed while uploading, finished by
``wsrec repair --spool``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from conftest import assert_recorded_what_was_sent, record_from_sim
from s3 import s3  # noqa: F401

import wsrec
from wsrec.record.recorder import RecordOptions
from wsrec.store.location import open_root
from wsrec.store.roots import session_folders
from wsrec.store.session import Session
from wsrec.store.verify import verify

pytestmark = pytest.mark.timeout(90)

FAST = {"backoff": (0.01, 0.2)}


def options(spool, seconds=1.5, **more):
    return RecordOptions(duration=seconds, spool=str(spool), upload_timeout=30,
                         writer_settings={"part_bytes": 2_000}, flush_interval=0.05, **more)


def remote_keys(s3, prefix):  # noqa: F811
    client = s3.filesystem()
    return sorted(i.path for i in client.get_file_info(pafs.FileSelector(prefix, recursive=True))
                  if i.type == pafs.FileType.File)


def spool_files(spool):
    return sorted(p for p in Path(spool).rglob("*") if p.is_file() and p.name != "target.json")


def test_a_recording_to_a_bucket_reads_back_like_a_local_one(s3, tmp_path):  # noqa: F811
    s3.bucket("bkt")
    spool = tmp_path / "spool"
    result, sim, session = record_from_sim("alpaca", "s3://bkt/x", options=options(spool),
                                           symbols=["FAKEPACA"])
    assert result.status == "complete" and result.upload is None, result
    assert spool_files(spool) == []                          # everything uploaded
    root = open_root("s3://bkt/x")
    folders = session_folders(root)
    assert len(folders) == 1
    remote = Session(folders[0])
    assert remote.manifest["status"] == "complete" and len(remote.manifest["parts"]) > 2
    assert verify(remote) == []
    frames = [f.payload for f in remote.frames(direction="in")]
    assert len(frames) == result.frames_in
    assert_recorded_what_was_sent(remote, sim)


def test_the_bucket_down_mid_recording_then_back_loses_and_doubles_nothing(s3, tmp_path):  # noqa: F811
    s3.bucket("bkt")
    spool = tmp_path / "spool"
    import threading

    def outage():
        time.sleep(0.5)
        s3.stop()
        time.sleep(1.5)
        waiting.append(len(list(Path(spool).rglob("*.parquet"))))
        s3.restart()

    waiting: list[int] = []
    thread = threading.Thread(target=outage)
    thread.start()
    from wsrec.record import recorder as rec_mod
    real = rec_mod.Recorder.__init__

    def init(self, *a, **kw):
        real(self, *a, upload=FAST, **kw)

    rec_mod.Recorder.__init__ = init
    try:
        result, sim, session = record_from_sim("alpaca", "s3://bkt/x",
                                               options=options(spool, seconds=3.0),
                                               symbols=["FAKEPACA"])
    finally:
        rec_mod.Recorder.__init__ = real
        thread.join()
    assert waiting and waiting[0] >= 2                     # the parts waited in the spool
    assert result.status == "complete" and result.upload is None, result
    assert spool_files(spool) == []
    remote = Session(session_folders(open_root("s3://bkt/x"))[0])
    assert verify(remote) == []
    parts = remote.manifest["parts"]
    keys = [k for k in remote_keys(s3, "bkt/x") if k.endswith(".parquet")]
    assert [k.rsplit("/", 1)[1] for k in keys] == [p["file"] for p in parts]   # once each
    seqs = [f.seq for f in remote.frames()]
    assert seqs == list(range(len(seqs)))                  # gapless
    assert sum(1 for f in remote.frames(direction="in")) == result.frames_in


RECORD = """
import sys
from wsrec.record.recorder import RecordOptions, record
from wsrec.sim import SimOptions
from wsrec.venues import Request, get_venue
record(get_venue("alpaca"), Request(symbols=["FAKEPACA"]), sim=SimOptions(rate=500),
       data="s3://bkt/x", options=RecordOptions(
           spool=sys.argv[1], flush_interval=0.05, writer_settings={"part_bytes": 2000}))
"""


def test_a_recorder_killed_while_uploading_is_finished_by_repair_spool(s3, tmp_path):  # noqa: F811
    s3.bucket("bkt")
    spool = tmp_path / "spool"
    env = {**os.environ, "PYTHONPATH": str(Path(wsrec.__file__).parent.parent),
           "WSREC_SPOOL": str(spool)}
    before = set(remote_keys(s3, "bkt"))   # earlier tests' sessions don't count

    def in_spool():
        return list(spool.rglob("journal-*")) + list(spool.rglob("*.parquet"))

    proc = subprocess.Popen(
        [sys.executable, "-c", RECORD, str(spool)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        # the recorder has uploaded something (a part and a manifest) and has more to do
        while time.monotonic() < deadline and not (in_spool() and any(
                k.endswith("session.json") and k not in before
                for k in remote_keys(s3, "bkt"))):
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    left = in_spool()
    assert left, f"nothing left in the spool to finish: {proc.stderr.read().decode()[-2000:]}"
    out = subprocess.run([sys.executable, "-m", "wsrec", "repair", "--spool", str(spool)],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "verified, spool copy removed" in out.stdout
    assert spool_files(spool) == []
    remote = Session(session_folders(open_root("s3://bkt/x"))[0])
    assert remote.manifest["status"] == "recovered"
    assert verify(remote) == []
    keys = [k.rsplit("/", 1)[1] for k in remote_keys(s3, "bkt/x") if k.endswith(".parquet")]
    assert keys == [p["file"] for p in remote.manifest["parts"]]
    seqs = [f.seq for f in remote.frames()]
    assert seqs == list(range(len(seqs))) and len(seqs) > 10
    again = subprocess.run([sys.executable, "-m", "wsrec", "repair", "--spool", str(spool)],
                           env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "nothing in the spool" in again.stderr


def test_the_record_command_writes_to_a_bucket_and_says_so(s3, tmp_path):  # noqa: F811
    s3.bucket("bkt")
    spool = tmp_path / "spool"
    env = {**os.environ, "PYTHONPATH": str(Path(wsrec.__file__).parent.parent)}
    out = subprocess.run([sys.executable, "-m", "wsrec", "record", "alpaca", "--sim", "-s",
                          "FAKEPACA", "--duration", "1s", "--data", "s3://bkt/x", "--spool",
                          str(spool), "--json"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert spool_files(spool) == []
    ls = subprocess.run([sys.executable, "-m", "wsrec", "ls", "--data", "s3://bkt/x"],
                        env=env, capture_output=True, text=True, timeout=60)
    assert ls.returncode == 0 and "complete" in ls.stdout, ls.stderr
    verified = subprocess.run([sys.executable, "-m", "wsrec", "verify", "last", "--data",
                               "s3://bkt/x"], env=env, capture_output=True, text=True,
                              timeout=60)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    missing = subprocess.run([sys.executable, "-m", "wsrec", "record", "alpaca", "--sim",
                              "-s", "X", "--duration", "1s", "--data", "s3://nobucket/x", "--spool",
                              str(spool)], env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "bucket 'nobucket' does not exist" in missing.stderr


@pytest.mark.timeout(120)
def test_import_into_a_bucket_and_a_failed_one_leaves_nothing(tmp_path, s3):  # noqa: F811
    from conftest import write_session
    from click.testing import CliRunner
    from wsrec.cli import cli
    s3.bucket("bkt")
    folder, _ = write_session(tmp_path / "local", n=300, venue="alpaca")
    jsonl = tmp_path / "s.jsonl"
    runner = CliRunner()
    env = {"WSREC_SPOOL": str(tmp_path / "spool")}
    assert runner.invoke(cli, ["convert", str(folder), "--format", "jsonl", "-o", str(jsonl),
                               "--direction", "all", "-q"]).exit_code == 0
    r = runner.invoke(cli, ["import", str(jsonl), "--venue", "copy", "--data", "s3://bkt/x",
                            "--json", "-q"], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["path"].startswith("s3://bkt/x/venue=copy/date=")
    r = runner.invoke(cli, ["verify", "copy", "--data", "s3://bkt/x"])
    assert r.exit_code == 0 and r.output.startswith("ok: copy/"), r.output
    remote = wsrec.open_session("copy", data="s3://bkt/x")
    assert [f.payload for f in remote.frames(direction="all")] == \
        [f.payload for f in wsrec.open_session(folder).frames(direction="all")]
    assert not list((tmp_path / "spool").rglob("*.parquet"))
    # a failed import (strict, a bad line at the end) leaves no session in the bucket
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(jsonl.read_bytes() + b'{"not": "an envelope"}\n')
    r = runner.invoke(cli, ["import", str(bad), "--venue", "gone", "--data", "s3://bkt/x",
                            "--strict", "-q"], env=env)
    assert r.exit_code == 1 and "Traceback" not in r.output
    listed = runner.invoke(cli, ["ls", "--json", "--data", "s3://bkt/x"])
    assert [row["venue"] for row in json.loads(listed.stdout)] == ["copy"]


@pytest.mark.timeout(60)
def test_an_abandoned_import_removes_what_it_uploaded(tmp_path, s3):  # noqa: F811
    from wsrec.record.importer import _Rows
    s3.bucket("bkt")
    rows = _Rows("v", False, Path("x.jsonl"), "s3://bkt/x", {}, spool=tmp_path / "spool")
    rows.add(b'{"a":1}', 1_795_000_000_000_000_000, kind="text")
    rel = rows.folder.relative_to(rows.uploader.spool).as_posix()
    fs = s3.filesystem()
    for name in ("part-000000.parquet", "session.json"):   # as if uploaded before a failure
        with fs.open_output_stream(f"bkt/x/{rel}/{name}") as out:
            out.write(b"x")
    rows.abandon()
    left = fs.get_file_info(pafs.FileSelector("bkt/x", recursive=True, allow_not_found=True))
    assert [i.path for i in left if i.type == pafs.FileType.File] == []
    assert not rows.folder.exists()
